"""Documents with rules (cases): a peer's updates are judged one by one, in causal order, on a trial copy."""

from __future__ import annotations

import gc
import os
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from crypto.authorship import sign_update
from crypto.identity import Identity
from node.crdt import CrdtDocument, DocumentChange, DocView
from node.documents import DocumentStore
from node.storage import Database
from sync.errors import UpdateRejected
from sync.messages import SignedUpdate

ALICE = Identity.from_secret_bytes(bytes(range(64)))
BOB = Identity.from_secret_bytes(bytes(range(64, 128)))
CAROL = Identity.from_secret_bytes(bytes(range(128, 192)))
KEYS = {i.node_id: i.public.sign_key for i in (ALICE, BOB, CAROL)}
DOC = "case/TESTCASE0001"


def signed(author: Identity, seq: int, body: bytes) -> SignedUpdate:
    return SignedUpdate(
        DOC, author.node_id, seq, seq, body, sign_update(author, doc_id=DOC, seq_from=seq, seq_to=seq, update=body)
    )


@pytest.fixture
def carol(tmp_path: Path) -> Iterator[tuple[DocumentStore, list[tuple[str, dict[str, object], dict[str, object]]]]]:
    """Carol's store, and what its rule saw: (author, fields before, fields after) per judged update."""
    db = Database(tmp_path / "carol.db", os.urandom(32))
    seen: list[tuple[str, dict[str, object], dict[str, object]]] = []

    def rule(doc_id: str, author: str, before: DocView, after: DocView) -> None:
        old, new = before.records("fields"), after.records("fields")
        seen.append((author, old, new))
        for key in set(old) | set(new):
            if old.get(key) != new.get(key) and key != author:
                raise UpdateRejected("not_permitted", "each author writes only its own field")
        if any(m.get("by") != author for m in after.items("thread")[len(before.items("thread")) :]):
            raise UpdateRejected("not_permitted", "each author adds only its own messages")

    store = DocumentStore(
        db,
        CAROL,
        author_key=KEYS.get,
        may_write=lambda d, a: True,
        check_remote=rule,
        checked_roots=(("fields",), ("thread",)),
        checked=lambda d: True,
    )
    store.load()
    yield store, seen
    db.close()


def conversation() -> list[SignedUpdate]:
    """Alice writes, Bob answers after it in the thread, Alice replaces her value (a delete in the CRDT)."""
    alice, bob = CrdtDocument(), CrdtDocument()

    def first(change: DocumentChange) -> None:
        change.put_record("fields", ALICE.node_id, {"v": "first"})
        change.append("thread", {"text": "question", "by": ALICE.node_id})

    def answer(change: DocumentChange) -> None:
        change.put_record("fields", BOB.node_id, {"v": "answer"})
        change.append("thread", {"text": "answer", "by": BOB.node_id})  # after the question: needs it

    a1 = alice.change(first)
    assert a1 is not None
    bob.apply(a1)
    b1 = bob.change(answer)
    assert b1 is not None
    alice.apply(b1)
    a2 = alice.change(lambda c: c.put_record("fields", ALICE.node_id, {"v": "second"}))
    assert a2 is not None
    return [signed(ALICE, 1, a1), signed(BOB, 1, b1), signed(ALICE, 2, a2)]


def test_updates_out_of_causal_order_are_judged_in_it_and_attributed_to_their_authors(carol) -> None:  # type: ignore[no-untyped-def]
    store, seen = carol
    a1, b1, a2 = conversation()
    result = store.apply_remote([b1, a1, a2], via=BOB.node_id)  # Bob's answer before what it answers
    assert sorted((e.author, e.seq_to) for e in result.stored) == sorted(
        [(ALICE.node_id, 1), (BOB.node_id, 1), (ALICE.node_id, 2)]
    )
    assert seen[0][0] == ALICE.node_id  # the question was judged first, then the answer, each as its author's
    doc = store.get(DOC)
    assert doc is not None
    assert {k: v["v"] for k, v in doc.records("fields").items()} == {ALICE.node_id: "second", BOB.node_id: "answer"}
    assert [m["text"] for m in doc.items("thread")] == ["question", "answer"]


def test_an_update_whose_cause_is_missing_waits_and_is_asked_for_again(carol) -> None:  # type: ignore[no-untyped-def]
    store, seen = carol
    a1, b1, _ = conversation()
    result = store.apply_remote([b1], via=BOB.node_id)
    assert result.stored == [] and result.gap
    assert seen == [] and store.get(DOC) is None
    result = store.apply_remote([a1, b1], via=BOB.node_id)
    assert len(result.stored) == 2


def test_a_change_attributed_by_causality_to_the_wrong_author_is_refused(carol) -> None:  # type: ignore[no-untyped-def]
    store, _ = carol
    alice = CrdtDocument()
    body = alice.change(lambda c: c.put_record("fields", BOB.node_id, {"v": "written by Alice in Bob's field"}))
    assert body is not None
    with pytest.raises(UpdateRejected):
        store.apply_remote([signed(ALICE, 1, body)], via=ALICE.node_id)
    assert store.get(DOC) is None and store.versions(DOC) == {}


def test_a_document_that_admits_only_trusted_authors_refuses_an_unknown_one(tmp_path: Path) -> None:
    db = Database(tmp_path / "strict.db", os.urandom(32))
    try:
        store = DocumentStore(
            db,
            CAROL,
            author_key={CAROL.node_id: CAROL.public.sign_key}.get,
            may_write=lambda d, a: True,
            strict_authors=lambda d: d.startswith("report/"),
        )
        body = CrdtDocument().change(lambda c: c.put_record("reports", "2026-Q4", {"payload": "{}"}))
        assert body is not None
        doc_id = "report/" + ALICE.node_id
        entry = SignedUpdate(
            doc_id, ALICE.node_id, 1, 1, body, sign_update(ALICE, doc_id=doc_id, seq_from=1, seq_to=1, update=body)
        )
        with pytest.raises(UpdateRejected) as refused:
            store.apply_remote([entry], via=BOB.node_id)
        assert refused.value.reason == "untrusted_author"
        assert store.doc_ids() == []
    finally:
        db.close()


def test_trying_out_updates_leaves_no_document_behind(carol) -> None:  # type: ignore[no-untyped-def]
    """Every update judged is tried on a copy of the document; the copies must go once judged (a node receives
    thousands of updates an hour, for months)."""
    store, _ = carol
    gc.collect()
    earlier = weakref.WeakSet(o for o in gc.get_objects() if isinstance(o, CrdtDocument))  # other tests' own
    alice = CrdtDocument()
    for seq in range(1, 41):
        body = alice.change(lambda c, seq=seq: c.append("thread", {"text": f"message {seq}", "by": ALICE.node_id}))
        assert body is not None
        store.apply_remote([signed(ALICE, seq, body)], via=ALICE.node_id)
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, CrdtDocument) and o not in earlier]
    assert len(alive) <= 3  # Alice's, the one Carol holds, and at most one being judged
