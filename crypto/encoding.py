"""Unpadded base64url, decoded strictly: the one text form of bytes in cards, grants, tokens and history entries.

Strict because these texts are signed or compared: accepting a second spelling of the same bytes
(padding, other alphabet, non-zero trailing bits) would let one signed object look like two.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes | None:
    """The bytes `text` is the canonical encoding of, or None."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if b64url(data) == text else None
