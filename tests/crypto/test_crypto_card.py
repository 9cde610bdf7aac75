"""Node cards survive mail clients, and any change to one is caught with a message a person can act on."""

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.card import CARD_PREFIX, ROLES, NodeCard, make_card, parse_card
from crypto.errors import CardError
from crypto.identity import Identity, verify_signature
from crypto.node_id import node_id_from_keys

IDENTITY = Identity.from_secret_bytes(bytes(range(64)))
OTHER = Identity.from_secret_bytes(bytes(range(64, 128)))
ADDRESSES = ("https://node.ago.go.th:8443", "http://192.0.2.10:8080/seajust")
CARD = make_card(
    IDENTITY,
    name="Office of the Attorney General \N{THAI CHARACTER KO KAI}",
    country="TH",
    role="authority",
    addresses=ADDRESSES,
    now=1_700_000_000,
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def payload_of(card: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(unb64url(card[len(CARD_PREFIX) :].split(".")[0]))
    return result


def signed_card(signer: Identity, payload: dict[str, Any]) -> str:
    """Build a card from the documented format, signed by `signer` whatever the payload claims."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return CARD_PREFIX + b64url(body) + "." + b64url(signer.sign(b"seajust-card-v1\n" + body))


def test_round_trip() -> None:
    card = parse_card(CARD)
    assert card == NodeCard(
        node_id=IDENTITY.node_id,
        name="Office of the Attorney General \N{THAI CHARACTER KO KAI}",
        country="TH",
        role="authority",
        sign_key=IDENTITY.public.sign_key,
        kx_key=IDENTITY.public.kx_key,
        addresses=ADDRESSES,
        issued_at=1_700_000_000,
    )
    assert card.public == IDENTITY.public
    assert CARD.startswith("SJCARD1.") and len(CARD.split()) == 1


def test_card_follows_the_spec() -> None:
    body_text, signature_text = CARD[len(CARD_PREFIX) :].split(".")
    body = unb64url(body_text)
    payload = json.loads(body)
    assert body == json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert payload == {
        "v": 1,
        "id": IDENTITY.node_id,
        "name": "Office of the Attorney General \N{THAI CHARACTER KO KAI}",
        "country": "TH",
        "role": "authority",
        "sign_key": b64url(IDENTITY.public.sign_key),
        "kx_key": b64url(IDENTITY.public.kx_key),
        "addresses": list(ADDRESSES),
        "issued_at": 1_700_000_000,
    }
    verify_signature(IDENTITY.public.sign_key, unb64url(signature_text), b"seajust-card-v1\n" + body)
    assert signed_card(IDENTITY, payload) == CARD


def test_clock_is_used_when_now_is_not_given() -> None:
    card = make_card(IDENTITY, name="MoJ", country="LA", role="secretariat", addresses=[])
    assert parse_card(card).issued_at > 1_700_000_000


def test_whitespace_from_mail_clients_is_ignored() -> None:
    wrapped = "\n  ".join(CARD[i : i + 40] for i in range(0, len(CARD), 40))
    assert parse_card(f"\r\n\t {wrapped} \u00a0\n") == parse_card(CARD)
    assert parse_card(" ".join(CARD)) == parse_card(CARD)


def test_tampered_name_breaks_the_signature() -> None:
    payload = payload_of(CARD)
    payload["name"] = "Someone Else"
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    tampered = CARD_PREFIX + b64url(body) + "." + CARD.rsplit(".", 1)[1]
    with pytest.raises(CardError, match="signature does not verify"):
        parse_card(tampered)


def test_a_card_with_a_degenerate_signing_key_is_never_trusted() -> None:
    """A node choosing the neutral point as its signing key could have one signature accepted for every message
    by a lax checker (decision 0012), and deny whatever it signed. Its card, consistent in every other way (the ID
    is the hash of its keys), does not verify."""
    neutral = bytes([1]) + bytes(31)
    payload = payload_of(CARD)
    payload["sign_key"] = b64url(neutral)
    payload["id"] = node_id_from_keys(neutral, IDENTITY.public.kx_key)
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    card = CARD_PREFIX + b64url(body) + "." + b64url(neutral + bytes(32))
    with pytest.raises(CardError, match="signature does not verify"):
        parse_card(card)


def test_swapped_kx_key_does_not_match_the_id() -> None:
    """Signed by the right key, so only the ID check can catch a substituted encryption key."""
    payload = payload_of(CARD)
    payload["kx_key"] = b64url(OTHER.public.kx_key)
    with pytest.raises(CardError, match="node ID does not match its keys"):
        parse_card(signed_card(IDENTITY, payload))


def test_someone_elses_card_under_my_id() -> None:
    payload = payload_of(CARD)
    payload["sign_key"] = b64url(OTHER.public.sign_key)
    payload["kx_key"] = b64url(OTHER.public.kx_key)
    with pytest.raises(CardError, match="node ID does not match its keys"):
        parse_card(signed_card(OTHER, payload))
    payload["id"] = OTHER.node_id
    assert parse_card(signed_card(OTHER, payload)).node_id == OTHER.node_id


GOOD: dict[str, Any] = {"name": "MoJ", "country": "TH", "role": "authority", "addresses": ["https://x.example"]}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "", "empty"),
        ("name", "   ", "empty"),
        ("name", "x" * 201, "at most 200"),
        ("name", "Mo\nJ", "control"),
        ("name", "Mo\x00J", "control"),
        ("name", "\u202eJoM", "control"),
        ("country", "th", "two-letter"),
        ("country", "THA", "two-letter"),
        ("country", "T1", "two-letter"),
        ("role", "judge", "role"),
        ("role", "Authority", "role"),
        ("addresses", ["ftp://x.example"], "address 1"),
        ("addresses", ["https://x.example", "javascript:alert(1)"], "address 2"),
        ("addresses", ["https://"], "address 1"),
        ("addresses", ["https://x.example/a b"], "address 1"),
        ("addresses", ["https://x.example:99999"], "address 1"),
        ("addresses", ["http://[::1"], "address 1"),
        ("addresses", ["https://xn--bcher-kva.example/\u00e9"], "address 1"),
        ("addresses", ["https://x.example/" + "a" * 500], "longer than 512"),
        ("addresses", [f"https://{i}.example" for i in range(9)], "at most 8"),
    ],
)
def test_invalid_fields(field: str, value: Any, message: str) -> None:
    make_card(IDENTITY, **GOOD)
    with pytest.raises(CardError, match=message):
        make_card(IDENTITY, **{**GOOD, field: value})
    # A hand-made card with the same value, validly signed, is refused on reading too.
    payload = payload_of(make_card(IDENTITY, **GOOD))
    payload[field] = value
    with pytest.raises(CardError, match=message):
        parse_card(signed_card(IDENTITY, payload))


def test_roles() -> None:
    assert ROLES == ("authority", "secretariat")
    for role in ROLES:
        assert parse_card(make_card(IDENTITY, **{**GOOD, "role": role})).role == role


def test_addresses_must_be_a_list() -> None:
    with pytest.raises(CardError):
        make_card(IDENTITY, name="MoJ", country="TH", role="authority", addresses="https://x.example")


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.update(extra=1),
        lambda p: p.pop("issued_at"),
        lambda p: p.update(issued_at=True),
        lambda p: p.update(issued_at="1700000000"),
        lambda p: p.update(issued_at=-1),
        lambda p: p.update(issued_at=2**64),
        lambda p: p.update(v=2),
        lambda p: p.update(v=1.0),
        lambda p: p.update(name=None),
        lambda p: p.update(addresses="https://x.example"),
        lambda p: p.update(addresses=[1]),
        lambda p: p.update(sign_key=b64url(bytes(31))),
        lambda p: p.update(kx_key="!!!!"),
    ],
)
def test_strict_payload(change: Any) -> None:
    payload = payload_of(CARD)
    change(payload)
    with pytest.raises(CardError):
        parse_card(signed_card(IDENTITY, payload))


def test_duplicate_keys_are_refused() -> None:
    body = payload_of(CARD)
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    duplicated = ('{"name":"Someone Else",' + text[1:]).encode()
    card = CARD_PREFIX + b64url(duplicated) + "." + b64url(IDENTITY.sign(b"seajust-card-v1\n" + duplicated))
    with pytest.raises(CardError, match="damaged"):
        parse_card(card)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a SEAJust card"),
        ("hello", "not a SEAJust card"),
        ("sjcard1." + CARD[8:], "not a SEAJust card"),
        (CARD_PREFIX, "damaged"),
        (CARD + ".x", "damaged"),
        (CARD[:-3], "damaged"),  # truncated signature
        (CARD.replace(".", ".=", 2), "damaged"),
        (CARD[:-1] + ("B" if CARD[-1] != "B" else "C"), "damaged|signature"),
        (CARD_PREFIX + "A" * 9000 + ".AA", "too long"),
    ],
)
def test_not_a_card(text: str, message: str) -> None:
    with pytest.raises(CardError, match=message):
        parse_card(text)


def test_non_canonical_base64_is_refused() -> None:
    body_text, signature_text = CARD[len(CARD_PREFIX) :].split(".")
    # 64 bytes encode to 86 characters whose last one carries 2 unused bits: set one of them.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(signature_text[-1]) | 1]
    assert unb64url(signature_text[:-1] + last) == unb64url(signature_text)
    with pytest.raises(CardError, match="damaged"):
        parse_card(CARD_PREFIX + body_text + "." + signature_text[:-1] + last)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text())
def test_any_text_raises_only_card_error(text: str) -> None:
    with pytest.raises(CardError):
        parse_card(text)


@settings(deadline=None)
@given(st.text(max_size=200).map(lambda t: CARD_PREFIX + t))
def test_any_text_after_the_prefix_raises_only_card_error(text: str) -> None:
    with pytest.raises(CardError):
        parse_card(text)


@settings(deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(CARD) - 1), st.characters()), min_size=1, max_size=4))
def test_character_mutations_raise_only_card_error(edits: list[tuple[int, str]]) -> None:
    chars = list(CARD)
    for position, char in edits:
        chars[position] = char
    mutated = "".join(chars)
    try:
        card = parse_card(mutated)
    except CardError:
        return
    # Only a harmless edit (same character, or whitespace replaced nothing meaningful) may parse.
    assert "".join(mutated.split()) == CARD
    assert card == parse_card(CARD)


@settings(deadline=None)
@given(st.data())
def test_payload_byte_flips_raise_only_card_error(data: st.DataObject) -> None:
    body_text, signature_text = CARD[len(CARD_PREFIX) :].split(".")
    body = bytearray(unb64url(body_text))
    position = data.draw(st.integers(0, len(body) - 1))
    body[position] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CardError):
        parse_card(CARD_PREFIX + b64url(bytes(body)) + "." + signature_text)
