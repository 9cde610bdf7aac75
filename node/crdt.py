"""The CRDT engine behind every shared document: the only module that imports pycrdt.

Documents are used through two shapes only, so another engine (Automerge, say) could replace
Yrs by rewriting this file: *collections* of records (a map of id -> flat record of JSON
values, merged field by field, last writer wins per field) and *lists* (append-only
sequences of JSON records, such as a case's notes, where concurrent appends both survive).

Every change is made inside `CrdtDocument.change()`, which returns the binary update that
the change produced, as captured by an observer: ~50 bytes and ~10 us whatever the size of the
document, which is what is signed, stored and pushed to peers. The full-state diff
(`encode_state`) walks the whole document and is kept for snapshots only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import pycrdt

from crypto.errors import SeajustError
from node.errors import BadRequest

JsonValue = Any
Record = dict[str, JsonValue]


class CrdtError(SeajustError):
    """A document update could not be decoded."""


def _same_value(stored: JsonValue, new: JsonValue) -> bool:
    """Equal as JSON values: True == 1 in Python but not here; 1 == 1.0 here (Yrs keeps numbers as floats)."""
    if isinstance(stored, bool) or isinstance(new, bool):
        return type(stored) is type(new) and stored == new
    if isinstance(stored, int | float) and isinstance(new, int | float):
        return stored == new
    return type(stored) is type(new) and bool(stored == new)


class UnstorableValue(BadRequest):
    """A value cannot be kept in a shared document: numbers must fit in 64 bits and text must be valid Unicode."""


def _check_storable(value: JsonValue, depth: int = 0) -> None:
    """Refuse what Yrs cannot hold before it is handed over: it panics on those (a BaseException), which would
    escape every error handler."""
    if depth > 64:
        raise UnstorableValue("the value is nested too deeply")
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise UnstorableValue("a number is too large to keep")
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise UnstorableValue("text is not valid Unicode") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key, depth + 1)
            _check_storable(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_storable(item, depth + 1)


class _Roots:
    """A document's root types, looked up once: pycrdt's `Doc.get` opens a transaction and builds a new wrapper on
    every call (about 20 us), and judging one peer's update to a case reads five roots twice."""

    def __init__(self, doc: pycrdt.Doc[Any]) -> None:
        self.doc = doc
        self._maps: dict[str, pycrdt.Map[Any]] = {}
        self._arrays: dict[str, pycrdt.Array[Any]] = {}

    def map(self, name: str) -> pycrdt.Map[Any]:
        found = self._maps.get(name)
        if found is None:
            found = self._maps[name] = self.doc.get(name, type=pycrdt.Map)
        return found

    def array(self, name: str) -> pycrdt.Array[Any]:
        found = self._arrays.get(name)
        if found is None:
            found = self._arrays[name] = self.doc.get(name, type=pycrdt.Array)
        return found


class DocumentChange:
    """The operations allowed inside one change; they become one update."""

    def __init__(self, roots: _Roots) -> None:
        self._roots = roots
        self.touched: set[str] | None = set()  # the roots this change may have written; None: any of them

    @property
    def _doc(self) -> pycrdt.Doc[Any]:
        """The raw document, for tests that forge what a modified node could send: it may then change any root."""
        self.touched = None
        return self._roots.doc

    def _touch(self, name: str) -> None:
        if self.touched is not None:
            self.touched.add(name)

    def _collection(self, name: str) -> pycrdt.Map[Any]:
        self._touch(name)
        return self._roots.map(name)

    def put_record(self, collection: str, key: str, fields: Record) -> None:
        """Create the record, or replace every field given (fields not given are kept)."""
        _check_storable(key)
        _check_storable(fields)
        records = self._collection(collection)
        existing = records.get(key)
        if isinstance(existing, pycrdt.Map):
            for name, value in fields.items():
                if name not in existing or not _same_value(existing[name], value):
                    existing[name] = value
        else:
            records[key] = pycrdt.Map(dict(fields))

    def delete_fields(self, collection: str, key: str, names: Iterable[str]) -> None:
        existing = self._collection(collection).get(key)
        if isinstance(existing, pycrdt.Map):
            for name in names:
                if name in existing:
                    del existing[name]

    def delete_record(self, collection: str, key: str) -> None:
        records = self._collection(collection)
        if key in records:
            del records[key]

    def append(self, list_name: str, item: Record) -> None:
        _check_storable(item)
        self._touch(list_name)
        self._roots.array(list_name).append(dict(item))


class CrdtDocument:
    """One replicated document held in memory."""

    def __init__(self) -> None:
        self._doc: pycrdt.Doc[Any] = pycrdt.Doc()
        self._roots = _Roots(self._doc)
        # Roots as last read, until the document changes: one edit of a case reads its history several times
        # (to chain the new entry, to replay the workflow, to index the notes), and a peer's update is read to
        # judge it (`view`) and again to index it, each a full read through Yrs (a record: about 30 us).
        self._collections_read: dict[str, tuple[dict[str, Any], frozenset[str]]] = {}
        self._lists_read: dict[str, list[Record]] = {}

    def change(self, edit: Callable[[DocumentChange], None]) -> bytes | None:
        """Run `edit` as one transaction; the update it produced, or None if it changed nothing.

        Only the roots the change wrote are read again afterwards: a note changes a case's history, and its
        records (the case, the references, the attachments) stay as read.
        """
        captured: list[bytes] = []
        change = DocumentChange(self._roots)
        # Observed for this one transaction only. pycrdt keeps an observer on the Rust side, with a reference back
        # to its document that Python's collector cannot see: a document observed for good is never freed, and a
        # node that loaded or tried out documents for weeks held every one of them.
        subscription = self._doc.observe(lambda event: captured.append(event.update))
        try:
            with self._doc.transaction(origin="local"):
                edit(change)
        finally:
            self._doc.unobserve(subscription)
            self._forget_reads(change.touched)
        updates = [u for u in captured if u and u != b"\x00\x00"]
        if not updates:
            return None
        return updates[0] if len(updates) == 1 else pycrdt.merge_updates(*updates)

    def apply(self, update: bytes) -> None:
        try:
            self._doc.apply_update(update)
        except (ValueError, RuntimeError) as exc:
            raise CrdtError("document update could not be decoded") from exc
        finally:
            self._forget_reads()

    def _forget_reads(self, roots: set[str] | None = None) -> None:
        """Drop what was read of `roots` (None: of every root)."""
        if roots is None:
            self._collections_read.clear()
            self._lists_read.clear()
            return
        for name in roots:
            self._collections_read.pop(name, None)
            self._lists_read.pop(name, None)

    def encode_state(self) -> bytes:
        return bytes(self._doc.get_update())

    def integrated(self, update: bytes) -> bool:
        """True if everything in `update` is part of this document (nothing of it waits for a missing cause)."""
        # The diff of `update` against what this document holds: with no struct left in it (the first
        # varint, the number of struct groups, is 0), every insertion of the update is integrated. Its
        # delete set is always repeated, so it is not looked at.
        return bytes(pycrdt.get_update(update, self._doc.get_state()))[:1] == b"\x00"

    def copy(self) -> CrdtDocument:
        """An independent replica with the same state (for trying out a peer's update before accepting it)."""
        other = CrdtDocument()
        other.apply(self.encode_state())
        return other

    def view(self, collections: Iterable[str], lists: Iterable[str]) -> DocView:
        """What these collections and lists hold now, read once into plain values (see `DocView`).

        The names are given, not discovered: a document received from a peer does not know the
        type of its roots until they are read as one (as `records` and `items` do).
        """
        roots: dict[str, Any] = {}
        nested: dict[str, frozenset[str]] = {}
        for name in collections:
            roots[name], nested[name] = self._collection_read(name)
        for name in lists:
            roots[name] = self._list_read(name)
        return DocView(roots, nested)

    def records(self, collection: str) -> dict[str, Record]:
        value, _ = self._collection_read(collection)
        return {k: _copied(v) for k, v in value.items() if isinstance(v, dict)}

    def record(self, collection: str, key: str) -> Record | None:
        value, nested = self._collection_read(collection)
        return _copied(value[key]) if key in nested and isinstance(value.get(key), dict) else None

    def items(self, list_name: str) -> list[Record]:
        # The caller's own records: changing one changes nothing here.
        return [dict(v) for v in self._list_read(list_name)]

    def _collection_read(self, name: str) -> tuple[dict[str, Any], frozenset[str]]:
        """A collection's content as plain values (shared: callers copy), and the keys whose value is a record."""
        held = self._collections_read.get(name)
        if held is None:
            records = self._roots.map(name)
            value = _as_json(records)
            value = value if isinstance(value, dict) else {}
            # A record is a nested map; a plain JSON object written as a value is not one, though it reads the same.
            nested = frozenset(
                k for k, v in value.items() if isinstance(v, dict) and isinstance(records.get(k), pycrdt.Map)
            )
            held = self._collections_read[name] = (value, nested)
        return held

    def _list_read(self, name: str) -> list[Record]:
        """A list's records as plain values (shared: callers copy); items that are not records are left out."""
        held = self._lists_read.get(name)
        if held is None:
            value = _as_json(self._roots.array(name)) or []
            held = self._lists_read[name] = [v for v in value if isinstance(v, dict)]
        return held


def _copied(value: Any) -> Any:
    """A JSON value's own copy, so a caller changing a record it read changes nothing kept here."""
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copied(v) for v in value]
    return value


class DocView:
    """A document as it was at one moment, with `CrdtDocument`'s reading methods, in plain values.

    A peer's update is judged by comparing the document before and after it. Reading each state
    once into a view lets a batch of updates be tried on one trial document, each judged against
    the previous one's view, instead of copying the whole CRDT for every update. What it returns is
    shared with the document's own reads, so it is for reading only (the rules that judge an update).
    """

    def __init__(self, roots: dict[str, Any], nested: dict[str, frozenset[str]]) -> None:
        self._roots = roots
        self._nested = nested  # per collection, the keys whose value is a record (a map), as `record` requires

    def records(self, collection: str) -> dict[str, Record]:
        value = self._roots.get(collection)
        return {k: v for k, v in value.items() if isinstance(v, dict)} if isinstance(value, dict) else {}

    def record(self, collection: str, key: str) -> Record | None:
        if key not in self._nested.get(collection, ()):
            return None
        value = self._roots[collection].get(key)
        return value if isinstance(value, dict) else None

    def items(self, list_name: str) -> list[Record]:
        value = self._roots.get(list_name)
        return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _as_json(shared: pycrdt.Map[Any] | pycrdt.Array[Any]) -> Any:
    """A shared type's whole content as plain JSON values, read in one call into Yrs.

    pycrdt's `to_py` crosses into Rust once per element and per field (about 10 times slower on a
    case history of 50 notes, and it ran on every edit to re-project the case); Yrs's own JSON
    serialisation reads it in one pass. Numbers also come back as JSON wrote them (1, not 1.0).
    """
    return json.loads(str(shared))


def merge_updates(updates: list[bytes]) -> bytes:
    """One update equivalent to applying all of `updates` (for compaction and catch-up)."""
    if len(updates) == 1:
        return updates[0]
    try:
        return bytes(pycrdt.merge_updates(*updates))
    except (ValueError, RuntimeError) as exc:
        raise CrdtError("document updates could not be merged") from exc


def check_update(update: bytes) -> None:
    """Decode `update` in a scratch document, so a malformed one is refused before it touches state."""
    try:
        pycrdt.Doc().apply_update(update)
    except (ValueError, RuntimeError) as exc:
        raise CrdtError("document update could not be decoded") from exc
