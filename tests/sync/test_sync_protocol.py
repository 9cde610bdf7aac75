"""The sync session, sans-io: two sessions joined in memory (as h11's ConnectionPair joins two connections).

A session opens only with a fresh hello from a trusted node, carries messages only from its one peer, and
refuses every envelope it has seen before or that belongs to another session. Whatever bytes arrive, it
raises `EnvelopeRejected` or `RemoteProtocolError` and closes; it never raises anything else.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from crypto.envelope import open_envelope, peek_header, seal
from crypto.errors import EnvelopeRejected, RejectReason
from crypto.identity import Identity
from sync.errors import LocalProtocolError, RemoteProtocolError
from sync.messages import PROTOCOL_VERSION, Bundle, Hello, Message, SignedUpdate, Updates, Versions, decode, encode
from sync.protocol import (
    HELLO_MAX_SKEW,
    HELLO_STREAM,
    SEALED,
    EnvelopeCodec,
    Established,
    Event,
    HelloCache,
    PeerKeys,
    Role,
    SealedCodec,
    SessionState,
    SyncSession,
    UpdatesReceived,
    VersionsReceived,
)

ALICE = Identity.from_secret_bytes(bytes(range(64)))  # dials
BOB = Identity.from_secret_bytes(bytes(range(64, 128)))  # accepts
CAROL = Identity.from_secret_bytes(bytes(range(128, 192)))  # trusted by both, but not party to their session
NOW = 1_700_000_000.0
DOC = "directory/" + ALICE.node_id
VERSIONS = Versions(docs={DOC: {ALICE.node_id: 2}}, complete=True)
UPDATES = Updates(doc_id=DOC, entries=(SignedUpdate(DOC, ALICE.node_id, 1, 2, b"crdt", b"s" * 64),))


def keys(*identities: Identity) -> dict[str, PeerKeys]:
    return {i.node_id: PeerKeys(i.node_id, i.public.sign_key, i.public.kx_key) for i in identities}


def clock_at(t: float) -> Callable[[], float]:
    return lambda: t


AT_NOW = clock_at(NOW)


def session(
    me: Identity,
    role: Role,
    trusts: tuple[Identity, ...],
    *,
    peer: Identity | None = None,
    cache: HelloCache | None = None,
    clock: Callable[[], float] = AT_NOW,
    codec: EnvelopeCodec = SEALED,
    nonce: bytes | None = None,
    speaks: int = PROTOCOL_VERSION,
) -> SyncSession:
    return SyncSession(
        me,
        role,
        keys(*trusts).get,
        hello_cache=cache or HelloCache(clock=clock),
        expected_peer=peer.node_id if peer else None,
        clock=clock,
        codec=codec,
        rng=(lambda size: nonce) if nonce else os.urandom,
        speaks=speaks,
    )


@dataclass
class SessionPair:
    """A dialer and an acceptor session; `delivered` keeps every envelope each one was handed."""

    dialer: SyncSession
    acceptor: SyncSession
    delivered: list[tuple[SyncSession, bytes]] = field(default_factory=list)

    @classmethod
    def make(
        cls,
        dialer: Identity = ALICE,
        acceptor: Identity = BOB,
        *,
        cache: HelloCache | None = None,
        dialer_clock: Callable[[], float] = AT_NOW,
        acceptor_clock: Callable[[], float] = AT_NOW,
        dialer_codec: EnvelopeCodec = SEALED,
        acceptor_trusts: tuple[Identity, ...] | None = None,
        dialer_speaks: int = PROTOCOL_VERSION,
        acceptor_speaks: int = PROTOCOL_VERSION,
    ) -> SessionPair:
        return cls(
            session(
                dialer,
                Role.DIALER,
                (acceptor, CAROL),
                peer=acceptor,
                clock=dialer_clock,
                codec=dialer_codec,
                speaks=dialer_speaks,
            ),
            session(
                acceptor,
                Role.ACCEPTOR,
                (dialer, CAROL) if acceptor_trusts is None else acceptor_trusts,
                cache=cache,
                clock=acceptor_clock,
                speaks=acceptor_speaks,
            ),
        )

    def deliver(self, to: SyncSession, data: bytes) -> list[Event]:
        self.delivered.append((to, data))
        return to.receive(data)

    def handshake(self) -> tuple[list[Event], list[Event]]:
        """(acceptor's events, dialer's events)."""
        accepted = self.deliver(self.acceptor, self.dialer.initiate())
        (reply,) = self.acceptor.data_to_send()
        return accepted, self.deliver(self.dialer, reply)

    def send(self, sender: SyncSession, message: Versions | Updates) -> list[Event]:
        receiver = self.acceptor if sender is self.dialer else self.dialer
        return self.deliver(receiver, sender.send(message))


def established(dialer_speaks: int = PROTOCOL_VERSION, acceptor_speaks: int = PROTOCOL_VERSION) -> SessionPair:
    pair = SessionPair.make(dialer_speaks=dialer_speaks, acceptor_speaks=acceptor_speaks)
    pair.handshake()
    return pair


def sealed(
    sender: Identity, recipient: Identity, message: Message | bytes, *, stream: bytes, seq: int, topic: str = ""
) -> bytes:
    """An envelope written by hand, as a peer running other code could write it."""
    return seal(
        sender,
        recipient_id=recipient.node_id,
        recipient_kx_key=recipient.public.kx_key,
        topic=topic,
        stream=stream,
        seq=seq,
        payload=message if isinstance(message, bytes) else encode(message),
    )


def hello_from(sender: Identity, recipient: Identity, hello: Hello, topic: str = "") -> bytes:
    return sealed(sender, recipient, hello, stream=HELLO_STREAM, seq=0, topic=topic)


def assert_rejected(target: SyncSession, data: bytes, reason: RejectReason) -> EnvelopeRejected:
    with pytest.raises(EnvelopeRejected) as info:
        target.receive(data)
    assert info.value.reason is reason
    assert target.state is SessionState.CLOSED
    return info.value


# -- the handshake -------------------------------------------------------------------------------------------


def test_handshake_establishes_both_sides_with_each_others_ids() -> None:
    pair = SessionPair.make()
    assert pair.acceptor.peer_id is None
    accepted, dialed = pair.handshake()
    assert accepted == [Established(peer_id=ALICE.node_id)]
    assert dialed == [Established(peer_id=BOB.node_id)]
    assert pair.acceptor.peer_id == ALICE.node_id
    assert pair.dialer.state is pair.acceptor.state is SessionState.ESTABLISHED
    assert pair.dialer.was_established and pair.acceptor.was_established


def test_hellos_are_session_envelopes_sealed_for_the_peer() -> None:
    pair = SessionPair.make()
    hello = peek_header(pair.dialer.initiate())
    assert (hello.sender_id, hello.recipient_id, hello.topic, hello.stream, hello.seq) == (
        ALICE.node_id,
        BOB.node_id,
        "",
        HELLO_STREAM,
        0,
    )


def test_acceptor_answers_only_after_the_dialers_hello() -> None:
    pair = SessionPair.make()
    assert pair.acceptor.data_to_send() == []
    pair.acceptor.receive(pair.dialer.initiate())
    assert len(pair.acceptor.data_to_send()) == 1
    assert pair.acceptor.data_to_send() == []  # drained


def test_each_session_has_its_own_streams_in_each_direction() -> None:
    first, second = established(), established()
    streams = {
        peek_header(pair_side.send(VERSIONS)).stream
        for pair in (first, second)
        for pair_side in (pair.dialer, pair.acceptor)
    }
    assert len(streams) == 4
    assert HELLO_STREAM not in streams


# -- messages ------------------------------------------------------------------------------------------------


def test_versions_and_updates_travel_both_ways() -> None:
    pair = established()
    assert pair.send(pair.dialer, VERSIONS) == [VersionsReceived(VERSIONS)]
    assert pair.send(pair.acceptor, VERSIONS) == [VersionsReceived(VERSIONS)]
    assert pair.send(pair.dialer, UPDATES) == [UpdatesReceived(UPDATES)]
    assert pair.send(pair.acceptor, UPDATES) == [UpdatesReceived(UPDATES)]
    assert pair.dialer.state is pair.acceptor.state is SessionState.ESTABLISHED


def test_two_current_nodes_speak_protocol_2_and_their_headers_name_no_document() -> None:
    pair = established()
    assert pair.dialer.protocol == pair.acceptor.protocol == 2
    data = pair.dialer.send(UPDATES)
    header = peek_header(data)
    assert header.topic == ""  # the document is named only inside the sealed, signed payload
    assert header.seq == 1
    assert pair.deliver(pair.acceptor, data) == [UpdatesReceived(UPDATES)]


@pytest.mark.parametrize(("dialer_speaks", "acceptor_speaks"), [(1, 2), (2, 1), (1, 1)])
def test_a_protocol_1_node_is_spoken_to_in_protocol_1(dialer_speaks: int, acceptor_speaks: int) -> None:
    pair = established(dialer_speaks, acceptor_speaks)
    assert pair.dialer.protocol == pair.acceptor.protocol == 1
    data = pair.dialer.send(UPDATES)
    assert peek_header(data).topic == DOC  # protocol 1 binds updates to their document by the topic
    assert pair.deliver(pair.acceptor, data) == [UpdatesReceived(UPDATES)]
    assert pair.send(pair.acceptor, VERSIONS) == [VersionsReceived(VERSIONS)]
    with pytest.raises(LocalProtocolError):
        pair.dialer.send(Bundle((UPDATES,)))


def test_a_protocol_1_hello_is_what_a_protocol_1_node_sends() -> None:
    pair = SessionPair.make(dialer_speaks=1)
    opened = open_envelope(BOB, pair.dialer.initiate(), sender_sign_key=lambda n: ALICE.public.sign_key)
    hello = decode(opened.payload)
    assert isinstance(hello, Hello)
    assert (hello.protocol, hello.upto) == (1, None)


def test_updates_of_many_documents_travel_in_one_bundle() -> None:
    pair = established()
    parts = [
        Updates(
            doc_id=f"directory/{i}",
            entries=(SignedUpdate(f"directory/{i}", ALICE.node_id, 1, 1, bytes(100), b"s" * 64),),
        )
        for i in range(50)
    ]
    (data,) = pair.dialer.send_updates(parts)
    assert pair.deliver(pair.acceptor, data) == [UpdatesReceived(p) for p in parts]


def test_a_bundle_is_cut_at_about_its_size_limit_and_never_splits_a_document() -> None:
    pair = established()
    big = bytes(100 * 1024)
    parts = [
        Updates(doc_id=f"directory/{i}", entries=(SignedUpdate(f"directory/{i}", ALICE.node_id, 1, 1, big, b"s" * 64),))
        for i in range(5)
    ]
    envelopes = pair.dialer.send_updates(parts)
    assert len(envelopes) == 3  # two documents of 100 KiB per bundle of at most 256 KiB
    received = [event for data in envelopes for event in pair.deliver(pair.acceptor, data)]
    assert received == [UpdatesReceived(p) for p in parts]
    huge = [Updates(doc_id=DOC, entries=(SignedUpdate(DOC, ALICE.node_id, 1, 1, bytes(300 * 1024), b"s" * 64),))]
    assert len(pair.dialer.send_updates(huge)) == 1  # one document larger than the limit goes alone


def test_a_bundle_is_cut_before_it_holds_more_entries_than_a_message_may() -> None:
    pair = established()
    tiny = [
        Updates(doc_id=f"directory/{i}", entries=(SignedUpdate(f"directory/{i}", "a", 1, 1, b"", b""),) * 2_000)
        for i in range(6)
    ]
    envelopes = pair.dialer.send_updates(tiny)
    assert len(envelopes) == 2  # 12,000 entries: at most 10,000 in one message
    received = [event for data in envelopes for event in pair.deliver(pair.acceptor, data)]
    assert received == [UpdatesReceived(p) for p in tiny]


def test_the_parts_of_one_document_go_in_successive_bundles_in_order() -> None:
    pair = established()
    first = Updates(doc_id=DOC, entries=(SignedUpdate(DOC, ALICE.node_id, 1, 1, b"a", b"s"),))
    second = Updates(doc_id=DOC, entries=(SignedUpdate(DOC, ALICE.node_id, 2, 2, b"b", b"s"),))
    other = Updates(doc_id="directory/x", entries=())
    envelopes = pair.dialer.send_updates([first, other, second])
    assert len(envelopes) == 2
    received = [event for data in envelopes for event in pair.deliver(pair.acceptor, data)]
    assert received == [UpdatesReceived(first), UpdatesReceived(other), UpdatesReceived(second)]


def test_a_protocol_1_session_sends_one_envelope_per_document() -> None:
    pair = established(1, 2)
    parts = [UPDATES, Updates(doc_id="directory/x", entries=())]
    assert [peek_header(d).topic for d in pair.dialer.send_updates(parts)] == [DOC, "directory/x"]


def test_sequence_numbers_rise_by_one_per_message() -> None:
    pair = established()
    assert [peek_header(pair.dialer.send(VERSIONS)).seq for _ in range(3)] == [1, 2, 3]
    assert peek_header(pair.acceptor.send(VERSIONS)).seq == 1


# -- replay --------------------------------------------------------------------------------------------------


def _conversation() -> SessionPair:
    pair = established()
    pair.send(pair.dialer, VERSIONS)
    pair.send(pair.acceptor, VERSIONS)
    pair.send(pair.dialer, UPDATES)
    pair.send(pair.acceptor, UPDATES)
    pair.send(pair.dialer, VERSIONS)
    return pair


@pytest.mark.parametrize("index", range(len(_conversation().delivered)))
def test_replaying_any_delivered_envelope_is_refused(index: int) -> None:
    pair = _conversation()
    target, data = pair.delivered[index]
    assert_rejected(target, data, RejectReason.REPLAY)


def test_an_out_of_order_envelope_is_refused() -> None:
    pair = established()
    first, second = pair.dialer.send(VERSIONS), pair.dialer.send(VERSIONS)
    pair.acceptor.receive(second)
    assert_rejected(pair.acceptor, first, RejectReason.REPLAY)


@pytest.mark.parametrize("direction", ["to acceptor", "to dialer"])
def test_an_envelope_from_an_earlier_session_is_refused(direction: str) -> None:
    earlier = established()
    later = established()
    if direction == "to acceptor":
        old, target = earlier.dialer.send(VERSIONS), later.acceptor
    else:
        old, target = earlier.acceptor.send(VERSIONS), later.dialer
    assert_rejected(target, old, RejectReason.REPLAY)


def test_a_replayed_hello_cannot_open_another_session_on_the_same_node() -> None:
    cache = HelloCache(clock=clock_at(NOW))
    first = SessionPair.make(cache=cache)
    hello = first.dialer.initiate()
    first.acceptor.receive(hello)
    fresh = SessionPair.make(cache=cache).acceptor
    assert_rejected(fresh, hello, RejectReason.REPLAY)
    assert fresh.data_to_send() == []


def test_an_acceptors_hello_answers_only_the_dialer_it_was_made_for() -> None:
    first, second = SessionPair.make(), SessionPair.make()
    first.acceptor.receive(first.dialer.initiate())
    (answer_to_first,) = first.acceptor.data_to_send()
    second.dialer.initiate()
    assert_rejected(second.dialer, answer_to_first, RejectReason.REPLAY)


def test_hello_cache_forgets_after_twice_the_allowed_skew() -> None:
    now = [NOW]
    cache = HelloCache(clock=lambda: now[0])
    assert cache.remember("node", b"n" * 16)
    assert not cache.remember("node", b"n" * 16)
    assert cache.remember("other node", b"n" * 16)
    now[0] += 2 * HELLO_MAX_SKEW
    assert not cache.remember("node", b"n" * 16)
    now[0] += 1
    assert cache.remember("node", b"n" * 16)


@pytest.mark.parametrize("offset", [0, 2 * HELLO_MAX_SKEW - 1, 2 * HELLO_MAX_SKEW, 2 * HELLO_MAX_SKEW + 1])
def test_a_replayed_hello_is_refused_for_as_long_as_its_time_is_acceptable(offset: int) -> None:
    # The dialer's clock is as far ahead as allowed, so its hello stays fresh longest: until NOW + 2 * skew,
    # and the cache must remember it until then; after that the clock check refuses it.
    now = [NOW]
    cache = HelloCache(clock=lambda: now[0])
    dialer = session(ALICE, Role.DIALER, (BOB,), peer=BOB, clock=clock_at(NOW + HELLO_MAX_SKEW))
    hello = dialer.initiate()
    session(BOB, Role.ACCEPTOR, (ALICE,), cache=cache, clock=lambda: now[0]).receive(hello)
    now[0] = NOW + offset
    replayed_to = session(BOB, Role.ACCEPTOR, (ALICE,), cache=cache, clock=lambda: now[0])
    if offset <= 2 * HELLO_MAX_SKEW:
        assert_rejected(replayed_to, hello, RejectReason.REPLAY)
    else:
        with pytest.raises(RemoteProtocolError, match="clock"):
            replayed_to.receive(hello)
    assert replayed_to.data_to_send() == []


def test_a_hello_after_the_hello_is_refused_as_a_replay() -> None:
    pair = established()
    second_hello = SessionPair.make().dialer.initiate()
    assert_rejected(pair.acceptor, second_hello, RejectReason.REPLAY)


# -- clocks --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("skew", [HELLO_MAX_SKEW + 1, -(HELLO_MAX_SKEW + 1), 10 * HELLO_MAX_SKEW])
def test_the_acceptor_refuses_a_hello_from_a_clock_too_far_off(skew: float) -> None:
    pair = SessionPair.make(dialer_clock=clock_at(NOW + skew))
    with pytest.raises(RemoteProtocolError) as info:
        pair.acceptor.receive(pair.dialer.initiate())
    assert info.value.reason == "clock"
    assert pair.acceptor.state is SessionState.CLOSED
    assert pair.acceptor.data_to_send() == []


@pytest.mark.parametrize("delay", [HELLO_MAX_SKEW + 1, -(HELLO_MAX_SKEW + 1)])
def test_the_dialer_refuses_an_answer_from_a_clock_too_far_off(delay: float) -> None:
    now = [NOW]
    pair = SessionPair.make(dialer_clock=lambda: now[0])
    pair.acceptor.receive(pair.dialer.initiate())
    (answer,) = pair.acceptor.data_to_send()
    now[0] += delay  # the answer, stamped NOW, now looks too old (or from too far ahead)
    with pytest.raises(RemoteProtocolError) as info:
        pair.dialer.receive(answer)
    assert info.value.reason == "clock"
    assert pair.dialer.state is SessionState.CLOSED


@pytest.mark.parametrize("skew", [HELLO_MAX_SKEW, -HELLO_MAX_SKEW])
def test_a_hello_within_the_allowed_skew_is_accepted(skew: float) -> None:
    pair = SessionPair.make(dialer_clock=clock_at(NOW + skew))
    accepted, dialed = pair.handshake()
    assert accepted == [Established(ALICE.node_id)]
    assert dialed == [Established(BOB.node_id)]


# -- who may speak -------------------------------------------------------------------------------------------


def test_an_acceptor_that_does_not_trust_the_dialer_refuses_it_and_says_nothing() -> None:
    pair = SessionPair.make(acceptor_trusts=(CAROL,))
    assert_rejected(pair.acceptor, pair.dialer.initiate(), RejectReason.UNTRUSTED_SENDER)
    assert pair.acceptor.data_to_send() == []
    assert pair.acceptor.peer_id is None


def test_a_dialer_refuses_an_answer_from_another_node_than_it_dialled() -> None:
    dialer = session(ALICE, Role.DIALER, (BOB, CAROL), peer=BOB, nonce=b"d" * 16)
    dialer.initiate()
    answer = hello_from(CAROL, ALICE, Hello(nonce=b"c" * 16, time=int(NOW), reply_to=b"d" * 16))
    assert_rejected(dialer, answer, RejectReason.UNTRUSTED_SENDER)


def test_a_hello_addressed_to_another_node_is_refused() -> None:
    to_carol = SessionPair.make(acceptor=CAROL).dialer.initiate()
    acceptor = SessionPair.make().acceptor
    assert_rejected(acceptor, to_carol, RejectReason.WRONG_RECIPIENT)
    assert acceptor.data_to_send() == []


def test_an_envelope_the_peer_addressed_to_a_third_node_is_refused() -> None:
    with_bob, with_carol = established(), SessionPair.make(acceptor=CAROL)
    with_carol.handshake()
    meant_for_carol = with_carol.dialer.send(VERSIONS)
    assert_rejected(with_bob.acceptor, meant_for_carol, RejectReason.WRONG_RECIPIENT)


def test_a_trusted_third_node_cannot_speak_in_anothers_session() -> None:
    pair = established()
    injected = sealed(CAROL, BOB, VERSIONS, stream=bytes(16), seq=1)
    rejected = assert_rejected(pair.acceptor, injected, RejectReason.UNTRUSTED_SENDER)
    assert rejected.detail == "sender is not this session's peer"


def test_a_third_node_cannot_speak_even_in_the_peers_own_stream() -> None:
    # Even knowing the stream (here, copied from a genuine envelope), Carol is not the session's peer.
    pair = established()
    stream = peek_header(pair.dialer.send(VERSIONS)).stream
    injected = sealed(CAROL, BOB, VERSIONS, stream=stream, seq=1)
    assert_rejected(pair.acceptor, injected, RejectReason.UNTRUSTED_SENDER)


# -- malformed but authentic input ---------------------------------------------------------------------------


class Misaddressing(SealedCodec):
    """A peer's codec that puts a chosen topic on every envelope after the hello, as a buggy or hostile peer could."""

    def __init__(self, topic: str) -> None:
        self.topic = topic

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
        return super().seal(
            sender,
            recipient_id=recipient_id,
            recipient_kx_key=recipient_kx_key,
            topic=self.topic if seq else topic,
            stream=stream,
            seq=seq,
            payload=payload,
        )


@pytest.mark.parametrize(
    ("topic", "message", "protocol"),
    [
        ("directory/somebody-else", UPDATES, 1),
        ("", UPDATES, 1),
        (DOC, VERSIONS, 1),
        (DOC, UPDATES, 2),
        (DOC, VERSIONS, 2),
    ],
    ids=[
        "updates for another document",
        "updates without a topic",
        "versions with a topic",
        "bundle with a topic",
        "protocol 2 versions with a topic",
    ],
)
def test_a_message_whose_topic_does_not_fit_it_is_refused(
    topic: str, message: Versions | Updates, protocol: int
) -> None:
    pair = SessionPair.make(dialer_codec=Misaddressing(topic), dialer_speaks=protocol)
    pair.handshake()
    with pytest.raises(RemoteProtocolError) as info:
        pair.send(pair.dialer, message)
    assert info.value.reason == "wrong_topic"
    assert pair.acceptor.state is SessionState.CLOSED


class RawPayload(SealedCodec):
    """A peer's codec that swaps the payload of its first message after the hello for chosen bytes."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

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
        return super().seal(
            sender,
            recipient_id=recipient_id,
            recipient_kx_key=recipient_kx_key,
            topic=topic,
            stream=stream,
            seq=seq,
            payload=self.payload if seq == 1 else payload,
        )


@pytest.mark.parametrize(
    "payload",
    [b"[]", b'{"t":"versions"}', b"\xff", b'{"t":"updates","doc":"d","entries":[[1]]}', b"\x92\x02\x90"],
    ids=["array", "missing fields", "not utf-8", "short entry", "empty bundle"],
)
@pytest.mark.parametrize("protocol", [1, 2])
def test_an_authentic_malformed_message_is_the_peers_fault_and_closes_the_session(
    payload: bytes, protocol: int
) -> None:
    pair = SessionPair.make(dialer_codec=RawPayload(payload), dialer_speaks=protocol)
    pair.handshake()
    with pytest.raises(RemoteProtocolError, match="malformed"):
        pair.send(pair.dialer, VERSIONS)
    assert pair.acceptor.state is SessionState.CLOSED


def test_an_authentic_message_with_a_huge_number_is_refused_and_closes_the_session() -> None:
    pair = SessionPair.make(
        dialer_codec=RawPayload(b'{"t":"versions","complete":true,"docs":{"d":{"a":' + b"9" * 5000 + b"}}}")
    )
    pair.handshake()
    with pytest.raises(RemoteProtocolError):
        pair.send(pair.dialer, VERSIONS)
    assert pair.acceptor.state is SessionState.CLOSED


def test_a_protocol_2_message_in_a_protocol_1_session_is_refused() -> None:
    pair = SessionPair.make(dialer_codec=RawPayload(encode(VERSIONS, 2)), acceptor_speaks=1)
    pair.handshake()
    with pytest.raises(RemoteProtocolError, match="malformed"):
        pair.send(pair.dialer, VERSIONS)
    assert pair.acceptor.state is SessionState.CLOSED


def test_a_protocol_1_message_in_a_protocol_2_session_is_read() -> None:
    # Either encoding is unambiguous; a protocol-1 updates message keeps its rule (topic = document).
    pair = SessionPair.make(dialer_codec=RawPayload(encode(VERSIONS, 1)))
    pair.handshake()
    assert pair.send(pair.dialer, VERSIONS) == [VersionsReceived(VERSIONS)]


def test_a_hello_inside_the_session_is_refused_by_the_state_table() -> None:
    pair = established()
    in_stream_hello = pair.dialer.send(Hello(nonce=b"n" * 16, time=int(NOW)))  # type: ignore[arg-type]
    with pytest.raises(RemoteProtocolError) as info:
        pair.acceptor.receive(in_stream_hello)
    assert info.value.reason == "unexpected"
    assert pair.acceptor.state is SessionState.CLOSED


GOOD_HELLO = Hello(nonce=b"n" * 16, time=int(NOW))


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        (hello_from(ALICE, BOB, Hello(nonce=b"n" * 16, time=int(NOW), protocol=2)), "version"),
        (hello_from(ALICE, BOB, Hello(nonce=b"n" * 15, time=int(NOW))), "malformed"),
        (hello_from(ALICE, BOB, Hello(nonce=b"n" * 16, time=int(NOW), reply_to=b"r" * 16)), "malformed"),
        (hello_from(ALICE, BOB, GOOD_HELLO, topic=DOC), "malformed"),
        (sealed(ALICE, BOB, VERSIONS, stream=HELLO_STREAM, seq=0), "unexpected"),
        (sealed(ALICE, BOB, b"not json", stream=HELLO_STREAM, seq=0), "malformed"),
    ],
    ids=["other protocol", "short nonce", "dialer hello answering", "hello with topic", "versions first", "junk"],
)
def test_a_bad_opening_hello_is_the_peers_fault(envelope: bytes, reason: str) -> None:
    acceptor = SessionPair.make().acceptor
    with pytest.raises(RemoteProtocolError) as info:
        acceptor.receive(envelope)
    assert info.value.reason == reason
    assert acceptor.state is SessionState.CLOSED
    assert acceptor.data_to_send() == []


def test_the_bad_hello_envelopes_differ_from_a_good_one_only_in_what_they_test() -> None:
    acceptor = SessionPair.make().acceptor
    assert acceptor.receive(hello_from(ALICE, BOB, GOOD_HELLO)) == [Established(ALICE.node_id)]


@pytest.mark.parametrize(("stream", "seq"), [(HELLO_STREAM, 1), (b"\x01" * 16, 0)])
def test_an_opening_envelope_outside_the_hello_stream_is_a_replay(stream: bytes, seq: int) -> None:
    acceptor = SessionPair.make().acceptor
    envelope = sealed(ALICE, BOB, GOOD_HELLO, stream=stream, seq=seq)
    assert_rejected(acceptor, envelope, RejectReason.REPLAY)


# -- local misuse --------------------------------------------------------------------------------------------


def test_a_closed_session_refuses_to_receive() -> None:
    pair = established()
    data = pair.dialer.send(VERSIONS)
    pair.acceptor.receive(data)
    with pytest.raises(EnvelopeRejected):
        pair.acceptor.receive(data)
    with pytest.raises(LocalProtocolError):
        pair.acceptor.receive(pair.dialer.send(VERSIONS))
    with pytest.raises(LocalProtocolError):
        pair.acceptor.send(VERSIONS)


def test_a_session_closed_locally_refuses_to_receive_or_send() -> None:
    pair = established()
    pair.acceptor.close()
    with pytest.raises(LocalProtocolError):
        pair.acceptor.receive(pair.dialer.send(VERSIONS))
    with pytest.raises(LocalProtocolError):
        pair.acceptor.send(VERSIONS)


@pytest.mark.parametrize("side", ["dialer", "acceptor"])
def test_sending_before_the_session_is_established_is_our_bug(side: str) -> None:
    pair = SessionPair.make()
    pair.dialer.initiate()
    with pytest.raises(LocalProtocolError):
        getattr(pair, side).send(VERSIONS)


def test_only_a_new_dialer_says_hello_first() -> None:
    pair = SessionPair.make()
    with pytest.raises(LocalProtocolError):
        pair.acceptor.initiate()
    pair.dialer.initiate()
    with pytest.raises(LocalProtocolError):
        pair.dialer.initiate()


def test_a_dialer_must_say_hello_before_it_listens() -> None:
    first = SessionPair.make()
    first.acceptor.receive(first.dialer.initiate())
    (answer,) = first.acceptor.data_to_send()
    with pytest.raises(LocalProtocolError):
        SessionPair.make().dialer.receive(answer)


def test_a_dialer_must_know_whom_it_dials() -> None:
    with pytest.raises(LocalProtocolError):
        SyncSession(ALICE, Role.DIALER, keys(BOB).get, hello_cache=HelloCache())


# -- any input -----------------------------------------------------------------------------------------------

HEADER_PREFIX = SessionPair.make().dialer.initiate()[:60]


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300) | st.binary(max_size=300).map(lambda tail: HEADER_PREFIX + tail))
def test_random_bytes_to_an_acceptor_are_refused_and_nothing_else(data: bytes) -> None:
    acceptor = SessionPair.make().acceptor
    with pytest.raises((EnvelopeRejected, RemoteProtocolError)):
        acceptor.receive(data)
    assert acceptor.state is SessionState.CLOSED
    assert acceptor.data_to_send() == []


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([VERSIONS, UPDATES]),
    st.sampled_from(["dialer", "acceptor"]),
    st.data(),
)
def test_any_corruption_of_a_genuine_envelope_is_refused(
    message: Versions | Updates, sender_side: str, data: st.DataObject
) -> None:
    pair = established()
    sender = getattr(pair, sender_side)
    receiver = pair.acceptor if sender is pair.dialer else pair.dialer
    envelope = bytearray(sender.send(message))
    flips = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(envelope) - 1), st.integers(1, 255)),
            min_size=1,
            max_size=3,
            unique_by=lambda f: f[0],
        )
    )
    for index, mask in flips:
        envelope[index] ^= mask
    with pytest.raises(EnvelopeRejected):
        receiver.receive(bytes(envelope))
    assert receiver.state is SessionState.CLOSED


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 400), st.binary(max_size=40))
def test_truncated_or_extended_envelopes_are_refused(cut: int, extra: bytes) -> None:
    pair = established()
    genuine = pair.dialer.send(UPDATES)
    mangled = genuine[: min(cut, len(genuine) - 1)] + extra
    assume(mangled != genuine)
    with pytest.raises(EnvelopeRejected):
        pair.acceptor.receive(mangled)
