"""The sync messages carried inside envelopes, and their wire encoding.

Payloads are compact JSON (bytes as unpadded base64url): easy to inspect in tests and in a
debugger, and small beside the envelope's fixed 170 bytes. Decoding is strict: unknown
types, missing or mistyped fields raise `RemoteProtocolError`, never a KeyError.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from sync.errors import RemoteProtocolError

PROTOCOL_VERSION = 1
MAX_ENTRIES_PER_MESSAGE = 10_000

VersionVector = dict[str, int]


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: Any) -> bytes:
    if not isinstance(text, str):
        raise RemoteProtocolError("malformed", "expected base64 text")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise RemoteProtocolError("malformed", "bad base64") from exc


@dataclass(frozen=True)
class SignedUpdate:
    """A CRDT update signed by its author: updates `seq_from..seq_to` of that author in the document."""

    doc_id: str
    author: str
    seq_from: int
    seq_to: int
    body: bytes
    sig: bytes


@dataclass(frozen=True)
class Hello:
    """Opens a session. The responder's hello echoes the dialer's nonce, so an old one cannot be replayed."""

    nonce: bytes
    time: int
    reply_to: bytes | None = None
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Versions:
    """Sync step 1: what the sender holds, per document, as each author's highest seq.

    `complete` says the list covers every document the sender shares with the recipient, so a
    document missing from it is one the sender does not have at all. A partial list is an ack;
    `want_missing` asks the recipient to send what the list lacks (always so for a complete list,
    and for an ack only when the sender found a gap: answering every ack would resend entries
    still in flight, squaring the traffic of a burst).
    """

    docs: dict[str, VersionVector]
    complete: bool
    want_missing: bool = True
    # The peers the sender now has live sessions with (sorted), when it says so: entries they write reach it
    # directly, so the recipient does not forward them to it (in a full mesh of n nodes an edit travels n - 1
    # times, not (n - 1)^2). Older nodes ignore the field and are forwarded everything, as before.
    direct: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Updates:
    """Sync step 2 and live pushes: signed updates of one document (the envelope topic)."""

    doc_id: str
    entries: tuple[SignedUpdate, ...]


@dataclass(frozen=True)
class Grants:
    """Document key grants (`crypto.doc_keys`), sent before a party's first updates of an encrypted document.

    Opaque here: the node verifies them. They travel as a session message, not as an update of
    the document, because a node needs the key before it can read any update.
    """

    grants: tuple[bytes, ...]


Message = Hello | Versions | Updates | Grants
MAX_GRANTS_PER_MESSAGE = 1_000
MAX_GRANT_BYTES = 64 * 1024
MAX_DIRECT_PEERS = 10_000  # peers a node says it has live sessions with


def encode(message: Message) -> bytes:
    body: dict[str, Any]
    if isinstance(message, Hello):
        body = {
            "t": "hello",
            "nonce": b64e(message.nonce),
            "time": message.time,
            "protocol": message.protocol,
        }
        if message.reply_to is not None:
            body["reply_to"] = b64e(message.reply_to)
    elif isinstance(message, Versions):
        body = {"t": "versions", "docs": message.docs, "complete": message.complete, "want": message.want_missing}
        if message.direct is not None:
            body["direct"] = list(message.direct)
    elif isinstance(message, Grants):
        body = {"t": "grants", "grants": [b64e(g) for g in message.grants]}
    else:
        body = {
            "t": "updates",
            "doc": message.doc_id,
            "entries": [[e.author, e.seq_from, e.seq_to, b64e(e.body), b64e(e.sig)] for e in message.entries],
        }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value >= 2**63:
        raise RemoteProtocolError("malformed", f"{name} must be a non-negative integer")
    return value


def _str(value: Any, name: str, limit: int = 512) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise RemoteProtocolError("malformed", f"{name} must be a short string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates from JSON escapes
        raise RemoteProtocolError("malformed", f"{name} is not valid Unicode") from exc
    return value


def _versions(value: Any) -> VersionVector:
    if not isinstance(value, dict):
        raise RemoteProtocolError("malformed", "version vector must be an object")
    return {_str(author, "author"): _int(seq, "seq") for author, seq in value.items()}


def decode(payload: bytes) -> Message:
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # ValueError covers bad UTF-8, bad JSON, 4300+ digit numbers
        raise RemoteProtocolError("malformed", "payload is not JSON") from exc
    if not isinstance(body, dict):
        raise RemoteProtocolError("malformed", "payload is not an object")
    kind = body.get("t")
    if kind == "hello":
        reply = body.get("reply_to")
        return Hello(
            nonce=b64d(body.get("nonce")),
            time=_int(body.get("time"), "time"),
            reply_to=None if reply is None else b64d(reply),
            protocol=_int(body.get("protocol"), "protocol"),
        )
    if kind == "versions":
        docs = body.get("docs")
        complete = body.get("complete")
        want = body.get("want")
        if not isinstance(docs, dict) or not isinstance(complete, bool) or not isinstance(want, bool):
            raise RemoteProtocolError("malformed", "versions needs docs, complete and want")
        if complete and not want:
            raise RemoteProtocolError("malformed", "a complete version list always wants what it lacks")
        direct = body.get("direct")
        if direct is not None and (not isinstance(direct, list) or len(direct) > MAX_DIRECT_PEERS):
            raise RemoteProtocolError("malformed", "direct must be a list of node IDs")
        return Versions(
            docs={_str(d, "doc"): _versions(v) for d, v in docs.items()},
            complete=complete,
            want_missing=want,
            direct=None if direct is None else tuple(_str(n, "node", limit=64) for n in direct),
        )
    if kind == "updates":
        doc_id = _str(body.get("doc"), "doc")
        raw = body.get("entries")
        if not isinstance(raw, list) or len(raw) > MAX_ENTRIES_PER_MESSAGE:
            raise RemoteProtocolError("malformed", "entries must be a list")
        entries = []
        for item in raw:
            if not isinstance(item, list) or len(item) != 5:
                raise RemoteProtocolError("malformed", "entry must have five fields")
            author, seq_from, seq_to, update, sig = item
            first, last = _int(seq_from, "seq_from"), _int(seq_to, "seq_to")
            if first < 1 or last < first:
                raise RemoteProtocolError("malformed", "bad seq range")
            entries.append(SignedUpdate(doc_id, _str(author, "author"), first, last, b64d(update), b64d(sig)))
        return Updates(doc_id=doc_id, entries=tuple(entries))
    if kind == "grants":
        raw_grants = body.get("grants")
        if not isinstance(raw_grants, list) or not raw_grants or len(raw_grants) > MAX_GRANTS_PER_MESSAGE:
            raise RemoteProtocolError("malformed", "grants must be a non-empty list")
        grants = tuple(b64d(g) for g in raw_grants)
        if any(not g or len(g) > MAX_GRANT_BYTES for g in grants):
            raise RemoteProtocolError("malformed", "grant too large")
        return Grants(grants=grants)
    raise RemoteProtocolError("malformed", "unknown message type")
