"""A batch of key grants (a catch-up sends a thousand) is kept in one transaction, and what that transaction
held in memory is let go again if it does not commit."""

from __future__ import annotations

import asyncio

import pytest

from node.errors import StorageError
from node.runtime import Node


def _grants(th: Node, vn: Node, count: int) -> tuple[list[str], list[bytes]]:
    doc_ids, grants = [], []
    for n in range(count):
        created = th.cases.create(
            {"kind": "mla", "counterpart": vn.node_id, "reference": f"TH-{n}", "summary": "s", "languages": ["en"]},
            actor="tests",
        )
        doc_id = f"case/{created['id']}"
        grant = th.case_keys.grant_bytes(doc_id)
        assert grant is not None
        doc_ids.append(doc_id)
        grants.append(grant)
    return doc_ids, grants


def _stored(node: Node, doc_ids: list[str]) -> int:
    marks = ", ".join("?" * len(doc_ids))
    return int(node.db.rows(f"SELECT count(*) FROM case_keys WHERE doc_id IN ({marks})", tuple(doc_ids))[0][0])


def test_a_batch_of_grants_is_one_commit(pair: tuple[Node, Node, Node]) -> None:
    th, vn, _ = pair
    doc_ids, grants = _grants(th, vn, 12)
    statements: list[str] = []
    vn.db._conn.set_trace_callback(statements.append)
    try:
        vn.case_keys.accept_grants(grants, via=th.node_id)
    finally:
        vn.db._conn.set_trace_callback(None)
    assert statements.count("COMMIT") == 1
    assert all(vn.case_keys.has(d) for d in doc_ids) and _stored(vn, doc_ids) == 12


def test_a_batch_that_fails_midway_holds_none_of_it(
    pair: tuple[Node, Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    th, vn, _ = pair
    doc_ids, grants = _grants(th, vn, 3)
    accept = vn.case_keys._accept

    def failing(data: bytes, via: str) -> None:
        if data == grants[2]:
            raise RuntimeError("the disk went away")
        accept(data, via)

    monkeypatch.setattr(vn.case_keys, "_accept", failing)
    with pytest.raises(RuntimeError):
        vn.case_keys.accept_grants(grants, via=th.node_id)
    assert not any(vn.case_keys.has(d) for d in doc_ids) and _stored(vn, doc_ids) == 0


async def test_grants_of_a_group_that_does_not_commit_are_let_go(pair: tuple[Node, Node, Node]) -> None:
    th, vn, _ = pair
    doc_ids, grants = _grants(th, vn, 3)
    with vn.db.write() as w:  # a deferred foreign key fails at COMMIT: a real failed group commit
        w.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        w.execute("CREATE TABLE item (parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
    vn.db.group_commits(asyncio.get_running_loop())
    try:
        mark = vn.db.commit_mark()
        vn.case_keys.accept_grants(grants, via=th.node_id)
        assert all(vn.case_keys.has(d) for d in doc_ids)  # held at once: updates of the same turn need them
        with vn.db.write(grouped=True) as w:
            w.execute("INSERT INTO item (parent) VALUES (7)")
        with pytest.raises(StorageError):
            await vn.db.durable(mark)
    finally:
        vn.db.stop_grouping()
    assert not any(vn.case_keys.has(d) for d in doc_ids) and _stored(vn, doc_ids) == 0
