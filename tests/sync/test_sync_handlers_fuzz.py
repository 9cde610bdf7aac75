"""Every sync message handler under hypothesis, inside a real established session.

Three real nodes (Thailand, Viet Nam, the Philippines; real stores on SQLCipher, the real policy and case rules)
first sync for real, engine to engine: Viet Nam then holds Thailand's directory and a case the two share,
and it also holds a case with the Philippines that Thailand must never see. Then "Thailand" opens session
after session with Viet Nam's engine and, in each, sends one well-sealed envelope carrying whatever hypothesis
makes of it: version lists for any documents and authors with any numbers, updates of shared and unshared
documents by any author, signed by the right node, the wrong one or nobody, with CRDT changes that break a
case's rules or bodies that are no CRDT at all, key grants real, forged and garbled, arbitrary payloads and
arbitrary bytes. Whatever comes, Viet Nam's engine:

* never raises (it records a rejection or ignores the input);
* closes the session exactly when the envelope breaks the protocol (and records why); a message that is well
  formed but refused (a forged signature, a document not shared, a bad grant) is recorded and the session goes on;
* changes nothing, in its database or its loaded documents, for an input it rejected (key grants are judged one
  by one: the good ones of a message are kept), and for accepted updates only adds the entries it was sent,
  each signed by its author; whatever Thailand signs, the two sides of a case never change;
* answers only with well-formed messages, and never with a document the peer is not entitled to.

Each session speaks protocol 1 (JSON) or 2 (MessagePack, with bundles), as hypothesis draws; the payload is
encoded in the session's protocol (or is arbitrary bytes of either shape).

Mail left at a relay goes through the node's own per-envelope handler (`open_mail` then
`SyncEngine.mail_received`) under the same properties.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import struct
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from nodeproc import PASSPHRASE, THREE_AUTHORITIES, init_node, open_trusting
from test_sync_messages import PACKABLE

from crypto.authorship import sign_update, verify_update
from crypto.doc_keys import encode_grant, issue_grant, new_doc_key
from crypto.envelope import EnvelopeHeader, OpenedEnvelope, seal
from crypto.errors import CryptoError
from crypto.identity import Identity
from node.cases import case_doc
from node.crdt import CrdtDocument
from node.runtime import Node
from sync.engine import MailLink
from sync.errors import RemoteProtocolError
from sync.mailbox import MAIL_TOPIC, MAX_MAIL_SEQ, new_stream
from sync.messages import Bundle, Grants, Hello, Message, SignedUpdate, Updates, Versions, decode, encode
from sync.protocol import SEALED, HelloCache, Role, SessionState, SyncSession
from sync.relay_frames import FrameError, decode_deposit, decode_mail, encode_deposit, encode_mail

WAIT = 10.0
SOAK_EXAMPLES = int(os.environ.get("SEAJUST_FUZZ_EXAMPLES", "2000"))
FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def examples(normal: int) -> settings:
    return settings(FUZZ, max_examples=normal)


# -- the link --------------------------------------------------------------------------------------------------


class Feed:
    """What an engine reads from the link. `deliver` returns once the engine asks for the next envelope, which
    it does only after fully acting on the last one, or once it stopped reading: no sleeping, no guessing."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.idle = asyncio.Event()

    def __aiter__(self) -> Feed:
        return self

    async def __anext__(self) -> bytes:
        self.idle.set()
        item = await self.queue.get()
        self.idle.clear()
        if item is None:
            raise StopAsyncIteration
        return item

    async def deliver(self, data: bytes, reader: asyncio.Task[None]) -> None:
        self.idle.clear()
        self.queue.put_nowait(data)
        waiter = asyncio.ensure_future(self.idle.wait())
        await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    async def close(self) -> None:
        self.queue.put_nowait(None)


class Outbox:
    """What an engine wrote to the link, in order."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.arrived = asyncio.Event()

    async def send(self, data: bytes) -> None:
        self.sent.append(data)
        self.arrived.set()


class PayloadSwap:
    """Seals exactly as every node does, but can put any payload into the next envelope: a peer whose
    encoder writes what it likes, correctly signed and encrypted."""

    def __init__(self) -> None:
        self.next: bytes | None = None
        self.topic: str | None = None  # ... and any topic

    def seal(
        self,
        sender: Identity,
        *,
        recipient_id: str,
        recipient_kx_key: bytes,
        topic: str,
        stream: bytes,
        seq: int,
        payload: bytes,
    ) -> bytes:
        if self.next is not None:
            payload, self.next = self.next, None
        if self.topic is not None:
            topic, self.topic = self.topic, None
        return SEALED.seal(
            sender,
            recipient_id=recipient_id,
            recipient_kx_key=recipient_kx_key,
            topic=topic,
            stream=stream,
            seq=seq,
            payload=payload,
        )

    def open(self, recipient: Identity, data: bytes, *, sender_sign_key: Any) -> OpenedEnvelope:
        return SEALED.open(recipient, data, sender_sign_key=sender_sign_key)

    def peek(self, data: bytes) -> EnvelopeHeader:
        return SEALED.peek(data)


# -- the three nodes -----------------------------------------------------------------------------------------


@dataclass
class Lab:
    th: Node  # the peer that misbehaves
    vn: Node  # the node under test
    ph: Node  # a third party
    shared_case: str  # TH and VN are its parties
    private_case: str  # VN and PH only: TH must never receive it

    @property
    def identities(self) -> dict[str, Identity]:
        return {n.node_id: n.identity for n in (self.th, self.vn, self.ph)}

    @property
    def doc_ids(self) -> list[str]:
        return sorted({*self.th.store.doc_ids(), *self.vn.store.doc_ids(), *self.ph.store.doc_ids()})


async def until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT):
            while not condition():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def real_sync(dialer: Node, acceptor: Node, done: Callable[[], bool]) -> None:
    """Join the two nodes' engines, as the WebSocket transport would, until `done`; then part them."""
    to_dialer, to_acceptor = Feed(), Feed()

    async def close() -> None:
        await to_dialer.close()
        await to_acceptor.close()

    async def send_to(feed: Feed, data: bytes) -> None:
        feed.queue.put_nowait(data)

    tasks = [
        asyncio.create_task(
            dialer.engine.serve(
                dialer.engine.new_session(Role.DIALER, acceptor.node_id),
                to_dialer,
                lambda data: send_to(to_acceptor, data),
                close,
            )
        ),
        asyncio.create_task(
            acceptor.engine.serve(
                acceptor.engine.new_session(Role.ACCEPTOR), to_acceptor, lambda data: send_to(to_dialer, data), close
            )
        ),
    ]
    try:
        await until(done, f"{acceptor.config.name} and {dialer.config.name} to sync")
    finally:
        await close()
        await asyncio.gather(*tasks)


def new_case(node: Node, counterpart: Node, reference: str) -> str:
    created = node.cases.create(
        {
            "kind": "mla",
            "counterpart": counterpart.node_id,
            "reference": reference,
            "summary": "s",
            "languages": ["en"],
        },
        actor="tests",
    )
    return case_doc(created["id"])


def held_alike(a: Node, b: Node, doc_id: str) -> bool:
    return bool(a.store.versions(doc_id)) and a.store.versions(doc_id) == b.store.versions(doc_id)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    base = tmp_path_factory.mktemp("sync-fuzz")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SEAJUST_PASSPHRASE", PASSPHRASE)
        homes = [init_node(base, n, c).home for n, c in THREE_AUTHORITIES]
    nodes = open_trusting(homes)
    th, vn, ph = nodes
    try:
        th.directory.create({"name": "Somchai", "country": "TH"}, actor="tests")
        ph.directory.create({"name": "Maria", "country": "PH"}, actor="tests")
        shared, private = new_case(th, vn, "TH-1"), new_case(vn, ph, "VN-1")

        async def first_sync() -> None:
            await real_sync(
                th,
                vn,
                lambda: (
                    held_alike(th, vn, shared)
                    and all(held_alike(th, vn, d) for d in th.store.doc_ids() if th.policy.entitled(d, vn.node_id))
                ),
            )
            await real_sync(
                ph,
                th,
                lambda: all(held_alike(ph, th, d) for d in ph.store.doc_ids() if ph.policy.entitled(d, th.node_id)),
            )

        asyncio.run(first_sync())
        yield Lab(th, vn, ph, shared, private)
    finally:
        for node in nodes:
            node.close()


# -- one misbehaving session -------------------------------------------------------------------------------------


def replica_state(node: Node) -> tuple[list[str], dict[str, dict[str, int]], dict[str, bytes]]:
    """Everything a rejected input must leave alone: the database (but the rejection log) and the loaded documents."""
    dump = [line for line in node.db.dump_sql() if not line.startswith('INSERT INTO "rejections"')]
    versions = {d: node.store.versions(d) for d in node.store.doc_ids()}
    content = {d: doc.encode_state() for d in node.store.doc_ids() if (doc := node.store.get(d)) is not None}
    return dump, versions, content


@dataclass
class Outcome:
    closed: bool
    rejected: int  # rejections recorded while the input was handled
    before: tuple[list[str], dict[str, dict[str, int]], dict[str, bytes]]
    after: tuple[list[str], dict[str, dict[str, int]], dict[str, bytes]]
    replies: list[Message]  # all the node under test said in the session after its hello, as the peer reads it


class Session:
    """Thailand's side of one session with Viet Nam's real engine, driven by hand, in `protocol`."""

    def __init__(self, lab: Lab, protocol: int) -> None:
        self.lab = lab
        self.codec = PayloadSwap()
        self.mine = SyncSession(
            lab.th.identity,
            Role.DIALER,
            lab.th.peers.keys,
            hello_cache=HelloCache(),
            expected_peer=lab.vn.node_id,
            codec=self.codec,
            speaks=protocol,
        )
        self.feed, self.outbox = Feed(), Outbox()
        self.theirs = lab.vn.engine.new_session(Role.ACCEPTOR)
        self.task: asyncio.Task[None] | None = None
        self.read = 0

    async def open(self) -> None:
        self.task = asyncio.create_task(
            self.lab.vn.engine.serve(self.theirs, self.feed, self.outbox.send, self.feed.close)
        )
        await self.feed.deliver(self.mine.initiate(), self.task)
        await self.outbox.arrived.wait()
        self.mine.receive(self.outbox.sent[0])
        self.read = 1
        assert self.mine.state is SessionState.ESTABLISHED
        assert self.theirs.protocol == self.mine.protocol
        assert self.lab.vn.engine.is_connected(self.lab.th.node_id)

    def replies(self) -> list[Message]:
        """Decode what the node sent since its hello, as the peer's session does (raising if it is not valid)."""
        found: list[Message] = []
        for data in self.outbox.sent[self.read :]:
            opened = SEALED.open(
                self.lab.th.identity, data, sender_sign_key=lambda n: self.lab.vn.identity.public.sign_key
            )
            found.append(decode(opened.payload))
            self.read += 1
        return found

    async def send(self, make: Callable[[], bytes]) -> Outcome:
        """Put what `make` seals (or raw bytes) on the wire and wait until the engine acted on it."""
        assert self.task is not None
        vn = self.lab.vn
        before = replica_state(vn)
        rejected = sum(vn.rejections.counts.values())
        await self.feed.deliver(make(), self.task)
        closed = self.task.done() or self.theirs.state is SessionState.CLOSED
        if self.task.done():
            assert self.task.exception() is None, "the engine raised"
        return Outcome(
            closed=closed,
            rejected=sum(vn.rejections.counts.values()) - rejected,
            before=before,
            after=replica_state(vn),
            replies=[],
        )

    async def close(self) -> None:
        assert self.task is not None
        await self.feed.close()
        await self.task
        assert self.task.exception() is None
        assert not self.lab.vn.engine.is_connected(self.lab.th.node_id)


def in_session(lab: Lab, act: Callable[[Session], Awaitable[Outcome]], protocol: int = 2) -> Outcome:
    async def run() -> Outcome:
        session = Session(lab, protocol)
        await session.open()
        try:
            outcome = await act(session)
        finally:
            await session.close()  # the engine writes out everything it queued before it returns
        outcome.replies = session.replies()
        return outcome

    return asyncio.run(run())


def breaks_protocol(payload: bytes, topic: str | None, protocol: int = 2) -> bool:
    """Whether a well-sealed envelope with this payload and topic is the peer breaking the protocol of a session
    that speaks `protocol` (topic None: mail, whose envelopes all carry the mail topic, in either encoding)."""
    try:
        message = decode(payload)
    except RemoteProtocolError:
        return True
    if isinstance(message, Hello):
        return True
    if topic is None:
        return False
    if protocol < 2 and payload[:1] != b"{":
        return True
    if isinstance(message, Updates):  # protocol 1's form: bound to its document by the topic
        return topic != message.doc_id
    return topic != ""


PROTOCOLS = st.sampled_from([1, 2])


def encodable(message: Message, protocol: int) -> bytes:
    """The message as a session of `protocol` sends it; numbers MessagePack cannot hold (2**64 and beyond) have
    no protocol-2 form, so such a draw is discarded rather than sent."""
    try:
        return encode(message, protocol)
    except OverflowError:
        assume(False)
        raise


def check(lab: Lab, outcome: Outcome, *, protocol_broken: bool, all_or_nothing: bool = True) -> None:
    """The properties every input must keep (see the module docstring). A message whose parts are judged one by
    one (`all_or_nothing` False: key grants, "each acceptable grant is kept") may be rejected and change state."""
    event("closed" if outcome.closed else "rejected" if outcome.rejected else "accepted or ignored")
    assert outcome.closed == protocol_broken, "closed" if outcome.closed else "left open"
    if outcome.closed:
        assert outcome.rejected >= 1, "a session closed for the peer's fault records why"
    if outcome.closed or (outcome.rejected and all_or_nothing):
        assert outcome.after == outcome.before, "a rejected input changed the replica"
    for reply in outcome.replies:
        docs = documents_in(reply)
        assert all(lab.vn.policy.entitled(d, lab.th.node_id) for d in docs), "answered with a document not shared"
        assert lab.private_case not in docs


def documents_in(message: Message) -> list[str]:
    if isinstance(message, Versions):
        return list(message.docs)
    if isinstance(message, Updates):
        return [message.doc_id]
    if isinstance(message, Bundle):
        return [part.doc_id for part in message.parts]
    return []


def only_the_sent_entries_were_added(outcome: Outcome, entries: list[SignedUpdate], lab: Lab) -> None:
    """An accepted update adds the entries sent (as new versions), each really signed by its author."""
    _, old, _ = outcome.before
    _, new, _ = outcome.after
    for doc_id in set(old) | set(new):
        for author in set(old.get(doc_id, {})) | set(new.get(doc_id, {})):
            was, now = old.get(doc_id, {}).get(author, 0), new.get(doc_id, {}).get(author, 0)
            if now == was:
                continue
            assert now > was, "a version went back"
            sent = [e for e in entries if (e.doc_id, e.author) == (doc_id, author) and e.seq_to == now]
            assert sent, f"version {now} of {author} in {doc_id} was not in the message"
            assert author in lab.identities, "an entry by an unknown author was stored"
            rows = lab.vn.db.query(
                "SELECT seq_from, body, sig FROM doc_log WHERE doc_id = ? AND author = ? AND seq_to = ?",
                (doc_id, author, now),
            )
            assert len(rows) == 1
            verify_update(  # raises unless the stored entry is signed by its author
                lab.identities[author].public.sign_key,
                rows[0]["sig"],
                doc_id=doc_id,
                author_id=author,
                seq_from=rows[0]["seq_from"],
                seq_to=now,
                update=rows[0]["body"],
            )


# -- strategies ----------------------------------------------------------------------------------------------

SEQ = st.one_of(
    st.integers(0, 6),
    st.integers(0, 6),
    st.integers(0, 2**63 - 1),
    st.sampled_from([2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64]),
)
SHORT_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=24)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | SHORT_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SHORT_TEXT, inner, max_size=3),
    max_leaves=6,
)
COLLECTIONS = [
    "case", "refs", "history", "attachments", "notes", "contacts", "profile", "notices", "statements",
    "rotations", "reports", "blobs", "other",
]  # fmt: skip


def doc_choices(lab: Lab) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(lab.doc_ids),
        st.sampled_from(["case/", "case/X", "directory/", "report/", "profile/XX", "a" * 512]),
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40),
    )


def author_choices(lab: Lab) -> st.SearchStrategy[str]:
    known = st.sampled_from(sorted(lab.identities))
    return st.one_of(known, known, SHORT_TEXT, st.sampled_from(["", "a" * 512, "a" * 513]))


@dataclass(frozen=True)
class EntrySpec:
    doc: str
    author: str
    signer: str  # "author", "peer" (Thailand signs whatever the author), "none"
    seq_from: int
    span: int
    next_seq: bool  # ignore seq_from: the entry that follows what the node holds of that author
    body: str  # "raw", "empty update", "edits", "replayed"
    raw: bytes
    edits: tuple[tuple[str, str, Any], ...]
    seal: bool  # seal the body with the case key, as a party would


def entry_specs(lab: Lab) -> st.SearchStrategy[EntrySpec]:
    edit = st.tuples(
        st.sampled_from(COLLECTIONS) | SHORT_TEXT,
        SHORT_TEXT,
        st.none() | st.dictionaries(SHORT_TEXT, JSON_VALUE, max_size=4),  # None deletes the record
    )
    return st.builds(
        EntrySpec,
        doc=doc_choices(lab),
        author=author_choices(lab),
        signer=st.sampled_from(["author", "author", "peer", "none"]),
        seq_from=SEQ,
        span=st.sampled_from([0, 0, 0, 1, 2, -1]),
        next_seq=st.booleans(),
        body=st.sampled_from(["raw", "empty update", "edits", "edits", "replayed"]),
        raw=st.binary(max_size=48),
        edits=st.lists(edit, min_size=1, max_size=3).map(tuple),
        seal=st.booleans(),
    )


def build_entry(lab: Lab, spec: EntrySpec) -> SignedUpdate:
    """Make the entry the spec describes, with a body only a real party could make where the spec says so."""
    seq_from = lab.vn.store.versions(spec.doc).get(spec.author, 0) + 1 if spec.next_seq else spec.seq_from
    seq_to = max(0, seq_from + spec.span)
    if spec.body == "raw":
        plain = spec.raw
    elif spec.body == "empty update":
        plain = b"\x00\x00"
    elif spec.body == "replayed":
        logged = lab.vn.db.query("SELECT body FROM doc_log WHERE doc_id = ? LIMIT 1", (spec.doc,))
        plain = bytes(logged[0]["body"]) if logged else spec.raw
    else:
        held = lab.th.store.get(spec.doc) if spec.doc in lab.th.store else None
        doc = held.copy() if held is not None else CrdtDocument()

        def edit(change: Any) -> None:
            for collection, key, fields in spec.edits:
                if fields is None:
                    change.delete_record(collection, key)
                else:
                    change.put_record(collection, key, fields)

        plain = doc.change(edit) or b"\x00\x00"
    body = plain
    cipher = lab.th.case_keys.cipher(spec.doc) if spec.seal and spec.doc.startswith("case/") else None
    if cipher is not None and spec.body != "replayed":
        body = cipher.seal_update(plain, author=spec.author)
    signer = lab.identities.get(spec.author) if spec.signer == "author" else lab.th.identity
    sig = bytes(64)
    if spec.signer != "none" and signer is not None:
        with contextlib.suppress(CryptoError):  # numbers no node could sign are sent with a garbage signature
            sig = sign_update(signer, doc_id=spec.doc, seq_from=seq_from, seq_to=seq_to, update=body)
    return SignedUpdate(spec.doc, spec.author, seq_from, seq_to, body, sig)


def sealable(topic: str) -> bool:
    return len(topic.encode("utf-8")) <= 255


# -- the message handlers ------------------------------------------------------------------------------------


def test_the_first_sync_was_real(lab: Lab) -> None:
    assert held_alike(lab.th, lab.vn, lab.shared_case)
    assert lab.vn.store.get(lab.shared_case) is not None  # VN got the key from TH's engine and reads the case
    assert lab.private_case in lab.vn.store.doc_ids() and lab.private_case not in lab.th.store.doc_ids()
    assert lab.vn.rejections.counts.total() == 0


@examples(60)
@given(data=st.data())
def test_any_version_list(lab: Lab, data: st.DataObject) -> None:
    docs = data.draw(
        st.dictionaries(doc_choices(lab), st.dictionaries(author_choices(lab), SEQ, max_size=3), max_size=5)
    )
    complete = data.draw(st.booleans())
    want = data.draw(st.sampled_from([True, True, True, False]))  # a complete list that wants nothing is malformed
    message = Versions(docs=docs, complete=complete, want_missing=want)
    protocol = data.draw(PROTOCOLS, label="protocol")
    payload = encodable(message, protocol)
    outcome = in_session(lab, lambda s: s.send(lambda: s.mine.send(message)), protocol)
    check(lab, outcome, protocol_broken=breaks_protocol(payload, "", protocol))
    assert outcome.after == outcome.before, "a version list changed the replica"


@examples(80)
@given(data=st.data())
def test_any_updates(lab: Lab, data: st.DataObject) -> None:
    doc = data.draw(doc_choices(lab).filter(sealable))
    specs = data.draw(st.lists(entry_specs(lab), max_size=4))
    if data.draw(st.booleans()):  # most entries of a message are of its document
        specs = [EntrySpec(doc, *astuple_rest(s)) for s in specs]
    entries = [build_entry(lab, s) for s in specs]
    entries += data.draw(st.lists(st.sampled_from(entries), max_size=2)) if entries else []  # duplicates
    message = Updates(doc_id=doc, entries=tuple(entries))
    protocol = data.draw(PROTOCOLS, label="protocol")
    payload = encodable(message, protocol)
    outcome = in_session(lab, lambda s: s.send(lambda: s.mine.send(message)), protocol)
    broken = breaks_protocol(payload, doc if protocol < 2 else "", protocol)
    check(lab, outcome, protocol_broken=broken)
    if not broken and not outcome.rejected:
        as_received = [SignedUpdate(doc, e.author, e.seq_from, e.seq_to, e.body, e.sig) for e in entries]
        only_the_sent_entries_were_added(outcome, as_received, lab)


def grant_choices(lab: Lab) -> st.SearchStrategy[bytes]:
    real = lab.th.case_keys.grant_bytes(lab.shared_case)
    assert real is not None
    mutated = st.tuples(st.integers(0, len(real) - 1), st.integers(1, 255)).map(
        lambda edit: real[: edit[0]] + bytes([real[edit[0]] ^ edit[1]]) + real[edit[0] + 1 :]
    )
    forged = st.builds(
        lambda doc, roles, version: forge_grant(lab, doc, roles, version),
        st.sampled_from([lab.shared_case, lab.private_case, "case/NEW", "directory/x", "case/"]) | doc_choices(lab),
        st.lists(st.sampled_from(["requesting", "requested", "shared", "judge"]), min_size=3, max_size=3),
        st.integers(0, 2**32),
    )
    return st.one_of(
        st.just(real),
        mutated,
        st.integers(0, len(real) - 1).map(lambda n: real[:n]),
        forged,
        st.binary(max_size=200),
        st.just(b"{}"),
        st.just(b"x" * (64 * 1024 + 1)),
    )


def forge_grant(lab: Lab, doc_id: str, roles: list[str], version: int) -> bytes:
    """A grant Thailand really signs, for any case and party list it likes (here: the three nodes)."""
    nodes = (lab.th, lab.vn, lab.ph)
    parties = {n.node_id: (role, n.identity.public.kx_key) for n, role in zip(nodes, roles, strict=True)}
    try:
        return encode_grant(
            issue_grant(lab.th.identity, doc_id=doc_id, version=version, key=new_doc_key(), parties=parties)
        )
    except ValueError:  # arguments no node could sign: send what a broken encoder would
        return json.dumps({"doc": doc_id, "version": version}).encode()


def sides(lab: Lab) -> dict[str, dict[str, str]]:
    """The requesting and requested authority of every case Viet Nam holds (a requesting side may add shared ones)."""
    return {
        d: {node: role for node, role in lab.vn.case_keys.roles(d).items() if role != "shared"}
        for d in lab.vn.store.doc_ids()
        if d.startswith("case/")
    }


@examples(60)
@given(data=st.data())
def test_any_grants(lab: Lab, data: st.DataObject) -> None:
    grants = tuple(data.draw(st.lists(grant_choices(lab), max_size=4)))
    message = Grants(grants=grants)
    protocol = data.draw(PROTOCOLS, label="protocol")
    payload = encode(message, protocol)
    parties, private = sides(lab), dict(lab.vn.case_keys.roles(lab.private_case))
    outcome = in_session(lab, lambda s: s.send(lambda: s.mine.send(message)), protocol)
    check(lab, outcome, protocol_broken=breaks_protocol(payload, "", protocol), all_or_nothing=len(grants) == 1)
    # Whatever Thailand signs, it cannot change the two sides of a case, nor join a case it is no party of.
    assert sides(lab) == parties
    assert lab.vn.case_keys.roles(lab.private_case) == private


def shaped_payloads(lab: Lab) -> st.SearchStrategy[bytes]:
    """Objects of a known message type whose fields are anything, so decoding gets past the type switch."""
    fields = ["docs", "complete", "want", "doc", "entries", "grants", "nonce", "time", "protocol", "reply_to"]
    shaped = st.tuples(
        st.sampled_from(["versions", "updates", "grants", "hello"]),
        st.dictionaries(st.sampled_from(fields), JSON_VALUE | st.sampled_from(lab.doc_ids), max_size=6),
    ).map(lambda t: {**t[1], "t": t[0]})
    real = st.tuples(
        st.sampled_from(
            [
                Versions(docs={}, complete=True),
                Versions(docs={lab.shared_case: {lab.th.node_id: 1}}, complete=False, want_missing=False),
                Updates(doc_id=lab.shared_case, entries=()),
                Hello(nonce=bytes(16), time=0),
            ]
        ),
        PROTOCOLS,
    ).map(lambda m: encode(*m))
    packed = st.tuples(st.integers(0, 4), st.lists(PACKABLE | st.sampled_from(lab.doc_ids), max_size=5)).map(
        lambda t: msgpack.packb([t[0], *t[1]])
    )
    return st.one_of(
        st.binary(max_size=300),
        JSON_VALUE.map(lambda v: json.dumps(v).encode()),
        shaped.map(lambda v: json.dumps(v).encode()),
        real,
        packed,
    )


@examples(80)
@given(data=st.data())
def test_any_payload_in_a_well_sealed_envelope(lab: Lab, data: st.DataObject) -> None:
    payload = data.draw(shaped_payloads(lab))
    topic = data.draw(st.sampled_from(["", lab.shared_case, lab.private_case, "case/X"]))
    protocol = data.draw(PROTOCOLS, label="protocol")

    def make(session: Session) -> bytes:
        session.codec.next = payload
        session.codec.topic = topic
        return session.mine.send(Versions(docs={}, complete=False))

    outcome = in_session(lab, lambda s: s.send(lambda: make(s)), protocol)
    check(lab, outcome, protocol_broken=breaks_protocol(payload, topic, protocol))


@examples(60)
@given(data=st.data())
def test_any_bytes_on_the_wire(lab: Lab, data: st.DataObject) -> None:
    """Bytes that are not the next well-sealed envelope of this session: random, garbled, replayed, reordered."""
    kind = data.draw(st.sampled_from(["random", "flipped", "truncated", "extended", "replayed", "reordered"]))
    flip = data.draw(st.tuples(st.integers(0, 10_000), st.integers(1, 255)))
    noise = data.draw(st.binary(max_size=300))
    protocol = data.draw(PROTOCOLS, label="protocol")

    async def act(session: Session) -> Outcome:
        if kind == "random":
            return await session.send(lambda: noise)
        first = session.mine.send(Versions(docs={}, complete=False, want_missing=False))
        if kind == "flipped":
            at = flip[0] % len(first)
            return await session.send(lambda: first[:at] + bytes([first[at] ^ flip[1]]) + first[at + 1 :])
        if kind == "truncated":
            return await session.send(lambda: first[: flip[0] % len(first)])
        if kind == "extended":
            return await session.send(lambda: first + (noise or b"\x00"))
        if kind == "replayed":
            assert not (await session.send(lambda: first)).closed
            return await session.send(lambda: first)
        second = session.mine.send(Versions(docs={}, complete=False, want_missing=False))
        assert not (await session.send(lambda: second)).closed
        return await session.send(lambda: first)

    outcome = in_session(lab, act, protocol)
    check(lab, outcome, protocol_broken=True)


# -- mail ----------------------------------------------------------------------------------------------------


def mail_state(node: Node) -> tuple[list[str], dict[str, dict[str, int]], dict[str, bytes]]:
    dump, versions, content = replica_state(node)
    return [line for line in dump if not line.startswith('INSERT INTO "mail_in"')], versions, content


@examples(80)
@given(data=st.data())
def test_any_mail(lab: Lab, data: st.DataObject) -> None:
    """Mail fetched from a relay goes through the node's own handler: `open_mail`, then the engine as for a session.
    An authentic envelope in order is consumed (its number kept, so it is never taken twice) even when the
    message in it is refused; anything else is refused outright and changes nothing at all."""
    vn, th = lab.vn, lab.th
    kind = data.draw(st.sampled_from(["versions", "updates", "grants", "payload", "payload"]))
    protocol = data.draw(PROTOCOLS, label="protocol")  # a node mails protocol 1 and reads either
    if kind == "versions":
        docs = data.draw(
            st.dictionaries(doc_choices(lab), st.dictionaries(author_choices(lab), SEQ, max_size=2), max_size=4)
        )
        payload = encodable(Versions(docs=docs, complete=data.draw(st.booleans())), protocol)
    elif kind == "updates":
        doc = data.draw(st.sampled_from(lab.doc_ids))
        specs = data.draw(st.lists(entry_specs(lab).map(lambda s: EntrySpec(doc, *astuple_rest(s))), max_size=3))
        payload = encodable(Updates(doc_id=doc, entries=tuple(build_entry(lab, s) for s in specs)), protocol)
    elif kind == "grants":
        payload = encode(Grants(grants=tuple(data.draw(st.lists(grant_choices(lab), max_size=3)))), protocol)
    else:
        payload = data.draw(shaped_payloads(lab))
    topic = data.draw(st.sampled_from([MAIL_TOPIC, MAIL_TOPIC, MAIL_TOPIC, "", lab.shared_case]))
    stream, last = new_stream(), data.draw(st.sampled_from([0, 0, 1, 7, MAX_MAIL_SEQ - 1]))
    if last:  # an earlier envelope on the same stream, taken
        vn.mail._receive(mail_envelope(lab, MAIL_TOPIC, stream, last, encode(Versions({}, complete=False))), {})
    # Up to SQLite's largest integer only: beyond it, see test_mail_numbered_beyond_sqlite_integers_is_refused.
    seq = data.draw(st.sampled_from([last + 1, last + 1, last, max(0, last - 1), MAX_MAIL_SEQ]))
    envelope = mail_envelope(lab, topic, stream, seq, payload)
    refused = topic != MAIL_TOPIC or seq <= last or breaks_protocol(payload, None)
    before, rejected = mail_state(vn), vn.rejections.counts.total()
    consumed = vn.db.query("SELECT seq FROM mail_in WHERE sender = ? AND stream = ?", (th.node_id, stream))
    links: dict[str, MailLink] = {}
    vn.mail._receive(envelope, links)  # the node's handler of one fetched envelope
    after = mail_state(vn)
    kept = vn.db.query("SELECT seq FROM mail_in WHERE sender = ? AND stream = ?", (th.node_id, stream))
    event("refused" if refused else "message rejected" if vn.rejections.counts.total() > rejected else "taken")
    if refused:
        assert vn.rejections.counts.total() > rejected, "refused mail is recorded"
        assert (after, kept) == (before, consumed), "refused mail changed the replica"
        return
    assert kept == [{"seq": seq}], "authentic mail in order is consumed"
    message = decode(payload)
    one_by_one = isinstance(message, Grants) and len(message.grants) > 1  # see `check`
    if vn.rejections.counts.total() > rejected and not one_by_one:
        assert after == before, "a refused message changed the replica"
    for reply in links.get(th.node_id, MailLink(th.node_id)).outbox:
        assert decode(encode(reply)) == reply
        docs = documents_in(reply)
        assert all(vn.policy.entitled(d, th.node_id) for d in docs), "mailed back a document not shared"


def mail_envelope(lab: Lab, topic: str, stream: bytes, seq: int, payload: bytes) -> bytes:
    """An envelope Thailand really seals for Viet Nam, as mail is (or with another topic)."""
    vn = lab.vn
    return seal(
        lab.th.identity,
        recipient_id=vn.node_id,
        recipient_kx_key=vn.identity.public.kx_key,
        topic=topic,
        stream=stream,
        seq=seq,
        payload=payload,
    )


def test_mail_numbered_beyond_sqlite_integers_is_refused(lab: Lab) -> None:
    """An envelope may carry any 64-bit number; the node's mail bookkeeping (SQLite) only 63 bits. Mail numbered
    beyond must be refused before it is acted on, not fail after, unacknowledged, in every later round."""
    stream = new_stream()
    before, rejected = mail_state(lab.vn), lab.vn.rejections.counts.total()
    envelope = mail_envelope(lab, MAIL_TOPIC, stream, MAX_MAIL_SEQ + 1, encode(Versions({}, complete=False)))
    lab.vn.mail._receive(envelope, {})
    assert lab.vn.rejections.counts.total() == rejected + 1
    assert mail_state(lab.vn) == before


def astuple_rest(spec: EntrySpec) -> tuple[Any, ...]:
    return (
        spec.author,
        spec.signer,
        spec.seq_from,
        spec.span,
        spec.next_seq,
        spec.body,
        spec.raw,
        spec.edits,
        spec.seal,
    )


# -- relay frames --------------------------------------------------------------------------------------------


@examples(300)
@given(
    st.lists(st.binary(min_size=1, max_size=40), max_size=6),
    st.lists(st.integers(0, 2**64 - 1), min_size=6, max_size=6),
    st.tuples(st.integers(0, 400), st.integers(0, 255)),
)
def test_relay_frames_with_lying_headers_parse_whole_or_not_at_all(
    envelopes: list[bytes], ids: list[int], edit: tuple[int, int]
) -> None:
    """Frames whose ids and lengths say anything (not only random bytes): the parser returns frames that are
    exactly as encoded, with rising ids and no empty envelope, or raises FrameError."""
    raw = b"".join(struct.pack(">QI", i, len(e)) + e for i, e in zip(ids, envelopes, strict=False))
    at, value = edit
    if raw:
        raw = raw[: at % len(raw)] + bytes([value]) + raw[at % len(raw) + 1 :]
    try:
        frames = decode_mail(raw)
    except FrameError:
        return
    assert encode_mail(frames) == raw
    assert all(a < b for (a, _), (b, _) in itertools.pairwise(frames))
    try:
        deposits = decode_deposit(raw)
    except FrameError:
        return
    assert encode_deposit(deposits) == raw


# -- afterwards ----------------------------------------------------------------------------------------------


def test_the_engine_still_syncs_after_the_fuzzing(lab: Lab) -> None:
    """Nothing above wedged the node under test: a new case reaches it by a real sync with the peer's engine."""
    fresh = new_case(lab.th, lab.vn, "TH-AFTER")
    asyncio.run(real_sync(lab.th, lab.vn, lambda: held_alike(lab.th, lab.vn, fresh)))
    assert lab.vn.store.get(fresh) is not None
    assert lab.th.node_id not in lab.vn.case_keys.roles(lab.private_case)


# -- soak ----------------------------------------------------------------------------------------------------

SOAKED = [
    test_any_version_list,
    test_any_updates,
    test_any_grants,
    test_any_payload_in_a_well_sealed_envelope,
    test_any_bytes_on_the_wire,
    test_any_mail,
]


@pytest.mark.soak
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("test", SOAKED, ids=lambda test: test.__name__)
def test_soak(lab: Lab, test: Any) -> None:
    """Each of the fuzz tests above with many more examples (`make soak`; SEAJUST_FUZZ_EXAMPLES sets how many)."""
    settings(FUZZ, max_examples=SOAK_EXAMPLES)(given(data=st.data())(test.hypothesis.inner_test))(lab)
