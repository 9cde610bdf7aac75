"""A case's state is carried forward from the last one worked out, and only ever equals a full replay."""

from __future__ import annotations

from nodeproc import deliver_case as deliver

from node import workflow
from node.cases import HISTORY, _sides
from node.runtime import Node


def _replayed(node: Node, doc_id: str) -> workflow.CaseState:
    doc = node.store.get(doc_id)
    assert doc is not None
    return workflow.replay(doc.items(HISTORY), _sides(node.case_keys.roles(doc_id)))


def test_notes_carry_the_state_forward_and_a_move_replays_it(case: tuple[Node, Node, str]) -> None:
    th, vn, doc_id = case
    case_id = doc_id.split("/")[1]
    for n in range(5):
        th.cases.add_note(case_id, {"text": f"call {n}"}, actor="tests")
        assert th.cases.get(case_id)["last_action_at"] == _replayed(th, doc_id).last_action_at
    # The counterpart's move arrives by sync: a status change, so the history is replayed.
    deliver(th, vn, doc_id)
    vn.cases.transition(case_id, {"to": "acknowledged"}, actor="tests")
    deliver(vn, th, doc_id)
    th.cases.add_note(case_id, {"text": "thanks"}, actor="tests")
    seen = th.cases.get(case_id)
    state = _replayed(th, doc_id)
    assert (seen["status"], seen["last_action_at"], seen["timeline"]) == (
        "acknowledged",
        state.last_action_at,
        state.timeline,
    )


def test_a_history_that_lost_entries_is_replayed_not_carried(case: tuple[Node, Node, str]) -> None:
    """A document reloaded after a rolled-back commit holds fewer entries than the state last worked out."""
    th, _, doc_id = case
    case_id = doc_id.split("/")[1]
    doc = th.store.get(doc_id)
    assert doc is not None
    older = doc.copy()
    th.cases.add_note(case_id, {"text": "later"}, actor="tests")
    newer = th.cases.get(case_id)["last_action_at"]
    roles = th.case_keys.roles(doc_id)
    state = th.cases._state(doc_id, older, roles)
    assert state == workflow.replay(older.items(HISTORY), _sides(roles))
    assert state.last_action_at != newer
    # And the state handed out is the caller's own: changing it changes nothing kept.
    state.timeline.append({"id": "x"})
    assert (
        th.cases._state(doc_id, older, roles).timeline == workflow.replay(older.items(HISTORY), _sides(roles)).timeline
    )
