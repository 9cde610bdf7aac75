"""Shared documents: held in memory as CRDTs, stored durably as logs of signed updates.

Every change to a document, local or received, is a `SignedUpdate`: the CRDT update plus the
signature of the node that authored it, numbered per author. The log of these is the
document's durable form (a change is committed to SQLite before it is acknowledged, pushed
or shown: "durable before visible"), and it is what peers are sent, so a node that relays a
document can prove who wrote each part of it and cannot forge any.

`versions(doc)` (each author's highest seq) is the document's version vector; a peer sends
its own and gets back exactly the entries it lacks. From time to time a document's state is
written as a snapshot, so loading does not replay the whole log, and a node merges its own
older updates into one re-signed entry, so the log does not grow without bound.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlite_utils

from crypto.authorship import sign_update, verify_update
from crypto.errors import SignatureInvalid
from crypto.identity import Identity
from node.crdt import CrdtDocument, CrdtError, DocumentChange, check_update, merge_updates
from node.errors import Forbidden, StorageError
from node.storage import Database, WriteErrors
from sync.errors import UpdateRejected
from sync.messages import SignedUpdate, VersionVector
from sync.versions import missing_for

log = logging.getLogger(__name__)

SNAPSHOT_EVERY = 200  # stored updates between snapshots of one document
COMPACT_OWN_ABOVE = 256  # own log entries of one document before older ones are merged
COMPACT_KEEP_RECENT = 64  # own recent entries left unmerged, so peers slightly behind get small ones


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Held:
    crdt: CrdtDocument
    versions: VersionVector = field(default_factory=dict)
    since_snapshot: int = 0


@dataclass(frozen=True)
class ApplyResult:
    stored: list[SignedUpdate]
    gap: bool  # some entry was ahead of what we hold: ask the peer for the missing ones


StoredListener = Callable[[Sequence[SignedUpdate], str | None], None]


class DocumentStore:
    def __init__(
        self,
        db: Database,
        identity: Identity,
        *,
        author_key: Callable[[str], bytes | None],
        may_write: Callable[[str, str], bool],
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self._db = db
        self._identity = identity
        self._me = identity.node_id
        self._author_key = author_key
        self._may_write = may_write
        self._clock = clock
        self._docs: dict[str, _Held] = {}
        self._listeners: list[StoredListener] = []

    # -- reading --------------------------------------------------------------------------

    def load(self) -> None:
        """Rebuild every document from its snapshot and the log entries after it."""
        started = time.perf_counter()
        docs: dict[str, _Held] = {}
        for row in self._db.query("SELECT doc_id, state, versions FROM doc_snapshots"):
            held = _Held(CrdtDocument(), json.loads(row["versions"]))
            held.crdt.apply(row["state"])
            docs[row["doc_id"]] = held
        pending: dict[str, list[bytes]] = {}
        rows = self._db.query("SELECT doc_id, author, seq_to, body FROM doc_log ORDER BY doc_id, author, seq_to")
        for row in rows:
            held = docs.setdefault(row["doc_id"], _Held(CrdtDocument()))
            if row["seq_to"] > held.versions.get(row["author"], 0):
                pending.setdefault(row["doc_id"], []).append(row["body"])
                held.versions[row["author"]] = row["seq_to"]
                held.since_snapshot += 1
        for doc_id, bodies in pending.items():
            docs[doc_id].crdt.apply(merge_updates(bodies))
        self._docs = docs
        log.info("loaded %d documents in %.0f ms", len(docs), (time.perf_counter() - started) * 1000)

    def doc_ids(self, prefix: str = "") -> list[str]:
        return sorted(d for d in self._docs if d.startswith(prefix))

    def get(self, doc_id: str) -> CrdtDocument | None:
        held = self._docs.get(doc_id)
        return held.crdt if held else None

    def versions(self, doc_id: str) -> VersionVector:
        held = self._docs.get(doc_id)
        return dict(held.versions) if held else {}

    def entries_missing(self, doc_id: str, have: VersionVector) -> list[SignedUpdate]:
        mine = self.versions(doc_id)
        if all(have.get(author, 0) >= seq for author, seq in mine.items()):
            return []
        rows = self._db.query(
            "SELECT author, seq_from, seq_to, body, sig FROM doc_log WHERE doc_id = ? ORDER BY author, seq_to",
            (doc_id,),
        )
        entries = [SignedUpdate(doc_id, r["author"], r["seq_from"], r["seq_to"], r["body"], r["sig"]) for r in rows]
        return missing_for(entries, have)

    def on_stored(self, listener: StoredListener) -> None:
        """Call `listener(entries, source_peer)` after entries are durably stored (source None: local)."""
        self._listeners.append(listener)

    # -- writing --------------------------------------------------------------------------

    def commit_local(
        self,
        doc_id: str,
        edit: Callable[[DocumentChange], None],
        *,
        actor: str,
        action: str,
        subject: str = "",
    ) -> SignedUpdate | None:
        """Make a change as this node, sign it and store it; the stored entry, or None if nothing changed."""
        if not self._may_write(doc_id, self._me):
            raise Forbidden("this node may not change that document")
        held = self._docs.get(doc_id) or _Held(CrdtDocument())
        body = held.crdt.change(edit)
        if body is None:
            return None
        seq = held.versions.get(self._me, 0) + 1
        entry = SignedUpdate(
            doc_id,
            self._me,
            seq,
            seq,
            body,
            sign_update(self._identity, doc_id=doc_id, seq_from=seq, seq_to=seq, update=body),
        )
        try:
            with self._db.write() as db:
                self._insert(db, entry)
                db.table("audit_log").insert(
                    {
                        "at": self._clock(),
                        "actor": actor,
                        "action": action,
                        "doc_id": doc_id,
                        "subject": subject,
                    }
                )
                held.since_snapshot += 1
                if held.since_snapshot >= SNAPSHOT_EVERY:
                    self._snapshot(db, doc_id, held, {**held.versions, self._me: seq})
        except WriteErrors as exc:
            self._reload(doc_id)
            raise StorageError("the change could not be stored; nothing was changed") from exc
        held.versions[self._me] = seq
        self._docs[doc_id] = held
        self._notify([entry], None)
        return entry

    def apply_remote(self, entries: Sequence[SignedUpdate], *, via: str) -> ApplyResult:
        """Check every entry, then store and apply the new ones together; a bad entry rejects them all."""
        to_store: list[SignedUpdate] = []
        tentative: dict[tuple[str, str], int] = {}
        gap = False
        for entry in entries:
            key_ = self._author_key(entry.author) if entry.author != self._me else self._identity.public.sign_key
            if key_ is None:
                # Relayed work of a member this node has not (yet) trusted: not an attack, but
                # unverifiable, so it is left out; the relay offers it again once trust exists.
                log.debug("skipping update by untrusted author %s in %s", entry.author, entry.doc_id)
                continue
            try:
                verify_update(
                    key_,
                    entry.sig,
                    doc_id=entry.doc_id,
                    author_id=entry.author,
                    seq_from=entry.seq_from,
                    seq_to=entry.seq_to,
                    update=entry.body,
                )
            except SignatureInvalid as exc:
                raise UpdateRejected("bad_update_signature", "update signature does not verify") from exc
            if not self._may_write(entry.doc_id, entry.author):
                raise UpdateRejected("not_permitted", "author may not write this document")
            try:
                check_update(entry.body)
            except CrdtError as exc:
                raise UpdateRejected("malformed_update", "update cannot be decoded") from exc
            have = tentative.get((entry.doc_id, entry.author), self.versions(entry.doc_id).get(entry.author, 0))
            if entry.seq_to <= have:
                continue
            if entry.seq_from > have + 1:
                gap = True
                continue
            tentative[(entry.doc_id, entry.author)] = entry.seq_to
            to_store.append(entry)
        if not to_store:
            return ApplyResult([], gap)
        touched: dict[str, _Held] = {}
        try:
            with self._db.write() as db:
                for entry in to_store:
                    held = touched.get(entry.doc_id) or self._docs.get(entry.doc_id) or _Held(CrdtDocument())
                    touched[entry.doc_id] = held
                    held.crdt.apply(entry.body)
                    held.versions[entry.author] = entry.seq_to
                    held.since_snapshot += 1
                    self._insert(db, entry)
                    db.table("audit_log").insert(
                        {
                            "at": self._clock(),
                            "actor": entry.author,
                            "action": "sync.apply",
                            "doc_id": entry.doc_id,
                            "subject": f"seq {entry.seq_from}-{entry.seq_to} via {via}",
                        }
                    )
                for doc_id, held in touched.items():
                    if held.since_snapshot >= SNAPSHOT_EVERY:
                        self._snapshot(db, doc_id, held, held.versions)
        except WriteErrors + (CrdtError,) as exc:  # noqa: RUF005 - mypy needs a typed tuple here
            for doc_id in touched:
                self._reload(doc_id)
            raise StorageError("received updates could not be stored") from exc
        self._docs.update(touched)
        self._notify(to_store, via)
        return ApplyResult(to_store, gap)

    def compact(self, doc_id: str) -> bool:
        """Merge this node's older entries of a document into one re-signed entry; True if it did."""
        rows = self._db.query(
            "SELECT seq_from, seq_to, body FROM doc_log WHERE doc_id = ? AND author = ? ORDER BY seq_to",
            (doc_id, self._me),
        )
        if len(rows) <= COMPACT_OWN_ABOVE:
            return False
        old = rows[: len(rows) - COMPACT_KEEP_RECENT]
        first, last = old[0]["seq_from"], old[-1]["seq_to"]
        body = merge_updates([r["body"] for r in old])
        sig = sign_update(self._identity, doc_id=doc_id, seq_from=first, seq_to=last, update=body)
        with self._db.write() as db:
            self._insert(db, SignedUpdate(doc_id, self._me, first, last, body, sig))
        return True

    def snapshot_all(self) -> None:
        with self._db.write() as db:
            for doc_id, held in self._docs.items():
                if held.since_snapshot:
                    self._snapshot(db, doc_id, held, held.versions)

    # -- internals ------------------------------------------------------------------------

    def _insert(self, db: sqlite_utils.Database, entry: SignedUpdate) -> None:
        # An entry covering a run of seqs replaces the entries inside that run.
        db.execute(
            "DELETE FROM doc_log WHERE doc_id = ? AND author = ? AND seq_from >= ? AND seq_to <= ?",
            (entry.doc_id, entry.author, entry.seq_from, entry.seq_to),
        )
        db.table("doc_log").insert(
            {
                "doc_id": entry.doc_id,
                "author": entry.author,
                "seq_from": entry.seq_from,
                "seq_to": entry.seq_to,
                "body": entry.body,
                "sig": entry.sig,
                "stored_at": self._clock(),
            }
        )

    def _snapshot(self, db: sqlite_utils.Database, doc_id: str, held: _Held, versions: VersionVector) -> None:
        db.table("doc_snapshots").upsert(
            {
                "doc_id": doc_id,
                "state": held.crdt.encode_state(),
                "versions": json.dumps(versions, sort_keys=True),
                "updated_at": self._clock(),
            },
            pk="doc_id",
        )
        held.since_snapshot = 0

    def _reload(self, doc_id: str) -> None:
        """Drop in-memory changes that did not reach the disk by rebuilding the document from it."""
        held = _Held(CrdtDocument())
        snap = self._db.query("SELECT state, versions FROM doc_snapshots WHERE doc_id = ?", (doc_id,))
        if snap:
            held.crdt.apply(snap[0]["state"])
            held.versions = json.loads(snap[0]["versions"])
        rows = self._db.query(
            "SELECT author, seq_to, body FROM doc_log WHERE doc_id = ? ORDER BY author, seq_to", (doc_id,)
        )
        for row in rows:
            if row["seq_to"] > held.versions.get(row["author"], 0):
                held.crdt.apply(row["body"])
                held.versions[row["author"]] = row["seq_to"]
        if rows or snap:
            self._docs[doc_id] = held
        else:
            self._docs.pop(doc_id, None)

    def _notify(self, entries: Iterable[SignedUpdate], source: str | None) -> None:
        batch = list(entries)
        for listener in self._listeners:
            try:
                listener(batch, source)
            except Exception:  # a listener's bug must not undo a stored change
                log.exception("document listener failed")
