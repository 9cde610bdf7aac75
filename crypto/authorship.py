"""Signed document updates: proof of authorship that survives relaying.

An envelope proves who *sent* a message, which for a relayed update is the relay, not the author.
So each CRDT update also carries its author's signature over the document, the author and the
range of the author's sequence numbers it covers: a relay can pass it on but cannot alter it,
attribute it to someone else, move it to another document, or renumber it.

Signed message (integers big-endian)::

    b"seajust-update-v1\\n" + u16 len + doc_id (UTF-8) + u8 len + author_id (ASCII)
    + u64 seq_from + u64 seq_to + update

Checking that `author_id` belongs to `sign_key` (via the author's card) is the caller's job.
"""

from __future__ import annotations

import struct

from crypto.errors import CryptoError, SignatureInvalid
from crypto.identity import Identity, verify_signature

_DOMAIN = b"seajust-update-v1\n"
_SEQS = struct.Struct(">QQ")
_MAX_SEQ = 2**64 - 1


def _signed_message(*, doc_id: str, author_id: str, seq_from: int, seq_to: int, update: bytes) -> bytes:
    """Length-prefixed fields, so no two different field values can produce the same bytes."""
    doc = doc_id.encode("utf-8")
    author = author_id.encode("ascii")
    if len(doc) > 0xFFFF or len(author) > 0xFF:
        raise ValueError("field too long")
    for seq in (seq_from, seq_to):
        if type(seq) is not int or not 0 <= seq <= _MAX_SEQ:
            raise ValueError("seq out of range")
    return b"".join(
        [
            _DOMAIN,
            len(doc).to_bytes(2, "big"),
            doc,
            bytes([len(author)]),
            author,
            _SEQS.pack(seq_from, seq_to),
            bytes(update),
        ]
    )


def sign_update(identity: Identity, *, doc_id: str, seq_from: int, seq_to: int, update: bytes) -> bytes:
    """Sign as `identity.node_id`; bad arguments are a bug here and raise `CryptoError`."""
    try:
        message = _signed_message(
            doc_id=doc_id, author_id=identity.node_id, seq_from=seq_from, seq_to=seq_to, update=update
        )
    except ValueError:
        raise CryptoError("cannot sign this update: doc_id too long or seq outside 0..2**64-1") from None
    return identity.sign(message)


def verify_update(
    sign_key: bytes,
    signature: bytes,
    *,
    doc_id: str,
    author_id: str,
    seq_from: int,
    seq_to: int,
    update: bytes,
) -> None:
    """Fields that could never have been signed fail the same way as a bad signature."""
    try:
        message = _signed_message(doc_id=doc_id, author_id=author_id, seq_from=seq_from, seq_to=seq_to, update=update)
    except ValueError:
        raise SignatureInvalid() from None
    verify_signature(sign_key, signature, message)
