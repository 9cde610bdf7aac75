"""Three document stores, each writing its own directory part, converge whatever the interleaving of edits,
partial and full syncs, compactions and restarts.

The oracle is a plain model of each owner's records: one dict per owner, changed as each edit says. At every
step, every store must show each document exactly as its owner's model stood after some number of that owner's
edits (the number its version vector claims): never a mixture, never something the owner did not write. After
a final full sync every store shows every document as its owner's model stands.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import node.documents
from crypto.identity import Identity
from node.crdt import DocumentChange
from node.documents import DocumentStore
from node.policy import directory_doc, may_write
from node.storage import Database

IDENTITIES = [Identity.from_secret_bytes(bytes([seed]) * 64) for seed in (1, 2, 3)]
SIGN_KEYS = {i.node_id: i.public.sign_key for i in IDENTITIES}
DOCS = [directory_doc(i.node_id) for i in IDENTITIES]

nodes = st.integers(0, 2)
others = st.integers(1, 2)  # another node: (node + other) % 3
keys = st.sampled_from(["k1", "k2", "k3"])
names = st.sampled_from(["name", "phone", "n"])
values = st.integers(-3, 3) | st.booleans() | st.none() | st.text("ab", max_size=2)
fields = st.dictionaries(names, values, min_size=1, max_size=3)

Records = dict[str, dict[str, Any]]


def apply_to_model(model: Records, op: tuple[Any, ...]) -> Records:
    after = {k: dict(v) for k, v in model.items()}
    kind, key, arg = op
    if kind == "put":
        after.setdefault(key, {}).update(arg)
    elif kind == "delete_fields":
        if key in after:
            for name in arg:
                after[key].pop(name, None)
    else:
        after.pop(key, None)
    return after


def apply_to_store(change: DocumentChange, op: tuple[Any, ...]) -> None:
    kind, key, arg = op
    if kind == "put":
        change.put_record("contacts", key, arg)
    elif kind == "delete_fields":
        change.delete_fields("contacts", key, arg)
    else:
        change.delete_record("contacts", key)


def _same_json(a: Any, b: Any) -> bool:
    """Equal as stored JSON: False is not 0 (as Python has it), 1 is 1.0 (Yrs keeps numbers as floats)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b) and (isinstance(a, int | float) == isinstance(b, int | float))


class Convergence(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.home = Path(tempfile.mkdtemp(prefix="seajust-convergence-"))
        self.dbs = [Database(self.home / f"{i}.db", os.urandom(32)) for i in range(3)]
        self.stores = [self._open(i) for i in range(3)]
        # history[owner][n]: the owner's records after its n-th stored edit.
        self.history: list[list[Records]] = [[{}] for _ in range(3)]

    def _open(self, i: int) -> DocumentStore:
        store = DocumentStore(self.dbs[i], IDENTITIES[i], author_key=SIGN_KEYS.get, may_write=may_write)
        store.load()
        return store

    def _records(self, holder: int, owner: int) -> Records:
        doc = self.stores[holder].get(DOCS[owner])
        return doc.records("contacts") if doc else {}

    def _edit(self, who: int, op: tuple[Any, ...]) -> None:
        before = self.history[who][-1]
        entry = self.stores[who].commit_local(
            DOCS[who], lambda change: apply_to_store(change, op), actor="officer", action=op[0]
        )
        after = apply_to_model(before, op)
        assert (entry is None) == _same_json(after, before), "a change is stored exactly when it changes something"
        if entry is not None:
            assert entry.seq_to == len(self.history[who])
            self.history[who].append(after)

    @rule(who=nodes, key=keys, values=fields)
    def put(self, who: int, key: str, values: dict[str, Any]) -> None:
        self._edit(who, ("put", key, values))

    @rule(who=nodes, key=keys, names=st.lists(names, min_size=1, max_size=2, unique=True))
    def delete_fields(self, who: int, key: str, names: list[str]) -> None:
        self._edit(who, ("delete_fields", key, names))

    @rule(who=nodes, key=keys)
    def delete_record(self, who: int, key: str) -> None:
        self._edit(who, ("delete_record", key, None))

    @rule(source=nodes, other=others, data=st.data())
    def sync_some(self, source: int, other: int, data: st.DataObject) -> None:
        """Deliver some of what another store lacks, possibly with holes, as a lossy link or a pushed subset would."""
        receiver = (source + other) % 3
        src, dst = self.stores[source], self.stores[receiver]
        for doc_id in src.doc_ids():
            missing = src.entries_missing(doc_id, dst.versions(doc_id))
            kept = data.draw(st.lists(st.booleans(), min_size=len(missing), max_size=len(missing)))
            chosen = [entry for entry, keep in zip(missing, kept, strict=True) if keep]
            if data.draw(st.booleans()):
                chosen.reverse()
            result = dst.apply_remote(chosen, via=IDENTITIES[source].node_id)
            assert len(result.stored) <= len(chosen)

    @rule(source=nodes, other=others)
    def sync(self, source: int, other: int) -> None:
        """Sync step 2 in one direction: the receiver gets everything it lacks."""
        self._sync(source, (source + other) % 3)

    def _sync(self, source: int, target: int) -> None:
        src, dst = self.stores[source], self.stores[target]
        for doc_id in src.doc_ids():
            result = dst.apply_remote(src.entries_missing(doc_id, dst.versions(doc_id)), via=IDENTITIES[source].node_id)
            assert not result.gap
            assert src.entries_missing(doc_id, dst.versions(doc_id)) == []

    @rule(who=nodes)
    def compact(self, who: int) -> None:
        self.stores[who].compact(DOCS[who])

    @rule(who=nodes)
    def restart(self, who: int) -> None:
        """A new store on the same database: what a restarted node loads from snapshot and log."""
        self.stores[who] = self._open(who)

    @invariant()
    def every_replica_shows_a_state_its_owner_had(self) -> None:
        for holder in range(3):
            for owner in range(3):
                versions = self.stores[holder].versions(DOCS[owner])
                assert set(versions) <= {IDENTITIES[owner].node_id}, "only the owner writes its part"
                seen = versions.get(IDENTITIES[owner].node_id, 0)
                assert self._records(holder, owner) == self.history[owner][seen]

    def teardown(self) -> None:
        try:
            for _ in range(2):
                for source in range(3):
                    for target in range(3):
                        if source != target:
                            self._sync(source, target)
            for holder in range(3):
                for owner in range(3):
                    assert self._records(holder, owner) == self.history[owner][-1]
                    assert self.stores[holder].versions(DOCS[owner]) == self.stores[owner].versions(DOCS[owner])
        finally:
            for db in self.dbs:
                db.close()
            shutil.rmtree(self.home, ignore_errors=True)


def test_three_stores_converge(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small thresholds, so compaction and snapshots happen within a few steps.
    monkeypatch.setattr(node.documents, "SNAPSHOT_EVERY", 3)
    monkeypatch.setattr(node.documents, "COMPACT_OWN_ABOVE", 4)
    monkeypatch.setattr(node.documents, "COMPACT_KEEP_RECENT", 2)
    run_state_machine_as_test(Convergence, settings=settings(max_examples=50, stateful_step_count=30, deadline=None))
