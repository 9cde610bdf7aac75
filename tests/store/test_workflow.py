"""The case workflow: each side makes only its own moves, every node replays a history to the same state,
and a peer's update is accepted only if each change in it was legal in its author's view.

The expected table is written out here from the specification, independently of `workflow.TRANSITIONS`,
so a change to the table is a deliberate change to both.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from crypto.identity import Identity
from node import case_history as ch
from node import workflow as wf
from node.case_history import HistoryInvalid
from node.workflow import IllegalTransition

REQUESTING = Identity.generate()
REQUESTED = Identity.generate()
OBSERVER = Identity.generate()  # a third authority the case was shared with
OUTSIDER = Identity.generate()  # not a party
SIDES = {REQUESTING.node_id: "requesting", REQUESTED.node_id: "requested", OBSERVER.node_id: "shared"}
SIDE_OF = {id(REQUESTING): "requesting", id(REQUESTED): "requested"}
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

RQ, RD = frozenset({"requesting"}), frozenset({"requested"})
BOTH = RQ | RD
EXPECTED: dict[tuple[str, str], frozenset[str]] = {
    ("draft", "sent"): RQ,
    ("draft", "withdrawn"): RQ,
    ("sent", "acknowledged"): RD,
    ("acknowledged", "in_execution"): RD,
    ("in_execution", "partially_executed"): RD,
    ("in_execution", "executed"): RD,
    ("partially_executed", "executed"): RD,
    **{(frm, "refused"): RD for frm in ("sent", "acknowledged", "in_execution")},
    **{(frm, "withdrawn"): RQ for frm in ("sent", "acknowledged", "in_execution", "partially_executed")},
    **{(frm, "closed"): BOTH for frm in ("partially_executed", "executed", "refused", "withdrawn")},
}
CONSULTATION_EXTRA = {("sent", "closed"): BOTH, ("acknowledged", "closed"): BOTH}
KINDS = ("mla", "extradition", "transfer_of_proceedings", "consultation", "other")


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


class Case:
    """A history built the way a node builds it: each entry after the heads its author has seen."""

    def __init__(self, kind: str = "mla", entries: list[dict[str, Any]] | None = None) -> None:
        self.entries = entries if entries is not None else []
        self.clock = len(self.entries)
        if entries is None:
            self.add(REQUESTING, "created", kind=kind)

    def add(self, who: Identity, type_: str, **fields: Any) -> dict[str, Any]:
        self.clock += 1
        entry = ch.make_entry(who, prev=ch.heads(self.entries), type=type_, user="officer", at=at(self.clock), **fields)
        self.entries.append(entry)
        return entry

    def move(self, who: Identity, frm: str, to: str, reason: str = "") -> dict[str, Any]:
        return self.add(who, "transition", **{"from": frm, "to": to, "reason": reason})

    def fork(self) -> Case:
        return Case(entries=list(self.entries))

    def state(self) -> wf.CaseState:
        return wf.replay(self.entries, SIDES)


# -- the table ---------------------------------------------------------------------------------------------


def test_the_table_is_the_specified_one() -> None:
    assert dict(wf.TRANSITIONS) == EXPECTED
    assert wf.transitions_for("consultation") == {**EXPECTED, **CONSULTATION_EXTRA}
    for kind in KINDS:
        if kind != "consultation":
            assert wf.transitions_for(kind) == EXPECTED
    assert wf.STATUSES == (
        "draft",
        "sent",
        "acknowledged",
        "in_execution",
        "partially_executed",
        "executed",
        "refused",
        "withdrawn",
        "closed",
    )
    assert frozenset({"executed", "refused", "withdrawn", "closed"}) == wf.FINAL_STATUSES


def test_the_module_docstring_shows_the_table() -> None:
    assert wf.__doc__ is not None
    assert wf.render_table() in wf.__doc__
    assert wf.render_table().count("\n") == len(EXPECTED) + 3


def test_the_table_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        wf.TRANSITIONS[("closed", "draft")] = BOTH  # type: ignore[index]


ALL_ALLOWED = sorted(
    {(kind, frm, to, side) for kind in KINDS for (frm, to), sides in wf.transitions_for(kind).items() for side in sides}
)


@pytest.mark.parametrize(("kind", "frm", "to", "side"), ALL_ALLOWED)
def test_every_allowed_transition(kind: str, frm: str, to: str, side: str) -> None:
    assert wf.allowed(kind, frm, to, side)
    wf.check_transition(kind, frm, to, side)
    assert to in wf.next_steps(kind, frm, side)


def _is_allowed(kind: str, frm: str, to: str, side: str) -> bool:
    table = {**EXPECTED, **(CONSULTATION_EXTRA if kind == "consultation" else {})}
    return side in table.get((frm, to), frozenset())


@pytest.mark.parametrize("kind", KINDS)
def test_nothing_else_is_allowed(kind: str) -> None:
    """Exhaustive over statuses and sides, including the shared side and strangers."""
    for frm in wf.STATUSES:
        for to in wf.STATUSES:
            for side in ("requesting", "requested", "shared", "", "judge"):
                expected = _is_allowed(kind, frm, to, side)
                assert wf.allowed(kind, frm, to, side) is expected, (frm, to, side)
                if not expected:
                    with pytest.raises(IllegalTransition):
                        wf.check_transition(kind, frm, to, side)


@pytest.mark.parametrize(
    ("kind", "frm", "to", "side", "message"),
    [
        # wrong side
        ("mla", "sent", "acknowledged", "requesting", "only the requested authority can acknowledge a request"),
        ("mla", "draft", "sent", "requested", "only the requesting authority can send a request"),
        ("mla", "in_execution", "executed", "requesting", "only the requested authority can mark a request executed"),
        ("mla", "acknowledged", "refused", "requesting", "only the requested authority can refuse a request"),
        ("extradition", "sent", "withdrawn", "requested", "only the requesting authority can withdraw a request"),
        # skipping states
        (
            "mla",
            "draft",
            "executed",
            "requested",
            "a case in status 'draft' cannot become 'executed'; next: sent, withdrawn",
        ),
        (
            "mla",
            "sent",
            "in_execution",
            "requested",
            "a case in status 'sent' cannot become 'in_execution'; next: acknowledged, refused, withdrawn",
        ),
        (
            "mla",
            "sent",
            "closed",
            "requesting",
            "a case in status 'sent' cannot become 'closed'; next: acknowledged, refused, withdrawn",
        ),
        (
            "mla",
            "draft",
            "refused",
            "requested",
            "a case in status 'draft' cannot become 'refused'; next: sent, withdrawn",
        ),
        # from final states
        (
            "mla",
            "executed",
            "in_execution",
            "requested",
            "a case in status 'executed' cannot become 'in_execution'; next: closed",
        ),
        (
            "mla",
            "refused",
            "acknowledged",
            "requested",
            "a case in status 'refused' cannot become 'acknowledged'; next: closed",
        ),
        ("mla", "withdrawn", "sent", "requesting", "a case in status 'withdrawn' cannot become 'sent'; next: closed"),
        ("mla", "closed", "draft", "requesting", "a case in status 'closed' cannot become 'draft'; next: none"),
        ("consultation", "closed", "sent", "requesting", "a case in status 'closed' cannot become 'sent'; next: none"),
        # nonsense
        ("mla", "sent", "sent", "requesting", "the case is already 'sent'"),
        ("mla", "sent", "lost", "requested", "'lost' is not a case status"),
        (
            "mla",
            "sent",
            "acknowledged",
            "shared",
            "an authority the case was shared with can only add notes and reminders",
        ),
        ("mla", "sent", "acknowledged", "", "this node is not a party to the case"),
    ],
)
def test_refused_transitions_say_why(kind: str, frm: str, to: str, side: str, message: str) -> None:
    assert not wf.allowed(kind, frm, to, side)
    with pytest.raises(IllegalTransition) as caught:
        wf.check_transition(kind, frm, to, side)
    assert str(caught.value).startswith(message)
    assert caught.value.http_status == 409


def test_a_consultation_closes_once_answered_by_either_side() -> None:
    for side in ("requesting", "requested"):
        for frm in ("sent", "acknowledged"):
            assert wf.allowed("consultation", frm, "closed", side)
            assert not wf.allowed("mla", frm, "closed", side)
    assert not wf.allowed("consultation", "draft", "closed", "requesting")
    assert not wf.allowed("consultation", "in_execution", "closed", "requested")


@pytest.mark.parametrize(
    ("kind", "status", "side", "steps"),
    [
        ("mla", "draft", "requesting", ["sent", "withdrawn"]),
        ("mla", "draft", "requested", []),
        ("mla", "sent", "requested", ["acknowledged", "refused"]),
        ("mla", "sent", "requesting", ["withdrawn"]),
        ("mla", "in_execution", "requested", ["partially_executed", "executed", "refused"]),
        ("mla", "partially_executed", "requested", ["executed", "closed"]),
        ("mla", "partially_executed", "requesting", ["withdrawn", "closed"]),
        ("mla", "executed", "requesting", ["closed"]),
        ("mla", "closed", "requesting", []),
        ("mla", "sent", "shared", []),
        ("consultation", "sent", "requesting", ["withdrawn", "closed"]),
        ("consultation", "acknowledged", "requested", ["in_execution", "refused", "closed"]),
    ],
)
def test_next_steps(kind: str, status: str, side: str, steps: list[str]) -> None:
    assert wf.next_steps(kind, status, side) == steps


# -- conversion --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["draft", "sent", "acknowledged", "in_execution", "partially_executed", "executed"])
@pytest.mark.parametrize("to_kind", ["mla", "extradition", "transfer_of_proceedings", "other"])
def test_a_live_consultation_can_become_a_formal_request(status: str, to_kind: str) -> None:
    wf.check_conversion("consultation", status, "requesting", to_kind)


@pytest.mark.parametrize(
    ("kind", "status", "side", "to_kind", "message"),
    [
        ("mla", "sent", "requesting", "extradition", "only a consultation can be converted into a formal request"),
        ("consultation", "sent", "requested", "mla", "only the requesting authority can convert a consultation"),
        ("consultation", "sent", "shared", "mla", "only the requesting authority can convert a consultation"),
        ("consultation", "closed", "requesting", "mla", "a consultation that is 'closed' can no longer be converted"),
        ("consultation", "withdrawn", "requesting", "mla", "a consultation that is 'withdrawn' can no longer be"),
        ("consultation", "sent", "requesting", "consultation", "a consultation can become mla, extradition"),
        ("consultation", "sent", "requesting", "gossip", "not 'gossip'"),
    ],
)
def test_conversion_rules(kind: str, status: str, side: str, to_kind: str, message: str) -> None:
    with pytest.raises(IllegalTransition, match=message):
        wf.check_conversion(kind, status, side, to_kind)


# -- replay ------------------------------------------------------------------------------------------------


def test_replay_of_a_whole_request() -> None:
    case = Case("mla")
    sent = case.move(REQUESTING, "draft", "sent")
    case.add(REQUESTED, "note", text="received, assigning a prosecutor")
    ack = case.move(REQUESTED, "sent", "acknowledged")
    case.move(REQUESTED, "acknowledged", "in_execution")
    case.move(REQUESTED, "in_execution", "executed", reason="records sent by courier")
    closed = case.move(REQUESTING, "executed", "closed")
    reminder = case.add(REQUESTING, "reminder", text="archive the file")
    state = case.state()
    assert state.kind == "mla" and state.status == "closed"
    assert state.sent_at == sent["at"] and state.acknowledged_at == ack["at"] and state.closed_at == closed["at"]
    assert state.status_changed_at == closed["at"]
    assert state.last_action_at == reminder["at"]  # a reminder is an action, not a status change
    assert [(t["from"], t["to"]) for t in state.timeline] == [
        ("draft", "sent"),
        ("sent", "acknowledged"),
        ("acknowledged", "in_execution"),
        ("in_execution", "executed"),
        ("executed", "closed"),
    ]
    assert state.timeline[3] == {
        "id": case.entries[5]["id"],
        "type": "transition",
        "from": "in_execution",
        "to": "executed",
        "at": case.entries[5]["at"],
        "node": REQUESTED.node_id,
        "user": "officer",
        "reason": "records sent by courier",
    }
    assert state.conflicts == []


def test_a_new_case_is_a_draft() -> None:
    case = Case("extradition")
    state = case.state()
    assert dataclasses.asdict(state) == {
        "kind": "extradition",
        "status": "draft",
        "sent_at": None,
        "acknowledged_at": None,
        "closed_at": None,
        "last_action_at": case.entries[0]["at"],
        "status_changed_at": case.entries[0]["at"],
        "timeline": [],
        "conflicts": [],
    }


def test_replay_converts_a_consultation_and_keeps_the_thread() -> None:
    case = Case("consultation")
    case.move(REQUESTING, "draft", "sent")
    case.add(REQUESTED, "note", text="a formal request will be needed")
    conv = case.add(REQUESTING, "converted", from_kind="consultation", to_kind="extradition")
    state = case.state()
    assert (state.kind, state.status) == ("extradition", "draft")
    assert state.sent_at is None  # the formal request is yet to be sent
    assert state.timeline[-1]["from_kind"] == "consultation" and state.timeline[-1]["to_kind"] == "extradition"
    assert state.timeline[-1]["id"] == conv["id"] and state.timeline[-1]["from"] == "sent"
    sent = case.move(REQUESTING, "draft", "sent")
    assert case.state().sent_at == sent["at"]
    assert wf.next_steps(case.state().kind, "sent", "requested") == ["acknowledged", "refused"]


def test_replay_ignores_illegal_moves_and_says_why() -> None:
    case = Case("mla")
    forged = case.move(REQUESTED, "draft", "sent")  # the requested side cannot send
    skipped = case.move(REQUESTING, "sent", "executed")
    stranger = case.add(OUTSIDER, "transition", **{"from": "draft", "to": "sent", "reason": ""})
    shared = case.add(OBSERVER, "transition", **{"from": "draft", "to": "sent", "reason": ""})
    bad_conv = case.add(REQUESTING, "converted", from_kind="mla", to_kind="extradition")
    state = case.state()
    assert state.status == "draft" and state.timeline == []
    reasons = {c["id"]: c["reason"] for c in state.conflicts}
    assert reasons == {
        forged["id"]: "only the requesting authority can send a request",
        skipped["id"]: "this change from 'sent' to 'executed' arrived when the case was already 'draft'",
        stranger["id"]: "this node is not a party to the case",
        shared["id"]: "an authority the case was shared with can only add notes and reminders",
        bad_conv["id"]: "only a consultation can be converted into a formal request",
    }


def test_replay_needs_a_created_entry_and_ignores_a_second_one() -> None:
    case = Case("mla")
    with pytest.raises(HistoryInvalid, match="no valid created entry"):
        wf.replay(case.entries[1:], SIDES)
    with pytest.raises(HistoryInvalid):
        wf.replay([], SIDES)
    other = ch.make_entry(REQUESTED, prev=[], type="created", user="u", at=at(-5), kind="extradition")
    state = wf.replay([*case.entries, other], SIDES)
    assert state.kind in ("mla", "extradition")
    assert [c["reason"] for c in state.conflicts] == ["the case was already created"]
    assert wf.replay([other, *case.entries], SIDES) == state


def test_replay_lists_malformed_entries_as_conflicts() -> None:
    case = Case("mla")
    case.move(REQUESTING, "draft", "sent")
    broken = {**case.entries[1], "to": ["sent"]}
    broken["id"] = "e" * 64
    state = wf.replay([case.entries[0], broken, None, {"id": 5}], SIDES)  # type: ignore[list-item]
    assert state.status == "draft"
    assert state.conflicts == [{"id": "e" * 64, "reason": f"history entry {'e' * 12}: to must be a string"}]


def racing_case() -> tuple[Case, dict[str, Any], dict[str, Any]]:
    """In execution; then, concurrently, the requested side marks it executed and the requesting side withdraws."""
    case = Case("mla")
    case.move(REQUESTING, "draft", "sent")
    case.move(REQUESTED, "sent", "acknowledged")
    case.move(REQUESTED, "acknowledged", "in_execution")
    theirs = case.fork()
    executed = theirs.move(REQUESTED, "in_execution", "executed")
    withdrawn = case.move(REQUESTING, "in_execution", "withdrawn")
    case.entries.append(executed)
    return case, executed, withdrawn


@pytest.mark.parametrize(("executed_at", "withdrawn_at", "winner"), [(10, 12, "executed"), (12, 10, "withdrawn")])
def test_the_earlier_of_two_concurrent_moves_wins(executed_at: int, withdrawn_at: int, winner: str) -> None:
    case = Case("mla")
    case.move(REQUESTING, "draft", "sent")
    case.move(REQUESTED, "sent", "acknowledged")
    case.move(REQUESTED, "acknowledged", "in_execution")
    theirs = case.fork()
    theirs.clock = executed_at - 1
    executed = theirs.move(REQUESTED, "in_execution", "executed")
    case.clock = withdrawn_at - 1
    withdrawn = case.move(REQUESTING, "in_execution", "withdrawn")
    for entries in ([*case.entries, executed], [executed, *case.entries]):
        state = wf.replay(entries, SIDES)
        assert state.status == winner
        loser = withdrawn if winner == "executed" else executed
        assert [c["id"] for c in state.conflicts] == [loser["id"]]
        assert state.last_action_at == at(12)


def test_concurrent_moves_first_in_causal_order_wins_and_the_other_is_a_conflict() -> None:
    case, executed, withdrawn = racing_case()
    first, second = (
        (executed, withdrawn)
        if (executed["at"], executed["id"]) < (withdrawn["at"], withdrawn["id"])
        else (withdrawn, executed)
    )
    state = case.state()
    assert state.status == first["to"]
    assert state.conflicts == [
        {
            "id": second["id"],
            "reason": f"this change from 'in_execution' to '{second['to']}' arrived "
            f"when the case was already '{first['to']}'",
        }
    ]
    assert state == wf.replay(list(reversed(case.entries)), SIDES)
    # Either side can then close, since both outcomes are final.
    closing = case.move(REQUESTED, state.status, "closed")
    assert case.state().status == "closed" and case.state().closed_at == closing["at"]


def test_reordering_the_list_does_not_change_replay() -> None:
    case, _, _ = racing_case()
    case.add(REQUESTED, "note", text="both happened")
    expected = case.state()
    for shift in range(len(case.entries)):
        rotated = case.entries[shift:] + case.entries[:shift]
        assert wf.replay(rotated, SIDES) == expected
        assert wf.replay(list(reversed(rotated)), SIDES) == expected


# -- checking a peer's update ------------------------------------------------------------------------------


def _new(case: Case, before: int) -> set[str]:
    return {e["id"] for e in case.entries[before:]}


def test_a_legal_update_is_accepted() -> None:
    case = Case("mla")
    case.move(REQUESTING, "draft", "sent")
    before = len(case.entries)
    case.add(REQUESTED, "note", text="received")
    case.move(REQUESTED, "sent", "acknowledged")
    case.add(REQUESTED, "attachment", attachment="att-1", name="receipt.pdf", sha256="0" * 64)
    wf.check_new_entries(case.entries, _new(case, before), SIDES, REQUESTED.node_id)


def test_the_first_update_carrying_the_creation_is_accepted() -> None:
    case = Case("consultation")
    case.move(REQUESTING, "draft", "sent")
    wf.check_new_entries(case.entries, _new(case, 0), SIDES, REQUESTING.node_id)


def test_both_concurrent_legal_moves_are_accepted() -> None:
    case, executed, withdrawn = racing_case()
    wf.check_new_entries(case.entries, {executed["id"]}, SIDES, REQUESTED.node_id)
    wf.check_new_entries(case.entries, {withdrawn["id"]}, SIDES, REQUESTING.node_id)


def test_a_move_after_a_merge_is_judged_from_the_merged_state() -> None:
    case, _, _ = racing_case()
    status = case.state().status
    before = len(case.entries)
    case.move(REQUESTING, status, "closed")
    assert len(case.entries[-1]["prev"]) == 2
    wf.check_new_entries(case.entries, _new(case, before), SIDES, REQUESTING.node_id)


def test_a_move_by_the_wrong_side_is_refused() -> None:
    case = Case("mla")
    case.move(REQUESTING, "draft", "sent")
    before = len(case.entries)
    case.move(REQUESTING, "sent", "acknowledged")  # acknowledging its own request
    with pytest.raises(IllegalTransition, match="only the requested authority can acknowledge a request"):
        wf.check_new_entries(case.entries, _new(case, before), SIDES, REQUESTING.node_id)


def test_a_move_from_a_status_its_author_had_not_seen_is_refused() -> None:
    case = Case("mla")
    case.move(REQUESTING, "draft", "sent")
    before = len(case.entries)
    case.move(REQUESTED, "acknowledged", "in_execution")  # claims a status the case never had
    with pytest.raises(IllegalTransition, match="starts from 'acknowledged' but the case was 'sent'"):
        wf.check_new_entries(case.entries, _new(case, before), SIDES, REQUESTED.node_id)


def test_a_move_legal_now_but_not_in_its_authors_view_is_refused() -> None:
    """The requested side acknowledges a case it saw only as a draft: by the time it arrives the case
    is sent, but the author could not have known that, so the entry is a forgery of knowledge."""
    case = Case("mla")
    blind = case.fork()
    case.move(REQUESTING, "draft", "sent")
    ack = blind.move(REQUESTED, "sent", "acknowledged")
    case.entries.append(ack)
    assert ch.ancestors(case.entries, ack["id"]) == {case.entries[0]["id"]}
    with pytest.raises(IllegalTransition, match="but the case was 'draft'"):
        wf.check_new_entries(case.entries, {ack["id"]}, SIDES, REQUESTED.node_id)


def test_an_entry_signed_into_another_nodes_update_is_refused() -> None:
    case = Case("mla")
    case.move(REQUESTING, "draft", "sent")
    before = len(case.entries)
    case.move(REQUESTED, "sent", "acknowledged")
    with pytest.raises(HistoryInvalid, match="names another node than the one that sent it"):
        wf.check_new_entries(case.entries, _new(case, before), SIDES, REQUESTING.node_id)


def test_an_entry_after_an_unknown_entry_is_refused() -> None:
    case = Case("mla")
    before = len(case.entries)
    orphan = ch.make_entry(REQUESTED, prev=["0" * 64], type="note", user="u", at=at(3), text="x")
    case.entries.append(orphan)
    with pytest.raises(HistoryInvalid, match="that is missing"):
        wf.check_new_entries(case.entries, _new(case, before), SIDES, REQUESTED.node_id)


def test_a_second_creation_is_refused() -> None:
    case = Case("mla")
    before = len(case.entries)
    case.entries.append(ch.make_entry(REQUESTED, prev=[], type="created", user="u", at=at(3), kind="extradition"))
    with pytest.raises(HistoryInvalid, match="already created"):
        wf.check_new_entries(case.entries, _new(case, before), SIDES, REQUESTED.node_id)


def test_a_shared_party_may_only_add_notes_and_reminders() -> None:
    case = Case("mla")
    case.move(REQUESTING, "draft", "sent")
    before = len(case.entries)
    case.add(OBSERVER, "note", text="we hold related records")
    case.add(OBSERVER, "reminder", text="follow up")
    wf.check_new_entries(case.entries, _new(case, before), SIDES, OBSERVER.node_id)
    before = len(case.entries)
    case.add(OBSERVER, "edited", fields=["summary"])
    with pytest.raises(IllegalTransition, match="only add notes and reminders"):
        wf.check_new_entries(case.entries, _new(case, before), SIDES, OBSERVER.node_id)


def test_an_outsider_may_add_nothing() -> None:
    case = Case("mla")
    before = len(case.entries)
    case.add(OUTSIDER, "note", text="hello")
    with pytest.raises(IllegalTransition, match="not a party to the case"):
        wf.check_new_entries(case.entries, _new(case, before), SIDES, OUTSIDER.node_id)


def test_conversions_are_checked_in_the_authors_view() -> None:
    case = Case("consultation")
    case.move(REQUESTING, "draft", "sent")
    before = len(case.entries)
    case.add(REQUESTED, "converted", from_kind="consultation", to_kind="mla")
    with pytest.raises(IllegalTransition, match="only the requesting authority can convert"):
        wf.check_new_entries(case.entries, _new(case, before), SIDES, REQUESTED.node_id)
    case.entries.pop()
    case.add(REQUESTING, "converted", from_kind="mla", to_kind="extradition")
    with pytest.raises(IllegalTransition, match="starts from a 'mla' but the case was a 'consultation'"):
        wf.check_new_entries(case.entries, _new(case, before), SIDES, REQUESTING.node_id)
    case.entries.pop()
    case.add(REQUESTING, "converted", from_kind="consultation", to_kind="mla")
    wf.check_new_entries(case.entries, _new(case, before), SIDES, REQUESTING.node_id)


def test_a_tampered_or_unknown_new_entry_is_refused() -> None:
    case = Case("mla")
    before = len(case.entries)
    entry = case.move(REQUESTING, "draft", "sent")
    case.entries[-1] = {**entry, "to": "withdrawn"}
    with pytest.raises(HistoryInvalid, match="does not match its content"):
        wf.check_new_entries(case.entries, _new(case, before), SIDES, REQUESTING.node_id)
    with pytest.raises(HistoryInvalid, match="not in the history"):
        wf.check_new_entries(case.entries, {"0" * 64}, SIDES, REQUESTING.node_id)
    case.entries[-1] = {**entry, "to": 5}
    with pytest.raises(HistoryInvalid):
        wf.check_new_entries(case.entries, _new(case, before), SIDES, REQUESTING.node_id)


# -- property: concurrent branches -------------------------------------------------------------------------


def step_choices(min_size: int = 0) -> st.SearchStrategy[list[tuple[int, int, int]]]:
    """(action selector, clock, author) triples, interpreted against the author's view by `_step`."""
    return st.lists(st.tuples(st.integers(0, 99), st.integers(0, 40), st.integers(0, 1)), min_size=min_size, max_size=6)


def _step(case: Case, who: Identity, choice: int, minutes: int) -> None:
    """One legal entry by `who`, as that author's node would write it after what it has seen."""
    state = case.state()
    side = SIDE_OF[id(who)]
    steps = wf.next_steps(state.kind, state.status, side)
    case.clock = minutes
    if state.kind == "consultation" and side == "requesting" and choice % 7 == 0:
        try:
            wf.check_conversion(state.kind, state.status, side, "mla")
        except IllegalTransition:
            pass
        else:
            case.add(who, "converted", from_kind="consultation", to_kind=("mla", "extradition")[choice % 2])
            return
    if steps and choice % 8 != 0:
        case.move(who, state.status, steps[choice % len(steps)])
    else:
        case.add(who, "note", text=f"note {choice}")


def _legal_timeline(state: wf.CaseState, kind0: str) -> None:
    """Every applied change starts where the last one ended and is one its author's side may make."""
    kind, status = kind0, "draft"
    side_of = {REQUESTING.node_id: "requesting", REQUESTED.node_id: "requested"}
    for item in state.timeline:
        assert item["from"] == status
        side = side_of[item["node"]]
        if item["type"] == "converted":
            assert item["from_kind"] == kind
            wf.check_conversion(kind, status, side, item["to_kind"])
            kind = item["to_kind"]
        else:
            assert wf.allowed(kind, status, item["to"], side)
        status = item["to"]
    assert (kind, status) == (state.kind, state.status)


@settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["mla", "consultation", "extradition"]),
    sent=st.booleans(),
    prefix=step_choices(),
    left=step_choices(min_size=1),
    right=step_choices(min_size=1),
    after=step_choices(),
    data=st.data(),
)
def test_concurrent_branches_replay_the_same_everywhere_and_only_legally(
    kind: str,
    sent: bool,
    prefix: list[tuple[int, int, int]],
    left: list[tuple[int, int, int]],
    right: list[tuple[int, int, int]],
    after: list[tuple[int, int, int]],
    data: st.DataObject,
) -> None:
    authors = (REQUESTING, REQUESTED)
    case = Case(kind)
    if sent:  # most races need a request both sides can act on
        case.move(REQUESTING, "draft", "sent")
    for choice, minutes, who in prefix:
        _step(case, authors[who], choice, minutes)
    # Each authority keeps working on its own node, without seeing the other's entries.
    mine, theirs = case.fork(), case.fork()
    for choice, minutes, _ in left:
        _step(mine, REQUESTING, choice, minutes)
    for choice, minutes, _ in right:
        _step(theirs, REQUESTED, choice, minutes)
    fork_point = len(case.entries)
    mine_new = {e["id"] for e in mine.entries[fork_point:]}
    theirs_new = {e["id"] for e in theirs.entries[fork_point:]}

    # The CRDT merges the two lists in some interleaving.
    merged = data.draw(st.permutations(mine.entries + theirs.entries[fork_point:]), label="merged order")
    # Each update was legal in its author's view, so each is accepted on receipt.
    wf.check_new_entries(merged, mine_new, SIDES, REQUESTING.node_id)
    wf.check_new_entries(merged, theirs_new, SIDES, REQUESTED.node_id)

    # After the merge, work goes on from the merged state.
    joined = Case(entries=list(merged))
    before = len(joined.entries)
    for choice, minutes, who in after:
        _step(joined, authors[who], choice, minutes + 50)
        wf.check_new_entries(joined.entries, _new(joined, before), SIDES, authors[who].node_id)
        before = len(joined.entries)

    state = joined.state()
    event("a concurrent change lost" if state.conflicts else "no conflict")
    other_order = data.draw(st.permutations(joined.entries), label="another node's order")
    assert wf.replay(other_order, SIDES) == state
    assert wf.replay(joined.entries + other_order[:3], SIDES) == state  # duplicates change nothing
    _legal_timeline(state, kind)
    assert ch.verify_chain(other_order, {i.node_id: i.public.sign_key for i in authors}.get).ok


# -- carrying a state forward ------------------------------------------------------------------------------

PASSIVE_ENTRIES: dict[str, dict[str, Any]] = {
    "note": {"text": "called"},
    "reminder": {"text": "awaiting"},
    "attachment": {"attachment": "A1", "name": "a.pdf", "sha256": "0" * 64},
    "edited": {"fields": ["summary"]},
    "shared": {"with": OBSERVER.node_id},
}


@settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["mla", "consultation"]),
    prefix=step_choices(),
    added=st.lists(
        st.tuples(st.sampled_from([*PASSIVE_ENTRIES, "transition"]), st.integers(-5, 60), st.integers(0, 1)),
        max_size=6,
    ),
)
def test_advance_gives_what_a_replay_gives_or_declines(
    kind: str, prefix: list[tuple[int, int, int]], added: list[tuple[str, int, int]]
) -> None:
    """`advance` is a shortcut for `replay`: whenever it answers, the answer is the replay's."""
    authors = (REQUESTING, REQUESTED)
    case = Case(kind)
    for choice, minutes, who in prefix:
        _step(case, authors[who], choice, minutes)
    before = case.state()
    start = len(case.entries)
    for type_, minutes, who in added:
        case.clock = minutes - 1  # entries may be older than the last action, as a late peer's are
        if type_ == "transition":
            status = wf.replay(case.entries, SIDES).status
            case.move(authors[who], status, "withdrawn")
        else:
            case.add(authors[who], type_, **PASSIVE_ENTRIES[type_])
    carried = wf.advance(before, case.entries[start:])
    if any(t == "transition" for t, _, _ in added):
        assert carried is None
    else:
        assert carried == wf.replay(case.entries, SIDES)
        assert carried is not before and carried.timeline is not before.timeline


def test_advance_declines_a_malformed_entry_and_a_time_written_another_way() -> None:
    case = Case("mla")
    case.move(REQUESTING, "draft", "sent")
    state = case.state()
    assert state.last_action_at is not None
    assert wf.advance(state, [{"type": "note", "text": "no id, no signature"}]) is None
    same_instant = ch.make_entry(
        REQUESTED,
        prev=ch.heads(case.entries),
        type="note",
        user="u",
        at=state.last_action_at.replace("Z", "+00:00"),
        text="x",
    )
    assert wf.advance(state, [same_instant]) is None
    later = ch.make_entry(REQUESTED, prev=ch.heads(case.entries), type="note", user="u", at=at(99), text="x")
    carried = wf.advance(state, [later])
    assert carried is not None and carried.last_action_at == at(99) and carried.status == "sent"
