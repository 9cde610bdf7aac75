"""Envelopes: every sync message is signed by its sender and encrypted for one recipient.

Wire format (integers big-endian)::

    header   = b"SJE1"
             + u8 len + sender_id      (ASCII, canonical dashed node ID)
             + u8 len + recipient_id   (ASCII, canonical dashed node ID)
             + u16 len + topic         (UTF-8, at most 512 bytes; a document ID, or "" for session messages)
             + stream (16 bytes) + seq (u64)
             + ephemeral X25519 public key (32 bytes)
    body     = ChaCha20-Poly1305(key, nonce = 12 zero bytes, signature(64) + payload, aad = header)
    envelope = header + body

    key       = HKDF-SHA256(X25519(ephemeral, recipient_kx), salt = ephemeral_pub + recipient_kx,
                            info = b"seajust-envelope-v1", 32 bytes)
    signature = Ed25519(sender, b"seajust-envelope-v1\\n" + header + payload)

The header stays readable so relays and routers can deliver without keys; it is authenticated
twice, as AEAD associated data (so any change fails decryption) and under the signature (so the
sender vouches for recipient, topic, stream and seq, and a message cannot be re-addressed). The
signature sits inside the ciphertext, so a relay cannot prove to anyone who sent a message.

`open_envelope` checks cheapest and least revealing first, and for any input raises only
`EnvelopeRejected`: its input comes from the network.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto.errors import CryptoError, EnvelopeRejected, NodeIdError, RejectReason, SignatureInvalid
from crypto.identity import KEY_SIZE, SIGNATURE_SIZE, Identity, verify_signature
from crypto.node_id import parse_node_id

MAGIC = b"SJE1"
MAX_PAYLOAD = 64 * 1024 * 1024
MAX_TOPIC_BYTES = 512
STREAM_SIZE = 16
MAX_SEQ = 2**64 - 1
_DOMAIN = b"seajust-envelope-v1"
_SIGNING_DOMAIN = _DOMAIN + b"\n"
# A fixed nonce is safe because every envelope has its own key: the key is derived from a fresh
# ephemeral X25519 key, so no (key, nonce) pair is ever used twice.
_NONCE = bytes(12)
_TAG_SIZE = 16
_MIN_BODY = SIGNATURE_SIZE + _TAG_SIZE
_MAX_BODY = SIGNATURE_SIZE + MAX_PAYLOAD + _TAG_SIZE
_SEQ = struct.Struct(">Q")


@dataclass(frozen=True)
class EnvelopeHeader:
    """The routing part of an envelope: readable by relays, but bound to the content."""

    sender_id: str
    recipient_id: str
    topic: str
    stream: bytes
    seq: int


@dataclass(frozen=True)
class OpenedEnvelope:
    """A message whose sender, recipient, integrity and freshness have all been checked."""

    header: EnvelopeHeader
    payload: bytes
    signed_by: bytes = b""  # which of the sender's keys signed it (a node announcing new keys has two)

    @property
    def sender_id(self) -> str:
        return self.header.sender_id

    @property
    def topic(self) -> str:
        return self.header.topic

    @property
    def stream(self) -> bytes:
        return self.header.stream

    @property
    def seq(self) -> int:
        return self.header.seq


def _encode_header(header: EnvelopeHeader, ephemeral_pub: bytes) -> bytes:
    sender = header.sender_id.encode("ascii")
    recipient = header.recipient_id.encode("ascii")
    topic = header.topic.encode("utf-8")
    return b"".join(
        [
            MAGIC,
            bytes([len(sender)]),
            sender,
            bytes([len(recipient)]),
            recipient,
            len(topic).to_bytes(2, "big"),
            topic,
            header.stream,
            _SEQ.pack(header.seq),
            ephemeral_pub,
        ]
    )


def _malformed(detail: str) -> EnvelopeRejected:
    return EnvelopeRejected(RejectReason.MALFORMED, detail)


class _Reader:
    """Reads fields in order; running short is always MALFORMED, never IndexError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise _malformed("truncated")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def node_id(self) -> str:
        raw = self.take(self.take(1)[0])
        try:
            text = raw.decode("ascii")
            if parse_node_id(text) != text:
                raise NodeIdError()
        except (UnicodeDecodeError, NodeIdError):
            raise _malformed("bad node ID") from None
        return text


def _parse(data: object) -> tuple[EnvelopeHeader, bytes, bytes, bytes]:
    """Return (header, ephemeral public key, header bytes, body)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _malformed("not bytes")
    data = bytes(data)
    reader = _Reader(data)
    if reader.take(len(MAGIC)) != MAGIC:
        raise _malformed("not an envelope")
    sender_id = reader.node_id()
    recipient_id = reader.node_id()
    topic_len = int.from_bytes(reader.take(2), "big")
    if topic_len > MAX_TOPIC_BYTES:
        raise _malformed("topic too long")
    try:
        topic = reader.take(topic_len).decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("topic is not UTF-8") from None
    stream = reader.take(STREAM_SIZE)
    (seq,) = _SEQ.unpack(reader.take(_SEQ.size))
    ephemeral_pub = reader.take(KEY_SIZE)
    header_bytes = data[: reader.pos]
    body = data[reader.pos :]
    if len(body) < _MIN_BODY:
        raise _malformed("truncated")
    if len(body) > _MAX_BODY:
        raise _malformed("payload too large")
    header = EnvelopeHeader(sender_id=sender_id, recipient_id=recipient_id, topic=topic, stream=stream, seq=seq)
    return header, ephemeral_pub, header_bytes, body


def _envelope_key(shared_secret: bytes, ephemeral_pub: bytes, recipient_kx_key: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_pub + recipient_kx_key, info=_DOMAIN)
    return hkdf.derive(shared_secret)


def seal(
    sender: Identity,
    *,
    recipient_id: str,
    recipient_kx_key: bytes,
    topic: str,
    stream: bytes,
    seq: int,
    payload: bytes,
    ephemeral: X25519PrivateKey | None = None,
) -> bytes:
    """Sign then encrypt `payload` for one recipient.

    `ephemeral` exists so tests can pin the output byte for byte. Never pass the same ephemeral
    key for two different messages: the key and nonce would repeat, which breaks the cipher.
    Bad arguments are this node's bug and raise `CryptoError` (`NodeIdError` for the ID).
    """
    header = EnvelopeHeader(
        sender_id=sender.node_id,
        recipient_id=parse_node_id(recipient_id),
        topic=topic,
        stream=bytes(stream),
        seq=seq,
    )
    try:
        topic_len = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        raise CryptoError("envelope topic is not valid text") from None
    if topic_len > MAX_TOPIC_BYTES:
        raise CryptoError(f"envelope topic is longer than {MAX_TOPIC_BYTES} bytes")
    if len(header.stream) != STREAM_SIZE:
        raise CryptoError(f"envelope stream must be {STREAM_SIZE} bytes")
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
        raise CryptoError("envelope seq must fit in 64 bits")
    if len(payload) > MAX_PAYLOAD:
        raise CryptoError(f"envelope payload is larger than {MAX_PAYLOAD} bytes")
    if ephemeral is None:
        ephemeral = X25519PrivateKey.generate()
    ephemeral_pub = ephemeral.public_key().public_bytes_raw()
    try:
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_kx_key))
    except ValueError:
        raise CryptoError("the recipient's key-exchange key is not usable") from None
    header_bytes = _encode_header(header, ephemeral_pub)
    payload = bytes(payload)
    signature = sender.sign(_SIGNING_DOMAIN + header_bytes + payload)
    key = _envelope_key(shared, ephemeral_pub, recipient_kx_key)
    return header_bytes + ChaCha20Poly1305(key).encrypt(_NONCE, signature + payload, header_bytes)


def peek_header(data: bytes) -> EnvelopeHeader:
    """Parse the header without keys, for routing and relays. Nothing here is authenticated yet."""
    return _parse(data)[0]


def open_envelope(
    recipient: Identity,
    data: bytes,
    *,
    sender_sign_key: Callable[[str], bytes | Sequence[bytes] | None],
    replay_guard: ReplayGuard | None = None,
) -> OpenedEnvelope:
    """Check, decrypt and verify an envelope, or raise `EnvelopeRejected` with the first failure.

    `sender_sign_key` maps a node ID to the signing key this node trusts for it (or its keys: the
    current one and the one it announced it is rotating to), or None for a node it does not know; no
    cryptographic work is spent on strangers.
    """
    header, ephemeral_pub, header_bytes, body = _parse(data)
    if header.recipient_id != recipient.node_id:
        raise EnvelopeRejected(RejectReason.WRONG_RECIPIENT)
    found = sender_sign_key(header.sender_id)
    if not found:
        raise EnvelopeRejected(RejectReason.UNTRUSTED_SENDER)
    keys = (found,) if isinstance(found, bytes) else tuple(found)
    try:
        shared = recipient.exchange(ephemeral_pub)
        key = _envelope_key(shared, ephemeral_pub, recipient.public.kx_key)
        plaintext = ChaCha20Poly1305(key).decrypt(_NONCE, body, header_bytes)
    except (CryptoError, InvalidTag):
        raise EnvelopeRejected(RejectReason.DECRYPT_FAILED) from None
    signature, payload = plaintext[:SIGNATURE_SIZE], plaintext[SIGNATURE_SIZE:]
    for key in keys:
        try:
            verify_signature(key, signature, _SIGNING_DOMAIN + header_bytes + payload)
        except SignatureInvalid:
            continue
        if replay_guard is not None:
            replay_guard.accept(header.sender_id, header.stream, header.seq)
        return OpenedEnvelope(header=header, payload=payload, signed_by=key)
    raise EnvelopeRejected(RejectReason.BAD_SIGNATURE)


class ReplayGuard:
    """Refuses a sequence number at or below the highest accepted on the same (sender, stream).

    Streams are ordered, so the highest seq is all there is to remember. Memory is bounded by
    forgetting the least recently used streams; a forgotten stream accepts old numbers again, so
    this is a first line only: the sync layer's durable state is the authority on what was applied.
    """

    def __init__(self, max_streams: int = 4096) -> None:
        if max_streams < 1:
            raise ValueError("max_streams must be at least 1")
        self._max_streams = max_streams
        self._highest: OrderedDict[tuple[str, bytes], int] = OrderedDict()

    def accept(self, sender_id: str, stream: bytes, seq: int) -> None:
        key = (sender_id, bytes(stream))
        highest = self._highest.get(key)
        if highest is not None:
            self._highest.move_to_end(key)
            if seq <= highest:
                raise EnvelopeRejected(RejectReason.REPLAY)
        self._highest[key] = seq
        self._highest.move_to_end(key)
        while len(self._highest) > self._max_streams:
            self._highest.popitem(last=False)

    def forget_stream(self, sender_id: str, stream: bytes) -> None:
        """For when a stream is closed for good, so its memory can be reused at once."""
        self._highest.pop((sender_id, bytes(stream)), None)

    def __len__(self) -> int:
        return len(self._highest)
