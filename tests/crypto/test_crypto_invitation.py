"""The invitation protocol in memory: a code read over the phone lets two nodes trust each other's cards, once."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
from collections.abc import Iterator

import pytest

from crypto import invitation as inv
from crypto.card import make_card, parse_card
from crypto.encoding import b64url
from crypto.identity import Identity
from crypto.invitation import InvitationRefused, RefusalReason

INVITER = Identity.from_secret_bytes(bytes(range(64)))
INVITEE = Identity.from_secret_bytes(bytes(range(64, 128)))
INVITER_CARD = make_card(
    INVITER, name="Thailand", country="TH", role="authority", addresses=["https://th.example"], now=1
)
INVITEE_CARD = make_card(
    INVITEE, name="Viet Nam", country="VN", role="authority", addresses=["https://vn.example"], now=1
)
NOW = 1_700_000_000.0
CODE = inv.new_code(lambda n: bytes(range(1, n + 1)))


@contextlib.contextmanager
def refused(reason: RefusalReason) -> Iterator[None]:
    with pytest.raises(InvitationRefused) as info:
        yield
    assert info.value.reason is reason, info.value


def exchange(code: str = CODE, record_code: str = CODE, now: float = NOW) -> inv.Answered:
    record = inv.new_record(record_code, NOW)
    claim, _ = inv.make_claim(code, INVITEE_CARD)
    return inv.answer_claim(record, inv.parse_claim(claim), INVITER_CARD, now)


# --- the code -----------------------------------------------------------------------------------------------------


def test_code_is_four_groups_of_four_crockford_characters() -> None:
    assert CODE == "0410-6105-0R3G-G28A"  # bytes 01..0a, pinned
    code = inv.new_code()
    groups = code.split("-")
    assert [len(g) for g in groups] == [4, 4, 4, 4]
    assert all(c in inv.CROCKFORD for c in "".join(groups))
    assert inv.new_code() != code


@pytest.mark.parametrize(
    "typed",
    ["0410-6105-0R3G-G28A", "04106105or3gg28a", " 0410 6105 0R3G G28A ", "O4IO-6lO5-OR3G-G28A", "0410-6105-0r3g-g28a"],
)
def test_code_typed_any_reasonable_way_is_the_same_code(typed: str) -> None:
    assert inv.normalise_code(typed) == "041061050R3GG28A"
    assert inv.invite_id(typed) == inv.invite_id(CODE)
    assert inv.code_secret(typed) == hashlib.sha256(b"041061050R3GG28A").digest()


def test_i_and_l_read_as_one() -> None:
    assert inv.normalise_code("1111-iiii-LLLL-llll") == "1" * 16


@pytest.mark.parametrize("typed", ["", "0410-6105-0R3G", "0410-6105-0R3G-G28AX", "0410-6105-0R3G-G28U", "x" * 1000])
def test_malformed_codes_are_refused(typed: str) -> None:
    with refused(RefusalReason.MALFORMED_CODE):
        inv.normalise_code(typed)


def test_invite_id_is_eight_bytes_of_a_domain_separated_hash() -> None:
    assert inv.invite_id(CODE) == hashlib.sha256(b"id|041061050R3GG28A").digest()[:8].hex()


# --- the exchange -------------------------------------------------------------------------------------------------


def test_round_trip_gives_each_side_the_others_verified_card() -> None:
    record = inv.new_record(CODE, NOW)
    assert record.expires_at == NOW + 24 * 3600
    claim, state = inv.make_claim(CODE.lower().replace("-", ""), INVITEE_CARD)
    assert set(claim) == {"invite_id", "card", "mac"} and claim["invite_id"] == record.invite_id
    assert "key" not in repr(state) and state.key.hex() not in repr(state)
    answered = inv.answer_claim(record, inv.parse_claim(claim), INVITER_CARD, NOW + 60)
    assert answered.invitee.text == INVITEE_CARD
    assert answered.invitee.card.node_id == INVITEE.node_id
    verified = inv.verify_answer(answered.answer, state)
    assert verified.text == INVITER_CARD
    assert verified.card == parse_card(INVITER_CARD)


def test_macs_follow_the_specification() -> None:
    key = inv.invitation_key(hashlib.sha256(b"041061050R3GG28A").digest())
    claim, state = inv.make_claim(CODE, INVITEE_CARD)
    assert state.key == key
    assert claim["mac"] == b64url(hmac.new(key, INVITEE_CARD.encode(), hashlib.sha256).digest())
    answer = exchange().answer
    expected = hmac.new(key, b"answer|" + INVITER_CARD.encode() + b"|" + INVITEE_CARD.encode(), hashlib.sha256)
    assert answer["mac"] == b64url(expected.digest())


def test_wrong_code_is_unknown_invitation() -> None:
    with refused(RefusalReason.UNKNOWN):
        exchange(code="0410-6105-0R3G-G28B")


def test_claim_with_right_id_but_wrong_mac_is_wrong_code() -> None:
    record = inv.new_record(CODE, NOW)
    claim, _ = inv.make_claim(CODE, INVITEE_CARD)
    other, _ = inv.make_claim("ZZZZ-ZZZZ-ZZZZ-ZZZZ", INVITEE_CARD)
    forged = inv.parse_claim({**claim, "mac": other["mac"]})
    with refused(RefusalReason.WRONG_CODE):
        inv.answer_claim(record, forged, INVITER_CARD, NOW)


def test_used_invitation_is_refused() -> None:
    record = dataclasses.replace(inv.new_record(CODE, NOW), used=True)
    claim, _ = inv.make_claim(CODE, INVITEE_CARD)
    with refused(RefusalReason.USED):
        inv.answer_claim(record, inv.parse_claim(claim), INVITER_CARD, NOW)


def test_expired_invitation_is_refused() -> None:
    exchange(now=NOW + 24 * 3600 - 1)
    with refused(RefusalReason.EXPIRED):
        exchange(now=NOW + 24 * 3600)


def test_burned_invitation_refuses_even_the_right_code() -> None:
    record = dataclasses.replace(inv.new_record(CODE, NOW), failures=inv.MAX_ATTEMPTS)
    claim, _ = inv.make_claim(CODE, INVITEE_CARD)
    with refused(RefusalReason.BURNED):
        inv.answer_claim(record, inv.parse_claim(claim), INVITER_CARD, NOW)
    inv.answer_claim(dataclasses.replace(record, failures=inv.MAX_ATTEMPTS - 1), inv.parse_claim(claim), "x", NOW)


def test_card_changed_in_transit_fails_the_mac() -> None:
    record = inv.new_record(CODE, NOW)
    claim, _ = inv.make_claim(CODE, INVITEE_CARD)
    other = make_card(INVITER, name="Impostor", country="VN", role="authority", addresses=[], now=1)
    with refused(RefusalReason.WRONG_CODE):
        inv.answer_claim(record, inv.parse_claim({**claim, "card": other}), INVITER_CARD, NOW)


def test_invalid_card_from_a_code_holder_is_refused() -> None:
    record = inv.new_record(CODE, NOW)
    tampered = INVITEE_CARD[:-3] + ("AAA" if not INVITEE_CARD.endswith("AAA") else "BBB")
    claim, _ = inv.make_claim(CODE, tampered)
    with refused(RefusalReason.BAD_CARD):
        inv.answer_claim(record, inv.parse_claim(claim), INVITER_CARD, NOW)


def test_tampered_answer_is_refused() -> None:
    claim, state = inv.make_claim(CODE, INVITEE_CARD)
    answer = inv.answer_claim(inv.new_record(CODE, NOW), inv.parse_claim(claim), INVITER_CARD, NOW).answer
    impostor = make_card(INVITEE, name="Impostor", country="TH", role="authority", addresses=[], now=1)
    with refused(RefusalReason.BAD_ANSWER):
        inv.verify_answer({**answer, "card": impostor}, state)
    flipped = answer["mac"][:-2] + ("AA" if not answer["mac"].endswith("AA") else "BA")
    with refused(RefusalReason.BAD_ANSWER):
        inv.verify_answer({**answer, "mac": flipped}, state)


def test_answer_made_for_another_claim_is_refused() -> None:
    _, state = inv.make_claim(CODE, INVITEE_CARD)
    other_card = make_card(INVITEE, name="Viet Nam", country="VN", role="authority", addresses=[], now=2)
    other_claim, _ = inv.make_claim(CODE, other_card)
    answer = inv.answer_claim(inv.new_record(CODE, NOW), inv.parse_claim(other_claim), INVITER_CARD, NOW).answer
    with refused(RefusalReason.BAD_ANSWER):
        inv.verify_answer(answer, state)
    # and an answer under another code
    _, state_other_code = inv.make_claim("ZZZZ-ZZZZ-ZZZZ-ZZZZ", INVITEE_CARD)
    with refused(RefusalReason.BAD_ANSWER):
        inv.verify_answer(exchange().answer, state_other_code)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: None,
        lambda c: [],
        lambda c: {**c, "extra": "1"},
        lambda c: {k: v for k, v in c.items() if k != "mac"},
        lambda c: {**c, "mac": "not base64!"},
        lambda c: {**c, "mac": b64url(b"short")},
        lambda c: {**c, "card": 7},
        lambda c: {**c, "card": "x" * 9000},
        lambda c: {**c, "invite_id": "ABCDEF0123456789"},
        lambda c: {**c, "invite_id": "abc"},
    ],
)
def test_malformed_claims_are_refused(mutate: object) -> None:
    claim, _ = inv.make_claim(CODE, INVITEE_CARD)
    with refused(RefusalReason.MALFORMED):
        inv.parse_claim(mutate(claim))  # type: ignore[operator]


def test_refusal_message_names_the_reason_and_never_the_code() -> None:
    try:
        exchange(now=NOW + 10**6)
    except InvitationRefused as exc:
        assert "expired" in str(exc)
        assert "0410" not in str(exc)
    else:
        raise AssertionError("not refused")
