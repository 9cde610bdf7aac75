"""A relay's mailboxes: one plain SQLite file of envelopes waiting for their recipients.

What the relay holds is only ever sealed envelopes (`crypto.envelope`), so the file needs no
encryption and no passphrase: a relay can restart unattended, and a stolen `relay.db` shows what
the relay itself sees. That is the readable routing header of each envelope (sender and recipient
node IDs, stream, seq, and the topic, which the node leaves empty for relayed mail), its size and
when it was stored; never its content, which is encrypted for the recipient and signed inside the
ciphertext, so the relay can neither read nor forge nor prove who wrote a message.

Ids come from AUTOINCREMENT, so they are never reused after mail is deleted: a recipient's "after
id" cursor and its "ack up to id" stay meaningful across deletions. Every write runs in one
`BEGIN IMMEDIATE` transaction (a deposit is stored whole or not at all) on one connection guarded
by a lock, so the server may call from worker threads. WAL lets the periodic expiry and status
reads run beside a write.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import sqlite_utils

from crypto.envelope import peek_header
from crypto.errors import EnvelopeRejected, SeajustError
from sync.mailbox import MAIL_TOPIC

DB_NAME: Final = "relay.db"
MIB: Final = 1024 * 1024
DEFAULT_TTL: Final = 14 * 86400.0
DEFAULT_MAX_ENVELOPE: Final = 16 * MIB
DEFAULT_MAX_PER_SENDER: Final = 64 * MIB
DEFAULT_MAX_TOTAL: Final = 2048 * MIB

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS mail (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient TEXT NOT NULL,
    sender TEXT NOT NULL,
    stored_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    size INTEGER NOT NULL,
    envelope BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS mail_recipient ON mail (recipient, id);
CREATE INDEX IF NOT EXISTS mail_sender ON mail (sender, expires_at, size);
CREATE INDEX IF NOT EXISTS mail_expiry ON mail (expires_at, size);
"""


class RelayRefused(SeajustError):
    """The relay refused to store those envelopes."""

    status: int

    def __init__(self, status: int, message: str) -> None:
        # `status` is the HTTP answer; the message is fixed text, never envelope bytes.
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RelayUsage:
    """Aggregate counts for the status page: nothing in it names a node."""

    messages: int
    bytes: int
    senders: int
    recipients: int


class RelayStore:
    """The relay's SQLite file; limits are in bytes of envelope, `clock` is injectable for tests."""

    def __init__(
        self,
        path: Path,
        *,
        max_envelope: int = DEFAULT_MAX_ENVELOPE,
        max_per_sender: int = DEFAULT_MAX_PER_SENDER,
        max_total: int = DEFAULT_MAX_TOTAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_envelope = max_envelope
        self.max_per_sender = max_per_sender
        self.max_total = max_total
        self.clock = clock
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")  # a deposit answered 200 is on disk
        self._conn.execute("PRAGMA busy_timeout = 10000")
        self._conn.executescript(_SCHEMA)
        self._db = sqlite_utils.Database(self._conn)

    @classmethod
    def in_directory(
        cls,
        data_dir: Path,
        *,
        max_envelope: int = DEFAULT_MAX_ENVELOPE,
        max_per_sender: int = DEFAULT_MAX_PER_SENDER,
        max_total: int = DEFAULT_MAX_TOTAL,
    ) -> RelayStore:
        """Open (creating it if needed) `relay.db` in a relay's data directory."""
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(data_dir / DB_NAME, max_envelope=max_envelope, max_per_sender=max_per_sender, max_total=max_total)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite_utils.Database]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _scalar(self, sql: str, params: tuple[object, ...]) -> int:
        row = self._conn.execute(sql, params).fetchone()
        return int(row[0] or 0)

    def deposit(
        self, sender: str, envelopes: Sequence[bytes], *, ttl_seconds: float = DEFAULT_TTL, now: float | None = None
    ) -> list[int]:
        """Store a batch of `sender`'s envelopes, all of them or none, and return their ids.

        Each must be an envelope whose header names `sender` (the authenticated node) as its sender,
        so nobody can spend another node's quota or re-post its captured mail. Refusals are
        `RelayRefused` with 400 (not an envelope, or addressed to its sender), 403 (another sender's
        envelope) or 413 (one envelope too big, the sender's quota or the relay full).
        """
        rows: list[tuple[str, bytes]] = []
        for envelope in envelopes:
            if len(envelope) > self.max_envelope:
                raise RelayRefused(413, f"an envelope is larger than this relay takes ({self.max_envelope} bytes)")
            try:
                header = peek_header(envelope)
            except EnvelopeRejected:
                raise RelayRefused(400, "not a sealed envelope") from None
            if header.sender_id != sender:
                raise RelayRefused(403, "a node may deposit only envelopes it sent")
            if header.recipient_id == sender:
                raise RelayRefused(400, "an envelope addressed to its own sender")
            if header.topic != MAIL_TOPIC:  # only mail: never a session envelope, never a document ID
                raise RelayRefused(400, "not a mail envelope")
            rows.append((header.recipient_id, bytes(envelope)))
        if not rows:
            return []
        now = self.clock() if now is None else now
        expires_at = now + ttl_seconds
        batch = sum(len(envelope) for _, envelope in rows)
        with self._write() as db:
            held = self._scalar("SELECT sum(size) FROM mail WHERE sender = ? AND expires_at > ?", (sender, now))
            if held + batch > self.max_per_sender:
                raise RelayRefused(413, f"this node's mail on the relay would exceed {self.max_per_sender} bytes")
            total = self._scalar("SELECT sum(size) FROM mail WHERE expires_at > ?", (now,))
            if total + batch > self.max_total:
                raise RelayRefused(413, "the relay is full; try again later")
            ids: list[int] = []
            for recipient, envelope in rows:
                cursor = db.execute(
                    "INSERT INTO mail (recipient, sender, stored_at, expires_at, size, envelope) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (recipient, sender, now, expires_at, len(envelope), envelope),
                )
                assert cursor.lastrowid is not None
                ids.append(cursor.lastrowid)
        return ids

    def fetch(
        self, recipient: str, after_id: int, max_bytes: int, *, now: float | None = None
    ) -> list[tuple[int, bytes]]:
        """`recipient`'s unexpired mail with ids above `after_id`, in id order, up to `max_bytes` of
        envelope; always at least one item if there is any, so a large envelope cannot block a mailbox."""
        now = self.clock() if now is None else now
        out: list[tuple[int, bytes]] = []
        total = 0
        with self._lock:
            cursor = self._conn.execute(
                "SELECT id, size, envelope FROM mail WHERE recipient = ? AND id > ? AND expires_at > ? ORDER BY id",
                (recipient, after_id, now),
            )
            try:
                for mail_id, size, envelope in cursor:
                    if out and total + size > max_bytes:
                        break
                    out.append((int(mail_id), bytes(envelope)))
                    total += size
            finally:
                cursor.close()
        return out

    def ack(self, recipient: str, upto_id: int) -> int:
        """Delete `recipient`'s mail with ids up to `upto_id` (and nobody else's); the count deleted."""
        with self._write() as db:
            return db.execute("DELETE FROM mail WHERE recipient = ? AND id <= ?", (recipient, upto_id)).rowcount

    def expire(self, now: float | None = None) -> int:
        """Delete mail past its expiry; the count deleted. Expired mail is already invisible to `fetch`."""
        now = self.clock() if now is None else now
        with self._write() as db:
            return db.execute("DELETE FROM mail WHERE expires_at <= ?", (now,)).rowcount

    def usage(self, now: float | None = None) -> RelayUsage:
        now = self.clock() if now is None else now
        with self._lock:
            row = self._conn.execute(
                "SELECT count(*), sum(size), count(DISTINCT sender), count(DISTINCT recipient) "
                "FROM mail WHERE expires_at > ?",
                (now,),
            ).fetchone()
        return RelayUsage(messages=int(row[0]), bytes=int(row[1] or 0), senders=int(row[2]), recipients=int(row[3]))
