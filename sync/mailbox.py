"""Mail: sync messages left at a relay for a peer that is not online, sans-io.

A live session authenticates freshness with hello nonces; mail cannot, because its sender and
recipient are never online together. Instead each sender keeps, per recipient and relay, a
random *mail stream* and a sequence number it raises for every envelope, and the recipient keeps
the highest number it accepted on each stream in its database: a replayed or reordered envelope
is refused for good, even after a restart. Mail envelopes carry the fixed topic `MAIL_TOPIC`, which
no session envelope uses (session topics are "" or a document ID), so an envelope captured from a
live session cannot be passed off as mail nor mail injected into a session; it also keeps the
document ID out of the header the relay reads.

The messages are the session's own (`Versions`, `Updates`, `Grants`), so the sync engine treats
mail exactly as it treats a session, only without acknowledgements on every update.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from crypto.envelope import open_envelope, seal
from crypto.errors import EnvelopeRejected, RejectReason
from crypto.identity import Identity
from sync.errors import RemoteProtocolError
from sync.messages import Bundle, Grants, Updates, Versions, decode, encode
from sync.protocol import PeerKeys

MAIL_TOPIC: Final = "seajust-mail-v1"
STREAM_BYTES: Final = 16

MailMessage = Versions | Updates | Grants | Bundle  # a node mails protocol 1 (JSON) and reads either

MAX_MAIL_SEQ = 2**63 - 1  # the highest mail sequence number a recipient can record (an SQLite integer)


@dataclass(frozen=True)
class Mail:
    sender: str
    stream: bytes
    seq: int
    message: MailMessage
    signed_by: bytes = b""  # the sender's key that signed it (its announced new key, once it rotated)


def new_stream() -> bytes:
    return os.urandom(STREAM_BYTES)


def seal_mail(me: Identity, peer: PeerKeys, *, stream: bytes, seq: int, message: MailMessage) -> bytes:
    """Seal one message for a peer on a mail stream; `seq` must rise with every envelope on that stream."""
    if seq < 1:
        raise ValueError("mail sequence numbers start at 1")
    return seal(
        me,
        recipient_id=peer.node_id,
        recipient_kx_key=peer.kx_key,
        topic=MAIL_TOPIC,
        stream=stream,
        seq=seq,
        payload=encode(message),
    )


def open_mail(
    me: Identity,
    data: bytes,
    *,
    sign_key_of: Callable[[str], bytes | Sequence[bytes] | None],
    last_seq: Callable[[str, bytes], int],
) -> Mail:
    """Check and decode one envelope fetched from a relay.

    `last_seq(sender, stream)` is the highest seq already accepted on that stream (0 for a new
    one); the caller records the returned mail's seq once it has acted on it. Raises only
    `EnvelopeRejected` or `RemoteProtocolError`, because the input is whatever the relay returned.
    """
    opened = open_envelope(me, data, sender_sign_key=sign_key_of)
    if opened.topic != MAIL_TOPIC:
        raise EnvelopeRejected(RejectReason.REPLAY, "a session envelope offered as mail")
    if opened.seq > MAX_MAIL_SEQ:  # the recipient keeps the last seq as an SQLite integer: it could not record it
        raise RemoteProtocolError("malformed", "mail sequence number out of range")
    if opened.seq <= last_seq(opened.sender_id, opened.stream):
        raise EnvelopeRejected(RejectReason.REPLAY, "mail already received or out of order")
    message = decode(opened.payload)
    if not isinstance(message, Versions | Updates | Grants | Bundle):
        raise RemoteProtocolError("unexpected", "a hello is not mail")
    return Mail(
        sender=opened.sender_id, stream=opened.stream, seq=opened.seq, message=message, signed_by=opened.signed_by
    )
