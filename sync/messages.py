"""The sync messages carried inside envelopes, and their two wire encodings.

Protocol 1 payloads are compact JSON (bytes as unpadded base64url). Protocol 2 payloads are
MessagePack arrays: bodies and signatures travel as raw bytes instead of base64 (a third
smaller), and one `Bundle` carries the updates of many documents in one envelope (a catch-up
of thousands of cases is not thousands of envelopes). A hello is always JSON, because it is
what tells the two nodes which protocol the other speaks. The two encodings cannot be
confused (a JSON payload starts with `{`, a MessagePack one with an array marker), so
`decode` reads either, and the rules a message is held to follow from its encoding.

Decoding is strict: unknown types, missing or mistyped fields raise `RemoteProtocolError`,
never a KeyError.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Final

import msgpack

from sync.errors import RemoteProtocolError

# The highest protocol this node speaks; a session uses the highest both ends speak (`Hello.upto`).
PROTOCOL_VERSION: Final = 2
HELLO_PROTOCOL: Final = 1  # what a hello's `protocol` says: protocol-1 nodes refuse any other value
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
    protocol: int = HELLO_PROTOCOL
    # The highest protocol the sender speaks; None from a protocol-1 node, which does not send it.
    upto: int | None = PROTOCOL_VERSION

    @property
    def speaks(self) -> int:
        return self.protocol if self.upto is None else max(self.protocol, self.upto)


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


@dataclass(frozen=True)
class Bundle:
    """Protocol 2: the updates of one or more documents in one message (topic ""; each entry's
    signature names its document). The receiver handles each part as it would an `Updates`."""

    parts: tuple[Updates, ...]


Message = Hello | Versions | Updates | Grants | Bundle
MAX_GRANTS_PER_MESSAGE = 1_000
MAX_GRANT_BYTES = 64 * 1024
MAX_DIRECT_PEERS = 10_000  # peers a node says it has live sessions with


# Protocol 2 message types: the first element of the MessagePack array.
_V2_VERSIONS: Final = 1
_V2_BUNDLE: Final = 2
_V2_GRANTS: Final = 3


def encode(message: Message, protocol: int = 1) -> bytes:
    """The payload of `message` in `protocol`'s encoding (a hello is JSON in every protocol)."""
    if protocol >= 2 and not isinstance(message, Hello):
        return _encode_v2(message)
    if isinstance(message, Bundle):
        raise ValueError("a bundle exists only in protocol 2")
    body: dict[str, Any]
    if isinstance(message, Hello):
        body = {
            "t": "hello",
            "nonce": b64e(message.nonce),
            "time": message.time,
            "protocol": message.protocol,
        }
        if message.upto is not None:
            body["upto"] = message.upto
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


def _encode_v2(message: Versions | Updates | Grants | Bundle) -> bytes:
    body: list[Any]
    if isinstance(message, Versions):
        body = [_V2_VERSIONS, message.docs, message.complete, message.want_missing]
        if message.direct is not None:
            body.append(list(message.direct))
    elif isinstance(message, Grants):
        body = [_V2_GRANTS, list(message.grants)]
    else:
        parts = message.parts if isinstance(message, Bundle) else (message,)
        body = [
            _V2_BUNDLE,
            [[p.doc_id, [[e.author, e.seq_from, e.seq_to, e.body, e.sig] for e in p.entries]] for p in parts],
        ]
    packed: bytes = msgpack.packb(body, use_bin_type=True)
    return packed


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


def _bytes(value: Any, name: str) -> bytes:
    if not isinstance(value, bytes):
        raise RemoteProtocolError("malformed", f"{name} must be bytes")
    return value


def _entries(doc_id: str, raw: Any, binary: bool) -> tuple[SignedUpdate, ...]:
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
        body, signature = (_bytes(update, "body"), _bytes(sig, "sig")) if binary else (b64d(update), b64d(sig))
        entries.append(SignedUpdate(doc_id, _str(author, "author"), first, last, body, signature))
    return tuple(entries)


def _versions_message(docs: Any, complete: Any, want: Any, direct: Any) -> Versions:
    if not isinstance(docs, dict) or not isinstance(complete, bool) or not isinstance(want, bool):
        raise RemoteProtocolError("malformed", "versions needs docs, complete and want")
    if complete and not want:
        raise RemoteProtocolError("malformed", "a complete version list always wants what it lacks")
    if direct is not None and (not isinstance(direct, list) or len(direct) > MAX_DIRECT_PEERS):
        raise RemoteProtocolError("malformed", "direct must be a list of node IDs")
    return Versions(
        docs={_str(d, "doc"): _versions(v) for d, v in docs.items()},
        complete=complete,
        want_missing=want,
        direct=None if direct is None else tuple(_str(n, "node", limit=64) for n in direct),
    )


def _grants_message(grants: tuple[bytes, ...]) -> Grants:
    if not grants or len(grants) > MAX_GRANTS_PER_MESSAGE:
        raise RemoteProtocolError("malformed", "grants must be a non-empty list")
    if any(not g or len(g) > MAX_GRANT_BYTES for g in grants):
        raise RemoteProtocolError("malformed", "grant too large")
    return Grants(grants=grants)


def decode(payload: bytes) -> Message:
    """The message in a payload of either encoding (see the module docstring)."""
    if payload[:1] != b"{":
        return _decode_v2(payload)
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # ValueError covers bad UTF-8, bad JSON, 4300+ digit numbers
        raise RemoteProtocolError("malformed", "payload is not JSON") from exc
    if not isinstance(body, dict):
        raise RemoteProtocolError("malformed", "payload is not an object")
    kind = body.get("t")
    if kind == "hello":
        reply = body.get("reply_to")
        upto = body.get("upto")
        return Hello(
            nonce=b64d(body.get("nonce")),
            time=_int(body.get("time"), "time"),
            reply_to=None if reply is None else b64d(reply),
            protocol=_int(body.get("protocol"), "protocol"),
            upto=None if upto is None else _int(upto, "upto"),
        )
    if kind == "versions":
        return _versions_message(body.get("docs"), body.get("complete"), body.get("want"), body.get("direct"))
    if kind == "updates":
        doc_id = _str(body.get("doc"), "doc")
        return Updates(doc_id=doc_id, entries=_entries(doc_id, body.get("entries"), binary=False))
    if kind == "grants":
        raw_grants = body.get("grants")
        if not isinstance(raw_grants, list):
            raise RemoteProtocolError("malformed", "grants must be a non-empty list")
        return _grants_message(tuple(b64d(g) for g in raw_grants))
    raise RemoteProtocolError("malformed", "unknown message type")


def _decode_v2(payload: bytes) -> Versions | Bundle | Grants:
    try:
        # unpackb bounds every length by the payload's size, so a forged length allocates nothing.
        body = msgpack.unpackb(payload, raw=False, strict_map_key=True, use_list=True)
    except (ValueError, msgpack.UnpackException, RecursionError) as exc:  # bad bytes, bad UTF-8, limits, extra data
        raise RemoteProtocolError("malformed", "payload is not MessagePack") from exc
    if not isinstance(body, list) or not body or not isinstance(body[0], int) or isinstance(body[0], bool):
        raise RemoteProtocolError("malformed", "payload is not a typed array")
    kind, fields = body[0], body[1:]
    if kind == _V2_VERSIONS and len(fields) in (3, 4):
        docs, complete, want, *direct = fields
        return _versions_message(docs, complete, want, direct[0] if direct else None)
    if kind == _V2_BUNDLE and len(fields) == 1:
        raw_parts = fields[0]
        if not isinstance(raw_parts, list) or not raw_parts:
            raise RemoteProtocolError("malformed", "a bundle needs at least one document")
        parts = []
        for part in raw_parts:
            if not isinstance(part, list) or len(part) != 2:
                raise RemoteProtocolError("malformed", "a bundle part is a document and its entries")
            doc_id = _str(part[0], "doc")
            parts.append(Updates(doc_id=doc_id, entries=_entries(doc_id, part[1], binary=True)))
        if sum(len(p.entries) for p in parts) > MAX_ENTRIES_PER_MESSAGE:
            raise RemoteProtocolError("malformed", "too many entries")
        if len({p.doc_id for p in parts}) != len(parts):
            raise RemoteProtocolError("malformed", "a document appears twice in a bundle")
        return Bundle(parts=tuple(parts))
    if kind == _V2_GRANTS and len(fields) == 1:
        if not isinstance(fields[0], list):
            raise RemoteProtocolError("malformed", "grants must be a non-empty list")
        return _grants_message(tuple(_bytes(g, "grant") for g in fields[0]))
    raise RemoteProtocolError("malformed", "unknown message type")
