"""Three real nodes converge whatever the interleaving of edits, message deliveries, dropped and redialled
sessions and restarts, as their sync engines see them.

tests/store/test_store_convergence.py checks the document store alone (entries handed over directly). Here the
whole node is in the loop: each node is opened from its home as the server opens it (`open_node`), commits
are grouped per loop turn as in a running node, and its real `SyncEngine` serves sessions over in-memory links
whose every message the state machine delivers when it chooses. Each direction of a session is a FIFO of
envelopes: nothing is reordered, but a message may wait while others flow elsewhere, a session may be cut with
messages still on the wire (they are lost), a pair may hold two sessions at once (both nodes dialled), and a
node may restart with its links cut. The edits are the node's own: its directory contacts, and notes and
status changes on one case shared by nodes 0 (requesting) and 1 (requested), which node 2 must never receive.

After every step: no input was refused, node 2 holds no case, and every replica of a directory shows exactly
what its owner had after the number of edits the replica's version vector claims. At the end every pair is
connected and every message delivered until nothing moves; then all three nodes hold the same documents (equal
version vectors, equal JSON), with every acknowledged edit in them.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from nodeproc import PASSPHRASE, THREE_AUTHORITIES, init_node, open_trusting

import node.runtime
from crypto.keystore import NodeSecrets, load_keyfile
from node import workflow
from node.cases import ATTACHMENTS, HISTORY, MAIN, REFS, case_doc
from node.policy import directory_doc
from node.runtime import Node, open_node
from sync.protocol import Role

PAIRS = ((0, 1), (0, 2), (1, 2))
QUIET_TURNS = 8  # loop turns in which nothing moved before the nodes count as idle
MAX_TURNS = 20_000  # a settle that never becomes idle is a livelock, not a slow test
MAX_DRAIN_ROUNDS = 200

Records = dict[str, dict[str, Any]]


class Wire:
    """One direction of one session: what the sender wrote and the receiver was not yet given, in order."""

    def __init__(self) -> None:
        self.sent: deque[bytes] = deque()
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.consumed = 0
        self.written = 0

    async def incoming(self) -> AsyncIterator[bytes]:
        while True:
            item = await self.inbox.get()
            if item is None:
                return
            self.consumed += 1
            yield item


@dataclass
class Channel:
    """One session between two nodes (a WebSocket): two wires, cut for both sides at once."""

    dialer: int
    acceptor: int
    wires: dict[int, Wire] = field(default_factory=dict)  # by receiving node
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    closed: bool = False

    def close(self) -> None:
        """The link is gone: what is still on the wire is lost, and both readers see the end."""
        if self.closed:
            return
        self.closed = True
        for wire in self.wires.values():
            wire.sent.clear()
            wire.inbox.put_nowait(None)

    def pending(self) -> int:
        return sum(len(w.sent) for w in self.wires.values())


class Interleavings(RuleBasedStateMachine):
    template: Path  # three node homes trusting each other, copied afresh for each example (see `check`)

    def __init__(self) -> None:
        super().__init__()
        template = self.template
        self.base = Path(tempfile.mkdtemp(prefix="seajust-interleavings-"))
        self.homes = [self.base / str(i) for i in range(3)]
        for i, home in enumerate(self.homes):
            shutil.copytree(template / str(i), home)
        self.loop = asyncio.new_event_loop()
        self.nodes: list[Node] = []
        self.channels: list[Channel] = []
        # history[owner][n]: the owner's contacts after its n-th directory edit (what a replica at n must show).
        self.history: list[dict[int, Records]] = [{0: {}} for _ in range(3)]
        self.contacts: list[list[str]] = [[] for _ in range(3)]  # each node's live contact ids, for edits
        self.acked_entries: set[str] = set()  # case history entries whose commit was acknowledged
        self.delivered = 0  # messages delivered by the `deliver` rule (for the statistics)
        self.run(self._open_all())

    # -- the loop and the links ----------------------------------------------------------------------------

    def run(self, step: Any) -> Any:
        return self.loop.run_until_complete(step)

    async def _open_all(self) -> None:
        for home in self.homes:
            self.nodes.append(self._open(home))
        th, vn = self.nodes[0], self.nodes[1]
        mark = th.db.commit_mark()
        created = th.cases.create(
            {"kind": "mla", "counterpart": vn.node_id, "reference": "TH-1", "summary": "original", "languages": ["en"]},
            actor="tests",
        )
        th.cases.transition(created["id"], {"to": "sent", "force": True, "reason": "test"}, actor="tests")
        await th.db.durable(mark)
        self.case_id = created["id"]
        self.case_doc = case_doc(self.case_id)
        self.acked_entries |= {str(e["id"]) for e in th.store.get(self.case_doc).items(HISTORY)}  # type: ignore[union-attr]

    def _open(self, home: Path) -> Node:
        opened = open_node(home, PASSPHRASE)
        opened.db.group_commits(asyncio.get_running_loop())  # as node.app's _group_commits_ctx does
        return opened

    def _signature(self) -> tuple[int, ...]:
        moved = [sum(w.written + w.consumed for w in c.wires.values()) for c in self.channels]
        return (
            sum(moved),
            len(self.channels),
            sum(task.done() for c in self.channels for task in c.tasks),
            *(n.db.commit_mark() for n in self.nodes),
        )

    async def _settle(self) -> None:
        """Run the loop until nothing has moved for a few turns: every delivered message is handled, every
        commit done, every queued message written to its wire (where it waits for delivery)."""
        last: tuple[int, ...] | None = None
        quiet = 0
        for _ in range(MAX_TURNS):
            await asyncio.sleep(0)
            now = self._signature()
            busy = any(not w.inbox.empty() for c in self.channels if not c.closed for w in c.wires.values())
            if now == last and not busy:
                quiet += 1
                if quiet >= QUIET_TURNS:
                    return
            else:
                quiet = 0
                last = now
        raise AssertionError("the nodes never became idle")

    def _connect(self, dialer: int, acceptor: int) -> Channel:
        channel = Channel(dialer, acceptor, {dialer: Wire(), acceptor: Wire()})

        def sender(to: int) -> Callable[[bytes], Any]:
            wire = channel.wires[to]

            async def send(data: bytes) -> None:
                if channel.closed:
                    raise ConnectionResetError("the link is gone")
                wire.sent.append(data)
                wire.written += 1

            return send

        async def close() -> None:
            channel.close()

        async def serve(me: int, other: int, role: Role) -> None:
            engine = self.nodes[me].engine
            expected = self.nodes[other].node_id if role is Role.DIALER else None
            try:
                await engine.serve(
                    engine.new_session(role, expected), channel.wires[me].incoming(), sender(other), close
                )
            finally:
                channel.close()  # as the transport closes its WebSocket when `serve` returns

        channel.tasks = [
            asyncio.create_task(serve(dialer, acceptor, Role.DIALER)),
            asyncio.create_task(serve(acceptor, dialer, Role.ACCEPTOR)),
        ]
        self.channels.append(channel)
        return channel

    def _live(self, pair: tuple[int, int] | None = None) -> list[Channel]:
        self.channels = [c for c in self.channels if not (c.closed and all(t.done() for t in c.tasks))]
        return [c for c in self.channels if not c.closed and (pair is None or {c.dialer, c.acceptor} == set(pair))]

    async def _cut(self, channel: Channel) -> None:
        channel.close()
        await asyncio.gather(*channel.tasks)

    def _deliver(self, channel: Channel, to: int, count: int) -> int:
        wire = channel.wires[to]
        moved = 0
        while wire.sent and moved < count:
            wire.inbox.put_nowait(wire.sent.popleft())
            moved += 1
        return moved

    # -- edits ---------------------------------------------------------------------------------------------

    async def _acknowledged(self, who: int, edit: Callable[[Node], Any]) -> Any:
        """Make an edit as the API does: the answer waits for the commit of what it wrote."""
        node = self.nodes[who]
        mark = node.db.commit_mark()
        result = edit(node)
        await node.db.durable(mark)
        return result

    def _record_own(self, who: int) -> None:
        node = self.nodes[who]
        own = directory_doc(node.node_id)
        seen = node.store.versions(own).get(node.node_id, 0)
        doc = node.store.get(own)
        records = doc.records("contacts") if doc else {}
        if seen in self.history[who]:
            assert self.history[who][seen] == records, "the same version shows other contents"
        self.history[who][seen] = records

    @rule(who=st.integers(0, 2), name=st.sampled_from(["Somchai", "Lan", "Maria", "Anh"]))
    def create_contact(self, who: int, name: str) -> None:
        created = self.run(self._acknowledged(who, lambda n: n.directory.create({"name": name}, actor="officer")))
        self.contacts[who].append(created["id"])
        self._record_own(who)

    @precondition(lambda self: any(self.contacts))
    @rule(data=st.data(), phone=st.sampled_from(["+66 1", "+84 2", ""]), title=st.sampled_from(["Judge", "Clerk"]))
    def update_contact(self, data: st.DataObject, phone: str, title: str) -> None:
        who = data.draw(st.sampled_from([i for i in range(3) if self.contacts[i]]), label="who")
        contact = data.draw(st.sampled_from(self.contacts[who]), label="contact")
        self.run(
            self._acknowledged(
                who, lambda n: n.directory.update(contact, {"phone": phone, "title": title}, actor="officer")
            )
        )
        self._record_own(who)

    @precondition(lambda self: any(self.contacts))
    @rule(data=st.data())
    def delete_contact(self, data: st.DataObject) -> None:
        who = data.draw(st.sampled_from([i for i in range(3) if self.contacts[i]]), label="who")
        contact = data.draw(st.sampled_from(self.contacts[who]), label="contact")
        self.run(self._acknowledged(who, lambda n: n.directory.delete(contact, actor="officer")))
        self.contacts[who].remove(contact)
        self._record_own(who)

    def _holds_case(self, who: int) -> bool:
        return self.nodes[who].store.get(self.case_doc) is not None

    def _history_ids(self, who: int) -> set[str]:
        doc = self.nodes[who].store.get(self.case_doc)
        return {str(e["id"]) for e in doc.items(HISTORY)} if doc else set()

    @rule(who=st.integers(0, 1), text=st.sampled_from(["asked for records", "called the prosecutor", "ok"]))
    def case_note(self, who: int, text: str) -> None:
        if not self._holds_case(who):
            return  # node 1 has not received the case yet
        entry = self.run(self._acknowledged(who, lambda n: n.cases.add_note(self.case_id, {"text": text}, actor="o")))
        self.acked_entries.add(str(entry["id"]))

    @rule(who=st.integers(0, 1), choice=st.integers(0, 3))
    def case_transition(self, who: int, choice: int) -> None:
        """One of the moves the node's side may make from the status it sees (none: nothing happens)."""
        if self._holds_case(who):
            self.acked_entries |= self.run(self._acknowledged(who, lambda n: self._transition(who, n, choice)))

    def _transition(self, who: int, opened: Node, choice: int) -> set[str]:
        """Read the status and move on in one go: delivered messages may change it at any loop turn."""
        view = opened.cases.get(self.case_id)
        moves = sorted(
            to
            for (frm, to), sides in workflow.transitions_for(view["kind"]).items()
            if frm == view["status"] and view["side"] in sides
        )
        if not moves:
            return set()
        before = self._history_ids(who)
        opened.cases.transition(self.case_id, {"to": moves[choice % len(moves)], "reason": "test"}, actor="o")
        added = self._history_ids(who) - before
        assert len(added) == 1
        return added

    # -- links ---------------------------------------------------------------------------------------------

    @initialize(first=st.tuples(st.booleans(), st.booleans(), st.booleans()), both=st.tuples(*[st.booleans()] * 3))
    def dial_every_pair(self, first: tuple[bool, bool, bool], both: tuple[bool, bool, bool]) -> None:
        """The nodes start, each pair dialled one way or the other, or both ways at once (the race of two nodes
        starting together: two sessions); nothing is delivered yet."""
        for pair, dialer_first, twice in zip(PAIRS, first, both, strict=True):
            dialer, acceptor = pair if dialer_first else pair[::-1]
            self.run(self._dial(dialer, acceptor))
            if twice:
                self.run(self._dial(acceptor, dialer))

    @rule(pair=st.sampled_from(PAIRS), dialer_first=st.booleans())
    def dial(self, pair: tuple[int, int], dialer_first: bool) -> None:
        """A node dials a peer; at most two sessions per pair (each node dialled the other)."""
        live = len(self._live(pair))
        if live >= 2:
            return
        if live == 1:
            _note("a pair with two sessions at once")
        dialer, acceptor = pair if dialer_first else pair[::-1]
        self.run(self._dial(dialer, acceptor))

    async def _dial(self, dialer: int, acceptor: int) -> None:
        self._connect(dialer, acceptor)
        await self._settle()

    @rule(data=st.data(), count=st.integers(1, 8), settle=st.booleans())
    def deliver(self, data: st.DataObject, count: int, settle: bool) -> None:
        """The next `count` messages of one direction of one session reach their reader; unless `settle`,
        the next step begins before it has read them (same loop turns as the next edit or delivery)."""
        waiting = [(c, to) for c in self._live() for to, w in c.wires.items() if w.sent]
        if not waiting:
            return
        channel, to = data.draw(st.sampled_from(waiting), label="wire")
        self.delivered += self._deliver(channel, to, count)
        if settle:
            self.run(self._settle())

    @rule(pair=st.sampled_from(PAIRS))
    def sync_pair(self, pair: tuple[int, int]) -> None:
        """Every session of one pair delivers everything, both ways, until nothing moves between them."""
        self.run(self._sync_pair(pair))

    async def _sync_pair(self, pair: tuple[int, int]) -> None:
        for _ in range(MAX_DRAIN_ROUNDS):
            await self._settle()
            live = self._live(pair)
            if not any(c.pending() for c in live):
                return
            for channel in live:
                for to, wire in channel.wires.items():
                    self.delivered += self._deliver(channel, to, len(wire.sent))
        raise AssertionError("messages still flow between two nodes after many rounds")

    @rule()
    def deliver_one_everywhere(self) -> None:
        """The next message on every wire arrives, all in the same loop turn."""
        for channel in self._live():
            for to in channel.wires:
                self.delivered += self._deliver(channel, to, 1)
        self.run(self._settle())

    @rule(data=st.data(), newest=st.booleans())
    def cut(self, data: st.DataObject, newest: bool) -> None:
        """The network cuts one session (or the newest one of a pair, the one its nodes push on): what is on
        its wires is lost; other sessions of the pair go on."""
        live = self._live()
        if live:
            if newest:
                pair = data.draw(st.sampled_from(PAIRS), label="pair")
                live = self._live(pair)[-1:]
                if not live:
                    return
            channel = data.draw(st.sampled_from(live), label="session")
            self.run(self._cut(channel))
            self.run(self._settle())

    @rule(data=st.data(), dialer_side=st.booleans())
    def disconnect(self, data: st.DataObject, dialer_side: bool) -> None:
        """A node ends its sessions with a peer (`SyncEngine.disconnect`: all of them)."""
        live = self._live()
        if live:
            channel = data.draw(st.sampled_from(live), label="session")
            me, other = (channel.dialer, channel.acceptor) if dialer_side else (channel.acceptor, channel.dialer)
            self.run(self._disconnect(me, other))

    async def _disconnect(self, me: int, other: int) -> None:
        self.nodes[me].engine.disconnect(self.nodes[other].node_id)
        await self._settle()

    @rule(who=st.integers(0, 2), crash=st.booleans())
    def restart(self, who: int, crash: bool) -> None:
        """The node stops (its sessions cut) and opens again from its home. A crash leaves no snapshot and
        does not save the peers' cursors it kept in memory: the node reloads its documents from the log."""
        self.run(self._restart(who, crash))

    async def _restart(self, who: int, crash: bool) -> None:
        for channel in self._live():
            if who in (channel.dialer, channel.acceptor):
                await self._cut(channel)
        await self._settle()
        old = self.nodes[who]
        old.db.stop_grouping()
        if crash:
            old.db.close()
        else:
            old.close()
        self.nodes[who] = self._open(self.homes[who])
        await self._settle()

    # -- checks --------------------------------------------------------------------------------------------

    @invariant()
    def nothing_refused(self) -> None:
        for opened in self.nodes:
            assert opened.rejections.counts == {}, f"{opened.config.name} refused sync input"

    @invariant()
    def the_case_stays_with_its_parties(self) -> None:
        assert self.nodes[2].store.doc_ids("case/") == []

    @invariant()
    def every_directory_replica_shows_a_state_its_owner_had(self) -> None:
        for holder in self.nodes:
            for owner_index, owner in enumerate(self.nodes):
                doc_id = directory_doc(owner.node_id)
                versions = holder.store.versions(doc_id)
                assert set(versions) <= {owner.node_id}, "only the owner writes its part of the directory"
                seen = versions.get(owner.node_id, 0)
                doc = holder.store.get(doc_id)
                assert (doc.records("contacts") if doc else {}) == self.history[owner_index][seen]

    def teardown(self) -> None:
        try:
            if len(self.nodes) == 3:
                _note(f"case at node 1 before the final sync: {self._holds_case(1)}")
                _note(f"case entries acknowledged: {min(len(self.acked_entries), 6)}+")
                _note(f"messages delivered before the final sync: {min(self.delivered // 10 * 10, 50)}+")
                self.run(self._drain())
                self._check_converged()
        finally:
            try:
                self.run(self._close_all())
            finally:
                self.loop.close()
                shutil.rmtree(self.base, ignore_errors=True)

    async def _drain(self) -> None:
        """Connect every pair, then deliver everything until nothing moves."""
        await self._settle()
        for pair in PAIRS:
            if not self._live(pair):
                self._connect(*pair)
        for _ in range(MAX_DRAIN_ROUNDS):
            await self._settle()
            live = self._live()
            if not any(c.pending() for c in live):
                break
            for channel in live:
                for to in channel.wires:
                    self._deliver(channel, to, len(channel.wires[to].sent))
        else:
            raise AssertionError("messages still flow after every pair was drained many times")
        for a, b in PAIRS:
            assert self.nodes[a].engine.is_connected(self.nodes[b].node_id), f"{a} and {b} are not connected"
            assert self.nodes[b].engine.is_connected(self.nodes[a].node_id), f"{b} and {a} are not connected"

    def _check_converged(self) -> None:
        self.nothing_refused()
        self.the_case_stays_with_its_parties()
        doc_ids = sorted(set().union(*(n.store.doc_ids() for n in self.nodes)))
        assert self.case_doc in doc_ids
        for holder in self.nodes[:2]:
            assert holder.store.doc_ids() == doc_ids, "a node lacks a document the others hold"
        assert self.nodes[2].store.doc_ids() == [d for d in doc_ids if d != self.case_doc]
        for doc_id in doc_ids:
            holders = self.nodes[:2] if doc_id == self.case_doc else self.nodes
            first = holders[0]
            for other in holders[1:]:
                assert other.store.versions(doc_id) == first.store.versions(doc_id), f"versions of {doc_id} differ"
                assert _content(other, doc_id) == _content(first, doc_id), f"contents of {doc_id} differ"
        for who, owner in enumerate(self.nodes):
            own = directory_doc(owner.node_id)
            latest = max(self.history[who])
            assert owner.store.versions(own).get(owner.node_id, 0) == latest
            for holder in self.nodes:
                doc = holder.store.get(own)
                assert (doc.records("contacts") if doc else {}) == self.history[who][latest]
            assert set(self.history[who][latest]) == set(self.contacts[who])
        for who in (0, 1):
            assert self.acked_entries <= self._history_ids(who), "an acknowledged case entry is missing"
        status = {self.nodes[who].cases.get(self.case_id)["status"] for who in (0, 1)}
        assert len(status) == 1, "the parties see different statuses"

    async def _close_all(self) -> None:
        for channel in list(self.channels):
            channel.close()
        tasks = [t for c in self.channels for t in c.tasks]
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)
        for opened in self.nodes:
            opened.db.stop_grouping()
            opened.close()


def _note(what: str) -> None:
    """For the statistics of a hypothesis run (not when a test drives the machine step by step)."""
    if currently_in_test_context():
        event(what)


def _content(holder: Node, doc_id: str) -> dict[str, Any]:
    """A document as plain JSON, root by root."""
    doc = holder.store.get(doc_id)
    assert doc is not None, f"{holder.config.name} lacks {doc_id}"
    if doc_id.startswith("directory/"):
        return {"contacts": doc.records("contacts")}
    assert doc_id.startswith("case/"), f"a document this test does not know how to compare: {doc_id}"
    return {
        "main": doc.records(MAIN[0]),
        "refs": doc.records(REFS),
        "attachments": doc.records(ATTACHMENTS),
        "history": doc.items(HISTORY),  # in list order: every replica must order concurrent entries alike
    }


@pytest.fixture
def template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Three node homes trusting each other, made once; each example opens fresh copies of them.

    The key file's passphrase derivation is the slow part of opening a node (a quarter of a second, on
    purpose); every copy has the same key file, so it is unlocked once and the result reused."""
    unlocked: dict[tuple[bytes, str], NodeSecrets] = {}

    def load_once(path: Path, passphrase: str) -> NodeSecrets:
        key = (Path(path).read_bytes(), passphrase)
        if key not in unlocked:
            unlocked[key] = load_keyfile(path, passphrase)
        return unlocked[key]

    monkeypatch.setattr(node.runtime, "load_keyfile", load_once)
    made = [init_node(tmp_path, n, c) for n, c in THREE_AUTHORITIES]
    for opened in open_trusting([p.home for p in made]):
        opened.close()
    base = tmp_path / "template"
    for i, p in enumerate(made):
        shutil.copytree(p.home, base / str(i))
    yield base


def check(template: Path, examples: int, steps: int) -> None:
    class Machine(Interleavings):
        pass

    Machine.template = template
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_three_engines_converge_whatever_the_interleaving(template: Path) -> None:
    check(template, examples=25, steps=30)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_three_engines_converge_whatever_the_interleaving_soak(template: Path) -> None:
    check(template, examples=400, steps=60)


@contextmanager
def driven(template: Path) -> Iterator[Interleavings]:
    """The machine driven step by step by a test (a scenario the machine found, or one it must keep passing)."""

    class Machine(Interleavings):
        pass

    Machine.template = template
    machine = Machine()
    try:
        yield machine
    finally:
        machine.run(machine._close_all())
        machine.loop.close()
        shutil.rmtree(machine.base, ignore_errors=True)


def test_an_entry_lost_with_one_of_two_sessions_still_arrives(template: Path) -> None:
    """Both nodes dialled each other, so a pair has two sessions; a note is pushed on the newest, which the
    network cuts before delivering it. The other session stays up, so nothing redials: the note must still come."""
    with driven(template) as machine:
        machine.dial_every_pair((True, True, True), (False, False, False))
        for pair in PAIRS:
            machine.sync_pair(pair)
        assert machine._holds_case(1)
        machine.dial((0, 1), dialer_first=False)
        machine.sync_pair((0, 1))
        machine.case_note(0, "asked for records")
        newest = machine._live((0, 1))[-1]
        assert newest.pending() == 1  # the note, on the wire to node 1
        machine.run(machine._cut(newest))
        machine.run(machine._drain())
        machine._check_converged()


def test_a_new_document_pushed_on_a_lost_session_still_arrives(template: Path) -> None:
    """Found by the machine above: nodes 0 and 1 dialled each other (two sessions); node 0's first contact, a
    document node 1 holds nothing of, is pushed on the session the network then cuts. The session left must bring
    it: a version list naming only the documents a node holds cannot ask for one it has never seen."""
    with driven(template) as machine:
        machine.dial_every_pair((True, False, False), (True, False, False))
        for _ in range(3):
            machine.deliver_one_everywhere()
        sessions = machine._live((0, 1))
        before = [c.wires[1].written for c in sessions]
        machine.create_contact(0, "Somchai")
        own = directory_doc(machine.nodes[0].node_id)
        assert own not in machine.nodes[1].store.doc_ids()
        carrying = [c for c, n in zip(sessions, before, strict=True) if c.wires[1].written > n]
        assert len(sessions) == 2 and len(carrying) == 1  # the push went on one of the two
        machine.run(machine._cut(carrying[0]))
        machine.run(machine._drain())
        machine._check_converged()
        assert own in machine.nodes[1].store.doc_ids()
