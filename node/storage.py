"""The node's SQLCipher database: one connection, one writer, WAL, migrations on open.

The database key is 32 random bytes kept in the passphrase-encrypted key file (see
`crypto.keystore`), so a copied node home without the passphrase is unreadable, and changing
the passphrase does not re-encrypt the database. Writes go through `write()`, which holds
`BEGIN IMMEDIATE` for the whole unit of work so a half-applied change is never visible and
an acknowledged change is on disk (synchronous=FULL) before the caller returns.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlcipher3
import sqlite_utils

from node.errors import SchemaTooNew, StorageError
from node.migrations import LATEST_VERSION, MIGRATIONS

DB_NAME = "node.db"

DatabaseErrors: tuple[type[Exception], ...] = (sqlcipher3.DatabaseError, sqlite3.DatabaseError)
# What a failed write can raise: the driver's errors, and ours for "not writable".
WriteErrors: tuple[type[Exception], ...] = (*DatabaseErrors, StorageError)


def _connect(path: Path, key: bytes) -> Any:
    if len(key) != 32:
        raise StorageError("database key has the wrong length")
    conn = sqlcipher3.connect(str(path), isolation_level=None, check_same_thread=False)
    # A raw key skips SQLCipher's own KDF: ours is already 256 random bits.
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except DatabaseErrors as exc:
        conn.close()
        raise StorageError(
            "the database cannot be opened with this node's key (wrong key or not a node database)"
        ) from exc
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def backup_database(source: Path, key: bytes, target: Path) -> int:
    """Copy a database that another process may be writing, as it was at one instant; its schema version.

    SQLite's online backup runs on a connection of its own, so it sees one consistent snapshot
    (WAL readers do not block the node's writer, nor it them) including what is still only in
    the WAL, which a copy of the file would miss. The copy is keyed with the same key, so it is
    as unreadable as the original without the passphrase. No migration runs here: the running
    node owns the schema.
    """
    if target.exists():
        raise StorageError(f"{target} already exists")
    src = _connect(source, key)
    try:
        dst = sqlcipher3.connect(str(target), isolation_level=None, check_same_thread=False)
        try:
            dst.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
            src.backup(dst)  # all pages in one step: one read transaction, one snapshot
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StorageError(f"the database copy does not check out: {check}")
            return int(dst.execute("PRAGMA user_version").fetchone()[0])
        finally:
            dst.close()
    except DatabaseErrors as exc:
        raise StorageError(f"the database could not be copied: {exc}") from exc
    finally:
        src.close()


class Database:
    """The one connection a process holds; `write()` serialises writers within the process."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._conn = _connect(path, key)
        self.db = sqlite_utils.Database(self._conn)
        self._lock = threading.RLock()
        self._depth = 0
        self._migrate()

    def _migrate(self) -> None:
        version = self.schema_version()
        if version > LATEST_VERSION:
            raise SchemaTooNew(
                f"database schema {version} is newer than this version of SEAJust Node knows ({LATEST_VERSION})"
            )
        for number in range(version, LATEST_VERSION):
            with self.write() as db:
                MIGRATIONS[number](db)
                db.execute(f"PRAGMA user_version = {number + 1}")

    def schema_version(self) -> int:
        row = self._conn.execute("PRAGMA user_version").fetchone()
        return int(row[0])

    @contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """A unit of work under `BEGIN IMMEDIATE`; nested calls join the outer transaction."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.db
                finally:
                    self._depth -= 1
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except DatabaseErrors as exc:
                raise StorageError(f"the database is not writable: {exc}") from exc
            self._depth = 1
            try:
                yield self.db
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.db.query(sql, params))

    def data_version(self) -> int:
        """Changes when another process (the CLI) commits to the database."""
        with self._lock:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def dump_sql(self) -> Iterator[str]:
        """The whole database as SQL text (SQLCipher's connection has no `iterdump`).

        Full-text indexes (virtual tables and their shadow tables) are left out: they are derived
        from the case documents, and their tokenizer options are not readable by every SQLite.
        """
        with self._lock:
            lines = ["BEGIN TRANSACTION;"]
            derived = {
                row[0]
                for row in self._conn.execute("SELECT name FROM pragma_table_list WHERE type IN ('virtual', 'shadow')")
            }
            schema = self._conn.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE sql NOT NULL AND name NOT LIKE 'sqlite_%' "
                "ORDER BY type = 'table' DESC, name"
            ).fetchall()
            for kind, name, sql in schema:
                if name in derived:
                    continue
                lines.append(f"{sql};")
                if kind != "table":
                    continue
                quoted = name.replace('"', '""')
                columns = [row[1] for row in self._conn.execute(f'PRAGMA table_info("{quoted}")')]
                values = " || ',' || ".join(f'quote("{c.replace(chr(34), chr(34) * 2)}")' for c in columns)
                query = f"SELECT 'INSERT INTO \"{quoted}\" VALUES(' || {values} || ');' FROM \"{quoted}\""
                lines.extend(row[0] for row in self._conn.execute(query))
            lines.append("COMMIT;")
        yield from lines

    def close(self) -> None:
        with self._lock:
            self._conn.close()
