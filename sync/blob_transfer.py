"""Signed blob requests: how a node proves to a peer that it is the one asking for an attachment.

Pure functions and one checker with an injectable clock; no I/O (the HTTP side is
`sync.blob_transport`). A request is a token in `Authorization: SJBLOB <token>`:

    base64url(JSON) "." base64url(Ed25519 signature over b"seajust-blob-request-v1\\n" + JSON)

where the JSON is `{"v": 1, "from": requester, "to": holder, "blob": id, "time": unix seconds,
"nonce": 16 random bytes, base64url}`. The signature covers the exact JSON bytes sent, so the
checker never re-serialises anything. Binding `to` and `blob` means a token captured on the way
to one node, or for one blob, is worthless for any other; `time` and `nonce` make it usable once,
within `max_skew` seconds. The blob itself is already encrypted with the case's key, so this
check decides only which trusted node may copy the ciphertext, not who can read it.
"""

from __future__ import annotations

import enum
import os
import re
import time
from collections.abc import Callable
from typing import Any, Final

from crypto.errors import SignatureInvalid
from crypto.identity import Identity, verify_signature
from sync.errors import LocalProtocolError
from sync.request_tokens import NonceMemory, SignedRequestRejected, make_token, split_token

SCHEME: Final = "SJBLOB"
MAX_SKEW: Final = 300.0  # seconds of clock difference tolerated between two nodes, as for a sync hello
MAX_HEADER: Final = 2048  # a genuine header is about 400 characters
NONCE_MEMORY: Final = 100_000
_DOMAIN: Final = b"seajust-blob-request-v1\n"
_KEYS: Final = frozenset({"v", "from", "to", "blob", "time", "nonce"})
_BLOB_ID: Final = re.compile(r"[0-9a-f]{64}")


def is_blob_id(text: object) -> bool:
    """A blob ID is exactly 64 lowercase hex digits (a SHA-256); nothing else is ever looked up."""
    return isinstance(text, str) and _BLOB_ID.fullmatch(text) is not None


class BlobRejectReason(enum.StrEnum):
    """Why a blob request was refused; short, stable strings safe to log and to count."""

    MALFORMED = "malformed"
    UNTRUSTED_SENDER = "untrusted_sender"
    BAD_SIGNATURE = "bad_signature"
    WRONG_RECIPIENT = "wrong_recipient"
    WRONG_BLOB = "wrong_blob"
    EXPIRED = "expired"
    REPLAY = "replay"


class BlobRequestRejected(SignedRequestRejected):
    """A request for an attachment was refused: it was not signed by a trusted node for this node and this
    attachment, or it was too old or already used."""

    what = "blob request"
    reason: BlobRejectReason


def make_blob_request(
    me: Identity,
    *,
    holder_id: str,
    blob_id: str,
    now: float,
    rng: Callable[[int], bytes] = os.urandom,
) -> str:
    """The `Authorization` header value asking node `holder_id` for `blob_id`; use it for one request only."""
    if not is_blob_id(blob_id):
        raise LocalProtocolError("a blob ID must be 64 lowercase hex digits")
    fields = {"from": me.node_id, "to": holder_id, "blob": blob_id}
    return make_token(me, scheme=SCHEME, domain=_DOMAIN, fields=fields, now=now, rng=rng)


def _parse(header: str) -> tuple[dict[str, Any], bytes, bytes]:
    """Split and decode a header into (fields, signed JSON bytes, signature); `malformed` if anything is off."""
    try:
        return split_token(header, scheme=SCHEME, max_header=MAX_HEADER, keys=_KEYS, text=("from", "to", "blob"))
    except ValueError as exc:
        raise BlobRequestRejected(BlobRejectReason.MALFORMED, str(exc)) from None


class BlobRequestChecker:
    """Checks blob requests arriving at node `me_id`; one per node, as it remembers nonces across requests.

    `sign_key_of` maps a trusted peer's node ID to its signing key, None for anyone else. A nonce
    is remembered while its token could still pass the time check (until `time + max_skew`, at
    most 2 * max_skew after it is first seen). Only tokens signed by a trusted node are remembered,
    and memory is bounded: beyond `limit` live nonces the oldest-dated is dropped and every token
    dated no later than it is refused from then on, so dropping one never re-opens a replay.
    """

    def __init__(
        self,
        me_id: str,
        sign_key_of: Callable[[str], bytes | None],
        *,
        max_skew: float = MAX_SKEW,
        clock: Callable[[], float] = time.time,
        limit: int = NONCE_MEMORY,
    ) -> None:
        self._me_id = me_id
        self._sign_key_of = sign_key_of
        self._max_skew = max_skew
        self._clock = clock
        self._nonces = NonceMemory(max_skew=max_skew, limit=limit)

    def check(self, header: str, blob_id: str) -> str:
        """Return the requesting node's ID, or raise `BlobRequestRejected`."""
        fields, payload, signature = _parse(header)
        sender: str = fields["from"]
        sign_key = self._sign_key_of(sender)
        if sign_key is None:
            raise BlobRequestRejected(BlobRejectReason.UNTRUSTED_SENDER, "not a trusted node", peer=sender)
        try:
            verify_signature(sign_key, signature, _DOMAIN + payload)
        except SignatureInvalid:
            raise BlobRequestRejected(
                BlobRejectReason.BAD_SIGNATURE, "signature does not verify", peer=sender
            ) from None
        # Everything below is signed by a trusted node, so it is safe to act on and to remember.
        if fields["to"] != self._me_id:
            raise BlobRequestRejected(BlobRejectReason.WRONG_RECIPIENT, "token is for another node", peer=sender)
        if fields["blob"] != blob_id:
            raise BlobRequestRejected(BlobRejectReason.WRONG_BLOB, "token is for another blob", peer=sender)
        now = self._clock()
        issued: int = fields["time"]
        if abs(issued - now) > self._max_skew:
            raise BlobRequestRejected(
                BlobRejectReason.EXPIRED,
                "token too old, or the clocks differ by more than the allowed skew",
                peer=sender,
            )
        if not self._nonces.remember(sender, fields["nonce"], issued, now):
            raise BlobRequestRejected(BlobRejectReason.REPLAY, "token used before", peer=sender)
        return sender
