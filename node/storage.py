"""The node's SQLCipher database: one connection, one writer, WAL, migrations on open.

The database key is 32 random bytes kept in the passphrase-encrypted key file (see
`crypto.keystore`), so a copied node home without the passphrase is unreadable, and changing
the passphrase does not re-encrypt the database. Writes go through `write()`, which holds
`BEGIN IMMEDIATE` for the whole unit of work so a half-applied change is never visible and
an acknowledged change is on disk (synchronous=FULL) before the caller returns.

In a running node, the document store's units of work are *grouped*: those made in one turn of
the event loop share one transaction (each in a SAVEPOINT, so a failing unit undoes only itself)
and one commit at the start of the next turn. Nothing they wrote leaves the node before that
commit: what must wait for it (pushing to peers, answering the API, acknowledging a peer) runs
in `after_commit` or awaits `durable()`; if the commit fails, `on_abort` callbacks drop what the
units had changed in memory. Every other write commits on its own, after any open group. Work that lets
the loop run in its middle and should still commit once (a catch-up's bundle) holds the group open
across turns with `hold()`.

When the disk refuses a write (full, read-only, failing), `write()` raises `StorageFull` or
`StorageReadOnly`, which say what the operator must do; nothing of the unit of work is kept,
reads go on, and the refusal is logged once and counted (`health()`). No restart is needed once
the disk is fixed: the next write, or a probe from `health()`, finds the database writable again,
reopening the connection first in case SQLite could only open it read-only.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import sqlcipher3
import sqlite_utils
from sqlite_utils.utils import dedupe_keys

from node.errors import SchemaTooNew, StorageError, StorageFull, StorageReadOnly
from node.migrations import LATEST_VERSION, MIGRATIONS

log = logging.getLogger(__name__)

DB_NAME = "node.db"

DatabaseErrors: tuple[type[Exception], ...] = (sqlcipher3.DatabaseError, sqlite3.DatabaseError)
# What a failed write can raise: the driver's errors, and ours for "not writable".
WriteErrors: tuple[type[Exception], ...] = (*DatabaseErrors, StorageError)

# SQLite's primary result codes that mean the disk, not the request, refused a write.
SQLITE_READONLY: Final = 8
SQLITE_IOERR: Final = 10
SQLITE_FULL: Final = 13
SQLITE_CANTOPEN: Final = 14
SQLITE_IOERR_NOMEM: Final = 3082  # out of memory, not a disk fault
FAILED_GROUPS_KEPT: Final = 64  # failed groups remembered for `durable` (a wait spans a few loop turns at most)
RETRY_EVERY: Final = 1.0  # seconds between attempts to write again after the disk refused

FULL_MESSAGE: Final = (
    "the disk holding the node's database is full, so nothing was changed; free space on it and the node "
    "takes changes again by itself (no restart needed)"
)
READ_ONLY_MESSAGE: Final = (
    "the node's database cannot be written ({why}), so nothing was changed; reads still work. Make the "
    "node's home writable again and the node takes changes again by itself (no restart needed)"
)


def storage_fault(exc: BaseException) -> StorageFull | StorageReadOnly | None:
    """The operator's error for a driver error that means the disk refuses writes; None for any other."""
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(code, int) or code == SQLITE_IOERR_NOMEM:
        return None
    primary = code & 0xFF
    if primary == SQLITE_FULL:
        return StorageFull(FULL_MESSAGE)
    if primary in (SQLITE_READONLY, SQLITE_CANTOPEN):
        return StorageReadOnly(READ_ONLY_MESSAGE.format(why="the disk or the database file is read-only"))
    if primary == SQLITE_IOERR:
        return StorageReadOnly(READ_ONLY_MESSAGE.format(why="the disk reported an I/O error; see the system log"))
    return None


def fault_behind(exc: BaseException) -> StorageFull | StorageReadOnly | None:
    """The disk fault behind `exc`, which may wrap it (the document store's errors do), or None.

    A file the node writes beside its database (an attachment) fails with the OS's own error.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, StorageFull | StorageReadOnly):
            return current
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return StorageFull(FULL_MESSAGE)
        if isinstance(current, OSError) and current.errno == errno.EROFS:
            return StorageReadOnly(READ_ONLY_MESSAGE.format(why="the disk is read-only"))
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@dataclass(frozen=True)
class StorageHealth:
    """Whether the database takes writes, for /healthz, /metrics and `seajust status`."""

    state: str  # "ok", "full" or "read_only"
    detail: str | None  # what the operator must do, while not ok
    since: str | None  # when writes were first refused (UTC, ISO 8601), while not ok
    refused: Mapping[str, int]  # writes refused since the database was opened, by state


def _state_of(fault: StorageError | None) -> str:
    if fault is None:
        return "ok"
    return "full" if isinstance(fault, StorageFull) else "read_only"


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _key_database(conn: Any, key: bytes) -> None:
    # A raw key skips SQLCipher's own KDF: ours is already 256 random bits.
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except DatabaseErrors as exc:
        conn.close()
        fault = storage_fault(exc)
        if fault is not None:
            raise fault from exc
        raise StorageError(
            "the database cannot be opened with this node's key (wrong key or not a node database)"
        ) from exc


def _connect(path: Path, key: bytes) -> Any:
    if len(key) != 32:
        raise StorageError("database key has the wrong length")
    conn = sqlcipher3.connect(str(path), isolation_level=None, check_same_thread=False)
    _key_database(conn, key)
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


def _connect_read_only(path: Path, key: bytes) -> Any:
    """A connection to a database whose folder cannot be written, so SQLite cannot create its WAL index.

    Opened as immutable, which is true while the folder stays read-only; only when no WAL file is
    left over, since committed changes in one would be missed.
    """
    if _file_size(path.with_name(path.name + "-wal")):
        raise StorageReadOnly(
            READ_ONLY_MESSAGE.format(why="its folder is read-only and it has changes not yet merged from its WAL file")
        )
    uri = f"file:{quote(str(path.resolve()))}?mode=ro&immutable=1"
    conn = sqlcipher3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    _key_database(conn, key)
    return conn


Callbacks = list[Callable[[], object]]


class _Group:
    """The transaction shared by the grouped units of work of one turn of the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, number: int) -> None:
        self.number = number
        self.done: asyncio.Future[None] = loop.create_future()
        self.error: StorageError | None = None


class Database:
    """The one connection a process holds; `write()` serialises writers within the process."""

    def __init__(self, path: Path, key: bytes, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._key = key
        self._clock = clock
        self._lock = threading.RLock()
        self._depth = 0
        self._fault: StorageFull | StorageReadOnly | None = None
        self._since: str | None = None
        self._retry_at = 0.0
        self.refused: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None  # set while units of work are grouped
        self._loop_thread: int | None = None
        self._group: _Group | None = None
        self._groups = 0  # groups opened so far
        self._holds = 0  # `hold()` blocks entered and not yet left
        self._commit_after_hold = False  # the open group's end of turn came while held
        self._failed: dict[int, StorageError] = {}  # the latest groups that did not commit, by number
        self._functions: dict[str, tuple[int, Callable[..., Any]]] = {}
        self._after: list[Callable[[], object]] = []  # run once the open transaction commits
        self._undo: list[Callable[[], object]] = []  # run if it does not
        self._unit_undo: list[Callable[[], object]] = []  # run if the open unit of work rolls back
        # Run inside the open transaction just before it commits, outside every unit of work (see `before_commit`).
        self._before: dict[str, Callable[[sqlite_utils.Database], object]] = {}
        try:
            self._conn = _connect(path, key)
        except StorageReadOnly as exc:
            self._conn = _connect_read_only(path, key)
            self._refuse(exc)
        self.db = sqlite_utils.Database(self._conn)
        self._migrate()

    def _migrate(self) -> None:
        version = self.schema_version()
        if version > LATEST_VERSION:
            raise SchemaTooNew(
                f"database schema {version} is newer than this version of SEAJust Node knows ({LATEST_VERSION})"
            )
        upgrade = 0 < version < LATEST_VERSION  # may take a while (a large node's search index is rewritten)
        if upgrade:
            log.info("upgrading the database from schema %d to %d", version, LATEST_VERSION)
        started = time.monotonic()
        for number in range(version, LATEST_VERSION):
            with self.write() as db:
                MIGRATIONS[number](db)
                db.execute(f"PRAGMA user_version = {number + 1}")
        if upgrade:
            log.info("database upgraded to schema %d in %.1f s", LATEST_VERSION, time.monotonic() - started)

    def schema_version(self) -> int:
        with self._lock:
            row = self._conn.execute("PRAGMA user_version").fetchone()
            return int(row[0])

    @contextmanager
    def write(self, *, grouped: bool = False) -> Iterator[sqlite_utils.Database]:
        """A unit of work under `BEGIN IMMEDIATE`; nested calls join the outer transaction.

        `grouped`: the unit may share the transaction of this turn of the event loop (see the module
        docstring); outside a running node it commits on its own like any other. A disk fault, from the
        unit of work or its commit, is raised as `StorageFull` or `StorageReadOnly`; any other error of
        the unit of work as it was.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.db
                finally:
                    self._depth -= 1
                return
            if grouped and self._groupable():
                yield from self._grouped_unit()
                return
            # A unit on its own commits after what was grouped before it, which it may rely on (mail is
            # acknowledged to the relay once the updates it carried are stored): if that failed, so does the unit.
            failed = self._commit_group()
            if failed is not None:
                raise failed
            self._begin()
            self._depth = 1
            changes = self._conn.total_changes
            try:
                yield self.db
                self._run_before_commit()
                self._conn.execute("COMMIT")
            except BaseException as exc:
                self._rollback()
                self._run(self._unit_undo, clear=[])
                self._before.clear()
                self._run(self._undo, clear=self._after)
                fault = self._fault_of(exc)
                if fault is None:
                    raise
                raise fault from exc
            else:
                if self._fault is not None and self._conn.total_changes != changes:
                    self._recovered()  # rows were committed: the disk takes writes again
                self._run(self._after, clear=self._undo)
            finally:
                self._unit_undo.clear()
                self._depth = 0

    def _begin(self) -> None:
        if self._fault is not None:
            self._reopen()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except DatabaseErrors as exc:
            fault = storage_fault(exc)
            if fault is None:
                raise StorageError(f"the database is not writable: {exc}") from exc
            self._refuse(fault)
            raise fault from exc

    def _fault_of(self, exc: BaseException) -> StorageFull | StorageReadOnly | None:
        """The disk fault behind a failed unit of work (recorded), or None for the unit's own error."""
        fault = storage_fault(exc)
        if fault is not None:
            self._refuse(fault)
        return fault

    def _grouped_unit(self) -> Iterator[sqlite_utils.Database]:
        assert self._loop is not None
        if self._group is None:
            self._begin()
            self._groups += 1
            self._group = _Group(self._loop, self._groups)
            self._loop.call_soon(self._end_of_turn)
        self._conn.execute("SAVEPOINT unit")
        self._depth = 1
        self._unit_undo.clear()
        try:
            yield self.db
            self._conn.execute("RELEASE unit")
        except BaseException as exc:
            fault = self._fault_of(exc)
            self._run(self._unit_undo, clear=[])
            try:
                if not self._conn.in_transaction:
                    raise StorageError("the transaction was rolled back")
                self._conn.execute("ROLLBACK TO unit")
                self._conn.execute("RELEASE unit")
            except WriteErrors as lost:  # the whole group's transaction is gone with this unit
                self._abort_group(fault or storage_fault(lost) or StorageError("the changes could not be stored"))
            if fault is None:
                raise
            raise fault from exc
        finally:
            self._unit_undo.clear()
            self._depth = 0

    def _end_of_turn(self) -> None:
        if self._holds:
            self._commit_after_hold = True
        else:
            self._commit_group()

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the open group, or the next one, from committing at the end of a turn of the event loop; it
        commits at the end of the turn in which the hold is left instead.

        For work that lets the loop run in the middle, so the node answers its API meanwhile, yet should commit
        once: a bundle of a catch-up, whose hundred cases would otherwise take a commit each time the loop ran.
        A unit of work that commits on its own, and `stop_grouping`, still commit the group at once."""
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            if not self._holds and self._commit_after_hold:
                self._commit_after_hold = False
                if self._group is not None and self._loop is not None:
                    self._loop.call_soon(self._end_of_turn)

    def _commit_group(self) -> StorageError | None:
        """Commit the open group, if any; why it failed, or None."""
        with self._lock:
            group = self._group
            if group is None or self._depth:
                return None
            self._group = None
            try:
                self._run_before_commit()
                self._conn.execute("COMMIT")
            except BaseException as exc:
                self._rollback()
                self._before.clear()
                group.error = self._fault_of(exc) or StorageError("the changes could not be stored")
                self._settle(group, self._undo, clear=self._after)
                if not isinstance(exc, Exception):
                    raise
                return group.error
            if self._fault is not None:
                self._recovered()
            self._settle(group, self._after, clear=self._undo)
            return None

    def _abort_group(self, failure: StorageError) -> None:
        group, self._group = self._group, None
        if group is None:
            return
        self._rollback()
        self._before.clear()
        group.error = failure
        self._settle(group, self._undo, clear=self._after)

    def _settle(
        self, group: _Group, callbacks: list[Callable[[], object]], *, clear: list[Callable[[], object]]
    ) -> None:
        """Run what waited on a group's outcome and wake its waiters, on the event loop's thread."""
        if group.error is not None:
            self._failed[group.number] = group.error
            for number in sorted(self._failed)[:-FAILED_GROUPS_KEPT]:
                del self._failed[number]
        if threading.get_ident() == self._loop_thread or self._loop is None:
            self._run(callbacks, clear=clear)
            if not group.done.done():
                group.done.set_result(None)
            return
        todo = list(callbacks)
        callbacks.clear()
        clear.clear()
        loop = self._loop

        def settle() -> None:
            self._run(todo, clear=[])
            if not group.done.done():
                group.done.set_result(None)

        loop.call_soon_threadsafe(settle)

    @staticmethod
    def _run(callbacks: Callbacks, *, clear: Callbacks) -> None:
        todo = list(callbacks)
        callbacks.clear()
        clear.clear()
        for callback in todo:
            try:
                callback()
            except Exception:  # one listener's bug must not stop the others, nor undo a commit
                log.exception("a callback after a transaction failed")

    def _groupable(self) -> bool:
        return self._loop is not None and threading.get_ident() == self._loop_thread and self._fault is None

    def group_commits(self, loop: asyncio.AbstractEventLoop) -> None:
        """Group the units of work that ask for it (see the module docstring); called on the loop's thread."""
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def stop_grouping(self) -> None:
        """Commit what is grouped, and let every unit of work commit on its own from now on."""
        with self._lock:
            self._commit_group()
            self._loop = None
            self._loop_thread = None

    def after_commit(self, callback: Callable[[], object]) -> None:
        """Run `callback` once what was written so far is durable (at once if nothing waits to commit)."""
        with self._lock:
            if self._group is None and not self._depth:
                callback()
            else:
                self._after.append(callback)

    def before_commit(self, key: str, callback: Callable[[sqlite_utils.Database], object]) -> None:
        """Run `callback` once (per `key`) inside the open transaction, just before it commits, outside every
        unit of work; raising there fails the commit. Why: an FTS5 table writes what it holds in memory as a new
        index segment at every SAVEPOINT, and every grouped unit of work is one. Search text written here makes
        one segment per commit, instead of one per unit and the merging of thousands of one-row segments. What a
        unit queues for here it must take back with `on_unit_abort`."""
        with self._lock:
            if self._group is None and not self._depth:
                raise RuntimeError("before_commit needs an open transaction")
            self._before.setdefault(key, callback)

    def flush_before_commit(self) -> None:
        """Run the `before_commit` callbacks now, between units of a group (a read that must see what they
        write); the transaction stays open and may still roll back with them."""
        with self._lock:
            if self._before and not self._depth:
                self._run_before_commit()

    def _run_before_commit(self) -> None:
        while self._before:
            key = next(iter(self._before))
            self._before.pop(key)(self.db)

    def on_unit_abort(self, callback: Callable[[], object]) -> None:
        """Run `callback` if the unit of work in progress rolls back, alone or with its transaction."""
        with self._lock:
            if self._depth:
                self._unit_undo.append(callback)

    def on_abort(self, callback: Callable[[], object]) -> None:
        """Run `callback` if the open transaction does not commit (to drop what it changed in memory)."""
        with self._lock:
            if self._group is not None or self._depth:
                self._undo.append(callback)

    def commit_mark(self) -> int:
        """A mark for `durable`: what is written from now on (and by the open group) is after it."""
        return self._group.number - 1 if self._group is not None else self._groups

    async def durable(self, since: int) -> None:
        """Wait until what was written since `commit_mark()` returned `since` is committed; StorageError if a
        group of that time did not commit (what was written then is gone, and nothing may say otherwise)."""
        group = self._group
        if group is not None and group.number > since:
            await asyncio.shield(group.done)
        failed = [error for number, error in self._failed.items() if number > since]
        if failed:
            raise failed[-1]

    def health(self, *, probe: bool = False) -> StorageHealth:
        """Whether the database takes writes. A probe rewrites the schema version as it is (one page): done
        when asked, and while writes are refused (at most every `RETRY_EVERY` seconds), so recovery shows
        even when nothing else writes."""
        with self._lock:
            now = self._clock()
            if (probe or (self._fault is not None and now >= self._retry_at)) and not self._depth:
                self._retry_at = now  # due now, reopening first if writes were refused as read-only
                with suppress(StorageError):
                    with self.write() as db:
                        db.execute(f"PRAGMA user_version = {self.schema_version()}")
                    self._recovered()
                self._retry_at = max(self._retry_at, now + RETRY_EVERY)
            fault = self._fault
            return StorageHealth(_state_of(fault), fault.message if fault else None, self._since, dict(self.refused))

    def _rollback(self) -> None:
        # After a disk fault SQLite may have rolled the transaction back already.
        if self._conn.in_transaction:
            with suppress(*DatabaseErrors):
                self._conn.execute("ROLLBACK")

    def _refuse(self, fault: StorageFull | StorageReadOnly) -> None:
        state = _state_of(fault)
        self.refused[state] += 1
        if _state_of(self._fault) != state:  # logged once per fault, not per refused write
            log.warning("the database refuses writes: %s", fault.message)
            self._retry_at = self._clock() + RETRY_EVERY
            self._since = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        self._fault = fault

    def _recovered(self) -> None:
        if self._fault is None:
            return
        log.warning("the database takes writes again (%s since %s)", _state_of(self._fault), self._since)
        self._fault = None
        self._since = None

    def _reopen(self) -> None:
        """After the disk refused writes as read-only, open the database anew (at most every `RETRY_EVERY`
        seconds): a connection SQLite opened read-only stays so even once the disk is writable again."""
        if not isinstance(self._fault, StorageReadOnly) or self._clock() < self._retry_at:
            return
        self._retry_at = self._clock() + RETRY_EVERY
        try:
            conn = _connect(self.path, self._key)
        except StorageError:
            return
        self._conn.close()
        self._conn = conn
        self.db = sqlite_utils.Database(conn)
        for name, (arity, function) in self._functions.items():
            conn.create_function(name, arity, function, deterministic=True)

    def create_function(self, name: str, arity: int, function: Callable[..., Any]) -> None:
        """A deterministic SQL function of this node's (kept across a reopened connection)."""
        with self._lock:
            self._functions[name] = (arity, function)
            self._conn.create_function(name, arity, function, deterministic=True)

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows as plain tuples: for reading a whole table on open (100,000 cases), where a dict per row
        through sqlite_utils costs more than the query."""
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Rows as dicts. On the connection itself: sqlite_utils' `query` wraps every read in a savepoint
        (to tell a statement that returns no rows), which outside a transaction begins and ends one, and cost a
        busy node more than the reads (its API token check alone was a tenth of its time)."""
        with self._lock:
            cursor = self._conn.execute(sql, params)
            if cursor.description is None:
                raise ValueError("query() is for statements that return rows")
            keys = dedupe_keys(d[0] for d in cursor.description)  # a second "id" is "id_2", as before
            return [dict(zip(keys, row, strict=True)) for row in cursor]

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
            self._commit_group()
            self._conn.close()
