"""The roster rules: founding, admission (secretariat + one endorsement), observers, revocation."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.card import make_card
from crypto.identity import Identity
from crypto.statements import StatementInvalid, make_statement, parse_statement
from node.roster import build_roster

SEC, TH, VN, PH, MY, EVIL = (Identity.from_secret_bytes(bytes([i]) * 64) for i in range(1, 7))
COUNTRY = {SEC: "AT", TH: "TH", VN: "VN", PH: "PH", MY: "MY", EVIL: "KP"}
ANCHORS = {SEC.node_id: (SEC.public.sign_key,)}


def card(who: Identity, role: str = "authority") -> str:
    return make_card(who, name=f"{COUNTRY[who]} authority", country=COUNTRY[who], role=role, addresses=[])


def stmt(who: Identity, kind: str, at: int = 1, **fields: object):  # type: ignore[no-untyped-def]
    return parse_statement(make_statement(who, kind, now=at, **fields))


def founding(*members: Identity):  # type: ignore[no-untyped-def]
    entries = [{"card": card(SEC, "secretariat"), "standing": "secretariat"}]
    entries += [{"card": card(m), "standing": "member"} for m in members]
    return stmt(SEC, "found", network="SEAJust", members=entries)


def test_no_founding_statement_from_a_trusted_secretariat_means_no_roster() -> None:
    assert not build_roster([founding(TH, VN)], {}).active
    fake = parse_statement(
        make_statement(EVIL, "found", network="X", members=[{"card": card(EVIL), "standing": "secretariat"}])
    )
    assert not build_roster([fake], ANCHORS).active


def test_founding_members_are_members() -> None:
    roster = build_roster([founding(TH, VN)], ANCHORS)
    assert roster.active and roster.network == "SEAJust"
    assert set(roster.members) == {SEC.node_id, TH.node_id, VN.node_id}
    assert roster.standing(SEC.node_id) == "secretariat" and roster.standing(TH.node_id) == "member"


def test_admission_needs_the_secretariat_and_one_member() -> None:
    admit = stmt(SEC, "admit", at=2, card=card(PH), standing="member")
    roster = build_roster([founding(TH, VN), admit], ANCHORS)
    assert PH.node_id not in roster.members and PH.node_id in roster.pending
    endorse = stmt(VN, "endorse", at=3, node=PH.node_id)
    roster = build_roster([founding(TH, VN), admit, endorse], ANCHORS)
    assert roster.members[PH.node_id].endorsed_by == (VN.node_id,) and not roster.pending
    # An endorsement alone, or by the newcomer itself, or by the admitting secretariat, does not admit.
    assert PH.node_id not in build_roster([founding(TH, VN), endorse], ANCHORS).members
    self_endorsed = stmt(PH, "endorse", at=3, node=PH.node_id)
    assert PH.node_id not in build_roster([founding(TH, VN), admit, self_endorsed], ANCHORS).members
    sec_endorsed = stmt(SEC, "endorse", at=3, node=PH.node_id)
    assert PH.node_id not in build_roster([founding(TH, VN), admit, sec_endorsed], ANCHORS).members


def test_a_member_cannot_admit_and_an_observer_cannot_endorse() -> None:
    by_member = stmt(TH, "admit", at=2, card=card(EVIL), standing="member")
    assert (
        EVIL.node_id
        not in build_roster([founding(TH, VN), by_member, stmt(VN, "endorse", node=EVIL.node_id)], ANCHORS).members
    )
    observer = [
        stmt(SEC, "admit", at=2, card=card(MY), standing="observer"),
        stmt(TH, "endorse", at=2, node=MY.node_id),
    ]
    roster = build_roster([founding(TH, VN), *observer], ANCHORS)
    assert roster.standing(MY.node_id) == "observer"
    admit_ph = stmt(SEC, "admit", at=3, card=card(PH), standing="member")
    assert (
        PH.node_id
        not in build_roster(
            [founding(TH, VN), *observer, admit_ph, stmt(MY, "endorse", node=PH.node_id)], ANCHORS
        ).members
    )


def test_revocation_by_the_secretariat_or_by_the_node_itself_only() -> None:
    base = [founding(TH, VN, PH)]
    by_member = stmt(TH, "revoke", at=5, node=PH.node_id, reason="other")
    assert PH.node_id in build_roster([*base, by_member], ANCHORS).members
    by_sec = stmt(SEC, "revoke", at=5, node=PH.node_id, reason="compromised")
    roster = build_roster([*base, by_sec], ANCHORS)
    assert PH.node_id not in roster.members and roster.revoked == {PH.node_id: "compromised"}
    by_self = stmt(PH, "revoke", at=5, node=PH.node_id, reason="left")
    assert build_roster([*base, by_self], ANCHORS).revoked == {PH.node_id: "left"}
    # Revoked is final: a later admission of the same node does nothing.
    again = [stmt(SEC, "admit", at=9, card=card(PH), standing="member"), stmt(VN, "endorse", at=9, node=PH.node_id)]
    assert PH.node_id not in build_roster([*base, by_sec, *again], ANCHORS).members


def test_a_statement_with_a_forged_signature_counts_for_nothing() -> None:
    real = make_statement(SEC, "admit", now=2, card=card(PH), standing="member")
    body, _sig = real[len("SJSTMT1.") :].split(".")
    forged_sig = make_statement(EVIL, "admit", now=2, card=card(PH), standing="member").split(".")[-1]
    forged = parse_statement("SJSTMT1." + body + "." + forged_sig)
    roster = build_roster([founding(TH, VN), forged, stmt(VN, "endorse", node=PH.node_id)], ANCHORS)
    assert PH.node_id not in roster.members and PH.node_id not in roster.pending


def test_order_of_arrival_does_not_matter() -> None:
    statements = [
        founding(TH, VN),
        stmt(SEC, "admit", at=2, card=card(PH), standing="member"),
        stmt(TH, "endorse", at=3, node=PH.node_id),
        stmt(SEC, "admit", at=4, card=card(MY), standing="observer"),
        stmt(PH, "endorse", at=5, node=MY.node_id),  # endorsed by the member admitted just before
        stmt(SEC, "revoke", at=6, node=VN.node_id, reason="left"),
    ]
    expected = build_roster(statements, ANCHORS)
    assert set(expected.members) == {SEC.node_id, TH.node_id, PH.node_id, MY.node_id}
    for order in itertools.islice(itertools.permutations(statements), 0, 720, 7):
        assert build_roster(list(order), ANCHORS) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: "SJSTMT1." + b.hex()))
def test_garbage_is_refused_with_one_error(text: str) -> None:
    with pytest.raises(StatementInvalid):
        parse_statement(text)
