"""A peer catching up gets each run of the sender's own entries as one merged, re-signed entry."""

from __future__ import annotations

import pytest
from nodeproc import deliver_case as deliver

import node.documents
from crypto.authorship import verify_update
from node.runtime import Node
from sync.messages import SignedUpdate


def _spans(entries: list[SignedUpdate], names: dict[str, str]) -> list[tuple[str, int, int]]:
    return [(names[e.author], e.seq_from, e.seq_to) for e in entries]


@pytest.fixture
def conversation(pair: tuple[Node, Node, Node], case: tuple[Node, Node, str]) -> tuple[Node, Node, Node, str]:
    """Thailand's entries 1-5, Viet Nam's 1-2 in answer, then Thailand's 6-9 (three notes and the sharing)."""
    th, vn, doc_id = case
    ph = pair[2]
    case_id = doc_id.split("/")[1]
    for text in ("first call", "second call"):
        th.cases.add_note(case_id, {"text": text}, actor="tests")
    deliver(th, vn, doc_id)
    vn.cases.transition(case_id, {"to": "acknowledged"}, actor="tests")
    vn.cases.add_note(case_id, {"text": "received, executing"}, actor="tests")
    deliver(vn, th, doc_id)
    for text in ("thanks", "any news?", "documents follow"):
        th.cases.add_note(case_id, {"text": text}, actor="tests")
    th.cases.share(case_id, {"node_id": ph.node_id}, actor="tests")
    return th, vn, ph, doc_id


def test_runs_of_own_entries_are_merged_and_never_across_another_authors(
    conversation: tuple[Node, Node, Node, str],
) -> None:
    th, vn, _, doc_id = conversation
    names = {th.node_id: "th", vn.node_id: "vn"}
    log = th.store.entries_missing(doc_id, {})
    assert len(log) == 11
    sent = th.store.entries_missing(doc_id, {}, merge_own=True)
    # Viet Nam's entries are relayed as they are (only their author can sign them), and they split
    # Thailand's entries in two runs: the later run builds on them.
    assert _spans(sent, names) == [("th", 1, 5), ("vn", 1, 1), ("vn", 2, 2), ("th", 6, 9)]
    for entry in sent:
        if entry.author == th.node_id:
            verify_update(
                th.identity.public.sign_key,
                entry.sig,
                doc_id=doc_id,
                author_id=th.node_id,
                seq_from=entry.seq_from,
                seq_to=entry.seq_to,
                update=entry.body,
            )
    # A peer that holds some of them gets only the rest, merged from the next seq on.
    partial = th.store.entries_missing(doc_id, {th.node_id: 3, vn.node_id: 2}, merge_own=True)
    assert _spans(partial, names) == [("th", 4, 9)]  # nothing of Viet Nam's lies between them any more
    # Asking again costs no new signature: the same merged entries come back.
    assert th.store.entries_missing(doc_id, {}, merge_own=True) == sent


def test_a_party_catching_up_from_merged_entries_holds_the_same_case(
    conversation: tuple[Node, Node, Node, str],
) -> None:
    th, _, ph, doc_id = conversation
    case_id = doc_id.split("/")[1]
    grant = th.case_keys.grant_bytes(doc_id)
    assert grant is not None
    ph.case_keys.accept_grants([grant], via=th.node_id)
    result = ph.store.apply_remote(th.store.entries_missing(doc_id, {}, merge_own=True), via=th.node_id)
    assert not result.gap
    assert ph.store.versions(doc_id) == th.store.versions(doc_id)
    seen, source = ph.cases.get(case_id), th.cases.get(case_id)
    assert seen["status"] == source["status"] == "acknowledged"
    assert [n["text"] for n in seen["notes"]] == [n["text"] for n in source["notes"]]
    assert ph.cases.verify(case_id)["ok"]
    # The merged entry is stored as what it covers, so the party relays it and reports the right versions.
    assert ph.store.entries_missing(doc_id, {}) != []


def test_a_merged_run_stops_at_the_size_limit(
    conversation: tuple[Node, Node, Node, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    th, vn, _, doc_id = conversation
    names = {th.node_id: "th", vn.node_id: "vn"}
    log = th.store.entries_missing(doc_id, {})
    th_sizes = [len(e.body) for e in log if e.author == th.node_id]
    monkeypatch.setattr(node.documents, "MERGE_SEND_MAX_BYTES", max(th_sizes) * 2)
    sent = th.store.entries_missing(doc_id, {}, merge_own=True)
    assert sum(e.seq_to - e.seq_from + 1 for e in sent) == len(log)
    assert len(sent) > 4  # more, smaller runs
    assert all(len(e.body) <= max(th_sizes) * 2 + 64 for e in sent if names[e.author] == "th")


def test_remembered_merged_runs_stay_within_their_byte_budget(
    pair: tuple[Node, Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    th, vn, _ = pair
    doc_ids = []
    for n in range(6):
        created = th.cases.create(
            {"kind": "mla", "counterpart": vn.node_id, "reference": f"TH-{n}", "summary": "s", "languages": ["en"]},
            actor="tests",
        )
        th.cases.add_note(created["id"], {"text": f"call {n}"}, actor="tests")
        doc_ids.append(f"case/{created['id']}")
    one = th.store.entries_missing(doc_ids[0], {}, merge_own=True)[0]
    budget = len(one.body) * 3
    monkeypatch.setattr(node.documents, "MERGED_KEPT_BYTES", budget)
    for doc_id in doc_ids:
        th.store.entries_missing(doc_id, {}, merge_own=True)
        assert th.store._merged_bytes <= budget
    kept = th.store._merged_runs
    assert 0 < len(kept) < len(doc_ids) and sum(len(e.body) for e in kept.values()) == th.store._merged_bytes
    assert doc_ids[-1] in {d for d, _, _ in kept}  # the oldest were let go, not the newest
