"""The sync engine: two or three real nodes (real document stores on SQLCipher, the real policy) joined by
in-memory links, each running `SyncEngine.serve()` as the WebSocket transport would.

Edits reach every peer, also through a node in between; concurrent edits converge; edits made while a link
was down arrive once it is back; and an update that its author may not write, or that its claimed author did
not sign, is refused, recorded, and changes nothing.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import sync.engine
from crypto.authorship import _signed_message, sign_update
from crypto.envelope import open_envelope, seal
from crypto.errors import EnvelopeRejected
from crypto.identity import Identity
from node.crdt import CrdtDocument
from node.documents import DocumentStore
from node.policy import directory_doc, entitled, may_write
from node.storage import Database
from sync.engine import MailLink, MailPlan, SyncEngine
from sync.mailbox import new_stream, open_mail, seal_mail
from sync.messages import Bundle, SignedUpdate, Updates, Versions, decode, encode
from sync.protocol import PeerKeys, Role
from sync.versions import VersionVector

WAIT = 10.0  # seconds before a test gives up waiting for the nodes to converge


class RecordedRejections:
    """Records what the engine reported; the engine's only view of it is `record()`."""

    def __init__(self) -> None:
        self.records: list[tuple[str | None, str, str]] = []

    def record(self, peer: str | None, reason: str, detail: str) -> None:
        self.records.append((peer, reason, detail))

    @property
    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.records]


@dataclass
class Member:
    name: str
    identity: Identity
    db: Database
    store: DocumentStore
    engine: SyncEngine
    rejections: RecordedRejections
    pending: dict[str, MailLink] = field(default_factory=dict)  # replies to mail, to leave in the next round

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    @property
    def own_doc(self) -> str:
        return directory_doc(self.node_id)

    def put(self, key: str, **fields: Any) -> SignedUpdate:
        entry = self.store.commit_local(
            self.own_doc, lambda change: change.put_record("contacts", key, fields), actor="officer", action="put"
        )
        assert entry is not None
        return entry

    def delete(self, key: str) -> None:
        self.store.commit_local(
            self.own_doc, lambda change: change.delete_record("contacts", key), actor="officer", action="delete"
        )

    def contacts(self, owner: Member) -> dict[str, dict[str, Any]]:
        doc = self.store.get(owner.own_doc)
        return doc.records("contacts") if doc else {}

    def log_rows(self, doc_id: str) -> list[dict[str, Any]]:
        return self.db.query(
            "SELECT author, seq_from, seq_to FROM doc_log WHERE doc_id = ? ORDER BY author, seq_to", (doc_id,)
        )


class LinkEnd:
    """One direction of a link: an ordered queue that ends at None."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def __aiter__(self) -> LinkEnd:
        return self

    async def __anext__(self) -> bytes:
        item = await self.queue.get()
        if item is None:
            raise StopAsyncIteration
        return item


@dataclass
class Link:
    """Joins a dialer and an acceptor as a WebSocket would; `sent` records every envelope put on the wire."""

    dialer: Member
    acceptor: Member
    sent: list[tuple[str, bytes]] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    ends: tuple[LinkEnd, LinkEnd] = field(default_factory=lambda: (LinkEnd(), LinkEnd()))  # to dialer, to acceptor

    def inject(self, to: Member, data: bytes) -> None:
        """Put bytes on the wire towards `to`, as an attacker on the path could."""
        self.ends[0 if to is self.dialer else 1].queue.put_nowait(data)

    def up(self) -> Link:
        to_dialer, to_acceptor = ends = self.ends

        async def close() -> None:
            for end in ends:
                end.queue.put_nowait(None)

        def sender(name: str, end: LinkEnd) -> Callable[[bytes], Any]:
            async def send(data: bytes) -> None:
                self.sent.append((name, data))
                end.queue.put_nowait(data)

            return send

        async def run(member: Member, role: Role, incoming: LinkEnd, outgoing: LinkEnd) -> None:
            expected = self.acceptor.node_id if role is Role.DIALER else None
            session = member.engine.new_session(role, expected)
            try:
                await member.engine.serve(session, incoming, sender(member.name, outgoing), close)
            finally:
                await close()

        self.tasks = [
            asyncio.create_task(run(self.dialer, Role.DIALER, to_dialer, to_acceptor)),
            asyncio.create_task(run(self.acceptor, Role.ACCEPTOR, to_acceptor, to_dialer)),
        ]
        return self

    async def down(self) -> None:
        for member in (self.dialer, self.acceptor):
            other = self.acceptor if member is self.dialer else self.dialer
            member.engine.disconnect(other.node_id)
        await asyncio.gather(*self.tasks)
        assert not self.dialer.engine.is_connected(self.acceptor.node_id)
        assert not self.acceptor.engine.is_connected(self.dialer.node_id)

    def updates_sent_by(self, member: Member, trusted: dict[str, PeerKeys]) -> list[Updates]:
        """What `member` sent, read as the other end reads it (a wiretap holding the recipient's key): each
        document's part of a bundle counts as one message."""
        other = self.acceptor if member is self.dialer else self.dialer
        found = []
        for name, data in self.sent:
            if name == member.name:
                opened = open_envelope(other.identity, data, sender_sign_key=lambda n: trusted[n].sign_key)
                message = decode(opened.payload)
                if isinstance(message, Bundle):
                    assert opened.topic == ""  # protocol 2: the readable header names no document
                    found.extend(message.parts)
                elif isinstance(message, Updates):
                    found.append(message)
        return found

    def docs_sent_by(self, member: Member, trusted: dict[str, PeerKeys]) -> set[str]:
        return {message.doc_id for message in self.updates_sent_by(member, trusted)}


@dataclass
class Network:
    tmp_path: Path
    members: dict[str, Member] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    trusted: dict[str, PeerKeys] = field(default_factory=dict)

    def member(self, name: str, *, shares: Callable[[str, str], bool] = entitled) -> Member:
        identity = Identity.generate()
        self.trusted[identity.node_id] = PeerKeys(identity.node_id, identity.public.sign_key, identity.public.kx_key)

        def author_key(node_id: str) -> bytes | None:
            keys = self.trusted.get(node_id)
            return keys.sign_key if keys else None

        db = Database(self.tmp_path / f"{name}.db", os.urandom(32))
        store = DocumentStore(db, identity, author_key=author_key, may_write=may_write)
        store.load()
        rejections = RecordedRejections()
        engine = SyncEngine(identity, store, peer_keys=self.trusted.get, entitled=shares, rejections=rejections)
        store.on_stored(engine.push)
        self.members[name] = Member(name, identity, db, store, engine, rejections)
        return self.members[name]

    def link(self, dialer: Member, acceptor: Member) -> Link:
        link = Link(dialer, acceptor).up()
        self.links.append(link)
        return link

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(WAIT):
                while not condition():
                    await asyncio.sleep(0.005)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None

    def converged(self) -> bool:
        members = list(self.members.values())
        return all(
            m.store.versions(owner.own_doc) == owner.store.versions(owner.own_doc)
            and m.contacts(owner) == owner.contacts(owner)
            for m in members
            for owner in members
        )

    async def close(self) -> None:
        for link in self.links:
            if any(not task.done() for task in link.tasks):
                await link.down()
        for member in self.members.values():
            member.db.close()


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    net = Network(tmp_path)
    yield net
    await net.close()


# -- replication ---------------------------------------------------------------------------------------------


async def test_an_edit_reaches_a_linked_peer(network: Network) -> None:
    a, b = network.member("a"), network.member("b")
    network.link(a, b)
    a.put("c1", name="Somchai", phone="+66 2 000 0000")
    await network.until(lambda: b.contacts(a) == {"c1": {"name": "Somchai", "phone": "+66 2 000 0000"}}, "b sees c1")
    assert b.store.versions(a.own_doc) == {a.node_id: 1}
    assert a.rejections.records == b.rejections.records == []


async def test_edits_made_before_the_link_arrive_by_catch_up(network: Network) -> None:
    a, b = network.member("a"), network.member("b")
    for i in range(5):
        a.put(f"c{i}", name=f"officer {i}")
    a.delete("c0")
    b.put("x", name="Nguyen")
    network.link(b, a)
    await network.until(network.converged, "a and b to converge")
    assert set(b.contacts(a)) == {"c1", "c2", "c3", "c4"}
    assert a.contacts(b) == {"x": {"name": "Nguyen"}}


async def test_an_edit_is_forwarded_through_a_node_in_between(network: Network) -> None:
    a, b, c = network.member("a"), network.member("b"), network.member("c")
    network.link(a, b)
    network.link(c, b)  # a and c are never linked
    await network.until(lambda: b.engine.connected_peers() == sorted([a.node_id, c.node_id]), "both links up")
    a.put("c1", name="Somchai")
    await network.until(lambda: c.contacts(a) == {"c1": {"name": "Somchai"}}, "c to see a's edit via b")
    # c holds a's own signed entry, relayed by b, not a copy b wrote.
    assert c.log_rows(a.own_doc) == [{"author": a.node_id, "seq_from": 1, "seq_to": 1}]
    audit = c.db.query("SELECT actor, subject FROM audit_log WHERE doc_id = ?", (a.own_doc,))
    assert audit == [{"actor": a.node_id, "subject": f"seq 1-1 via {b.node_id}"}]


async def test_a_late_joiner_catches_up_from_the_node_in_between(network: Network) -> None:
    a, b, c = network.member("a"), network.member("b"), network.member("c")
    network.link(a, b)
    a.put("c1", name="Somchai")
    await network.until(lambda: b.contacts(a) == a.contacts(a), "b to hold a's edit")
    network.link(c, b)
    await network.until(lambda: c.contacts(a) == {"c1": {"name": "Somchai"}}, "c to catch up via b")


async def test_a_document_split_into_parts_reaches_a_peer_in_order(
    network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More new entries of one document than a part holds: its parts go in successive bundles, never twice in one
    (a bundle naming a document twice is malformed, and would close the session)."""
    monkeypatch.setattr(sync.engine, "MAX_ENTRIES_PER_PUSH", 4)
    a, b = network.member("a"), network.member("b")
    link = network.link(a, b)
    await network.until(lambda: a.engine.is_connected(b.node_id) and b.engine.is_connected(a.node_id), "link up")
    for i in range(10):  # one loop turn: one push of ten entries
        a.put(f"c{i}", name=f"officer {i}")
    await network.until(lambda: b.contacts(a) == a.contacts(a), "b to hold a's edits")
    parts = [u for u in link.updates_sent_by(a, network.trusted) if u.doc_id == a.own_doc]
    assert [len(p.entries) for p in parts] == [4, 4, 2]
    assert a.rejections.records == b.rejections.records == []


async def test_concurrent_edits_on_three_nodes_converge(network: Network) -> None:
    a, b, c = network.member("a"), network.member("b"), network.member("c")
    network.link(a, b)
    network.link(b, c)
    network.link(c, a)
    for i in range(10):
        for member in (a, b, c):
            member.put(f"{member.name}{i % 4}", name=f"{member.name} {i}", n=i)
            if i % 3 == 2:
                member.delete(f"{member.name}{(i + 1) % 4}")
            await asyncio.sleep(0)
    await network.until(network.converged, "three nodes to converge")
    for owner in (a, b, c):
        expected = owner.contacts(owner)
        assert expected  # the edits left something to compare
        assert a.contacts(owner) == b.contacts(owner) == c.contacts(owner) == expected
        # Same records whichever order the updates were applied in: a fresh replay of one node's log agrees.
        replay = CrdtDocument()
        for row in a.db.query("SELECT body FROM doc_log WHERE doc_id = ? ORDER BY author, seq_to", (owner.own_doc,)):
            replay.apply(row["body"])
        assert replay.records("contacts") == expected
    assert [m.rejections.records for m in (a, b, c)] == [[], [], []]


async def test_edits_made_while_a_link_was_down_arrive_when_it_is_back(network: Network) -> None:
    a, b = network.member("a"), network.member("b")
    link = network.link(a, b)
    a.put("c1", name="before")
    await network.until(network.converged, "first sync")
    await link.down()
    a.put("c1", name="during, on a")
    a.put("c2", name="new on a")
    b.put("d1", name="during, on b")
    await asyncio.sleep(0.05)
    assert b.contacts(a) == {"c1": {"name": "before"}}  # really down
    network.link(b, a)  # back, dialled the other way round
    await network.until(network.converged, "catch-up after the link was down")
    assert b.contacts(a) == {"c1": {"name": "during, on a"}, "c2": {"name": "new on a"}}
    assert a.contacts(b) == {"d1": {"name": "during, on b"}}


async def test_a_peer_back_in_step_leaves_no_cursor_to_store(network: Network) -> None:
    """A node holding 100,000 cases stored every cursor of a peer each time it reconnected, changed or not."""
    a, b = network.member("a"), network.member("b")
    link = network.link(a, b)
    a.put("c1", name="one")
    b.put("d1", name="two")
    await network.until(network.converged, "first sync")
    await network.until(lambda: a.engine.cursors[b.node_id].get(a.own_doc) == {a.node_id: 1}, "b's ack")
    await network.until(lambda: b.engine.cursors[a.node_id].get(b.own_doc) == {b.node_id: 1}, "a's ack")
    await link.down()
    a.engine.dirty_cursors.clear()
    b.engine.dirty_cursors.clear()
    network.link(b, a)
    await network.until(lambda: a.engine.is_connected(b.node_id) and b.engine.is_connected(a.node_id), "back")
    await asyncio.sleep(0.05)  # the complete version lists exchanged
    assert not a.engine.dirty_cursors[b.node_id] and not b.engine.dirty_cursors[a.node_id]
    a.put("c1", name="changed")
    await network.until(lambda: b.contacts(a) == {"c1": {"name": "changed"}}, "the next edit")
    await network.until(lambda: a.engine.cursors[b.node_id].get(a.own_doc) == {a.node_id: 2}, "b's ack")
    assert a.own_doc in a.engine.dirty_cursors[b.node_id]


@pytest.mark.parametrize("older", ["dialer", "acceptor"])
async def test_a_node_that_speaks_only_protocol_1_still_converges(network: Network, older: str) -> None:
    a, b = network.member("a"), network.member("b")
    (a if older == "dialer" else b).engine.speaks = 1  # a node not yet upgraded
    a.put("c0", name="before the link")
    link = network.link(a, b)
    await network.until(network.converged, "catch-up")
    a.put("c1", name="live")
    b.put("d1", name="the other way")
    await network.until(network.converged, "live edits")
    assert b.contacts(a) == {"c0": {"name": "before the link"}, "c1": {"name": "live"}}
    assert a.contacts(b) == {"d1": {"name": "the other way"}}
    for member in (a, b):
        payloads = [data for name, data in link.sent if name == member.name]
        assert payloads and all(_payload(link, member, data)[:1] == b"{" for data in payloads)  # JSON throughout
    assert set(link.docs_sent_by(a, network.trusted)) == {a.own_doc}
    assert a.rejections.records == b.rejections.records == []


def _payload(link: Link, sender: Member, data: bytes) -> bytes:
    other = link.acceptor if sender is link.dialer else link.dialer
    return open_envelope(other.identity, data, sender_sign_key=lambda n: sender.identity.public.sign_key).payload


async def test_a_live_edit_is_not_echoed_back_to_its_author(network: Network) -> None:
    a, b = network.member("a"), network.member("b")
    link = network.link(a, b)
    await network.until(lambda: b.engine.is_connected(a.node_id), "link up")
    a.put("c1", name="Somchai")
    await network.until(network.converged, "b to hold the edit")
    await network.until(lambda: a.engine.cursors[b.node_id].get(a.own_doc) == {a.node_id: 1}, "b's ack")
    assert a.own_doc in link.docs_sent_by(a, network.trusted)
    assert a.own_doc not in link.docs_sent_by(b, network.trusted)


async def test_a_burst_of_live_edits_sends_each_entry_about_once(network: Network) -> None:
    a, b = network.member("a"), network.member("b")
    link = network.link(a, b)
    a.put("c0", name="first")
    await network.until(lambda: a.engine.cursors[b.node_id].get(a.own_doc) == {a.node_id: 1}, "first sync")
    already = len(link.updates_sent_by(a, network.trusted))
    burst = 20
    for i in range(burst):  # no await in between: as fast as a bulk import makes them
        a.put(f"c{i}", name=str(i))
    await network.until(lambda: a.engine.cursors[b.node_id].get(a.own_doc) == {a.node_id: 1 + burst}, "last ack")
    await asyncio.sleep(0.05)  # let the writers put what was queued on the wire
    assert b.contacts(a) == a.contacts(a)
    sent = sum(len(message.entries) for message in link.updates_sent_by(a, network.trusted)[already:])
    assert burst <= sent <= 2 * burst


async def hub_holding(network: Network, count: int) -> tuple[list[Member], Member]:
    """`count` members linked to a hub that holds each one's contact list."""
    members = [network.member(f"m{i}") for i in range(count)]
    hub = network.member("hub")
    for i, member in enumerate(members):
        member.put("c", name=f"officer {i}")
        network.link(member, hub)
    await network.until(lambda: all(hub.contacts(m) == m.contacts(m) for m in members), "the hub to hold them all")
    return members, hub


class LoopTurns:
    """Counts the turns of the event loop while entered: what happens within one turn sees one count."""

    def __init__(self) -> None:
        self.turns = 0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            self.turns += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> LoopTurns:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def test_a_catch_up_larger_than_the_outgoing_queue_is_sent_as_the_link_drains(
    network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Queued all at once, a catch-up of more documents than the queue holds dropped the peer, which asked again
    on its next session, and so on for ever: it must be queued a batch at a time instead."""
    members, hub = await hub_holding(network, 6)
    monkeypatch.setattr(sync.engine, "MAX_QUEUED_MESSAGES", 4)
    monkeypatch.setattr(sync.engine, "CATCH_UP_BATCH", 1)
    monkeypatch.setattr(sync.engine, "CATCH_UP_REFILL_BELOW", 2)
    late = network.member("late")
    link = network.link(late, hub)
    await network.until(lambda: all(late.contacts(m) == m.contacts(m) for m in members), "the late joiner to catch up")
    assert not any(task.done() for task in link.tasks), "the session stayed up"
    assert hub.engine.is_connected(late.node_id) and late.rejections.records == hub.rejections.records == []
    sent = sum(len(message.entries) for message in link.updates_sent_by(hub, network.trusted))
    assert sent == len(members)  # each document once


async def test_a_catch_up_lets_the_event_loop_run_while_it_reads_a_batch(
    network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node sending a catch-up of 80,000 cases answered nothing else for seconds: each batch was read in one
    go, and the writer went on to the next without letting the loop run. Now the loop runs every few documents."""
    members, hub = await hub_holding(network, 8)
    monkeypatch.setattr(sync.engine, "CATCH_UP_SLICE", 2)
    loop = LoopTurns()
    seen: list[int] = []  # the loop's turns each time the hub reads a document for the late joiner

    real = hub.store.entries_missing

    def entries_missing(doc_id: str, have: VersionVector, *, merge_own: bool = False) -> list[SignedUpdate]:
        if sys._getframe(1).f_code.co_name == "_refill" and doc_id.startswith("directory/") and not have:
            seen.append(loop.turns)  # the catch-up's reads only: another task's read may share a turn with a slice
        return real(doc_id, have, merge_own=merge_own)

    monkeypatch.setattr(hub.store, "entries_missing", entries_missing)
    async with loop:
        late = network.member("late")
        network.link(late, hub)
        await network.until(lambda: all(late.contacts(m) == m.contacts(m) for m in members), "the catch-up")
    assert len(seen) >= len(members)
    assert max(Counter(seen).values()) <= 2  # two documents a slice, then the loop runs (the loop turns)


async def test_messages_already_received_are_handled_a_turn_of_the_loop_each(
    network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new peer catching up read every buffered message before the loop ran again (its API waited 1.5 s); a
    message that took long (here: any) now lets the loop run before the next."""
    members, hub = await hub_holding(network, 6)
    monkeypatch.setattr(sync.engine, "RECEIVE_TURN", -1.0)
    late = network.member("late")
    loop = LoopTurns()
    seen: list[int] = []

    real = late.engine._open

    def receive(conn: Any, data: bytes) -> Any:
        seen.append(loop.turns)
        return real(conn, data)

    monkeypatch.setattr(late.engine, "_open", receive)
    async with loop:
        link = network.link(late, hub)
        await network.until(lambda: all(late.contacts(m) == m.contacts(m) for m in members), "the catch-up")
    assert len(seen) >= 3 and link.sent
    assert max(Counter(seen).values()) == 1  # never two messages in one turn of the loop


async def test_a_bundle_is_handled_over_several_turns_of_the_loop_and_commits_once(
    network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API of a node catching up waited 0.8 s at times: each turn of its loop handled a whole bundle (about 130
    cases). Now the loop runs every RECEIVE_TURN within a bundle, and what the bundle stores still commits once."""
    members, hub = await hub_holding(network, 8)
    monkeypatch.setattr(sync.engine, "RECEIVE_TURN", -1.0)
    late = network.member("late")
    loop = LoopTurns()
    messages = 0
    seen: list[tuple[int, int, int]] = []  # per document received: its message, the loop's turn, the open group

    real_open, real_dispatch = late.engine._open, late.engine._dispatch

    def opened(conn: Any, data: bytes) -> Any:
        nonlocal messages
        messages += 1
        return real_open(conn, data)

    def dispatch(conn: Any, event: Any) -> None:
        real_dispatch(conn, event)
        if type(event).__name__ == "UpdatesReceived":
            seen.append((messages, loop.turns, late.db.commit_mark()))

    monkeypatch.setattr(late.engine, "_open", opened)
    monkeypatch.setattr(late.engine, "_dispatch", dispatch)
    late.db.group_commits(asyncio.get_running_loop())  # as a running node does, its engine waiting on its commits
    monkeypatch.setattr(late.engine, "_durability", late.db)
    try:
        async with loop:
            network.link(late, hub)
            await network.until(lambda: all(late.contacts(m) == m.contacts(m) for m in members), "the catch-up")
    finally:
        late.db.stop_grouping()
    by_message: dict[int, list[tuple[int, int]]] = {}
    for message, turn, group in seen:
        by_message.setdefault(message, []).append((turn, group))
    bundle = max(by_message.values(), key=len)
    assert len(bundle) >= len(members)  # the catch-up came as one bundle
    assert len({turn for turn, _ in bundle}) == len(bundle)  # the loop ran between its documents
    assert len({group for _, group in bundle}) == 1  # and they were stored in one transaction


async def test_the_engine_remembers_what_each_peer_holds(network: Network) -> None:
    a, b = network.member("a"), network.member("b")
    network.link(a, b)
    a.put("c1", name="one")
    a.put("c2", name="two")
    await network.until(lambda: a.engine.cursors[b.node_id].get(a.own_doc) == {a.node_id: 2}, "b's cursor")
    assert a.own_doc in a.engine.dirty_cursors[b.node_id]
    assert b.store.versions(a.own_doc) == {a.node_id: 2}


# -- refused input -------------------------------------------------------------------------------------------


async def linked_and_synced(network: Network) -> tuple[Member, Member]:
    a, b = network.member("a"), network.member("b")
    network.link(b, a)
    a.put("c1", name="Somchai")
    await network.until(network.converged, "first sync")
    await network.until(lambda: b.engine.cursors[a.node_id].get(a.own_doc) == {a.node_id: 1}, "a's versions")
    return a, b


def signed_by_another(signer: Member, author: Member, seq: int, body: bytes) -> SignedUpdate:
    """An update to `author`'s part that claims `author` wrote it, signed by `signer` over exactly those fields."""
    message = _signed_message(doc_id=author.own_doc, author_id=author.node_id, seq_from=seq, seq_to=seq, update=body)
    return SignedUpdate(author.own_doc, author.node_id, seq, seq, body, signer.identity.sign(message))


def forged_body() -> bytes:
    doc = CrdtDocument()
    body = doc.change(lambda change: change.put_record("contacts", "c1", {"name": "Forged"}))
    assert body is not None
    return body


async def test_a_node_cannot_write_another_nodes_directory_part(network: Network) -> None:
    a, b = await linked_and_synced(network)
    before = (a.contacts(a), a.log_rows(a.own_doc))
    body = forged_body()
    # b signs, as itself, an update to a's part of the directory; its engine pushes it to a.
    forged = SignedUpdate(
        a.own_doc, b.node_id, 1, 1, body, sign_update(b.identity, doc_id=a.own_doc, seq_from=1, seq_to=1, update=body)
    )
    b.engine.push([forged], None)
    await network.until(lambda: a.rejections.records != [], "a to refuse the update")
    assert a.rejections.reasons == ["not_permitted"]
    assert a.rejections.records[0][0] == b.node_id
    assert (a.contacts(a), a.log_rows(a.own_doc)) == before
    assert a.store.versions(a.own_doc) == {a.node_id: 1}


async def test_a_refused_update_keeps_the_session_and_what_follows_is_applied(network: Network) -> None:
    """Decision 0014: an authentic message whose content breaks a document's rules is refused on its own; the
    session it came on stays open, so the peer's other documents keep flowing."""
    a, b = await linked_and_synced(network)
    session = a.engine._connections[b.node_id][-1]
    body = forged_body()
    forged = SignedUpdate(
        a.own_doc, b.node_id, 1, 1, body, sign_update(b.identity, doc_id=a.own_doc, seq_from=1, seq_to=1, update=body)
    )
    b.engine.push([forged], None)
    await network.until(lambda: a.rejections.records != [], "a to refuse the update")
    b.put("k1", name="Sokha")
    await network.until(lambda: a.contacts(b) == {"k1": {"name": "Sokha"}}, "b's next edit to reach a")
    assert a.rejections.reasons == ["not_permitted"]
    assert a.engine._connections[b.node_id] == [session]  # the same session, never closed and opened again


async def test_an_update_not_signed_by_its_claimed_author_is_refused(network: Network) -> None:
    a, b = await linked_and_synced(network)
    before = (a.contacts(a), a.log_rows(a.own_doc))
    body = forged_body()
    # Claims to be a's update number 2 of a's own part, signed with b's key over exactly those fields.
    forged = signed_by_another(b, a, 2, body)
    # Sent as a modified node would: an honest engine never sends a node entries in its own name.
    b.engine._send(b.engine._connections[a.node_id][-1], Updates(doc_id=a.own_doc, entries=(forged,)))
    await network.until(lambda: a.rejections.records != [], "a to refuse the update")
    assert a.rejections.reasons == ["bad_update_signature"]
    assert (a.contacts(a), a.log_rows(a.own_doc)) == before
    assert a.store.versions(a.own_doc) == {a.node_id: 1}


async def test_a_forged_update_relayed_for_a_third_node_is_refused(network: Network) -> None:
    a, b = await linked_and_synced(network)
    c = network.member("c")  # trusted by a and b, never connected
    body = forged_body()
    forged = signed_by_another(b, c, 1, body)
    b.engine.push([forged], None)
    await network.until(lambda: a.rejections.records != [], "a to refuse the update")
    assert a.rejections.reasons == ["bad_update_signature"]
    assert a.store.get(c.own_doc) is None
    assert a.log_rows(c.own_doc) == []


async def test_a_document_the_node_does_not_share_is_refused(network: Network) -> None:
    a = network.member("a")
    b = network.member("b", shares=lambda doc_id, peer_id: True)  # misconfigured: shares everything
    network.link(b, a)
    await network.until(lambda: a.engine.is_connected(b.node_id), "link up")
    body = forged_body()
    doc = "case/TH-2024-0001"
    entry = SignedUpdate(
        doc, b.node_id, 1, 1, body, sign_update(b.identity, doc_id=doc, seq_from=1, seq_to=1, update=body)
    )
    b.engine.push([entry], None)
    await network.until(lambda: a.rejections.records != [], "a to refuse the update")
    assert a.rejections.reasons == ["not_entitled"]
    assert a.store.doc_ids() == []


async def test_a_replayed_envelope_ends_the_session_and_is_recorded(network: Network) -> None:
    a, b = network.member("a"), network.member("b")
    link = network.link(a, b)
    b.put("x", name="Nguyen")
    await network.until(network.converged, "first sync")
    _, replayed = next((name, data) for name, data in reversed(link.sent) if name == "b")
    link.inject(a, replayed)
    await asyncio.gather(*link.tasks)
    assert a.rejections.records[0][:2] == (b.node_id, "replay")
    assert a.rejections.reasons == ["replay"]
    assert not a.engine.is_connected(b.node_id) and not b.engine.is_connected(a.node_id)
    # Nothing was lost: a new session carries on where the last one stopped.
    b.put("y", name="after")
    network.link(a, b)
    await network.until(network.converged, "sync after reconnecting")
    assert set(a.contacts(b)) == {"x", "y"}


async def test_an_untrusted_node_cannot_open_a_session(network: Network) -> None:
    a, stranger = network.member("a"), network.member("stranger")
    del network.trusted[stranger.node_id]  # a does not know it; it still knows a
    link = network.link(stranger, a)
    await asyncio.gather(*link.tasks)
    assert a.rejections.reasons == ["untrusted_sender"]
    assert a.engine.connected_peers() == []
    assert [name for name, _ in link.sent] == ["stranger"]  # a said nothing back


# -- mail (through a relay) ----------------------------------------------------------------------------------


class MailRelay:
    """The relay's behaviour as the engine sees it: envelopes in, the same envelopes out, per recipient."""

    def __init__(self) -> None:
        self.boxes: dict[str, list[bytes]] = {}
        self.seen: dict[tuple[str, bytes], int] = {}
        self.streams: dict[tuple[str, str], tuple[bytes, int]] = {}

    def leave(self, sender: Member, peer: Member, *, now: float = 1000.0) -> MailPlan:
        """One "leave" half-round of `sender` for `peer`, with whatever replies are pending for it."""
        link = sender.pending.pop(peer.node_id, None) or MailLink(peer.node_id)
        plan = sender.engine.mail_for(link, now=now)
        stream, seq = self.streams.get((sender.node_id, peer.node_id), (new_stream(), 0))
        keys = PeerKeys(peer.node_id, peer.identity.public.sign_key, peer.identity.public.kx_key)
        for message in plan.messages:
            seq += 1
            self.boxes.setdefault(peer.node_id, []).append(
                seal_mail(sender.identity, keys, stream=stream, seq=seq, message=message)
            )
        self.streams[(sender.node_id, peer.node_id)] = (stream, seq)
        sender.engine.mail_delivered(peer.node_id, plan, now=now)
        return plan

    def collect(self, member: Member, trusted: Callable[[str], PeerKeys | None]) -> list[str]:
        """Open and act on everything left for `member`; the rejection reasons, if any."""
        problems = []
        for data in self.boxes.pop(member.node_id, []):
            try:
                mail = open_mail(
                    member.identity,
                    data,
                    sign_key_of=lambda n: k.sign_key if (k := trusted(n)) else None,
                    last_seq=lambda sender, stream: self.seen.get((sender, stream), 0),
                )
            except EnvelopeRejected as exc:
                problems.append(exc.reason.value)
                continue
            link = member.pending.setdefault(mail.sender, MailLink(mail.sender))
            member.engine.mail_received(link, mail.message)
            self.seen[(mail.sender, mail.stream)] = mail.seq
        return problems


async def test_two_nodes_never_linked_converge_through_mail(network: Network) -> None:
    a, b = network.member("a"), network.member("b")
    relay = MailRelay()
    a.put("k1", name="Somchai")
    b.put("k2", name="Lan")
    relay.leave(a, b)  # a is online alone: leaves its versions and everything b may lack
    assert relay.collect(b, network.trusted.get) == []  # later, b alone: takes a's part, learns what a holds
    relay.leave(b, a)
    assert relay.collect(a, network.trusted.get) == []
    assert network.converged()
    # a now holds b's entry too, so it says so once; after that the rounds carry nothing at all.
    assert [type(m) for m in relay.leave(a, b).messages] == [Versions]
    assert relay.leave(a, b).messages == []
    relay.collect(b, network.trusted.get)
    assert relay.leave(b, a).messages == []
    # A version list is mailed again after an hour, in case the relay lost it.
    assert [type(m) for m in relay.leave(a, b, now=1000.0 + 3600).messages] == [Versions]


async def test_mail_is_mailed_once_and_a_replay_is_refused(network: Network) -> None:
    a, b = network.member("a"), network.member("b")
    relay = MailRelay()
    a.put("k1", name="Somchai")
    relay.leave(a, b)
    copy = list(relay.boxes[b.node_id])
    assert relay.collect(b, network.trusted.get) == []
    relay.boxes[b.node_id] = copy  # the relay (or an attacker) delivers the same envelopes again
    assert set(relay.collect(b, network.trusted.get)) == {"replay"}
    a.put("k2", name="Niran")
    plan = relay.leave(a, b)
    sent = [e for m in plan.messages if isinstance(m, Updates) for e in m.entries]
    assert [(e.seq_from, e.seq_to) for e in sent] == [(2, 2)], "only the new entry is mailed"
    relay.collect(b, network.trusted.get)
    assert b.contacts(a) == a.contacts(a)


async def test_a_session_envelope_is_not_accepted_as_mail(network: Network) -> None:
    a, b = network.member("a"), network.member("b")
    keys = PeerKeys(b.node_id, b.identity.public.sign_key, b.identity.public.kx_key)
    session_like = seal(
        a.identity,
        recipient_id=b.node_id,
        recipient_kx_key=keys.kx_key,
        topic="",
        stream=os.urandom(16),
        seq=1,
        payload=encode(Versions(docs={}, complete=True)),
    )
    with pytest.raises(EnvelopeRejected) as refused:
        open_mail(b.identity, session_like, sign_key_of=lambda n: a.identity.public.sign_key, last_seq=lambda s, t: 0)
    assert refused.value.reason.value == "replay"


async def test_mail_from_an_untrusted_node_is_refused(network: Network) -> None:
    b = network.member("b")
    stranger = Identity.generate()
    keys = PeerKeys(b.node_id, b.identity.public.sign_key, b.identity.public.kx_key)
    data = seal_mail(stranger, keys, stream=new_stream(), seq=1, message=Versions(docs={}, complete=True))
    with pytest.raises(EnvelopeRejected) as refused:
        open_mail(
            b.identity,
            data,
            sign_key_of=lambda n: network.trusted[n].sign_key if n in network.trusted else None,
            last_seq=lambda s, t: 0,
        )
    assert refused.value.reason.value == "untrusted_sender"
