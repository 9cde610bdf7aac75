"""Upgrades: a database written at any earlier schema opens with this code, keeps its rows, and gains the rest.

For every released schema N, a database is built at N exactly as that release would have (the first N
migrations), every table is given a row, and the current code then opens it: it must reach the latest
schema without losing a row. A whole node home at the first schema must open too. A newer schema than the
code knows is refused (`tests/test_storage.py::test_newer_schema_is_refused`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from nodeproc import PASSPHRASE, init_node

from crypto.keystore import load_keyfile
from node.migrations import LATEST_VERSION, MIGRATIONS
from node.runtime import open_node
from node.storage import Database, _connect

_DUMMY = {"INTEGER": 1, "TEXT": "x", "BLOB": b"x", "FLOAT": 1.0, "REAL": 1.0, "": "x"}


def _at_version(path: Path, key: bytes, version: int) -> sqlite_utils.Database:
    conn = _connect(path, key)
    db = sqlite_utils.Database(conn)
    for number in range(version):
        with conn:
            MIGRATIONS[number](db)
            conn.execute(f"PRAGMA user_version = {number + 1}")
    return db


def _plain_tables(db: sqlite_utils.Database) -> list[str]:
    virtual = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL TABLE%'")}
    return [t for t in db.table_names() if t not in virtual and not any(t.startswith(v + "_") for v in virtual)]


def _fill(db: sqlite_utils.Database) -> dict[str, int]:
    counts = {}
    for name in _plain_tables(db):
        row: dict[str, Any] = {c.name: _DUMMY.get(c.type.upper(), "x") for c in db[name].columns}  # type: ignore[union-attr]
        db[name].insert(row)  # type: ignore[union-attr]
        counts[name] = db[name].count  # type: ignore[union-attr]
    return counts


@pytest.mark.parametrize("version", range(1, LATEST_VERSION))
def test_every_earlier_schema_upgrades_without_losing_a_row(tmp_path: Path, version: int) -> None:
    key = os.urandom(32)
    path = tmp_path / "node.db"
    old = _at_version(path, key, version)
    counts = _fill(old)
    old.conn.close()
    upgraded = Database(path, key)
    try:
        assert upgraded.schema_version() == LATEST_VERSION
        for table, count in counts.items():
            assert upgraded.query(f'SELECT count(*) AS n FROM "{table}"')[0]["n"] == count, table
        fresh = _at_version(tmp_path / "fresh.db", os.urandom(32), LATEST_VERSION)
        assert set(upgraded.db.table_names()) == set(fresh.table_names())
        for table in fresh.table_names():
            assert {c.name for c in upgraded.db[table].columns} == {c.name for c in fresh[table].columns}, table  # type: ignore[union-attr]
        fresh.conn.close()
    finally:
        upgraded.close()


def test_a_node_home_at_the_first_schema_opens_and_works(tmp_path: Path) -> None:
    proc = init_node(tmp_path, "Thailand", "TH")
    key = load_keyfile(proc.home / "keys.json", PASSPHRASE).db_key
    for suffix in ("", "-wal", "-shm"):
        (proc.home / f"node.db{suffix}").unlink(missing_ok=True)
    _at_version(proc.home / "node.db", key, 1).conn.close()
    node = open_node(proc.home, PASSPHRASE)
    try:
        assert node.db.schema_version() == LATEST_VERSION
        assert node.directory.create({"name": "Somchai"}, actor="tests")["name"] == "Somchai"
        assert node.membership.describe()["network"] is None
    finally:
        node.close()
