"""Signed, timed, single-use request tokens: what attachment requests (`sync.blob_transfer`) and relay
requests (`sync.relay_auth`) have in common.

A token is `SCHEME base64url(JSON).base64url(Ed25519 over domain + the exact JSON bytes)`; the JSON
always holds `v`, `time` and a 16-byte `nonce`, plus the fields of its kind. This module makes and
splits tokens and remembers nonces; each kind checks its own fields and who may sign, and raises its
own rejection (a `SignedRequestRejected` with its own reasons).

A token is acceptable while `|time - now| <= max_skew`, so its nonce need only be kept until
`time + max_skew`. Memory is bounded: beyond `limit` live nonces the oldest-dated is dropped and every
token dated no later than it is refused from then on, so forgetting one never re-opens a replay.
"""

from __future__ import annotations

import enum
import heapq
import json
from collections.abc import Callable, Collection
from typing import Any, Final

from crypto.encoding import b64url, unb64url
from crypto.errors import CryptoError
from crypto.identity import SIGNATURE_SIZE, Identity
from sync.errors import LocalProtocolError

VERSION: Final = 1
NONCE_BYTES: Final = 16
MAX_TIME: Final = 2**53  # keeps `time - now` exact in float arithmetic


class SignedRequestRejected(CryptoError):
    """A signed request was refused; `reason` is one of its kind's short, stable codes, safe to log and count."""

    def __init__(self, reason: enum.StrEnum, detail: str = "", *, peer: str | None = None) -> None:
        # Fixed, code-written details only; the claimed sender is kept apart for the rejection log.
        super().__init__(f"{self.what} rejected: {reason.value}" + (f" ({detail})" if detail else ""))
        self.reason = reason
        self.detail = detail
        self.peer = peer

    what = "request"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.reason, self.detail, self.peer))


def _rebuild(
    kind: type[SignedRequestRejected], reason: enum.StrEnum, detail: str, peer: str | None
) -> SignedRequestRejected:
    return kind(reason, detail, peer=peer)


def make_token(
    identity: Identity, *, scheme: str, domain: bytes, fields: dict[str, Any], now: float, rng: Callable[[int], bytes]
) -> str:
    """The header value for one request: `fields` plus version, time and a fresh nonce, signed by `identity`."""
    nonce = rng(NONCE_BYTES)
    if len(nonce) != NONCE_BYTES:
        raise LocalProtocolError("the nonce source gave the wrong number of bytes")
    body = {**fields, "v": VERSION, "time": int(now), "nonce": b64url(nonce)}
    payload = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("ascii")
    return f"{scheme} {b64url(payload)}.{b64url(identity.sign(domain + payload))}"


def split_token(
    header: object, *, scheme: str, max_header: int, keys: Collection[str], text: Collection[str]
) -> tuple[dict[str, Any], bytes, bytes]:
    """(fields, signed JSON bytes, signature) of a header, its common fields checked; `ValueError(detail)` if not.

    `keys` is the kind's whole field set, `text` the fields it holds as strings (besides the nonce).
    """
    if not isinstance(header, str) or len(header) > max_header:
        raise ValueError("header missing or too long")
    given_scheme, _, token = header.partition(" ")
    if given_scheme != scheme:
        raise ValueError(f"not an {scheme} header")
    body_text, dot, sig_text = token.partition(".")
    payload = unb64url(body_text)
    signature = unb64url(sig_text) if dot else None
    if payload is None or signature is None or len(signature) != SIGNATURE_SIZE:
        raise ValueError("token is not base64url JSON and a signature")
    try:
        fields = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("token body is not JSON") from None
    if not isinstance(fields, dict) or set(fields) != set(keys):
        raise ValueError("token fields are wrong")
    if type(fields["v"]) is not int or fields["v"] != VERSION:
        raise ValueError("unsupported token version")
    if not all(isinstance(fields[k], str) for k in (*text, "nonce")) or type(fields["time"]) is not int:
        raise ValueError("token field of the wrong type")
    if not 0 <= fields["time"] <= MAX_TIME:
        raise ValueError("token time out of range")
    nonce = unb64url(fields["nonce"])
    if nonce is None or len(nonce) != NONCE_BYTES:
        raise ValueError("nonce has the wrong length")
    return fields, payload, signature


class NonceMemory:
    def __init__(self, *, max_skew: float, limit: int) -> None:
        self._max_skew = max_skew
        self._limit = limit
        self._seen: set[tuple[str, str]] = set()
        self._live: list[tuple[int, tuple[str, str]]] = []  # heap of (token time, key), oldest first
        self._floor: int | None = None  # tokens dated at or before this are refused (see above)

    def __len__(self) -> int:
        return len(self._seen)

    def remember(self, sender: str, nonce: str, issued: int, now: float) -> bool:
        """Record a token's nonce; False if it was seen before (or is too old to tell)."""
        while self._live and self._live[0][0] + self._max_skew < now:
            self._seen.discard(heapq.heappop(self._live)[1])
        key = (sender, nonce)
        if key in self._seen or (self._floor is not None and issued <= self._floor):
            return False
        self._seen.add(key)
        heapq.heappush(self._live, (issued, key))
        while len(self._seen) > self._limit:
            dropped_time, dropped = heapq.heappop(self._live)
            self._seen.discard(dropped)
            self._floor = dropped_time if self._floor is None else max(self._floor, dropped_time)
        return True
