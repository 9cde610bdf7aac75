"""Envelopes: only the recipient can read, only the trusted sender can write, nothing can be replayed,
and no input at all makes `open_envelope` raise anything but `EnvelopeRejected`."""

import contextlib
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.envelope import (
    MAX_PAYLOAD,
    EnvelopeHeader,
    OpenedEnvelope,
    ReplayGuard,
    open_envelope,
    peek_header,
    seal,
)
from crypto.errors import CryptoError, EnvelopeRejected, NodeIdError, RejectReason
from crypto.identity import Identity

ALICE = Identity.from_secret_bytes(bytes(range(64)))
BOB = Identity.from_secret_bytes(bytes(range(64, 128)))
CAROL = Identity.from_secret_bytes(bytes(range(128, 192)))  # a relay
MALLORY = Identity.from_secret_bytes(bytes(range(192, 256)))
EPHEMERAL = X25519PrivateKey.from_private_bytes(b"\x42" * 32)
STREAM = bytes(range(16))
TOPIC = "case/TH-2024-0001 \N{THAI CHARACTER KO KAI}"
PAYLOAD = b"secret case content: witness statement"
HEADER_LEN = 4 + 1 + 21 + 1 + 21 + 2 + len(TOPIC.encode()) + 16 + 8 + 32


def trust(*identities: Identity) -> dict[str, bytes]:
    return {i.node_id: i.public.sign_key for i in identities}


TRUSTED = trust(ALICE)


def sealed(seq: int = 1, payload: bytes = PAYLOAD, stream: bytes = STREAM, sender: Identity = ALICE) -> bytes:
    return seal(
        sender,
        recipient_id=BOB.node_id,
        recipient_kx_key=BOB.public.kx_key,
        topic=TOPIC,
        stream=stream,
        seq=seq,
        payload=payload,
    )


def bob_opens(data: bytes, guard: ReplayGuard | None = None) -> OpenedEnvelope:
    return open_envelope(BOB, data, sender_sign_key=TRUSTED.get, replay_guard=guard)


def rejected(data: bytes, guard: ReplayGuard | None = None) -> RejectReason:
    with pytest.raises(EnvelopeRejected) as caught:
        bob_opens(data, guard)
    assert PAYLOAD not in caught.value.message.encode()
    return caught.value.reason


def spec_seal(
    signer: Identity, sender_id: str, recipient_id: str, recipient_kx: bytes, ephemeral: X25519PrivateKey, seq: int = 1
) -> bytes:
    """The wire format, written from the documentation and nothing else."""
    topic = TOPIC.encode()
    eph_pub = ephemeral.public_key().public_bytes_raw()
    header = (
        b"SJE1"
        + struct.pack(">B", len(sender_id))
        + sender_id.encode()
        + struct.pack(">B", len(recipient_id))
        + recipient_id.encode()
        + struct.pack(">H", len(topic))
        + topic
        + STREAM
        + struct.pack(">Q", seq)
        + eph_pub
    )
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_kx))
    key = HKDF(hashes.SHA256(), 32, salt=eph_pub + recipient_kx, info=b"seajust-envelope-v1").derive(shared)
    signature = signer.sign(b"seajust-envelope-v1\n" + header + PAYLOAD)
    return header + ChaCha20Poly1305(key).encrypt(bytes(12), signature + PAYLOAD, header)


def test_round_trip() -> None:
    opened = bob_opens(sealed(seq=7))
    assert opened.payload == PAYLOAD
    assert opened.header == EnvelopeHeader(
        sender_id=ALICE.node_id, recipient_id=BOB.node_id, topic=TOPIC, stream=STREAM, seq=7
    )
    assert (opened.sender_id, opened.topic, opened.stream, opened.seq) == (ALICE.node_id, TOPIC, STREAM, 7)


@pytest.mark.parametrize("payload", [b"", b"x", bytes(100_000)])
def test_payload_sizes(payload: bytes) -> None:
    assert bob_opens(sealed(payload=payload)).payload == payload


def test_session_messages_have_an_empty_topic() -> None:
    data = seal(
        ALICE,
        recipient_id=BOB.node_id,
        recipient_kx_key=BOB.public.kx_key,
        topic="",
        stream=STREAM,
        seq=0,
        payload=b"hi",
    )
    assert bob_opens(data).topic == ""


def test_pinned_randomness_gives_identical_bytes_matching_the_spec() -> None:
    def pinned() -> bytes:
        return seal(
            ALICE,
            recipient_id=BOB.node_id,
            recipient_kx_key=BOB.public.kx_key,
            topic=TOPIC,
            stream=STREAM,
            seq=1,
            payload=PAYLOAD,
            ephemeral=EPHEMERAL,
        )

    assert pinned() == pinned()
    assert pinned() == spec_seal(ALICE, ALICE.node_id, BOB.node_id, BOB.public.kx_key, EPHEMERAL)
    assert sealed() != sealed()  # a fresh ephemeral key each time


def test_relay_sees_only_the_header() -> None:
    data = sealed(seq=9)
    assert peek_header(data) == EnvelopeHeader(ALICE.node_id, BOB.node_id, TOPIC, STREAM, 9)
    assert PAYLOAD not in data
    assert ALICE.sign(b"seajust-envelope-v1\n" + data[:HEADER_LEN] + PAYLOAD) not in data  # signature is hidden


def test_wrong_recipient() -> None:
    with pytest.raises(EnvelopeRejected) as caught:
        open_envelope(CAROL, sealed(), sender_sign_key=trust(ALICE).get)
    assert caught.value.reason is RejectReason.WRONG_RECIPIENT


def test_relay_rewriting_the_recipient_cannot_decrypt() -> None:
    data = sealed()
    rewritten = data.replace(BOB.node_id.encode(), CAROL.node_id.encode())
    assert peek_header(rewritten).recipient_id == CAROL.node_id
    with pytest.raises(EnvelopeRejected) as caught:
        open_envelope(CAROL, rewritten, sender_sign_key=trust(ALICE).get)
    assert caught.value.reason is RejectReason.DECRYPT_FAILED


def test_untrusted_sender_costs_no_crypto() -> None:
    asked: list[str] = []

    def lookup(node_id: str) -> bytes | None:
        asked.append(node_id)
        return None

    with pytest.raises(EnvelopeRejected) as caught:
        open_envelope(BOB, sealed(sender=MALLORY), sender_sign_key=lookup)
    assert caught.value.reason is RejectReason.UNTRUSTED_SENDER
    assert asked == [MALLORY.node_id]


def test_forged_sender_fails_the_signature() -> None:
    """Mallory encrypts correctly to Bob but cannot sign as Alice."""
    forged = spec_seal(MALLORY, ALICE.node_id, BOB.node_id, BOB.public.kx_key, X25519PrivateKey.generate())
    assert peek_header(forged).sender_id == ALICE.node_id
    assert rejected(forged) is RejectReason.BAD_SIGNATURE
    genuine = spec_seal(ALICE, ALICE.node_id, BOB.node_id, BOB.public.kx_key, X25519PrivateKey.generate())
    assert bob_opens(genuine).payload == PAYLOAD


def test_trusting_a_different_key_for_the_sender_fails_the_signature() -> None:
    with pytest.raises(EnvelopeRejected) as caught:
        open_envelope(BOB, sealed(), sender_sign_key=lambda _: MALLORY.public.sign_key)
    assert caught.value.reason is RejectReason.BAD_SIGNATURE
    with pytest.raises(EnvelopeRejected) as caught:
        open_envelope(BOB, sealed(), sender_sign_key=lambda _: b"not a key")
    assert caught.value.reason is RejectReason.BAD_SIGNATURE


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_every_byte_flip_is_rejected(mask: int) -> None:
    data = sealed()
    header_reasons = {
        RejectReason.MALFORMED,
        RejectReason.WRONG_RECIPIENT,
        RejectReason.UNTRUSTED_SENDER,
        RejectReason.DECRYPT_FAILED,
    }
    for position in range(len(data)):
        flipped = bytearray(data)
        flipped[position] ^= mask
        reason = rejected(bytes(flipped))
        if position < HEADER_LEN:
            assert reason in header_reasons, position
        else:
            assert reason is RejectReason.DECRYPT_FAILED, position


def test_every_truncation_is_rejected() -> None:
    data = sealed()
    for length in range(len(data)):
        reason = rejected(data[:length])
        if length < HEADER_LEN + 64 + 16:
            assert reason is RejectReason.MALFORMED, length
        else:
            assert reason is RejectReason.DECRYPT_FAILED, length


def test_appended_bytes_are_rejected() -> None:
    assert rejected(sealed() + b"\x00") is RejectReason.DECRYPT_FAILED


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"SJE2" + bytes(300),
        b"SJE1" + bytes(300),
        b"SJE1\x15" + b"\xff" * 21 + bytes(300),  # non-ASCII sender
    ],
)
def test_garbage_is_malformed(data: bytes) -> None:
    assert rejected(data) is RejectReason.MALFORMED
    with pytest.raises(EnvelopeRejected):
        peek_header(data)


def test_non_canonical_ids_and_long_topics_are_malformed() -> None:
    data = sealed()
    assert rejected(data.replace(ALICE.node_id.encode(), ALICE.node_id.lower().encode())) is RejectReason.MALFORMED
    topic_at = 4 + 1 + 21 + 1 + 21
    too_long = data[:topic_at] + (513).to_bytes(2, "big") + data[topic_at + 2 :] + bytes(600)
    assert rejected(too_long) is RejectReason.MALFORMED
    bad_utf8 = bytearray(data)
    bad_utf8[topic_at + 2] = 0xFF
    assert rejected(bytes(bad_utf8)) is RejectReason.MALFORMED


def test_replay_guard() -> None:
    guard = ReplayGuard()
    first = sealed(seq=5)
    assert bob_opens(first, guard).seq == 5
    assert rejected(first, guard) is RejectReason.REPLAY
    assert rejected(sealed(seq=3), guard) is RejectReason.REPLAY
    assert rejected(sealed(seq=5), guard) is RejectReason.REPLAY
    assert bob_opens(sealed(seq=6), guard).seq == 6
    assert bob_opens(sealed(seq=1, stream=bytes(16)), guard).seq == 1  # streams are independent
    guard.forget_stream(ALICE.node_id, STREAM)
    assert bob_opens(sealed(seq=2), guard).seq == 2


def test_rejected_envelopes_do_not_advance_the_guard() -> None:
    guard = ReplayGuard()
    damaged = bytearray(sealed(seq=7))
    damaged[-1] ^= 1
    assert rejected(bytes(damaged), guard) is RejectReason.DECRYPT_FAILED
    assert bob_opens(sealed(seq=7), guard).seq == 7


def test_replay_guard_is_per_sender_and_bounded() -> None:
    guard = ReplayGuard(max_streams=2)
    guard.accept("A", STREAM, 10)
    guard.accept("B", STREAM, 10)  # same stream bytes, other sender
    with pytest.raises(EnvelopeRejected):
        guard.accept("A", STREAM, 10)  # touches A, so B is now least recently used
    guard.accept("C", STREAM, 1)
    assert len(guard) == 2
    guard.accept("B", STREAM, 1)  # B was evicted
    with pytest.raises(EnvelopeRejected) as caught:
        guard.accept("C", STREAM, 1)
    assert caught.value.reason is RejectReason.REPLAY


def test_seal_refuses_bad_arguments() -> None:
    base: dict[str, Any] = {
        "recipient_id": BOB.node_id,
        "recipient_kx_key": BOB.public.kx_key,
        "topic": TOPIC,
        "stream": STREAM,
        "seq": 1,
        "payload": b"",
    }
    seal(ALICE, **base)
    seal(ALICE, **{**base, "topic": "t" * 512, "seq": 2**64 - 1})
    changes: list[tuple[dict[str, Any], type[Exception]]] = [
        ({"recipient_id": "nonsense"}, NodeIdError),
        ({"recipient_kx_key": bytes(32)}, CryptoError),
        ({"recipient_kx_key": b"short"}, CryptoError),
        ({"topic": "t" * 513}, CryptoError),
        ({"topic": "\ud800"}, CryptoError),
        ({"stream": bytes(15)}, CryptoError),
        ({"seq": -1}, CryptoError),
        ({"seq": 2**64}, CryptoError),
        ({"payload": bytes(MAX_PAYLOAD + 1)}, CryptoError),
    ]
    for change, error in changes:
        with pytest.raises(error):
            seal(ALICE, **{**base, **change})


def test_typed_recipient_id_is_canonicalised() -> None:
    data = seal(
        ALICE,
        recipient_id=BOB.node_id.lower().replace("-", " "),
        recipient_kx_key=BOB.public.kx_key,
        topic=TOPIC,
        stream=STREAM,
        seq=1,
        payload=PAYLOAD,
    )
    assert bob_opens(data).payload == PAYLOAD


@settings(deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_are_only_ever_rejected(data: bytes) -> None:
    with pytest.raises(EnvelopeRejected):
        bob_opens(data)
    with pytest.raises(EnvelopeRejected):
        bob_opens(b"SJE1" + data)


VALID = sealed()


@settings(deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("set"), st.integers(0, len(VALID) - 1), st.integers(0, 255)),
            st.tuples(st.just("insert"), st.integers(0, len(VALID)), st.integers(0, 255)),
            st.tuples(st.just("delete"), st.integers(0, len(VALID) - 1), st.just(0)),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_mutations_are_only_ever_rejected(edits: list[tuple[str, int, int]]) -> None:
    data = bytearray(VALID)
    for op, position, value in edits:
        position = min(position, len(data) - 1 if op != "insert" else len(data))
        if op == "set" and data:
            data[position] = value
        elif op == "insert":
            data.insert(position, value)
        elif op == "delete" and data:
            del data[position]
    if bytes(data) == VALID:
        assert bob_opens(bytes(data)).payload == PAYLOAD
        return
    with pytest.raises(EnvelopeRejected):
        bob_opens(bytes(data))
    with contextlib.suppress(EnvelopeRejected):
        peek_header(bytes(data))
