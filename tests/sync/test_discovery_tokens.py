"""mDNS discovery tokens, pure: only a holder of the announcer's public key can tell who announced."""

from __future__ import annotations

from crypto.identity import Identity
from sync.discovery_tokens import current_hour, mdns_token, recognise

ALICE = Identity.from_secret_bytes(bytes(range(64)))
BOB = Identity.from_secret_bytes(bytes(range(64, 128)))
NOW = 1_800_000_000.0  # some instant; tokens depend only on its hour
HOUR = current_hour(NOW)
TRUSTED = {ALICE.node_id: ALICE.public.sign_key, BOB.node_id: BOB.public.sign_key}


def test_hour_is_whole_hours_since_the_epoch() -> None:
    assert current_hour(0) == 0
    assert current_hour(3599.9) == 0
    assert current_hour(3600) == 1
    assert current_hour(NOW) == int(NOW) // 3600


def test_token_is_deterministic_16_bytes_hex() -> None:
    token = mdns_token(ALICE.public.sign_key, HOUR)
    assert token == mdns_token(ALICE.public.sign_key, HOUR)
    assert len(token) == 32
    assert bytes.fromhex(token)


def test_token_pinned_to_its_definition() -> None:
    import hashlib
    import hmac

    key = ALICE.public.sign_key
    expected = hmac.new(key, b"seajust-mdns-v1|" + str(HOUR).encode(), hashlib.sha256).digest()[:16].hex()
    assert mdns_token(key, HOUR) == expected


def test_token_changes_every_hour_and_with_the_key() -> None:
    tokens = {mdns_token(ALICE.public.sign_key, HOUR + i) for i in range(24)}
    assert len(tokens) == 24
    assert mdns_token(ALICE.public.sign_key, HOUR) != mdns_token(BOB.public.sign_key, HOUR)


def test_recognises_this_hour_and_the_previous_one() -> None:
    assert recognise(mdns_token(ALICE.public.sign_key, HOUR), TRUSTED, NOW) == ALICE.node_id
    assert recognise(mdns_token(BOB.public.sign_key, HOUR - 1), TRUSTED, NOW) == BOB.node_id
    assert recognise(mdns_token(ALICE.public.sign_key, HOUR).upper(), TRUSTED, NOW) == ALICE.node_id


def test_refuses_two_hours_back_and_the_future() -> None:
    assert recognise(mdns_token(ALICE.public.sign_key, HOUR - 2), TRUSTED, NOW) is None
    assert recognise(mdns_token(ALICE.public.sign_key, HOUR + 1), TRUSTED, NOW) is None


def test_refuses_an_untrusted_key_and_garbage() -> None:
    stranger = Identity.from_secret_bytes(bytes(range(128, 192)))
    assert recognise(mdns_token(stranger.public.sign_key, HOUR), TRUSTED, NOW) is None
    assert recognise(mdns_token(ALICE.public.sign_key, HOUR), {}, NOW) is None
    for garbage in ("", "zz", "é" * 32, "0" * 32, mdns_token(ALICE.public.sign_key, HOUR)[:-1]):
        assert recognise(garbage, TRUSTED, NOW) is None


def test_token_reveals_neither_node_id_nor_key() -> None:
    for who in (ALICE, BOB):
        token = mdns_token(who.public.sign_key, HOUR)
        key_hex = who.public.sign_key.hex()
        compact_id = who.node_id.replace("-", "")
        assert token not in key_hex
        assert key_hex[:8] not in token
        assert who.node_id.lower() not in token.lower()
        assert compact_id.lower() not in token.lower()
        assert compact_id[:6].lower() not in token.lower()
