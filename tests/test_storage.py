"""The SQLCipher database: encrypted at rest, migrated in order, append-only audit log."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from node.errors import SchemaTooNew, StorageError
from node.migrations import LATEST_VERSION
from node.storage import Database, DatabaseErrors


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


def test_new_database_is_migrated_and_encrypted(tmp_path: Path, key: bytes) -> None:
    db = Database(tmp_path / "node.db", key)
    assert db.schema_version() == LATEST_VERSION
    assert {"peers", "doc_log", "doc_snapshots", "peer_cursors", "api_tokens", "audit_log"} <= set(db.db.table_names())
    assert db.query("PRAGMA journal_mode")[0]["journal_mode"] == "wal"
    with db.write() as w:
        w.table("audit_log").insert({"at": "t", "actor": "a", "action": "unique-marker-8d1f", "subject": "s"})
    db.close()
    for path in tmp_path.iterdir():
        assert b"unique-marker-8d1f" not in path.read_bytes(), path.name


def test_wrong_key_is_refused(tmp_path: Path, key: bytes) -> None:
    Database(tmp_path / "node.db", key).close()
    with pytest.raises(StorageError, match="cannot be opened"):
        Database(tmp_path / "node.db", os.urandom(32))


def test_newer_schema_is_refused(tmp_path: Path, key: bytes) -> None:
    db = Database(tmp_path / "node.db", key)
    with db.write() as w:
        w.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    db.close()
    with pytest.raises(SchemaTooNew, match="newer"):
        Database(tmp_path / "node.db", key)


def test_audit_log_is_append_only(tmp_path: Path, key: bytes) -> None:
    db = Database(tmp_path / "node.db", key)
    with db.write() as w:
        w.table("audit_log").insert({"at": "t", "actor": "a", "action": "x"})
    for statement in ("DELETE FROM audit_log", "UPDATE audit_log SET actor = 'b'"):
        with pytest.raises(DatabaseErrors, match="append-only"), db.write() as w:
            w.execute(statement)
    assert db.query("SELECT actor FROM audit_log") == [{"actor": "a"}]


def test_failed_unit_of_work_leaves_nothing(tmp_path: Path, key: bytes) -> None:
    db = Database(tmp_path / "node.db", key)
    with pytest.raises(RuntimeError), db.write() as w:
        w.table("api_tokens").insert({"token_hash": "h", "label": "", "created_at": "t"})
        raise RuntimeError("boom")
    assert db.query("SELECT count(*) AS n FROM api_tokens")[0]["n"] == 0


def test_dump_is_valid_sql_that_recreates_the_data(tmp_path: Path, key: bytes) -> None:
    import sqlite3

    db = Database(tmp_path / "node.db", key)
    with db.write() as w:
        w.table("doc_log").insert(
            {
                "doc_id": "d",
                "author": "a'b",
                "seq_from": 1,
                "seq_to": 1,
                "body": b"\x00\xff",
                "sig": b"s",
                "stored_at": "t",
            }
        )
    text = "\n".join(db.dump_sql())
    copy = sqlite3.connect(":memory:")
    copy.executescript(text)
    assert copy.execute("SELECT author, body FROM doc_log").fetchall() == [("a'b", b"\x00\xff")]
