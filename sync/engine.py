"""The sync engine: runs sessions over live links and keeps peers' replicas converging.

What it does with a session's events is the whole sync algorithm:

* on `Established`, send a complete `Versions` (sync step 1) of every document the peer is
  entitled to;
* on `VersionsReceived`, send the peer each entry it lacks (sync step 2), and remember what it
  holds (its cursor: the outbox for that peer is everything beyond it);
* on `UpdatesReceived`, verify and store the entries (durable before anything else happens),
  acknowledge with a partial `Versions` (asking for what is missing only if there was a gap), and forward the new
  entries to the other connected peers entitled to them;
* when the replica stores a local change, push it to every connected entitled peer.

Catch-up after a (re)connect is therefore a version-vector diff, and live changes travel as
the small per-transaction updates. Nothing here knows aiohttp: the transport hands the engine
an ordered stream of received messages and a function that sends one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from crypto.errors import EnvelopeRejected
from crypto.identity import Identity
from sync.errors import ProtocolError, RemoteProtocolError, ReplicaUnavailable, UpdateRejected
from sync.messages import (
    MAX_GRANTS_PER_MESSAGE,
    PROTOCOL_VERSION,
    Bundle,
    Grants,
    SignedUpdate,
    Updates,
    Versions,
    VersionVector,
)
from sync.protocol import (
    SEALED,
    EnvelopeCodec,
    Established,
    Event,
    GrantsReceived,
    HelloCache,
    KeysSwitched,
    PeerKeys,
    Role,
    SessionState,
    SyncSession,
    UpdatesReceived,
    VersionsReceived,
)
from sync.versions import merge

log = logging.getLogger(__name__)

MAX_ENTRIES_PER_PUSH = 2_000
MAX_QUEUED_MESSAGES = 10_000
MAX_ACKS_PER_MESSAGE = 1_000  # documents acknowledged in one partial Versions
# A catch-up is queued a batch of documents at a time, the next once the link has drained below the mark: queuing
# ten thousand cases at once filled the queue past its limit, which drops the peer, which asked again, forever.
CATCH_UP_BATCH = 256  # messages queued per batch
CATCH_UP_REFILL_BELOW = 64  # messages still queued when the next batch is made
# Documents read for a batch between two turns of the event loop. A batch reads, merges and signs the entries of
# hundreds of cases (0.2 s); read in one go, and the writer going on to the next batch without waiting, a node
# sending a catch-up of 80,000 cases answered nothing else, its API included, for seconds at a time.
CATCH_UP_SLICE = 32
_WAKE: Final = (b"", 0)  # queued to wake a writer waiting on an empty queue: a catch-up batch is to be made
RECEIVE_TURN = 0.02  # seconds of handling received messages after which the event loop runs before the next
# A session whose updates this node could not store is kept open but idle this long, then closed, so the peer
# neither redials at once nor re-sends everything while the disk refuses writes, and offers it all again later.
STALL_SECONDS = 10.0


class ApplyOutcome(Protocol):
    @property
    def stored(self) -> Sequence[SignedUpdate]: ...

    @property
    def gap(self) -> bool: ...


class Replica(Protocol):
    """What the engine needs from the node's document store."""

    def doc_ids(self, prefix: str = "") -> list[str]: ...

    def versions(self, doc_id: str) -> VersionVector: ...

    def entries_missing(self, doc_id: str, have: VersionVector, *, merge_own: bool = False) -> list[SignedUpdate]:
        """What a holder of `have` lacks; `merge_own`: runs of this node's own entries may come as one."""
        ...

    def apply_remote(self, entries: Sequence[SignedUpdate], *, via: str) -> ApplyOutcome:
        """Verify and store entries durably; UpdateRejected for the peer's fault, ReplicaUnavailable for ours."""
        ...

    def key_grant(self, doc_id: str) -> bytes | None:
        """The key grant a peer needs to read the document (None: the document is not encrypted)."""
        ...

    def accept_grants(self, grants: Sequence[bytes], *, via: str) -> None:
        """Verify and keep key grants; raises UpdateRejected for a bad one (the others are kept)."""
        ...

    def widened_grants(self, doc_ids: Sequence[str]) -> list[bytes]:
        """Grants of these documents re-issued since creation (shared with a third party), for every session."""
        ...


class Durability(Protocol):
    """The replica's commits, when they are grouped (`node.storage`): a message waits for its own."""

    def commit_mark(self) -> int: ...

    def hold(self) -> contextlib.AbstractContextManager[None]:
        """Commit what is stored meanwhile once, when the block ends, though the event loop runs in between."""
        ...

    async def durable(self, since: int) -> None:
        """Return once what was stored since the mark is committed; raise if it could not be."""
        ...


class Rejections(Protocol):
    def record(self, peer: str | None, reason: str, detail: str) -> None: ...


@dataclass
class Connection:
    """One live, established session with a peer and its ordered outgoing queue."""

    session: SyncSession
    queue: asyncio.Queue[tuple[bytes, int] | None]  # (message, the replica's commit mark when it was queued)
    close_link: Callable[[], Awaitable[object]]
    granted: set[str] = field(default_factory=set)  # encrypted documents whose key grant went out on this link
    stalled: bool = False  # this node could not store what came on it: ignore the rest until it closes
    # Sent together at the end of the loop turn (`SyncEngine._flush`): what a burst of messages asks for.
    acks: dict[str, VersionVector] = field(default_factory=dict)  # documents to acknowledge
    gaps: set[str] = field(default_factory=set)  # ... of which the peer must send what is missing
    pushes: dict[str, list[SignedUpdate]] = field(default_factory=dict)  # new entries to send, by document
    flushing: bool = False
    flush_mark: int | None = None  # the replica's commit mark when the first of what is gathered was stored
    direct: frozenset[str] | None = None  # the peers this peer last said it has sessions with (None: never said)
    direct_sent: tuple[str, ...] | None = None  # what this node last said to it about its own sessions
    # Documents whose missing entries are still to be sent (a catch-up), in order, and whether the peer said it
    # holds nothing of them (then it needs the key grant first): see `SyncEngine._refill`.
    backlog: dict[str, bool] = field(default_factory=dict)

    @property
    def peer_id(self) -> str | None:
        return self.session.peer_id


@dataclass
class MailLink:
    """A peer reached through a relay: what the engine sends it is collected, to be left as mail."""

    peer_id: str
    outbox: list[Versions | Updates | Grants] = field(default_factory=list)
    granted: set[str] = field(default_factory=set)


Link = Connection | MailLink


@dataclass
class MailPlan:
    """What one round of mail to a peer will tell it, remembered only once the relay has it."""

    messages: list[Versions | Updates | Grants]
    versions_digest: str | None
    sent: dict[str, VersionVector]


MAIL_VERSIONS_EVERY = 3600.0  # seconds: a complete version list is mailed at least this often, in case mail was lost


class SyncEngine:
    def __init__(
        self,
        me: Identity,
        replica: Replica,
        *,
        peer_keys: Callable[[str], PeerKeys | None],
        entitled: Callable[[str, str], bool],
        rejections: Rejections,
        on_synced: Callable[[str], None] = lambda peer: None,
        on_keys_switched: Callable[[str], None] = lambda peer: None,
        codec: EnvelopeCodec = SEALED,
        durability: Durability | None = None,
    ) -> None:
        self.me = me
        # Nothing this node sends (an acknowledgement, a forwarded update, a key grant) may get ahead of its own
        # disk: each queued message waits for the commit of what was stored when it was queued.
        self._durability = durability
        self._replica = replica
        self._peer_keys = peer_keys
        self._entitled = entitled
        self._rejections = rejections
        self._on_synced = on_synced
        self.on_keys_switched = on_keys_switched
        # A peer's complete version list (session or mail): a restored node learns from it what it must get back.
        self.on_complete_versions: Callable[[str, dict[str, VersionVector]], None] = lambda peer, docs: None
        self.codec = codec
        self.speaks = PROTOCOL_VERSION  # the highest protocol this node offers in its sessions
        self._hello_cache = HelloCache()
        self._connections: dict[str, list[Connection]] = defaultdict(list)
        self.cursors: dict[str, dict[str, VersionVector]] = defaultdict(dict)
        # Per peer, the documents whose cursor changed since the node last stored them: a node holding 100,000
        # cases stores the few that moved, not all of a busy peer's every few seconds.
        self.dirty_cursors: dict[str, set[str]] = defaultdict(set)
        self._closing: set[asyncio.Future[object]] = set()
        self.changed = asyncio.Event()  # set whenever something was stored or acknowledged (tests, metrics)
        # Mail (relay) bookkeeping, in memory: after a restart the first round simply says everything again.
        self._mailed: dict[str, dict[str, VersionVector]] = defaultdict(dict)
        self._mailed_versions: dict[str, tuple[str, float]] = {}

    # -- sessions -------------------------------------------------------------------------

    def new_session(self, role: Role, expected_peer: str | None = None) -> SyncSession:
        return SyncSession(
            self.me,
            role,
            self._peer_keys,
            hello_cache=self._hello_cache,
            expected_peer=expected_peer,
            codec=self.codec,
            speaks=self.speaks,
        )

    def is_connected(self, peer_id: str) -> bool:
        return bool(self._connections.get(peer_id))

    def connected_peers(self) -> list[str]:
        return sorted(p for p, conns in self._connections.items() if conns)

    def disconnect(self, peer_id: str) -> None:
        for conn in list(self._connections.get(peer_id, [])):
            self._close(conn)

    def disconnect_all(self) -> None:
        for peer_id in list(self._connections):
            self.disconnect(peer_id)

    def _close(self, conn: Connection) -> None:
        conn.session.close()
        with contextlib.suppress(asyncio.QueueFull):
            conn.queue.put_nowait(None)
        task = asyncio.ensure_future(conn.close_link())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def serve(
        self,
        session: SyncSession,
        incoming: AsyncIterator[bytes],
        send: Callable[[bytes], Awaitable[None]],
        close: Callable[[], Awaitable[object]],
    ) -> None:
        """Run one session until the link closes, the peer misbehaves, or the node disconnects it."""
        conn = Connection(session, asyncio.Queue(MAX_QUEUED_MESSAGES), close)
        writer = asyncio.create_task(self._write(conn, send))
        try:
            if session.role is Role.DIALER:
                self._enqueue(conn, session.initiate())
            async for data in incoming:
                if session.state is SessionState.CLOSED:
                    break
                events = self._open(conn, data)
                if events is None:
                    break
                # A bundle of a catch-up is about 130 cases, 0.2 s of work: the loop runs every RECEIVE_TURN
                # meanwhile, so the node answers its API, and what the bundle stores still commits once.
                with self._durability.hold() if self._durability is not None else contextlib.nullcontext():
                    took_long = await self._handle(conn, events)
                if conn.session.state is SessionState.CLOSED:  # refused, or closed while the loop ran
                    break
                if took_long:
                    # Messages already buffered are read without the loop running in between (a new peer catching
                    # up with 10,000 cases answered nothing else for up to 1.5 s at a time); this turn commits.
                    await asyncio.sleep(0)
        finally:
            session.close()
            peer = session.peer_id
            if peer and conn in self._connections.get(peer, []):
                self._connections[peer].remove(conn)
                log.info("session with %s closed", peer)
                if self._connections[peer]:
                    self._resync(peer)
                else:
                    self._lost(peer)
            with contextlib.suppress(asyncio.QueueFull):
                conn.queue.put_nowait(None)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that arrives as
            # the inner task finishes, and a node being stopped must not keep a session's task alive.
            try:
                with contextlib.suppress(TimeoutError, Exception):
                    async with asyncio.timeout(5):
                        await asyncio.shield(writer)
            finally:
                writer.cancel()

    async def _write(self, conn: Connection, send: Callable[[bytes], Awaitable[None]]) -> None:
        while True:
            if conn.backlog and conn.queue.qsize() < CATCH_UP_REFILL_BELOW:
                await self._refill(conn)
            item = await conn.queue.get()
            if item is None:
                return
            if item is _WAKE:
                continue
            data, mark = item
            try:
                if self._durability is not None:
                    await self._durability.durable(mark)
                await send(data)
            except (ConnectionError, RuntimeError, OSError):
                conn.session.close()
                return
            except Exception:  # not stored after all (the disk refused the commit): what is queued must not go
                log.warning("what was queued for %s could not be stored; closing the session", conn.peer_id)
                self._close(conn)
                return

    def _mark(self) -> int:
        return self._durability.commit_mark() if self._durability is not None else 0

    def _enqueue(self, conn: Connection, data: bytes, mark: int | None = None) -> None:
        """Queue a message; it leaves once what the replica stored since `mark` (default: now) is committed."""
        mark = self._mark() if mark is None else mark
        try:
            conn.queue.put_nowait((data, mark))
        except asyncio.QueueFull:
            # A peer that cannot keep up is dropped; it catches up from its versions next time.
            log.warning("outgoing queue to %s is full; closing the session", conn.peer_id)
            self._close(conn)

    def _send(self, conn: Link, message: Versions | Updates | Grants, mark: int | None = None) -> None:
        if isinstance(conn, MailLink):
            conn.outbox.append(message)
        elif conn.session.state is SessionState.ESTABLISHED:
            self._enqueue(conn, conn.session.send(message), mark)

    def _send_updates(self, conn: Link, entries: dict[str, list[SignedUpdate]], mark: int | None = None) -> None:
        """Send documents' entries, at most MAX_ENTRIES_PER_PUSH per part; a session packs the parts into as few
        envelopes as its protocol allows (`SyncSession.send_updates`)."""
        parts = [
            Updates(doc_id=doc_id, entries=tuple(doc_entries[start : start + MAX_ENTRIES_PER_PUSH]))
            for doc_id, doc_entries in entries.items()
            for start in range(0, len(doc_entries), MAX_ENTRIES_PER_PUSH)
        ]
        if isinstance(conn, MailLink):
            conn.outbox.extend(parts)
        elif conn.session.state is SessionState.ESTABLISHED:
            mark = self._mark() if mark is None else mark
            for data in conn.session.send_updates(parts):
                self._enqueue(conn, data, mark)

    # -- incoming -------------------------------------------------------------------------

    def _open(self, conn: Connection, data: bytes) -> list[Event] | None:
        """The events of one message from the peer; None if it was refused (the session is over)."""
        session = conn.session
        try:
            events = session.receive(data)
        except EnvelopeRejected as exc:
            self._rejections.record(session.peer_id, exc.reason.value, exc.message)
            return None
        except RemoteProtocolError as exc:
            self._rejections.record(session.peer_id, exc.reason, exc.message)
            return None
        except ProtocolError as exc:
            self._rejections.record(session.peer_id, "protocol", exc.message)
            return None
        for pending in session.data_to_send():
            self._enqueue(conn, pending)
        return events

    async def _handle(self, conn: Connection, events: Sequence[Event]) -> bool:
        """Act on a message's events, letting the loop run every RECEIVE_TURN; True if that took longer."""
        started = turn = time.monotonic()
        for event in events:
            if conn.session.state is SessionState.CLOSED:  # refused, or closed while the loop ran
                break
            self._dispatch(conn, event)
            if time.monotonic() - turn > RECEIVE_TURN:
                await asyncio.sleep(0)
                turn = time.monotonic()
        return time.monotonic() - started > RECEIVE_TURN

    def _dispatch(self, conn: Connection, event: Event) -> None:
        if conn.stalled and isinstance(event, UpdatesReceived | GrantsReceived):
            return
        if isinstance(event, KeysSwitched):
            self.on_keys_switched(event.peer_id)
        elif isinstance(event, Established):
            self._established(conn, event.peer_id)
        elif isinstance(event, VersionsReceived):
            self._versions_received(conn, event.versions)
        elif isinstance(event, UpdatesReceived):
            self._updates_received(conn, event.updates)
        elif isinstance(event, GrantsReceived):
            self._grants_received(conn, event.grants)

    def _established(self, conn: Connection, peer_id: str) -> None:
        self._connections[peer_id].append(conn)
        log.info("session with %s established", peer_id)
        docs = {d: self._replica.versions(d) for d in self._replica.doc_ids() if self._entitled(d, peer_id)}
        # A party that missed a share must learn the wider party list before it sees the new party's updates.
        widened = self._replica.widened_grants(list(docs))
        for start in range(0, len(widened), MAX_GRANTS_PER_MESSAGE):
            self._send(conn, Grants(grants=tuple(widened[start : start + MAX_GRANTS_PER_MESSAGE])))
        conn.direct_sent = self._direct()
        self._send(conn, Versions(docs=docs, complete=True, direct=conn.direct_sent))
        self._sessions_changed()
        self._on_synced(peer_id)

    def _direct(self) -> tuple[str, ...]:
        return tuple(sorted(p for p, conns in self._connections.items() if conns))

    def _sessions_changed(self) -> None:
        """Tell every connected peer whom this node now has sessions with (at the end of the loop turn)."""
        for conns in self._connections.values():
            for conn in conns[-1:]:
                self._flush_soon(conn)

    def _resync(self, peer: str) -> None:
        """One of two sessions with `peer` closed (both nodes dialled) with what it carried perhaps lost on the
        way: on the one left, ask for everything this node lacks. The peer does the same, so each gets it.

        The list is complete, so the peer also sends the documents this node holds nothing of: a document new to
        this node (a contact list's first entry) whose first push was on the lost session is in no partial list."""
        conn = self._connections[peer][-1]
        docs = {d: self._replica.versions(d) for d in self._replica.doc_ids() if self._entitled(d, peer)}
        self._send(conn, Versions(docs=docs, complete=True, direct=conn.direct_sent))

    def _lost(self, peer: str) -> None:
        """The last session with `peer` closed. Its entries stop arriving directly, and what it sent in its last
        moments may not have come: ask every other peer for what this node lacks. The list is complete (every
        document shared with that peer), so it also brings the documents this node holds nothing of yet."""
        self._sessions_changed()
        for other, conns in self._connections.items():
            if not conns or conns[-1].session.state is not SessionState.ESTABLISHED:
                continue
            docs = {d: self._replica.versions(d) for d in self._replica.doc_ids() if self._entitled(d, other)}
            conns[-1].direct_sent = self._direct()
            self._send(conns[-1], Versions(docs=docs, complete=True, direct=conns[-1].direct_sent))

    def _versions_received(self, conn: Link, versions: Versions) -> None:
        peer = conn.peer_id
        assert peer is not None
        if versions.direct is not None and isinstance(conn, Connection):
            conn.direct = frozenset(versions.direct)
        docs = dict(versions.docs)
        if versions.complete:
            self._mailed.pop(peer, None)  # the peer's own word replaces what mail was assumed to deliver
            for doc_id in self._replica.doc_ids():
                docs.setdefault(doc_id, {})
        for doc_id, have in docs.items():
            if not self._entitled(doc_id, peer):
                continue
            # A complete list is the truth (the peer may have been restored from an old backup);
            # a partial one only ever adds to what we knew.
            known = {} if versions.complete else self.cursors[peer].get(doc_id, {})
            self._set_cursor(peer, doc_id, merge(known, have))
            if not versions.want_missing or isinstance(conn, MailLink):
                continue  # mail: `mail_for` sends what the peer lacks, once, with the rest of the round
            conn.backlog[doc_id] = conn.backlog.get(doc_id, False) or not have
        if isinstance(conn, Connection) and conn.backlog and conn.queue.empty():
            conn.queue.put_nowait(_WAKE)  # the writer makes the batch, a slice at a time
        if versions.complete:
            self.on_complete_versions(peer, dict(versions.docs))
        self._on_synced(peer)
        self.changed.set()

    def _set_cursor(self, peer: str, doc_id: str, cursor: VersionVector) -> None:
        """What `peer` holds of `doc_id`; stored at the next flush only if it moved (a peer back in step stores
        nothing)."""
        if cursor != self.cursors[peer].get(doc_id):
            self.cursors[peer][doc_id] = cursor
            self.dirty_cursors[peer].add(doc_id)

    async def _refill(self, conn: Connection) -> None:
        """Queue the next documents of a catch-up (`Connection.backlog`): the keys the peer lacks, then the
        entries it lacks, as known when they are read (what it acknowledged meanwhile is not sent again). Only
        the connection's writer calls it, and it lets the event loop run every `CATCH_UP_SLICE` documents."""
        peer = conn.peer_id
        assert peer is not None
        sends: dict[str, list[SignedUpdate]] = {}
        grants: list[str] = []
        queued = 0
        read = 0
        while conn.backlog and queued < CATCH_UP_BATCH:
            if read and read % CATCH_UP_SLICE == 0:
                await asyncio.sleep(0)
            if conn.session.state is not SessionState.ESTABLISHED:
                conn.backlog.clear()
                return
            read += 1
            doc_id = next(iter(conn.backlog))
            holds_nothing = conn.backlog.pop(doc_id)
            if not self._entitled(doc_id, peer):
                continue  # no longer shared with it (a revocation since it asked)
            missing = self._replica.entries_missing(doc_id, self.cursors[peer].get(doc_id, {}), merge_own=True)
            if missing:
                sends[doc_id] = missing
                if holds_nothing:
                    grants.append(doc_id)
                queued += -(-len(missing) // MAX_ENTRIES_PER_PUSH)
        self._send_grants(conn, grants)
        self._send_updates(conn, sends)

    def _updates_received(self, conn: Link, updates: Updates) -> None:
        peer = conn.peer_id
        assert peer is not None
        if not self._entitled(updates.doc_id, self.me.node_id) or not self._entitled(updates.doc_id, peer):
            self._rejections.record(peer, "not_entitled", "document this node does not share with the peer")
            return
        mark = self._mark()  # the acknowledgement waits for the commit of what this stores
        try:
            result = self._replica.apply_remote(updates.entries, via=peer)
        except UpdateRejected as exc:
            self._rejections.record(peer, exc.reason, exc.message)
            return
        except ReplicaUnavailable:
            self._stall(conn)
            return
        held = self._replica.versions(updates.doc_id)
        sent: VersionVector = {}
        for entry in updates.entries:
            sent[entry.author] = max(sent.get(entry.author, 0), entry.seq_to)
        self._set_cursor(peer, updates.doc_id, merge(self.cursors[peer].get(updates.doc_id, {}), sent))
        if isinstance(conn, Connection):
            conn.acks[updates.doc_id] = held
            if result.gap:
                conn.gaps.add(updates.doc_id)
            self._flush_soon(conn, mark)
        elif result.gap:  # mail is acknowledged by the next complete list
            self._send(conn, Versions(docs={updates.doc_id: held}, complete=False, want_missing=True))
        self._on_synced(peer)
        if result.stored:
            self.changed.set()

    def _grants_received(self, conn: Link, grants: Grants) -> None:
        peer = conn.peer_id
        assert peer is not None
        try:
            self._replica.accept_grants(grants.grants, via=peer)
        except UpdateRejected as exc:
            self._rejections.record(peer, exc.reason, exc.message)
        except ReplicaUnavailable:
            self._stall(conn)

    def _stall(self, conn: Link) -> None:
        """What a peer sent could not be stored here: acknowledge nothing more on this link (see STALL_SECONDS).
        Mail re-raises, so the round fails and the relay keeps the mail for the next one."""
        if isinstance(conn, MailLink):
            raise ReplicaUnavailable("what a peer mailed could not be stored")
        if not conn.stalled:
            conn.stalled = True
            log.warning("could not store what %s sent; the session ends in %.0f s", conn.peer_id, STALL_SECONDS)
            asyncio.get_running_loop().call_later(STALL_SECONDS, self._close, conn)

    # -- outgoing -------------------------------------------------------------------------

    def _send_grants(self, conn: Link, doc_ids: Sequence[str], mark: int | None = None) -> None:
        """A peer that holds nothing of an encrypted document first needs its key, once per link; many
        documents' keys travel in one message (a catch-up of thousands of cases is not thousands of envelopes)."""
        grants: list[bytes] = []
        for doc_id in doc_ids:
            if doc_id in conn.granted:
                continue
            grant = self._replica.key_grant(doc_id)
            if grant is not None:
                conn.granted.add(doc_id)
                grants.append(grant)
        for start in range(0, len(grants), MAX_GRANTS_PER_MESSAGE):
            self._send(conn, Grants(grants=tuple(grants[start : start + MAX_GRANTS_PER_MESSAGE])), mark)

    def _flush_soon(self, conn: Connection, mark: int | None = None) -> None:
        mark = self._mark() if mark is None else mark
        conn.flush_mark = mark if conn.flush_mark is None else min(conn.flush_mark, mark)
        if not conn.flushing:
            conn.flushing = True
            asyncio.get_running_loop().call_soon(self._flush, conn)

    def _flush(self, conn: Connection) -> None:
        """Send what this loop turn gathered for a peer: the documents' keys it lacks, new entries (in protocol 2
        one bundle for all the documents, however many changes made them), and one acknowledgement for every
        document received."""
        conn.flushing = False
        mark, conn.flush_mark = conn.flush_mark, None
        pushes, conn.pushes = conn.pushes, {}
        acks, conn.acks = conn.acks, {}
        gaps, conn.gaps = conn.gaps, set()
        if conn.session.state is not SessionState.ESTABLISHED:
            return
        peer = conn.peer_id
        assert peer is not None
        direct = self._direct()
        if conn.direct_sent != direct:
            conn.direct_sent = direct
            self._send(conn, Versions(docs={}, complete=False, want_missing=False, direct=direct), mark)
        self._send_grants(conn, [d for d in pushes if not self.cursors[peer].get(d)], mark)
        self._send_updates(conn, pushes, mark)
        for want_missing, doc_ids in (
            (True, [d for d in acks if d in gaps]),
            (False, [d for d in acks if d not in gaps]),
        ):
            for start in range(0, len(doc_ids), MAX_ACKS_PER_MESSAGE):
                chunk = {d: acks[d] for d in doc_ids[start : start + MAX_ACKS_PER_MESSAGE]}
                self._send(conn, Versions(docs=chunk, complete=False, want_missing=want_missing), mark)

    # -- mail -----------------------------------------------------------------------------

    def mail_received(self, link: MailLink, message: Versions | Updates | Grants | Bundle) -> None:
        """Act on one message fetched from a relay, as if it had come in a session; replies go to `link.outbox`."""
        if isinstance(message, Versions):
            self._versions_received(link, message)
        elif isinstance(message, Updates):
            self._updates_received(link, message)
        elif isinstance(message, Bundle):
            for part in message.parts:
                self._updates_received(link, part)
        else:
            self._grants_received(link, message)

    def mail_for(self, link: MailLink, *, now: float) -> MailPlan:
        """What to leave at a relay for a peer that is not connected: the replies already in `link.outbox`,
        this node's version list when it changed (so the peer can answer with what we lack), and every
        entry the peer is not known to hold and was not already mailed."""
        peer = link.peer_id
        docs = {d: self._replica.versions(d) for d in self._replica.doc_ids() if self._entitled(d, peer)}
        digest = hashlib.sha256(json.dumps(docs, sort_keys=True).encode()).hexdigest()
        last = self._mailed_versions.get(peer)
        send_versions = last is None or last[0] != digest or now - last[1] >= MAIL_VERSIONS_EVERY
        if send_versions:
            widened = self._replica.widened_grants(list(docs))
            for start in range(0, len(widened), MAX_GRANTS_PER_MESSAGE):
                self._send(link, Grants(grants=tuple(widened[start : start + MAX_GRANTS_PER_MESSAGE])))
            self._send(link, Versions(docs=docs, complete=True))
        mailed = self._mailed.get(peer, {})
        sent: dict[str, VersionVector] = {}
        for doc_id in docs:
            known = merge(self.cursors[peer].get(doc_id, {}), mailed.get(doc_id, {}))
            missing = self._replica.entries_missing(doc_id, known, merge_own=True)
            if not missing:
                continue
            if not known:
                self._send_grants(link, [doc_id])
            self._send_updates(link, {doc_id: missing})
            vector: VersionVector = {}
            for entry in missing:
                vector[entry.author] = max(vector.get(entry.author, 0), entry.seq_to)
            sent[doc_id] = vector
        return MailPlan(list(link.outbox), digest if send_versions else None, sent)

    def mail_delivered(self, peer: str, plan: MailPlan, *, now: float) -> None:
        """The relay holds the plan's messages: do not mail the same entries again."""
        if plan.versions_digest is not None:
            self._mailed_versions[peer] = (plan.versions_digest, now)
        mailed = self._mailed[peer]
        for doc_id, vector in plan.sent.items():
            mailed[doc_id] = merge(mailed.get(doc_id, {}), vector)

    def regrant(self, doc_id: str, peers: Sequence[str]) -> None:
        """Send a document's (new) key grant to these connected peers now (after a share widened it)."""
        grant = self._replica.key_grant(doc_id)
        if grant is None:
            return
        for peer in peers:
            for conn in self._connections.get(peer, [])[-1:]:
                conn.granted.add(doc_id)
                self._send(conn, Grants(grants=(grant,)))

    def push(self, entries: Sequence[SignedUpdate], source: str | None) -> None:
        """Send newly stored entries to every connected entitled peer but the one they came from."""
        by_doc: dict[str, list[SignedUpdate]] = defaultdict(list)
        for entry in entries:
            by_doc[entry.doc_id].append(entry)
        for peer, conns in self._connections.items():
            if peer == source or not conns:
                continue
            conn = conns[-1]
            for doc_id, doc_entries in by_doc.items():
                if not self._entitled(doc_id, peer):
                    continue
                cursor = self.cursors[peer].get(doc_id, {})
                # Not back to its author, nor what its author sends the peer itself (see Versions.direct).
                skip = {peer} | (conn.direct or frozenset())
                fresh = [
                    e
                    for e in doc_entries
                    if e.seq_to > cursor.get(e.author, 0) and (e.author == self.me.node_id or e.author not in skip)
                ]
                if fresh:
                    conn.pushes.setdefault(doc_id, []).extend(fresh)
                    self._flush_soon(conn)
        self.changed.set()
