"""The sync session: a sans-io state machine, bytes in, events out, bytes out.

A session is one authenticated conversation between two trusted nodes over any ordered
link (a WebSocket here). It opens with a hello each way, each a signed and encrypted
envelope carrying a fresh nonce; the responder's hello echoes the dialer's nonce. Both
nonces derive the two stream IDs the session's envelopes carry, and each envelope's
sequence number must rise, so a message replayed from this or any earlier session, or
reordered within it, is rejected by `crypto.envelope.ReplayGuard`.

Nothing here does I/O or knows about documents: the transport feeds received bytes to
`receive()` and writes out what `send()` and `data_to_send()` return; the sync engine
reacts to the events.
"""

from __future__ import annotations

import enum
import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from crypto.envelope import EnvelopeHeader, OpenedEnvelope, ReplayGuard, open_envelope, peek_header, seal
from crypto.errors import EnvelopeRejected, RejectReason
from crypto.identity import Identity
from sync.errors import LocalProtocolError, RemoteProtocolError
from sync.messages import (
    HELLO_PROTOCOL,
    MAX_ENTRIES_PER_MESSAGE,
    PROTOCOL_VERSION,
    Bundle,
    Grants,
    Hello,
    Message,
    Updates,
    Versions,
    decode,
    encode,
)

HELLO_STREAM: Final = bytes(16)
HELLO_MAX_SKEW: Final = 300  # seconds of clock difference tolerated between two nodes
NONCE_BYTES: Final = 16


class Role(enum.Enum):
    DIALER = "dialer"
    ACCEPTOR = "acceptor"


class SessionState(enum.Enum):
    AWAITING_HELLO = "awaiting_hello"
    ESTABLISHED = "established"
    CLOSED = "closed"


# The whole state machine: which message may arrive in which state, and where it leads.
TRANSITIONS: Final[dict[tuple[SessionState, type[Message]], SessionState]] = {
    (SessionState.AWAITING_HELLO, Hello): SessionState.ESTABLISHED,
    (SessionState.ESTABLISHED, Versions): SessionState.ESTABLISHED,
    (SessionState.ESTABLISHED, Updates): SessionState.ESTABLISHED,
    (SessionState.ESTABLISHED, Grants): SessionState.ESTABLISHED,
    (SessionState.ESTABLISHED, Bundle): SessionState.ESTABLISHED,
}
# Payload bytes of updates gathered into one protocol-2 bundle (one entry larger than this goes alone).
BUNDLE_BYTES: Final = 256 * 1024


@dataclass(frozen=True)
class PeerKeys:
    node_id: str
    sign_key: bytes
    kx_key: bytes
    # The keys the peer announced it is rotating to (`crypto.rotation`): accepted as its signature, and used
    # from the first message it signs with them, when it has switched.
    announced: tuple[bytes, bytes] | None = None

    def switched(self) -> PeerKeys:
        assert self.announced is not None
        return PeerKeys(self.node_id, self.announced[0], self.announced[1])


@dataclass(frozen=True)
class Established:
    peer_id: str


@dataclass(frozen=True)
class VersionsReceived:
    versions: Versions


@dataclass(frozen=True)
class UpdatesReceived:
    updates: Updates


@dataclass(frozen=True)
class KeysSwitched:
    """The peer signed with the keys it had announced: it rotated; the node should hold those keys from now on."""

    peer_id: str


@dataclass(frozen=True)
class GrantsReceived:
    grants: Grants


Event = Established | VersionsReceived | UpdatesReceived | GrantsReceived | KeysSwitched


class EnvelopeCodec(Protocol):
    """How a session turns messages into envelopes; swappable only so `bench/` can measure the cost of crypto."""

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
    ) -> bytes: ...

    def open(
        self, recipient: Identity, data: bytes, *, sender_sign_key: Callable[[str], bytes | Sequence[bytes] | None]
    ) -> OpenedEnvelope: ...

    def peek(self, data: bytes) -> EnvelopeHeader: ...


class SealedCodec:
    """Signed by the sender and encrypted for the recipient (`crypto.envelope`): what every node uses."""

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
        return seal(
            sender,
            recipient_id=recipient_id,
            recipient_kx_key=recipient_kx_key,
            topic=topic,
            stream=stream,
            seq=seq,
            payload=payload,
        )

    def open(
        self, recipient: Identity, data: bytes, *, sender_sign_key: Callable[[str], bytes | Sequence[bytes] | None]
    ) -> OpenedEnvelope:
        return open_envelope(recipient, data, sender_sign_key=sender_sign_key)

    def peek(self, data: bytes) -> EnvelopeHeader:
        return peek_header(data)


SEALED: Final = SealedCodec()


class HelloCache:
    """Hello nonces seen recently, shared by all sessions of a node, so a captured hello cannot open a session."""

    def __init__(self, clock: Callable[[], float] = time.time, limit: int = 100_000) -> None:
        self._seen: OrderedDict[tuple[str, bytes], float] = OrderedDict()
        self._clock = clock
        self._limit = limit

    def remember(self, sender_id: str, nonce: bytes) -> bool:
        """Record the nonce; False if it was already seen within the window."""
        now = self._clock()
        while self._seen and (next(iter(self._seen.values())) < now - 2 * HELLO_MAX_SKEW):
            self._seen.popitem(last=False)
        key = (sender_id, nonce)
        if key in self._seen:
            return False
        self._seen[key] = now
        if len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        return True


def _stream(label: bytes, dialer_nonce: bytes, acceptor_nonce: bytes) -> bytes:
    return hashlib.sha256(b"seajust-stream-v1|" + label + b"|" + dialer_nonce + acceptor_nonce).digest()[:16]


class SyncSession:
    def __init__(
        self,
        me: Identity,
        role: Role,
        peer_keys: Callable[[str], PeerKeys | None],
        *,
        hello_cache: HelloCache,
        expected_peer: str | None = None,
        clock: Callable[[], float] = time.time,
        rng: Callable[[int], bytes] = os.urandom,
        codec: EnvelopeCodec = SEALED,
        speaks: int = PROTOCOL_VERSION,
    ) -> None:
        """`speaks`: the highest protocol this end offers (lower only to test how an older node is met)."""
        if role is Role.DIALER and expected_peer is None:
            raise LocalProtocolError("a dialer must know which peer it dials")
        self.me = me
        self.role = role
        self.state = SessionState.AWAITING_HELLO
        self.peer_id: str | None = expected_peer
        self._peer_keys = peer_keys
        self._hello_cache = hello_cache
        self._clock = clock
        self._rng = rng
        self._codec = codec
        self._speaks = speaks
        self._nonce = rng(NONCE_BYTES)
        self._out_stream = b""
        self._in_stream = b""
        self._out_seq = 0
        self._guard = ReplayGuard()
        self._pending: list[bytes] = []
        self._switched: PeerKeys | None = None  # the peer's announced keys, once it signed with them
        self.was_established = False
        self.protocol = HELLO_PROTOCOL  # the protocol both ends speak, known once the hellos crossed

    # -- outgoing -------------------------------------------------------------------------

    def initiate(self) -> bytes:
        """The dialer's opening hello."""
        if self.role is not Role.DIALER or self.state is not SessionState.AWAITING_HELLO or self._out_seq:
            raise LocalProtocolError("only a new dialer session sends the first hello")
        self._out_seq = -1  # marks the hello as sent
        return self._seal_hello(Hello(nonce=self._nonce, time=int(self._clock()), upto=self._upto()))

    def send(self, message: Versions | Updates | Grants | Bundle) -> bytes:
        if self.state is not SessionState.ESTABLISHED:
            raise LocalProtocolError("cannot send before the session is established")
        if isinstance(message, Bundle) and self.protocol < 2:
            raise LocalProtocolError("the peer speaks protocol 1, which has no bundles")
        peer = self._known_peer()
        self._out_seq += 1
        # Protocol 1 binds updates to their document through the topic; protocol 2 through the signed payload
        # alone, so the readable header names no case.
        topic = message.doc_id if isinstance(message, Updates) and self.protocol < 2 else ""
        return self._codec.seal(
            self.me,
            recipient_id=peer.node_id,
            recipient_kx_key=peer.kx_key,
            topic=topic,
            stream=self._out_stream,
            seq=self._out_seq,
            payload=encode(message, self.protocol),
        )

    def send_updates(self, parts: Sequence[Updates]) -> list[bytes]:
        """Envelopes carrying these documents' updates, in order: bundles of about BUNDLE_BYTES in protocol 2
        (a document's later part, when its entries were split, goes in the next bundle: a bundle names a document
        once), one envelope per part in protocol 1."""
        if self.protocol < 2:
            return [self.send(part) for part in parts]
        out: list[bytes] = []
        bundle: list[Updates] = []
        docs: set[str] = set()
        size = 0
        entries = 0
        for part in parts:
            part_size = sum(len(e.body) + len(e.sig) + len(e.author) + 24 for e in part.entries) + len(part.doc_id)
            full = size + part_size > BUNDLE_BYTES or entries + len(part.entries) > MAX_ENTRIES_PER_MESSAGE
            if bundle and (full or part.doc_id in docs):
                out.append(self.send(Bundle(tuple(bundle))))
                bundle, docs, size, entries = [], set(), 0, 0
            bundle.append(part)
            docs.add(part.doc_id)
            size += part_size
            entries += len(part.entries)
        if bundle:
            out.append(self.send(Bundle(tuple(bundle))))
        return out

    def data_to_send(self) -> list[bytes]:
        """Bytes the session produced by itself (the acceptor's hello); drain after `receive()`."""
        pending, self._pending = self._pending, []
        return pending

    def close(self) -> None:
        self.state = SessionState.CLOSED

    # -- incoming -------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        """Open, check and decode one envelope. Raises EnvelopeRejected or RemoteProtocolError."""
        if self.state is SessionState.CLOSED:
            raise LocalProtocolError("session is closed")
        try:
            if self.state is SessionState.AWAITING_HELLO:
                return self._receive_hello(data)
            return self._receive_message(data)
        except (EnvelopeRejected, RemoteProtocolError):
            self.state = SessionState.CLOSED
            raise

    def _lookup_sign_key(self, sender_id: str) -> tuple[bytes, ...] | None:
        if self._switched is not None:
            return (self._switched.sign_key,)
        keys = self._peer_keys(sender_id)
        if keys is None:
            return None
        return (keys.sign_key, keys.announced[0]) if keys.announced else (keys.sign_key,)

    def _upto(self) -> int | None:
        return None if self._speaks <= HELLO_PROTOCOL else self._speaks  # a protocol-1 node says nothing

    def _known_peer(self) -> PeerKeys:
        if self._switched is not None:
            return self._switched
        keys = self._peer_keys(self.peer_id) if self.peer_id else None
        if keys is None:
            raise RemoteProtocolError("untrusted_sender", "peer is no longer trusted")
        return keys

    def _receive_hello(self, data: bytes) -> list[Event]:
        header = self._codec.peek(data)
        if self.role is Role.DIALER:
            if self._out_seq != -1:
                raise LocalProtocolError("dialer must send its hello first")
            if header.sender_id != self.peer_id:
                raise EnvelopeRejected(RejectReason.UNTRUSTED_SENDER, "answered by another node than dialled")
        opened = self._codec.open(self.me, data, sender_sign_key=self._lookup_sign_key)
        announced = self._peer_keys(opened.header.sender_id)
        if announced is not None and announced.announced and opened.signed_by == announced.announced[0]:
            self._switched = announced.switched()
        if opened.header.stream != HELLO_STREAM or opened.header.seq != 0:
            # Authentic, but from a session that is not this one: a replay.
            raise EnvelopeRejected(RejectReason.REPLAY, "envelope belongs to another session")
        if opened.header.topic:
            raise RemoteProtocolError("malformed", "hello must open the session")
        hello = self._expect(decode(opened.payload), Hello)
        if hello.protocol != HELLO_PROTOCOL:
            raise RemoteProtocolError("version", f"peer speaks sync protocol {hello.protocol}")
        if len(hello.nonce) != NONCE_BYTES:
            raise RemoteProtocolError("malformed", "hello nonce has the wrong length")
        if abs(hello.time - self._clock()) > HELLO_MAX_SKEW:
            raise RemoteProtocolError("clock", "hello is too old or the clocks differ by more than 5 minutes")
        sender = opened.header.sender_id
        if self.role is Role.DIALER:
            if hello.reply_to != self._nonce:
                raise EnvelopeRejected(RejectReason.REPLAY, "hello does not answer this session")
            dialer_nonce, acceptor_nonce = self._nonce, hello.nonce
        else:
            if hello.reply_to is not None:
                raise RemoteProtocolError("malformed", "a dialer's hello answers nothing")
            if not self._hello_cache.remember(sender, hello.nonce):
                raise EnvelopeRejected(RejectReason.REPLAY, "hello seen before")
            self.peer_id = sender
            dialer_nonce, acceptor_nonce = hello.nonce, self._nonce
            self._pending.append(
                self._seal_hello(
                    Hello(nonce=self._nonce, time=int(self._clock()), reply_to=hello.nonce, upto=self._upto())
                )
            )
        d2a = _stream(b"d2a", dialer_nonce, acceptor_nonce)
        a2d = _stream(b"a2d", dialer_nonce, acceptor_nonce)
        self._out_stream, self._in_stream = (d2a, a2d) if self.role is Role.DIALER else (a2d, d2a)
        self._out_seq = 0
        self.protocol = min(self._speaks, hello.speaks)
        self.state = TRANSITIONS[(self.state, Hello)]
        self.was_established = True
        if self._switched is not None:
            return [KeysSwitched(peer_id=sender), Established(peer_id=sender)]
        return [Established(peer_id=sender)]

    def _receive_message(self, data: bytes) -> list[Event]:
        header = self._codec.peek(data)
        if header.sender_id != self.peer_id:
            raise EnvelopeRejected(RejectReason.UNTRUSTED_SENDER, "sender is not this session's peer")
        opened = self._codec.open(self.me, data, sender_sign_key=self._lookup_sign_key)
        if opened.header.stream != self._in_stream:
            raise EnvelopeRejected(RejectReason.REPLAY, "envelope belongs to another session")
        self._guard.accept(opened.header.sender_id, opened.header.stream, opened.header.seq)
        if self.protocol < 2 and opened.payload[:1] != b"{":
            raise RemoteProtocolError("malformed", "this session speaks protocol 1, whose payloads are JSON")
        message = decode(opened.payload)
        next_state = TRANSITIONS.get((self.state, type(message)))
        if next_state is None:
            raise RemoteProtocolError("unexpected", f"{type(message).__name__} in state {self.state.value}")
        self.state = next_state
        if isinstance(message, Bundle):
            if opened.header.topic:
                raise RemoteProtocolError("wrong_topic", "a bundle is a session message")
            return [UpdatesReceived(part) for part in message.parts]
        if isinstance(message, Updates):
            if opened.header.topic != message.doc_id:
                raise RemoteProtocolError("wrong_topic", "updates not bound to their document")
            if any(e.doc_id != message.doc_id for e in message.entries):
                raise RemoteProtocolError("wrong_topic", "entry for another document")
            return [UpdatesReceived(message)]
        if opened.header.topic:
            raise RemoteProtocolError("wrong_topic", "versions and grants are session messages")
        if isinstance(message, Grants):
            return [GrantsReceived(message)]
        assert isinstance(message, Versions)
        return [VersionsReceived(message)]

    def _expect(self, message: Message, kind: type[Hello]) -> Hello:
        if not isinstance(message, kind):
            raise RemoteProtocolError("unexpected", f"{type(message).__name__} before hello")
        return message

    def _seal_hello(self, hello: Hello) -> bytes:
        peer = self._known_peer()
        return self._codec.seal(
            self.me,
            recipient_id=peer.node_id,
            recipient_kx_key=peer.kx_key,
            topic="",
            stream=HELLO_STREAM,
            seq=0,
            payload=encode(hello),
        )
