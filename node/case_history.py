"""A case's history as a tamper-evident hash DAG: who did what, in what causal order, provably.

Both authorities append to the same CRDT list concurrently, so the history is a DAG, not a line:
each entry names the heads its author had seen (`prev`) and is identified by the hash of its
content, so changing, inserting or deleting any earlier entry breaks every later one. Each entry is
also signed by its author's node, so a relay (or a peer writing into the shared list) cannot put
words into another authority's mouth. The CRDT keeps the list; this module only says whether it is
intact and in which order to read it. No I/O, no CRDT: plain dicts in, plain dicts out.

Entry (a JSON object in the CRDT list ``history``)::

    {"id": hex sha256, "prev": [sorted ids], "type": ..., "node": author node id, "user": actor label,
     "at": ISO-8601 UTC, ...type-specific fields..., "sig": base64url Ed25519}

    id  = sha256(b"seajust-history-v1\\n" + canonical(content)).hexdigest()
    sig = Ed25519(b"seajust-history-v1\\n" + canonical(content))
    content = entry without "id" and "sig";
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

Entries come from peers, so every function here accepts hostile input (non-dicts, missing keys,
wrong types) and answers with `HistoryInvalid` or a reported problem, never a KeyError or TypeError.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from crypto.encoding import b64url, unb64url
from crypto.errors import SignatureInvalid
from crypto.identity import SIGNATURE_SIZE, Identity, verify_signature
from node.errors import NodeError

DOMAIN: Final = b"seajust-history-v1\n"

# The fields every entry carries, and those that are not part of the signed content.
_BASE_FIELDS: Final = frozenset({"id", "prev", "type", "node", "user", "at", "sig"})
_UNSIGNED: Final = frozenset({"id", "sig"})

_STR = "str"
_STR_LIST = "str_list"

# Type-specific fields and their JSON types. Strict: an unknown field is refused, because a field
# a node cannot interpret would still be signed and shown, and a new field means a new format version.
ENTRY_TYPES: Final[Mapping[str, Mapping[str, str]]] = {
    "created": {"kind": _STR},
    "transition": {"from": _STR, "to": _STR, "reason": _STR},
    "note": {"text": _STR},
    "converted": {"from_kind": _STR, "to_kind": _STR},
    "reminder": {"text": _STR},
    "attachment": {"attachment": _STR, "name": _STR, "sha256": _STR},
    "edited": {"fields": _STR_LIST},
    "shared": {"with": _STR},
}

_HEX_ID = re.compile(r"[0-9a-f]{64}")
_NEVER = datetime.max.replace(tzinfo=UTC)


class HistoryInvalid(NodeError):
    """The case history is damaged or was altered: an entry does not match its signature or its place."""

    http_status = 422


def _short(value: Any) -> str:
    """An entry id for messages: enough to find it, and never content (messages may be logged)."""
    return value[:12] if isinstance(value, str) and _HEX_ID.fullmatch(value) else "?"


def _content(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in _UNSIGNED}


def _signed_bytes(entry: Mapping[str, Any]) -> bytes:
    """The domain-prefixed canonical content: what is hashed into the id and what is signed."""
    if not isinstance(entry, Mapping):
        raise HistoryInvalid("a history entry must be a JSON object")
    try:
        canonical = json.dumps(
            _content(entry), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        raise HistoryInvalid("a history entry holds values that are not plain JSON") from None
    return DOMAIN + canonical


def parse_at(value: Any) -> datetime | None:
    """The timestamp as an aware UTC datetime, or None if it is not an ISO-8601 UTC time.

    Ordering compares parsed times, not strings, so "...Z" and "...+00:00" sort the same.
    """
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() != UTC.utcoffset(None):
        return None
    return parsed


def check_shape(entry: Any) -> None:
    """Raise `HistoryInvalid` unless `entry` has exactly the fields and JSON types of its type.

    Does not check the id or signature (see `verify_entry`); it is what every reader of the history
    relies on before looking inside an entry.
    """
    if not isinstance(entry, Mapping):
        raise HistoryInvalid("a history entry must be a JSON object")
    ident = _short(entry.get("id"))
    kind = entry.get("type")
    if not isinstance(kind, str) or kind not in ENTRY_TYPES:
        raise HistoryInvalid(f"history entry {ident}: unknown entry type")
    schema = ENTRY_TYPES[kind]
    expected = _BASE_FIELDS | set(schema)
    missing = sorted(expected - set(entry.keys()))
    if missing:
        raise HistoryInvalid(f"history entry {ident}: missing {', '.join(missing)}")
    unknown = sorted(str(k) for k in set(entry.keys()) - expected)
    if unknown:
        raise HistoryInvalid(f"history entry {ident}: unexpected fields {', '.join(unknown)}")
    if not isinstance(entry["id"], str) or not _HEX_ID.fullmatch(entry["id"]):
        raise HistoryInvalid("a history entry's id must be 64 lowercase hex characters")
    _check_prev(ident, kind, entry["prev"])
    for name in ("node", "user", "sig"):
        if not isinstance(entry[name], str):
            raise HistoryInvalid(f"history entry {ident}: {name} must be a string")
    if not entry["node"]:
        raise HistoryInvalid(f"history entry {ident}: node is empty")
    if parse_at(entry["at"]) is None:
        raise HistoryInvalid(f"history entry {ident}: at must be an ISO-8601 UTC timestamp")
    for name, json_type in schema.items():
        value = entry[name]
        if json_type == _STR and not isinstance(value, str):
            raise HistoryInvalid(f"history entry {ident}: {name} must be a string")
        if json_type == _STR_LIST and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise HistoryInvalid(f"history entry {ident}: {name} must be a list of strings")


def _check_prev(ident: str, kind: str, prev: Any) -> None:
    if not isinstance(prev, list) or not all(isinstance(p, str) and _HEX_ID.fullmatch(p) for p in prev):
        raise HistoryInvalid(f"history entry {ident}: prev must be a list of entry ids")
    if prev != sorted(set(prev)):
        raise HistoryInvalid(f"history entry {ident}: prev must be sorted and without repeats")
    # One root: the creation. Any other entry with no predecessors would be a second, unrelated history.
    if kind == "created" and prev:
        raise HistoryInvalid(f"history entry {ident}: the created entry cannot have predecessors")
    if kind != "created" and not prev:
        raise HistoryInvalid(f"history entry {ident}: only the created entry can have no predecessors")


def make_entry(
    identity: Identity, *, prev: Sequence[str], type: str, user: str, at: str, **fields: Any
) -> dict[str, Any]:
    """A new signed entry by `identity`, after the heads `prev` (usually `heads(history)`).

    `prev` is sorted and de-duplicated here so two nodes that saw the same heads write the same bytes.
    Raises `HistoryInvalid` if the entry would not pass `verify_entry` (unknown type, bad fields).
    """
    reserved = sorted(fields.keys() & _BASE_FIELDS)
    if reserved:
        raise HistoryInvalid(f"{', '.join(reserved)} cannot be set as entry fields")
    content: dict[str, Any] = {
        **fields,
        "prev": sorted(set(prev)),
        "type": type,
        "node": identity.node_id,
        "user": user,
        "at": at,
    }
    signed = _signed_bytes(content)
    entry = {**content, "id": hashlib.sha256(signed).hexdigest(), "sig": b64url(identity.sign(signed))}
    check_shape(entry)
    return entry


def entry_id(entry: Mapping[str, Any]) -> str:
    """The id `entry` should have, recomputed from its content (everything but "id" and "sig")."""
    return hashlib.sha256(_signed_bytes(entry)).hexdigest()


def verify_entry(entry: Mapping[str, Any], sign_key: bytes | Sequence[bytes]) -> None:
    """Raise `HistoryInvalid` unless `entry` is well-formed, its id matches its content, and
    `sign_key` (the key of the node named in `entry["node"]`, looked up by the caller) signed it.

    A node that rotated its keys signed its earlier entries with an earlier key: the caller passes
    all of the node's keys, current first, and any one of them will do."""
    check_shape(entry)
    signed = _signed_bytes(entry)
    ident = _short(entry["id"])
    if hashlib.sha256(signed).hexdigest() != entry["id"]:
        raise HistoryInvalid(f"history entry {ident}: its id does not match its content")
    signature = unb64url(entry["sig"])
    if signature is None or len(signature) != SIGNATURE_SIZE:
        raise HistoryInvalid(f"history entry {ident}: the signature is missing or malformed")
    for key in [sign_key] if isinstance(sign_key, bytes) else sign_key:
        try:
            verify_signature(key, signature, signed)
            return
        except SignatureInvalid:
            continue
    raise HistoryInvalid(f"history entry {ident}: the signature does not verify for its author")


def identified(entries: Sequence[Any]) -> dict[str, Mapping[str, Any]]:
    """Entries by id, as every reader of the history sees them; entries without a string id cannot be placed
    and are left out.

    If two different entries claim one id (only possible if one was tampered with), the same one is
    kept whatever the input order, so every node reads the same history.
    """
    by_id: dict[str, Mapping[str, Any]] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
            continue
        ident = entry["id"]
        kept = by_id.get(ident)
        if kept is None or (kept != entry and _tiebreak(entry) < _tiebreak(kept)):
            by_id[ident] = entry
    return by_id


def _tiebreak(entry: Mapping[str, Any]) -> str:
    try:
        return json.dumps(entry, sort_keys=True, ensure_ascii=True, default=repr)
    except (TypeError, ValueError, RecursionError):
        return repr(sorted(map(repr, entry.items())))


def _prev_of(entry: Mapping[str, Any]) -> list[str]:
    prev = entry.get("prev")
    if not isinstance(prev, list):
        return []
    return [p for p in prev if isinstance(p, str)]


def heads(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Sorted ids no entry names in its prev: what a new entry should name as its own prev."""
    by_id = identified(entries)
    referenced = {p for entry in by_id.values() for p in _prev_of(entry)}
    return sorted(by_id.keys() - referenced)


def _order_key(entry: Mapping[str, Any]) -> tuple[datetime, str, str]:
    at = entry.get("at")
    return (parse_at(at) or _NEVER, at if isinstance(at, str) else "", entry["id"])


def causal_order(entries: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Every entry after its parents; among entries whose parents are all placed, earliest `at` first, then id.

    The result depends only on the set of entries, not on the list order, so two nodes that merged the
    same concurrent appends read them in the same order. Duplicates (same id) appear once; an entry
    whose prev names an unknown id is placed after its known parents. Entries without a string id
    are left out. A cycle (impossible with honest hashes) is broken at its earliest entry.
    """
    by_id = identified(entries)
    parents = {ident: {p for p in _prev_of(e) if p in by_id and p != ident} for ident, e in by_id.items()}
    children: dict[str, list[str]] = {ident: [] for ident in by_id}
    for ident, ps in parents.items():
        for p in ps:
            children[p].append(ident)
    waiting = {ident: len(ps) for ident, ps in parents.items()}
    ready = [_order_key(by_id[ident]) for ident, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    ordered: list[Mapping[str, Any]] = []
    placed: set[str] = set()
    while len(ordered) < len(by_id):
        if not ready:
            # Only a cycle leaves entries unplaced with none ready: release its earliest entry.
            stuck = min(_order_key(by_id[i]) for i in by_id if i not in placed)
            waiting[stuck[2]] = 0
            ready.append(stuck)
        key = heapq.heappop(ready)
        ident = key[2]
        if ident in placed:
            continue
        placed.add(ident)
        ordered.append(by_id[ident])
        for child in children[ident]:
            waiting[child] -= 1
            if waiting[child] == 0 and child not in placed:
                heapq.heappush(ready, _order_key(by_id[child]))
    return ordered


def ancestors(entries: Sequence[Mapping[str, Any]], entry_id: str) -> set[str]:
    """Every id reachable from `entry_id` through prev, not including itself.

    Ids named in a prev but absent from `entries` are included (they are reachable, just not here).
    """
    by_id = identified(entries)
    found: set[str] = set()
    start = by_id.get(entry_id)
    stack = _prev_of(start) if start is not None else []
    while stack:
        ident = stack.pop()
        if ident in found or ident == entry_id:
            continue
        found.add(ident)
        parent = by_id.get(ident)
        if parent is not None:
            stack.extend(_prev_of(parent))
    return found


@dataclass(frozen=True)
class ChainReport:
    """The outcome of checking a whole history: `ok` only if there are no problems."""

    ok: bool
    entries: int
    heads: list[str]
    problems: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "heads": list(self.heads),
            "problems": [dict(p) for p in self.problems],
        }


def verify_chain(
    entries: Sequence[Mapping[str, Any]], sign_key_of: Callable[[str], bytes | Sequence[bytes] | None]
) -> ChainReport:
    """Check a whole history and list every problem, rather than stop at the first, so an operator
    sees the extent of the damage. `sign_key_of` maps a node id to its Ed25519 key, or None if unknown.

    Checked: each entry is well-formed, its id recomputes and its author's signature verifies; every
    prev names an entry that is present (a deleted entry leaves a dangling prev); no id appears twice;
    exactly one "created" entry, with no predecessors.
    """
    problems: list[dict[str, str]] = []
    seen: set[str] = set()
    created = 0

    def problem(where: str, text: str) -> None:
        problems.append({"entry": where, "problem": text})

    for index, entry in enumerate(entries):
        raw_id = entry.get("id") if isinstance(entry, Mapping) else None
        where = raw_id if isinstance(raw_id, str) else f"#{index}"
        if isinstance(raw_id, str):
            if raw_id in seen:
                problem(where, "this id appears more than once")
                continue
            seen.add(raw_id)
        try:
            check_shape(entry)
        except HistoryInvalid as exc:
            problem(where, exc.message)
            continue
        if entry["type"] == "created":
            created += 1
        key = sign_key_of(entry["node"])
        if key is None:
            problem(where, "written by a node whose key is not known here")
            if entry_id(entry) != entry["id"]:
                problem(where, "its id does not match its content")
            continue
        try:
            verify_entry(entry, key)
        except HistoryInvalid as exc:
            problem(where, exc.message)

    by_id = identified(entries)
    for ident, entry in sorted(by_id.items()):
        for p in _prev_of(entry):
            if p not in by_id:
                problem(ident, f"names a previous entry {p[:12]} that is missing")
    if created != 1:
        problem("", f"a history must have exactly one created entry, this one has {created}")

    return ChainReport(ok=not problems, entries=len(by_id), heads=heads(entries), problems=problems)
