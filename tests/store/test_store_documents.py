"""The document store: a signed update log in SQLCipher, held in memory as CRDTs.

A change is durable once `commit_local`/`apply_remote` return; a received update is stored only if its author
signed it and may write there; a bad batch stores nothing; compaction and snapshots shorten the log and the
load without changing what any node sees; the audit log says who changed what, never the content.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pycrdt
import pytest

import node.crdt
import node.documents
from crypto.authorship import sign_update, verify_update
from crypto.identity import Identity
from node.crdt import CrdtDocument, DocumentChange, UnstorableValue
from node.documents import DocumentStore
from node.errors import Forbidden
from node.policy import directory_doc, may_write
from node.storage import Database
from sync.errors import UpdateRejected
from sync.messages import SignedUpdate

ALICE = Identity.from_secret_bytes(bytes(range(64)))
BOB = Identity.from_secret_bytes(bytes(range(64, 128)))
CAROL = Identity.from_secret_bytes(bytes(range(128, 192)))
ALICE_DOC, BOB_DOC, CAROL_DOC = (directory_doc(i.node_id) for i in (ALICE, BOB, CAROL))
SIGN_KEYS = {i.node_id: i.public.sign_key for i in (ALICE, BOB, CAROL)}
NAME = "Somchai Jaidee"  # a contact's name: content that must never reach the audit log


@dataclass
class Node:
    """A store on its own database, and what its `on_stored` listener was told."""

    identity: Identity
    path: Path
    key: bytes
    db: Database
    store: DocumentStore
    notified: list[tuple[list[SignedUpdate], str | None]] = field(default_factory=list)

    def put(self, key: str, **fields: Any) -> SignedUpdate:
        return self.commit(lambda change: change.put_record("contacts", key, fields))

    def delete(self, key: str) -> SignedUpdate:
        return self.commit(lambda change: change.delete_record("contacts", key))

    def commit(self, edit: Callable[[DocumentChange], None], doc_id: str | None = None) -> SignedUpdate:
        entry = self.store.commit_local(
            doc_id or directory_doc(self.identity.node_id), edit, actor="officer@ago", action="contact.put"
        )
        assert entry is not None
        return entry

    def contacts(self, doc_id: str) -> dict[str, Any]:
        doc = self.store.get(doc_id)
        return doc.records("contacts") if doc else {}

    def log(self, doc_id: str) -> list[tuple[str, int, int]]:
        rows = self.db.query(
            "SELECT author, seq_from, seq_to FROM doc_log WHERE doc_id = ? ORDER BY author, seq_to", (doc_id,)
        )
        return [(r["author"], r["seq_from"], r["seq_to"]) for r in rows]

    def footprint(self) -> tuple[Any, ...]:
        """Everything a stored update would change."""
        count = "SELECT count(*) AS n FROM {}"
        return (
            self.db.query(count.format("doc_log"))[0]["n"],
            self.db.query(count.format("audit_log"))[0]["n"],
            self.db.query(count.format("doc_snapshots"))[0]["n"],
            {d: self.store.versions(d) for d in self.store.doc_ids()},
            {d: self.contacts(d) for d in self.store.doc_ids()},
            len(self.notified),
        )


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    opened: list[Database] = []

    def make(
        identity: Identity,
        *,
        name: str | None = None,
        key: bytes | None = None,
        author_key: Callable[[str], bytes | None] = SIGN_KEYS.get,
    ) -> Node:
        path = tmp_path / f"{name or identity.node_id}.db"
        key = key or os.urandom(32)
        db = Database(path, key)
        opened.append(db)
        store = DocumentStore(db, identity, author_key=author_key, may_write=may_write)
        store.load()
        made = Node(identity, path, key, db, store)
        store.on_stored(lambda entries, source: made.notified.append((list(entries), source)))
        return made

    yield make
    for db in opened:
        db.close()


def reopen(make_node: Callable[..., Node], old: Node) -> Node:
    old.db.close()
    return make_node(old.identity, name=old.path.stem, key=old.key)


def crdt_body(key: str = "c1", **fields: Any) -> bytes:
    body = CrdtDocument().change(lambda change: change.put_record("contacts", key, fields or {"name": "x"}))
    assert body is not None
    return body


def signed(author: Identity, doc_id: str, seq_from: int, seq_to: int, body: bytes) -> SignedUpdate:
    sig = sign_update(author, doc_id=doc_id, seq_from=seq_from, seq_to=seq_to, update=body)
    return SignedUpdate(doc_id, author.node_id, seq_from, seq_to, body, sig)


def bobs_entries(make_node: Callable[..., Node], count: int) -> list[SignedUpdate]:
    """`count` genuine updates by Bob to his own directory part, as Bob's store signed them."""
    bob = make_node(BOB)
    for i in range(count):
        bob.put(f"b{i}", name=f"Bob's contact {i}")
    return bob.store.entries_missing(BOB_DOC, {})


# -- local changes -------------------------------------------------------------------------------------------


def test_a_local_change_is_signed_numbered_and_stored(make_node: Callable[..., Node]) -> None:
    alice = make_node(ALICE)
    first = alice.put("c1", name=NAME)
    second = alice.put("c2", name="Other")
    assert (first.doc_id, first.author, first.seq_from, first.seq_to) == (ALICE_DOC, ALICE.node_id, 1, 1)
    assert (second.seq_from, second.seq_to) == (2, 2)
    verify_update(
        ALICE.public.sign_key,
        second.sig,
        doc_id=ALICE_DOC,
        author_id=ALICE.node_id,
        seq_from=2,
        seq_to=2,
        update=second.body,
    )
    assert alice.store.versions(ALICE_DOC) == {ALICE.node_id: 2}
    assert alice.log(ALICE_DOC) == [(ALICE.node_id, 1, 1), (ALICE.node_id, 2, 2)]
    assert alice.store.entries_missing(ALICE_DOC, {}) == [first, second]
    assert alice.notified == [([first], None), ([second], None)]


def test_a_change_that_changes_nothing_stores_nothing(make_node: Callable[..., Node]) -> None:
    alice = make_node(ALICE)
    alice.put("c1", name=NAME)
    before = alice.footprint()
    assert (
        alice.store.commit_local(
            ALICE_DOC, lambda change: change.put_record("contacts", "c1", {"name": NAME}), actor="a", action="b"
        )
        is None
    )
    assert alice.footprint() == before


def test_a_node_may_not_change_another_nodes_part(make_node: Callable[..., Node]) -> None:
    alice = make_node(ALICE)
    before = alice.footprint()
    with pytest.raises(Forbidden):
        alice.commit(lambda change: change.put_record("contacts", "c1", {"name": NAME}), doc_id=BOB_DOC)
    assert alice.footprint() == before
    assert alice.store.get(BOB_DOC) is None


def test_changes_survive_reopening_the_database(make_node: Callable[..., Node]) -> None:
    alice = make_node(ALICE)
    alice.put("c1", name=NAME, phone="+66 2 000 0000")
    alice.put("c2", name="To be deleted")
    alice.put("c1", phone="+66 2 111 1111")
    alice.delete("c2")
    alice.store.apply_remote(bobs_entries(make_node, 3), via=BOB.node_id)
    live = {d: (alice.contacts(d), alice.store.versions(d)) for d in alice.store.doc_ids()}

    reopened = reopen(make_node, alice)
    assert {d: (reopened.contacts(d), reopened.store.versions(d)) for d in reopened.store.doc_ids()} == live
    assert live[ALICE_DOC] == ({"c1": {"name": NAME, "phone": "+66 2 111 1111"}}, {ALICE.node_id: 4})
    assert len(live[BOB_DOC][0]) == 3
    # And the reopened store carries on numbering where it left off.
    assert reopened.put("c3", name="after").seq_to == 5


def test_a_store_that_was_not_loaded_holds_nothing(make_node: Callable[..., Node]) -> None:
    alice = make_node(ALICE)
    alice.put("c1", name=NAME)
    alice.db.close()
    db = Database(alice.path, alice.key)
    try:
        store = DocumentStore(db, ALICE, author_key=SIGN_KEYS.get, may_write=may_write)
        assert store.doc_ids() == []
        store.load()
        assert store.doc_ids() == [ALICE_DOC]
    finally:
        db.close()


@pytest.mark.parametrize(
    ("first", "then"), [({"flag": 1}, {"flag": True}), ({"flag": 0}, {"flag": False}), ({}, {"flag": None})]
)
def test_a_field_set_to_a_value_that_merely_compares_equal_is_still_set(
    make_node: Callable[..., Node], first: dict[str, Any], then: dict[str, Any]
) -> None:
    alice = make_node(ALICE)
    alice.put("c1", name=NAME, **first)
    entry = alice.store.commit_local(
        ALICE_DOC, lambda change: change.put_record("contacts", "c1", then), actor="a", action="put"
    )
    assert entry is not None
    record = alice.contacts(ALICE_DOC)["c1"]
    assert "flag" in record
    assert type(record["flag"]) is type(then["flag"])


# -- received changes ----------------------------------------------------------------------------------------


def test_received_updates_are_stored_applied_and_announced(make_node: Callable[..., Node]) -> None:
    entries = bobs_entries(make_node, 3)
    alice = make_node(ALICE)
    result = alice.store.apply_remote(entries, via=CAROL.node_id)
    assert result.stored == entries
    assert not result.gap
    assert alice.store.versions(BOB_DOC) == {BOB.node_id: 3}
    assert set(alice.contacts(BOB_DOC)) == {"b0", "b1", "b2"}
    assert alice.log(BOB_DOC) == [(BOB.node_id, s, s) for s in (1, 2, 3)]
    assert alice.notified == [(entries, CAROL.node_id)]


def _tampered_signature(entries: list[SignedUpdate]) -> list[SignedUpdate]:
    last = entries[-1]
    return [*entries[:-1], dataclasses.replace(last, sig=bytes([last.sig[0] ^ 1]) + last.sig[1:])]


def _tampered_body(entries: list[SignedUpdate]) -> list[SignedUpdate]:
    return [*entries[:-1], dataclasses.replace(entries[-1], body=crdt_body("b9", name="swapped"))]


def _renumbered(entries: list[SignedUpdate]) -> list[SignedUpdate]:
    return [*entries[:-1], dataclasses.replace(entries[-1], seq_from=1)]


def _moved(entries: list[SignedUpdate]) -> list[SignedUpdate]:
    return [dataclasses.replace(e, doc_id=CAROL_DOC) for e in entries]


def _misattributed(entries: list[SignedUpdate]) -> list[SignedUpdate]:
    return [dataclasses.replace(e, author=CAROL.node_id) for e in entries]


def _into_alices_part(entries: list[SignedUpdate]) -> list[SignedUpdate]:
    # Signed by Bob, as Bob, for Alice's part of the directory: authentic, but not his to write.
    return [signed(BOB, ALICE_DOC, 1, 1, crdt_body("c1", name="Forged"))]


def _not_crdt(entries: list[SignedUpdate]) -> list[SignedUpdate]:
    return [*entries, signed(BOB, BOB_DOC, 4, 4, b"\xff\xfe not a yjs update")]


def _unknown_doc_kind(entries: list[SignedUpdate]) -> list[SignedUpdate]:
    return [signed(BOB, "case/TH-2024-0001", 1, 1, crdt_body())]


REFUSED: dict[str, tuple[Callable[[list[SignedUpdate]], list[SignedUpdate]], str]] = {
    "signature altered": (_tampered_signature, "bad_update_signature"),
    "body altered": (_tampered_body, "bad_update_signature"),
    "renumbered": (_renumbered, "bad_update_signature"),
    "moved to another document": (_moved, "bad_update_signature"),
    "attributed to another author": (_misattributed, "bad_update_signature"),
    "author may not write there": (_into_alices_part, "not_permitted"),
    "unknown kind of document": (_unknown_doc_kind, "not_permitted"),
    "body is not a CRDT update": (_not_crdt, "malformed_update"),
}


@pytest.mark.parametrize(("tamper", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_a_bad_update_is_refused_and_nothing_of_its_batch_is_stored(
    make_node: Callable[..., Node], tamper: Callable[[list[SignedUpdate]], list[SignedUpdate]], reason: str
) -> None:
    entries = bobs_entries(make_node, 3)
    alice = make_node(ALICE)
    alice.put("c1", name=NAME)
    before = alice.footprint()
    with pytest.raises(UpdateRejected) as info:
        alice.store.apply_remote(tamper(entries), via=BOB.node_id)
    assert info.value.reason == reason
    assert alice.footprint() == before
    assert alice.store.get(BOB_DOC) is None
    # The genuine batch is still accepted afterwards: the refusal was about the tampering.
    assert alice.store.apply_remote(entries, via=BOB.node_id).stored == entries


def test_updates_by_an_author_not_yet_trusted_are_left_out(make_node: Callable[..., Node]) -> None:
    entries = bobs_entries(make_node, 2)
    alice = make_node(ALICE, author_key={CAROL.node_id: CAROL.public.sign_key}.get)
    before = alice.footprint()
    result = alice.store.apply_remote(entries, via=CAROL.node_id)
    assert result.stored == []
    assert not result.gap
    assert alice.footprint() == before


def test_an_untrusted_authors_updates_do_not_block_the_rest_of_a_batch(make_node: Callable[..., Node]) -> None:
    carol = make_node(CAROL)
    carols = [carol.put("k1", name="Carol's")]
    bobs = bobs_entries(make_node, 1)
    alice = make_node(ALICE, author_key={CAROL.node_id: CAROL.public.sign_key}.get)
    assert alice.store.apply_remote([*bobs, *carols], via=CAROL.node_id).stored == carols


def test_duplicates_are_ignored(make_node: Callable[..., Node]) -> None:
    entries = bobs_entries(make_node, 3)
    alice = make_node(ALICE)
    alice.store.apply_remote(entries[:2], via=BOB.node_id)
    before = alice.footprint()
    result = alice.store.apply_remote(entries[:2], via=CAROL.node_id)
    assert (result.stored, result.gap) == ([], False)
    assert alice.footprint() == before
    # Overlapping: only the new entry is stored, and only it is announced.
    assert alice.store.apply_remote(entries, via=BOB.node_id).stored == [entries[2]]
    assert alice.notified[-1] == ([entries[2]], BOB.node_id)
    # The same entry twice in one batch is stored once.
    fresh = make_node(CAROL)
    assert fresh.store.apply_remote([entries[0], entries[0]], via=BOB.node_id).stored == [entries[0]]
    assert fresh.log(BOB_DOC) == [(BOB.node_id, 1, 1)]


def test_an_update_beyond_a_gap_is_not_applied_and_the_gap_is_reported(make_node: Callable[..., Node]) -> None:
    e1, e2, e3 = bobs_entries(make_node, 3)
    alice = make_node(ALICE)
    before = alice.footprint()
    result = alice.store.apply_remote([e3], via=BOB.node_id)
    assert (result.stored, result.gap) == ([], True)
    assert alice.footprint() == before
    result = alice.store.apply_remote([e1, e3], via=BOB.node_id)
    assert (result.stored, result.gap) == ([e1], True)
    assert alice.store.versions(BOB_DOC) == {BOB.node_id: 1}
    result = alice.store.apply_remote([e2, e3], via=BOB.node_id)
    assert (result.stored, result.gap) == ([e2, e3], False)
    assert set(alice.contacts(BOB_DOC)) == {"b0", "b1", "b2"}


def test_entries_after_a_gap_in_the_same_batch_wait_for_it(make_node: Callable[..., Node]) -> None:
    e1, e2, e3 = bobs_entries(make_node, 3)
    alice = make_node(ALICE)
    result = alice.store.apply_remote([e2, e1, e3], via=BOB.node_id)
    # e2 came before e1 was held, so e3 had nothing to follow: both are asked for again.
    assert (result.stored, result.gap) == ([e1], True)
    assert alice.store.apply_remote([e2, e3], via=BOB.node_id).stored == [e2, e3]


def test_entries_missing_is_what_a_peer_lacks(make_node: Callable[..., Node]) -> None:
    alice = make_node(ALICE)
    entries = [alice.put(f"c{i}", name=str(i)) for i in range(4)]
    assert alice.store.entries_missing(ALICE_DOC, {}) == entries
    assert alice.store.entries_missing(ALICE_DOC, {ALICE.node_id: 2}) == entries[2:]
    assert alice.store.entries_missing(ALICE_DOC, {ALICE.node_id: 4}) == []
    assert alice.store.entries_missing(ALICE_DOC, {ALICE.node_id: 9, BOB.node_id: 1}) == []
    assert alice.store.entries_missing(BOB_DOC, {}) == []


# -- compaction ----------------------------------------------------------------------------------------------


@pytest.fixture
def small_compaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node.documents, "COMPACT_OWN_ABOVE", 8)
    monkeypatch.setattr(node.documents, "COMPACT_KEEP_RECENT", 3)


def _edit_many(alice: Node, count: int, round_: int = 0) -> list[SignedUpdate]:
    entries = []
    for i in range(count):
        entries.append(alice.put(f"c{i % 4}", name=f"{NAME} {i}", n=i, round=round_))
        if i % 5 == 4:
            alice.delete(f"c{(i + 1) % 4}")
    return entries


@pytest.mark.usefixtures("small_compaction")
def test_compaction_waits_until_there_are_enough_own_entries(make_node: Callable[..., Node]) -> None:
    alice = make_node(ALICE)
    for i in range(8):
        alice.put(f"c{i}", name=str(i))
    log = alice.log(ALICE_DOC)
    assert not alice.store.compact(ALICE_DOC)
    assert alice.log(ALICE_DOC) == log


@pytest.mark.usefixtures("small_compaction")
def test_compaction_merges_older_own_entries_into_one_signed_entry(make_node: Callable[..., Node]) -> None:
    alice = make_node(ALICE)
    alice.store.apply_remote(bobs_entries(make_node, 9), via=BOB.node_id)
    _edit_many(alice, 10)  # 12 entries: 10 puts and 2 deletes
    records = alice.contacts(ALICE_DOC)
    bobs_log = alice.log(BOB_DOC)

    assert alice.store.compact(ALICE_DOC)
    me = ALICE.node_id
    assert alice.log(ALICE_DOC) == [(me, 1, 9), (me, 10, 10), (me, 11, 11), (me, 12, 12)]
    assert alice.log(BOB_DOC) == bobs_log  # only own entries, and only of that document
    merged = alice.store.entries_missing(ALICE_DOC, {})[0]
    verify_update(
        ALICE.public.sign_key, merged.sig, doc_id=ALICE_DOC, author_id=me, seq_from=1, seq_to=9, update=merged.body
    )
    assert alice.contacts(ALICE_DOC) == records
    assert alice.store.versions(ALICE_DOC) == {me: 12}

    reloaded = reopen(make_node, alice)
    assert reloaded.contacts(ALICE_DOC) == records


@pytest.mark.usefixtures("small_compaction")
def test_compacting_every_document_takes_only_those_with_many_own_entries(make_node: Callable[..., Node]) -> None:
    alice = make_node(ALICE)
    alice.store.apply_remote(bobs_entries(make_node, 9), via=BOB.node_id)  # as many entries, by another author
    _edit_many(alice, 10)
    bobs_log = alice.log(BOB_DOC)
    assert alice.store.compact_all() == 1
    assert alice.log(ALICE_DOC)[0] == (ALICE.node_id, 1, 9)
    assert alice.log(BOB_DOC) == bobs_log
    assert alice.store.compact_all() == 0  # four own entries left: nothing to do


@pytest.mark.usefixtures("small_compaction")
def test_peers_receiving_the_compacted_log_see_the_same_records(make_node: Callable[..., Node]) -> None:
    alice = make_node(ALICE)
    _edit_many(alice, 4)
    behind = make_node(BOB)  # a peer that got the first entries before compaction
    behind.store.apply_remote(alice.store.entries_missing(ALICE_DOC, {})[:3], via=ALICE.node_id)
    _edit_many(alice, 10, round_=1)
    assert alice.store.compact(ALICE_DOC)
    records = alice.contacts(ALICE_DOC)

    fresh = make_node(CAROL)
    fresh.store.apply_remote(alice.store.entries_missing(ALICE_DOC, {}), via=ALICE.node_id)
    assert fresh.contacts(ALICE_DOC) == records
    assert fresh.store.versions(ALICE_DOC) == alice.store.versions(ALICE_DOC)

    missing = alice.store.entries_missing(ALICE_DOC, behind.store.versions(ALICE_DOC))
    assert (missing[0].seq_from, missing[0].seq_to) == (1, alice.log(ALICE_DOC)[0][2])  # reaches back over seq 3
    behind.store.apply_remote(missing, via=ALICE.node_id)
    assert behind.contacts(ALICE_DOC) == records
    assert behind.log(ALICE_DOC) == alice.log(ALICE_DOC)  # the merged entry replaced the singles it covers


@pytest.mark.usefixtures("small_compaction")
def test_compacting_twice_keeps_one_merged_entry(make_node: Callable[..., Node]) -> None:
    alice = make_node(ALICE)
    _edit_many(alice, 10)
    assert alice.store.compact(ALICE_DOC)
    _edit_many(alice, 10, round_=1)
    records = alice.contacts(ALICE_DOC)
    assert alice.store.compact(ALICE_DOC)
    last = alice.store.versions(ALICE_DOC)[ALICE.node_id]
    assert [(f, t) for _, f, t in alice.log(ALICE_DOC)] == [(1, last - 3)] + [(s, s) for s in range(last - 2, last + 1)]
    assert reopen(make_node, alice).contacts(ALICE_DOC) == records


# -- snapshots -----------------------------------------------------------------------------------------------


@pytest.fixture
def small_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node.documents, "SNAPSHOT_EVERY", 5)


def snapshots(db: Database) -> dict[str, str]:
    return {r["doc_id"]: r["versions"] for r in db.query("SELECT doc_id, versions FROM doc_snapshots")}


@pytest.mark.usefixtures("small_snapshots")
def test_a_snapshot_is_written_every_so_many_updates(make_node: Callable[..., Node]) -> None:
    alice = make_node(ALICE)
    for i in range(4):
        alice.put(f"c{i}", name=str(i))
    assert snapshots(alice.db) == {}
    alice.put("c4", name="4")
    assert snapshots(alice.db) == {ALICE_DOC: f'{{"{ALICE.node_id}": 5}}'}
    for i in range(5, 12):
        alice.put(f"c{i}", name=str(i))
    assert snapshots(alice.db) == {ALICE_DOC: f'{{"{ALICE.node_id}": 10}}'}

    alice.store.apply_remote(bobs_entries(make_node, 7), via=BOB.node_id)
    assert snapshots(alice.db)[BOB_DOC] == f'{{"{BOB.node_id}": 7}}'


@pytest.mark.usefixtures("small_snapshots")
def test_loading_from_snapshot_and_log_gives_the_live_state(make_node: Callable[..., Node]) -> None:
    alice = make_node(ALICE)
    _edit_many(alice, 12)  # 14 entries: a snapshot at 10, four after it
    alice.store.apply_remote(bobs_entries(make_node, 6), via=BOB.node_id)
    live = {d: (alice.contacts(d), alice.store.versions(d)) for d in alice.store.doc_ids()}
    # The log entries a snapshot covers are not needed to load: drop them, so only snapshot + rest can answer.
    with alice.db.write() as db:
        db.execute("DELETE FROM doc_log WHERE doc_id = ? AND seq_to <= 10", (ALICE_DOC,))
        db.execute("DELETE FROM doc_log WHERE doc_id = ? AND seq_to <= 5", (BOB_DOC,))

    reloaded = reopen(make_node, alice)
    assert {d: (reloaded.contacts(d), reloaded.store.versions(d)) for d in reloaded.store.doc_ids()} == live
    assert reloaded.put("c9", name="after").seq_to == 15


def test_snapshot_all_saves_every_document_changed_since_its_last_snapshot(make_node: Callable[..., Node]) -> None:
    alice = make_node(ALICE)
    alice.put("c1", name=NAME)
    alice.store.apply_remote(bobs_entries(make_node, 2), via=BOB.node_id)
    alice.store.snapshot_all()
    assert set(snapshots(alice.db)) == {ALICE_DOC, BOB_DOC}
    live = {d: (alice.contacts(d), alice.store.versions(d)) for d in alice.store.doc_ids()}
    with alice.db.write() as db:
        db.execute("DELETE FROM doc_log")  # the snapshots alone must hold everything
    reloaded = reopen(make_node, alice)
    assert {d: (reloaded.contacts(d), reloaded.store.versions(d)) for d in reloaded.store.doc_ids()} == live


# -- the audit log -------------------------------------------------------------------------------------------


def test_every_change_is_audited_without_its_content(make_node: Callable[..., Node]) -> None:
    alice = make_node(ALICE, name="alice")
    alice.put("c1", name=NAME, phone="+66 2 000 0000")
    alice.put("c1", title="Public Prosecutor")
    bob = make_node(BOB, name="bob")
    bob.put("b1", name=f"{NAME}'s colleague")
    alice.store.apply_remote(bob.store.entries_missing(BOB_DOC, {}), via=CAROL.node_id)

    rows = alice.db.query("SELECT * FROM audit_log ORDER BY id")
    assert [(r["actor"], r["action"], r["doc_id"]) for r in rows] == [
        ("officer@ago", "contact.put", ALICE_DOC),
        ("officer@ago", "contact.put", ALICE_DOC),
        (BOB.node_id, "sync.apply", BOB_DOC),
    ]
    assert rows[2]["subject"] == f"seq 1-1 via {CAROL.node_id}"
    text = repr(rows)
    for content in ("Somchai", "+66 2 000 0000", "Prosecutor"):
        assert content not in text


def test_a_failing_listener_does_not_undo_a_change(make_node: Callable[..., Node]) -> None:
    alice = make_node(ALICE)
    calls: list[Sequence[SignedUpdate]] = []

    def broken(entries: Sequence[SignedUpdate], source: str | None) -> None:
        calls.append(entries)
        raise RuntimeError("listener bug")

    alice.store.on_stored(broken)
    entry = alice.put("c1", name=NAME)
    assert calls == [[entry]]
    assert alice.store.versions(ALICE_DOC) == {ALICE.node_id: 1}
    assert alice.notified == [([entry], None)]


@pytest.mark.parametrize("bad", [2**63, -(2**63) - 1, "\ud800", {"nested": ["\udfff"]}])
def test_a_value_no_document_can_hold_is_refused_and_the_change_dropped_whole(tmp_path: Path, bad: object) -> None:
    """Yrs panics on such values (past every error handler); they are refused first, and the edits made
    before them in the same change are dropped with it."""
    db = Database(tmp_path / "node.db", os.urandom(32))
    me = Identity.generate()
    store = DocumentStore(db, me, author_key=lambda n: None, may_write=lambda d, a: True)
    store.load()
    store.commit_local("doc/1", lambda c: c.put_record("items", "a", {"v": "kept"}), actor="t", action="t")

    def edit(change: DocumentChange) -> None:
        change.put_record("items", "b", {"v": "first edit of the change"})
        change.put_record("items", "c", {"v": bad})

    with pytest.raises(UnstorableValue):
        store.commit_local("doc/1", edit, actor="t", action="t")
    doc = store.get("doc/1")
    assert doc is not None and doc.records("items") == {"a": {"v": "kept"}}
    assert store.versions("doc/1") == {me.node_id: 1}
    db.close()


def test_a_document_no_longer_used_is_freed() -> None:
    """pycrdt keeps an observer's callback where Python's collector cannot see it, with a reference back to the
    document: a `CrdtDocument` that observed its pycrdt document for good was never freed, so a running node kept
    every document it ever loaded, rebuilt or tried a peer's update on (20,000 of them after one initial sync)."""
    gone: list[weakref.ref[CrdtDocument]] = []
    for i in range(50):
        doc = CrdtDocument()
        update = doc.change(lambda change, i=i: change.put_record("contacts", f"c{i}", {"name": f"n{i}"}))
        assert update is not None
        other = CrdtDocument()
        other.apply(update)
        assert other.records("contacts") == {f"c{i}": {"name": f"n{i}"}}
        other.view(["contacts"], ["history"]), other.items("history"), other.copy()
        gone += [weakref.ref(doc), weakref.ref(other)]
    del doc, other
    gc.collect()
    assert [ref for ref in gone if ref() is not None] == []


def test_the_lists_read_are_read_again_after_any_change() -> None:
    doc = CrdtDocument()
    doc.change(lambda change: change.append("history", {"n": 1}))
    assert doc.items("history") == [{"n": 1}]
    doc.change(lambda change: change.append("history", {"n": 2}))
    assert doc.items("history") == [{"n": 1}, {"n": 2}]  # a local change
    other = CrdtDocument()
    other.apply(doc.encode_state())
    assert other.items("history") == [{"n": 1}, {"n": 2}]
    more = doc.change(lambda change: change.append("history", {"n": 3}))
    assert more is not None
    other.apply(more)
    assert other.items("history") == [{"n": 1}, {"n": 2}, {"n": 3}]  # a peer's update


def test_the_records_read_follow_every_change_and_are_the_callers_own() -> None:
    """Collections are read once per state of the document (a peer's update is judged, then indexed): the next
    read after any change sees it, and a caller changing what it read changes nothing the document keeps."""
    doc = CrdtDocument()
    doc.change(lambda change: change.put_record("case", "main", {"status": "draft", "offences": ["fraud"]}))
    main = doc.record("case", "main")
    assert main == {"status": "draft", "offences": ["fraud"]}
    main["status"] = "changed by a caller"
    main["offences"].append("changed by a caller")
    doc.records("case")["main"]["offences"].clear()
    assert doc.record("case", "main") == {"status": "draft", "offences": ["fraud"]}
    assert doc.view(("case",), ()).record("case", "main") == {"status": "draft", "offences": ["fraud"]}
    doc.change(lambda change: change.put_record("case", "main", {"status": "sent"}))
    assert doc.record("case", "main") == {"status": "sent", "offences": ["fraud"]}  # a local change
    other = CrdtDocument()
    other.apply(doc.encode_state())
    assert other.records("case") == {"main": {"status": "sent", "offences": ["fraud"]}}
    more = doc.change(lambda change: change.put_record("case", "second", {"status": "draft"}))
    assert more is not None
    other.apply(more)
    assert set(other.records("case")) == {"main", "second"}  # a peer's update
    assert other.record("case", "second") == {"status": "draft"}
    assert other.record("case", "missing") is None


def test_a_change_reads_again_only_the_roots_it_wrote(monkeypatch: pytest.MonkeyPatch) -> None:
    """A note appends to a case's history: its records are not read again through Yrs, but every root a change
    wrote is, whichever way it wrote it, and a change through the raw document (a forging test) forgets them all."""
    doc = CrdtDocument()
    doc.change(lambda change: change.put_record("case", "main", {"status": "draft"}))
    doc.change(lambda change: change.put_record("refs", "TH", {"reference": "A-1"}))
    doc.change(lambda change: change.append("history", {"n": 1}))
    reads: list[str] = []
    real = node.crdt._as_json
    monkeypatch.setattr(node.crdt, "_as_json", lambda shared: reads.append(str(shared)) or real(shared))

    def read_all() -> tuple[object, ...]:
        return doc.records("case"), doc.records("refs"), doc.items("history")

    read_all()
    reads.clear()
    doc.change(lambda change: change.append("history", {"n": 2}))
    assert read_all() == ({"main": {"status": "draft"}}, {"TH": {"reference": "A-1"}}, [{"n": 1}, {"n": 2}])
    assert len(reads) == 1  # the history only
    edits: list[Callable[[DocumentChange], None]] = [
        lambda change: change.put_record("case", "main", {"status": "sent"}),
        lambda change: change.delete_fields("refs", "TH", ["reference"]),
        lambda change: change.delete_record("case", "main"),
    ]
    for edit in edits:
        reads.clear()
        doc.change(edit)
        read_all()
        assert len(reads) == 1
    assert read_all() == ({}, {"TH": {}}, [{"n": 1}, {"n": 2}])
    reads.clear()
    doc.change(lambda change: change._doc.get("history", type=pycrdt.Array).append({"n": 3}))
    assert read_all() == ({}, {"TH": {}}, [{"n": 1}, {"n": 2}, {"n": 3}])
    assert len(reads) == 3


def test_loaded_documents_are_bounded_by_their_size_too(tmp_path: Path) -> None:
    """A case grows for years: besides their number, the documents kept loaded are bounded by what they were
    built from, the least recently used going first; the one in use always stays."""
    db = Database(tmp_path / "bounded.db", os.urandom(32))
    try:
        store = DocumentStore(db, ALICE, author_key=SIGN_KEYS.get, may_write=lambda d, a: True, max_loaded_bytes=3_000)
        store.load()
        for n in range(4):
            for i in range(3):
                store.commit_local(
                    f"directory/doc-{n}",
                    lambda change, i=i: change.put_record("contacts", f"c{i}", {"name": "x" * 300}),
                    actor="tests",
                    action="contact.updated",
                )
        loaded = list(store._docs)
        assert loaded[-1] == "directory/doc-3" and "directory/doc-0" not in loaded
        assert store._loaded_bytes == sum(held.size for held in store._docs.values()) <= 3_000
        assert store.get("directory/doc-0") is not None  # rebuilt from the log on use
        assert list(store._docs)[-1] == "directory/doc-0"
        assert store.get("directory/doc-0").records("contacts")["c2"] == {"name": "x" * 300}  # type: ignore[union-attr]
        huge = store.commit_local(
            "directory/doc-9",
            lambda change: change.put_record("contacts", "big", {"name": "y" * 5_000}),
            actor="t",
            action="contact.updated",
        )
        assert huge is not None and list(store._docs) == ["directory/doc-9"]  # alone above the bound, but in use
    finally:
        db.close()
