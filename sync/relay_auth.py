"""Signed relay requests: how a node proves to a relay which mailbox it may fill, read and empty.

Pure functions and one checker with an injectable clock; no I/O (the HTTP side is
`sync.relay_server` and `sync.relay_client`). A request carries `Authorization: SJRELAY <token>`:

    base64url(JSON) "." base64url(Ed25519 signature over b"seajust-relay-request-v1\\n" + JSON)

where the JSON is `{"v": 1, "op": "deposit" | "fetch" | "ack", "node": node ID, "sign_key": 32 bytes,
"kx_key": 32 bytes, "time": unix seconds, "nonce": 16 random bytes, "body": SHA-256 hex of the request
body}` (bytes as base64url). The relay keeps no list of members: a node ID is a hash of the node's two
public keys, so a token that carries both keys, hashes to its `node` and verifies under `sign_key`
proves that the sender holds that node's signing key. That is all a relay needs: it only ever hands a
node the ciphertext addressed to it, and takes envelopes only under their own sender's name.
Binding `op` and the body hash means a captured token cannot be turned into another operation or
carry another body; `time` and `nonce` make it usable once, within `max_skew` seconds.

Because anyone can make a node identity, anyone who can reach a relay can pass this check under an
identity of their own; what they get is an empty mailbox and a quota of their own.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import time
from collections.abc import Callable
from typing import Any, Final

from crypto.encoding import b64url, unb64url
from crypto.errors import SignatureInvalid
from crypto.identity import KEY_SIZE, Identity, verify_signature
from crypto.node_id import node_id_from_keys
from sync.errors import LocalProtocolError
from sync.request_tokens import NonceMemory, SignedRequestRejected, make_token, split_token

SCHEME: Final = "SJRELAY"
OPS: Final = frozenset({"deposit", "fetch", "ack"})
MAX_SKEW: Final = 300.0  # seconds of clock difference tolerated, as for blob requests and sync hellos
MAX_HEADER: Final = 2048  # a genuine header is about 500 characters
NONCE_MEMORY: Final = 100_000
_DOMAIN: Final = b"seajust-relay-request-v1\n"
_KEYS: Final = frozenset({"v", "op", "node", "sign_key", "kx_key", "time", "nonce", "body"})
_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")


class RelayRejectReason(enum.StrEnum):
    """Why a relay request was refused; short, stable strings safe to log and to count."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    WRONG_KEYS = "wrong_keys"
    WRONG_OP = "wrong_op"
    BODY_MISMATCH = "body_mismatch"
    EXPIRED = "expired"
    REPLAY = "replay"


class RelayRequestRejected(SignedRequestRejected):
    """A request to the relay was refused: it was not signed by the node it names, was meant for another
    operation or body, or was too old or already used."""

    what = "relay request"
    reason: RelayRejectReason


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def make_relay_request(
    identity: Identity,
    op: str,
    body: bytes,
    *,
    now: float | None = None,
    rng: Callable[[int], bytes] = os.urandom,
) -> str:
    """The `Authorization` header value for one request to a relay; use it for that request only."""
    if op not in OPS:
        raise LocalProtocolError(f"unknown relay operation {op!r}")
    fields = {
        "op": op,
        "node": identity.node_id,
        "sign_key": b64url(identity.public.sign_key),
        "kx_key": b64url(identity.public.kx_key),
        "body": body_digest(body),
    }
    return make_token(
        identity, scheme=SCHEME, domain=_DOMAIN, fields=fields, now=time.time() if now is None else now, rng=rng
    )


def _parse(header: object) -> tuple[dict[str, Any], bytes, bytes, bytes, bytes]:
    """Decode a header into (fields, signed JSON bytes, signature, sign key, kx key); `malformed` if anything
    is off. Every failure is this one exception: the header comes from anyone on the network."""

    def malformed(detail: str) -> RelayRequestRejected:
        return RelayRequestRejected(RelayRejectReason.MALFORMED, detail)

    try:
        fields, payload, signature = split_token(
            header, scheme=SCHEME, max_header=MAX_HEADER, keys=_KEYS, text=("op", "node", "sign_key", "kx_key", "body")
        )
    except ValueError as exc:
        raise malformed(str(exc)) from None
    if fields["op"] not in OPS:
        raise malformed("unknown operation")
    sign_key = unb64url(fields["sign_key"])
    kx_key = unb64url(fields["kx_key"])
    if sign_key is None or kx_key is None or len(sign_key) != KEY_SIZE or len(kx_key) != KEY_SIZE:
        raise malformed("public keys have the wrong length")
    if not _SHA256_HEX.fullmatch(fields["body"]):
        raise malformed("body hash is not SHA-256 hex")
    return fields, payload, signature, sign_key, kx_key


class RelayRequestChecker:
    """Checks requests arriving at one relay; one per relay, as it remembers nonces across requests.

    A nonce is remembered while its token could still pass the time check (until `time + max_skew`).
    Memory is bounded as in `sync.blob_transfer`: beyond `limit` live nonces the oldest-dated is
    dropped and every token dated no later than it is refused from then on, so dropping one never
    re-opens a replay. Since identities cost nothing, a flood of valid tokens can push that floor up
    and get honest requests refused for up to `2 * max_skew`; a replay itself gains little (a second
    copy of a node's own deposit, a fetch answered to whoever sent it, an ack already done).
    """

    def __init__(
        self,
        *,
        max_skew: float = MAX_SKEW,
        clock: Callable[[], float] = time.time,
        limit: int = NONCE_MEMORY,
    ) -> None:
        self._max_skew = max_skew
        self._clock = clock
        self._nonces = NonceMemory(max_skew=max_skew, limit=limit)

    def check(self, header: str, op: str, body: bytes) -> str:
        """Return the node ID that signed this request for `op` with exactly `body`, or raise
        `RelayRequestRejected`."""
        fields, payload, signature, sign_key, kx_key = _parse(header)
        claimed: str = fields["node"]
        if node_id_from_keys(sign_key, kx_key) != claimed:
            raise RelayRequestRejected(RelayRejectReason.WRONG_KEYS, "keys do not hash to the node ID", peer=claimed)
        try:
            verify_signature(sign_key, signature, _DOMAIN + payload)
        except SignatureInvalid:
            raise RelayRequestRejected(
                RelayRejectReason.BAD_SIGNATURE, "signature does not verify", peer=claimed
            ) from None
        # Everything below is signed by the node it names.
        if fields["op"] != op:
            raise RelayRequestRejected(RelayRejectReason.WRONG_OP, "token is for another operation", peer=claimed)
        if fields["body"] != body_digest(body):
            raise RelayRequestRejected(RelayRejectReason.BODY_MISMATCH, "token is for another body", peer=claimed)
        now = self._clock()
        issued: int = fields["time"]
        if abs(issued - now) > self._max_skew:
            raise RelayRequestRejected(
                RelayRejectReason.EXPIRED,
                "token too old, or the clocks differ by more than the allowed skew",
                peer=claimed,
            )
        if not self._nonces.remember(claimed, fields["nonce"], issued, now):
            raise RelayRequestRejected(RelayRejectReason.REPLAY, "token used before", peer=claimed)
        return claimed
