"""Relay request and response bodies: length-prefixed frames, encoded and parsed without I/O.

Frames rather than JSON because envelopes are binary and can be megabytes: a length prefix costs
four bytes where base64 would cost a third. A deposit body is `u32 length + envelope`, repeated; a
fetch answer is `u64 mail id + u32 length + envelope`, repeated (big-endian). Parsing is strict
(a truncated or zero-length frame is an error, never a short list) and raises only `FrameError`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Final

from crypto.errors import SeajustError

_LEN: Final = struct.Struct(">I")
_ID_LEN: Final = struct.Struct(">QI")
DEPOSIT_FRAME_OVERHEAD: Final = _LEN.size
MAIL_FRAME_OVERHEAD: Final = _ID_LEN.size
MAX_FRAME: Final = 2**32 - 1
MAX_ID: Final = 2**63 - 1  # SQLite's largest rowid


class FrameError(SeajustError):
    """The relay message body is not a well-formed sequence of frames."""


def encode_deposit(envelopes: Iterable[bytes]) -> bytes:
    parts: list[bytes] = []
    for envelope in envelopes:
        if not 0 < len(envelope) <= MAX_FRAME:
            raise FrameError("an envelope must be between 1 byte and 4 GiB")
        parts += (_LEN.pack(len(envelope)), bytes(envelope))
    return b"".join(parts)


def decode_deposit(body: bytes) -> list[bytes]:
    view = memoryview(body)
    pos = 0
    out: list[bytes] = []
    while pos < len(view):
        if pos + _LEN.size > len(view):
            raise FrameError("truncated frame length")
        (size,) = _LEN.unpack_from(view, pos)
        pos += _LEN.size
        if size == 0:
            raise FrameError("empty frame")
        if pos + size > len(view):
            raise FrameError("truncated frame")
        out.append(bytes(view[pos : pos + size]))
        pos += size
    return out


def encode_mail(items: Sequence[tuple[int, bytes]]) -> bytes:
    parts: list[bytes] = []
    for mail_id, envelope in items:
        if not 0 <= mail_id <= MAX_ID or not 0 < len(envelope) <= MAX_FRAME:
            raise FrameError("mail id or envelope size out of range")
        parts += (_ID_LEN.pack(mail_id, len(envelope)), bytes(envelope))
    return b"".join(parts)


def decode_mail(body: bytes) -> list[tuple[int, bytes]]:
    """Also refuses ids that do not increase: the relay answers in id order, and the caller acks by the
    last id, so an out-of-order answer could make it acknowledge mail it never got."""
    view = memoryview(body)
    pos = 0
    last = -1
    out: list[tuple[int, bytes]] = []
    while pos < len(view):
        if pos + _ID_LEN.size > len(view):
            raise FrameError("truncated frame header")
        mail_id, size = _ID_LEN.unpack_from(view, pos)
        pos += _ID_LEN.size
        if size == 0:
            raise FrameError("empty frame")
        if mail_id > MAX_ID or mail_id <= last:
            raise FrameError("mail ids out of order")
        if pos + size > len(view):
            raise FrameError("truncated frame")
        out.append((mail_id, bytes(view[pos : pos + size])))
        pos += size
        last = mail_id
    return out
