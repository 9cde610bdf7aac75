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

Only the version vectors of all documents stay in memory; a document's CRDT is loaded on
first use and the least recently used are dropped beyond `MAX_LOADED` (a node with 100,000
cases must not hold 100,000 CRDTs: lists and searches run on `node.case_index` instead).

Case documents are end-to-end encrypted: their update bodies are sealed with the case key
(`cipher_for`) before they are signed, stored or sent, so the log, the peers' copies and any
relay hold ciphertext, and a received update from a peer can be checked against the case's
rules (`check_remote`) on a trial copy before anything of it is applied.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import sqlite_utils

from crypto.authorship import sign_update, verify_update
from crypto.errors import CryptoError, SignatureInvalid
from crypto.identity import Identity
from node.crdt import CrdtDocument, CrdtError, DocumentChange, DocView, check_update, merge_updates
from node.errors import CatchingUp, Forbidden, StorageError
from node.storage import Database, WriteErrors
from sync.errors import ReplicaUnavailable, UpdateRejected
from sync.messages import SignedUpdate, VersionVector
from sync.versions import missing_for

log = logging.getLogger(__name__)

SNAPSHOT_EVERY = 200  # stored updates between snapshots of one document
COMPACT_OWN_ABOVE = 256  # own log entries of one document before older ones are merged
COMPACT_KEEP_RECENT = 64  # own recent entries left unmerged, so peers slightly behind get small ones
# CRDTs kept in memory; others are rebuilt from snapshot and log on use. Least recently used goes first, so a
# node whose officers cycle through more documents than this reloads every one: 2,000 did for 2,000 busy cases
# plus the directory (about 20 KB each loaded).
MAX_LOADED = 4_000
# ... and at most this much of their content, counted as the updates they were built from: a document holds about
# six times that in memory (a note's 450 bytes are 2.8 KB loaded), and cases grow for years, so a count alone would
# let 4,000 long cases take gigabytes.
MAX_LOADED_BYTES = 48 * 1024 * 1024
MERGE_SEND_MAX_BYTES = 256 * 1024  # a lagging peer's run of this node's entries is merged up to this many bytes
MERGED_KEPT_BYTES = 16 * 1024 * 1024  # merged runs remembered (their bodies), so a second peer costs no signature


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Held:
    crdt: CrdtDocument
    versions: VersionVector = field(default_factory=dict)
    since_snapshot: int = 0
    size: int = 0  # bytes of the snapshot and updates it was built from (see MAX_LOADED_BYTES)


@dataclass(frozen=True)
class ApplyResult:
    stored: list[SignedUpdate]
    gap: bool  # some entry was ahead of what we hold: ask the peer for the missing ones


StoredListener = Callable[[Sequence[SignedUpdate], str | None], None]


class BodyCipher(Protocol):
    """Seals a document's update bodies (see `crypto.doc_keys.DocCipher`)."""

    def seal_update(self, plaintext: bytes, *, author: str) -> bytes: ...

    def open_update(self, data: bytes, *, author: str) -> bytes: ...


class NoKey(CryptoError):
    """This node does not hold the key of that document."""


# check_remote(doc_id, author, before, after) raises UpdateRejected if `author` may not make that change.
RemoteCheck = Callable[[str, str, DocView, DocView], None]


Indexer = Callable[[sqlite_utils.Database, str, CrdtDocument], None]


class KeyKeeper(Protocol):
    """Holds the keys of encrypted documents (`node.case_keys`); the sync engine reaches it through the store."""

    def grant_bytes(self, doc_id: str) -> bytes | None: ...

    def accept_grants(self, grants: Sequence[bytes], *, via: str) -> None: ...

    def widened_grants(self, doc_ids: Sequence[str]) -> list[bytes]: ...

    def cipher(self, doc_id: str) -> BodyCipher | None: ...


class DocumentStore:
    def __init__(
        self,
        db: Database,
        identity: Identity,
        *,
        author_key: Callable[[str], bytes | None],
        may_write: Callable[[str, str], bool],
        clock: Callable[[], str] = utc_now,
        encrypted: Callable[[str], bool] = lambda doc_id: False,
        keys: KeyKeeper | None = None,
        check_remote: RemoteCheck | None = None,
        checked_roots: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
        checked: Callable[[str], bool] = lambda doc_id: False,
        strict_authors: Callable[[str], bool] = lambda doc_id: False,
        revoked: Callable[[str], bool] = lambda author: False,
        older_keys: Callable[[str], tuple[bytes, ...]] = lambda author: (),
        may_commit: Callable[[], str | None] = lambda: None,
        max_loaded: int = MAX_LOADED,
        max_loaded_bytes: int = MAX_LOADED_BYTES,
    ) -> None:
        self._db = db
        self._identity = identity
        self._me = identity.node_id
        self._author_key = author_key
        self._may_write = may_write
        self._clock = clock
        self._encrypted = encrypted
        self._keys = keys
        self.check_remote: RemoteCheck | None = None
        self.checked_roots: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
        if check_remote is not None:
            self.set_rules(check_remote, *checked_roots)
        self._checked = checked
        self._strict_authors = strict_authors
        self._revoked = revoked
        self._older_keys = older_keys
        self._may_commit = may_commit  # why local changes must wait (a restored node catching up), or None
        self._max_loaded = max_loaded
        self._max_loaded_bytes = max_loaded_bytes
        self._loaded_bytes = 0  # the sizes of the documents in `_docs`, as they were when kept
        self._counted: dict[str, int] = {}
        self._versions: dict[str, VersionVector] = {}
        self._forgotten: set[str] = set()  # crypto-shredded: only the version vector is left (`forget`)
        self._docs: OrderedDict[str, _Held] = OrderedDict()
        self._merged_runs: OrderedDict[tuple[str, int, int], SignedUpdate] = OrderedDict()
        self._merged_bytes = 0
        self._listeners: list[StoredListener] = []
        self._indexers: list[Indexer] = []

    # -- reading --------------------------------------------------------------------------

    def load(self) -> None:
        """Read every document's version vector; the CRDTs themselves load on first use."""
        started = time.perf_counter()
        versions: dict[str, VersionVector] = {}
        for doc_id, vector_json in self._db.rows("SELECT doc_id, versions FROM doc_snapshots"):
            versions[doc_id] = {sys.intern(a): seq for a, seq in json.loads(vector_json).items()}
        for doc_id, author, seq in self._db.rows(
            "SELECT doc_id, author, MAX(seq_to) FROM doc_log GROUP BY doc_id, author"
        ):
            vector = versions.setdefault(doc_id, {})
            author = sys.intern(author)  # a few authors across every document: held once
            vector[author] = max(vector.get(author, 0), seq)
        self._forgotten = set()
        for row in self._db.query("SELECT doc_id, versions FROM doc_tombstones"):
            versions[row["doc_id"]] = json.loads(row["versions"])
            self._forgotten.add(row["doc_id"])
        self._versions = versions
        for doc_id in list(self._docs):
            self._drop(doc_id)
        log.info("found %d documents in %.0f ms", len(versions), (time.perf_counter() - started) * 1000)

    def doc_ids(self, prefix: str = "") -> list[str]:
        return sorted(d for d in self._versions if d.startswith(prefix))

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._versions

    def forgotten(self, doc_id: str) -> bool:
        return doc_id in self._forgotten

    def forget(self, db: sqlite_utils.Database, doc_id: str) -> None:
        """Drop a document's content for good, inside the caller's transaction (crypto-shredding, with its key).

        Its version vector stays as a tombstone: peers see this node holding everything up to it, so
        they do not offer the content again, and an entry that arrives later is ignored.
        """
        versions = self.versions(doc_id)
        db.execute("DELETE FROM doc_log WHERE doc_id = ?", (doc_id,))
        db.execute("DELETE FROM doc_snapshots WHERE doc_id = ?", (doc_id,))
        db.table("doc_tombstones").upsert(
            {"doc_id": doc_id, "versions": json.dumps(versions, sort_keys=True), "forgotten_at": self._clock()},
            pk="doc_id",
        )

    def forgot(self, doc_id: str) -> None:
        """After the transaction of `forget` committed: drop it from memory too."""
        for run in [r for r in self._merged_runs if r[0] == doc_id]:
            self._merged_bytes -= len(self._merged_runs.pop(run).body)
        self._forgotten.add(doc_id)
        self._drop(doc_id)

    def get(self, doc_id: str) -> CrdtDocument | None:
        held = self._held(doc_id)
        return held.crdt if held else None

    def versions(self, doc_id: str) -> VersionVector:
        return dict(self._versions.get(doc_id, {}))

    def held_versions(self) -> list[tuple[str, Mapping[str, int]]]:
        """Every document's version vector, for reading only: the vectors are not copied (a pass over 100,000
        documents copied each one)."""
        return list(self._versions.items())

    def entries_missing(self, doc_id: str, have: VersionVector, *, merge_own: bool = False) -> list[SignedUpdate]:
        """The log entries a holder of `have` lacks; with `merge_own`, as a peer is sent them (`_merge_own_runs`)."""
        mine = self.versions(doc_id)
        if all(have.get(author, 0) >= seq for author, seq in mine.items()):
            return []
        rows = self._db.query(
            "SELECT author, seq_from, seq_to, body, sig FROM doc_log WHERE doc_id = ? ORDER BY rowid",
            (doc_id,),
        )
        entries = [SignedUpdate(doc_id, r["author"], r["seq_from"], r["seq_to"], r["body"], r["sig"]) for r in rows]
        missing = missing_for(entries, have)
        return self._merge_own_runs(missing) if merge_own else missing

    def _merge_own_runs(self, entries: list[SignedUpdate]) -> list[SignedUpdate]:
        """Send a peer each run of this node's own entries it lacks as one entry, merged and re-signed.

        The receiver pays for every entry it gets (a signature check, a decryption, a trial of the case's
        rules, a row): a case with twenty of our notes costs it one of each instead of twenty. Only a run
        with no other author's entry between its parts, in the causal order `missing_for` gives, is merged:
        each part then builds only on what precedes the run, so the receiver can integrate the merged
        update as soon as it could have integrated the first part. The log on disk keeps its entries one by
        one (peers slightly behind still get small ones; `compact` bounds it).
        """
        out: list[SignedUpdate] = []
        run: list[SignedUpdate] = []
        size = 0
        for entry in entries:
            if (
                run
                and entry.author == self._me
                and entry.seq_from == run[-1].seq_to + 1
                and size + len(entry.body) <= MERGE_SEND_MAX_BYTES
            ):
                run.append(entry)
                size += len(entry.body)
                continue
            out.extend(self._merged(run) if len(run) > 1 else run)
            run, size = ([entry], len(entry.body)) if entry.author == self._me else ([], 0)
            if not run:
                out.append(entry)
        out.extend(self._merged(run) if len(run) > 1 else run)
        return out

    def _merged(self, run: list[SignedUpdate]) -> list[SignedUpdate]:
        """The run as one entry; as it is if it cannot be merged (an old key lost: each part still verifies)."""
        doc_id, first, last = run[0].doc_id, run[0].seq_from, run[-1].seq_to
        kept = self._merged_runs.get((doc_id, first, last))
        if kept is not None:
            self._merged_runs.move_to_end((doc_id, first, last))
            return [kept]
        try:
            body = self._seal(doc_id, self._me, merge_updates([self._open(doc_id, self._me, e.body) for e in run]))
        except (CryptoError, CrdtError):
            log.warning("sending the entries of %s one by one: they cannot be merged", doc_id)
            return run
        sig = sign_update(self._identity, doc_id=doc_id, seq_from=first, seq_to=last, update=body)
        merged = SignedUpdate(doc_id, self._me, first, last, body, sig)
        self._merged_runs[(doc_id, first, last)] = merged
        self._merged_bytes += len(body)
        while self._merged_bytes > MERGED_KEPT_BYTES:
            self._merged_bytes -= len(self._merged_runs.popitem(last=False)[1].body)
        return [merged]

    def key_grant(self, doc_id: str) -> bytes | None:
        return self._keys.grant_bytes(doc_id) if self._keys else None

    def accept_grants(self, grants: Sequence[bytes], *, via: str) -> None:
        if self._keys is None:
            raise UpdateRejected("no_key", "this node keeps no document keys")
        try:
            self._keys.accept_grants(grants, via=via)
        except WriteErrors as exc:
            raise ReplicaUnavailable("received key grants could not be stored") from exc

    def set_rules(self, check: RemoteCheck, collections: Sequence[str], lists: Sequence[str]) -> None:
        """Judge peers' updates with `check`, which compares these collections and lists before and after each."""
        if not collections and not lists:
            raise ValueError("a rule check must name what it compares")
        self.check_remote = check
        self.checked_roots = (tuple(collections), tuple(lists))

    def add_indexer(self, indexer: Indexer) -> None:
        """Call `indexer(db, doc_id, crdt)` inside the transaction that stores a change, so a projection
        (`node.case_index`) is never out of step with the documents: both commit or neither does."""
        self._indexers.append(indexer)

    def widened_grants(self, doc_ids: Sequence[str]) -> list[bytes]:
        return self._keys.widened_grants(doc_ids) if self._keys else []

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
        refusal = self._may_commit()
        if refusal is not None:
            raise CatchingUp(refusal)
        if not self._may_write(doc_id, self._me) or doc_id in self._forgotten:
            raise Forbidden("this node may not change that document")
        held = self._held(doc_id) or _Held(CrdtDocument())
        try:
            plain = held.crdt.change(edit)
        except BaseException:  # a refused value may come after other edits of the same change: drop them all
            self._reload(doc_id)
            raise
        if plain is None:
            return None
        try:
            body = self._seal(doc_id, self._me, plain)
        except NoKey:
            self._reload(doc_id)
            raise
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
            with self._db.write(grouped=True) as db:
                self._insert(db, entry)
                self._audit(db, actor, action, doc_id, subject)
                held.since_snapshot += 1
                if held.since_snapshot >= SNAPSHOT_EVERY:
                    self._snapshot(db, doc_id, held, {**held.versions, self._me: seq})
                for indexer in self._indexers:
                    indexer(db, doc_id, held.crdt)
        except StorageError:  # already says why (the disk is full, read-only, ...)
            self._reload(doc_id)
            raise
        except WriteErrors as exc:
            self._reload(doc_id)
            raise StorageError("the change could not be stored; nothing was changed") from exc
        except BaseException:
            self._reload(doc_id)
            raise
        held.versions[self._me] = seq
        held.size += len(plain)
        self._versions[doc_id] = dict(held.versions)
        self._keep(doc_id, held)
        self._db.on_abort(lambda: self._reload(doc_id))
        self._db.after_commit(lambda: self._notify([entry], None))  # durable before it leaves the node
        return entry

    def apply_remote(self, entries: Sequence[SignedUpdate], *, via: str) -> ApplyResult:
        """Check every entry, then store and apply the new ones together; a bad entry rejects them all."""
        to_store: list[SignedUpdate] = []
        plain: dict[SignedUpdate, bytes] = {}
        tentative: dict[tuple[str, str], int] = {}
        gap = False
        for entry in entries:
            if entry.doc_id in self._forgotten:
                continue  # shredded here: nothing of it is kept again
            key_ = self._author_key(entry.author) if entry.author != self._me else self._identity.public.sign_key
            if key_ is None:
                if self._revoked(entry.author):
                    # Relayed by a node that has not learnt of the revocation yet: refused, the rest is kept.
                    log.warning("refusing an update by revoked node %s in %s", entry.author, entry.doc_id)
                    continue
                if self._strict_authors(entry.doc_id):
                    raise UpdateRejected("untrusted_author", "update written by a node this node does not trust")
                # Relayed work of a member this node has not (yet) trusted: not an attack, but
                # unverifiable, so it is left out; the relay offers it again once trust exists.
                log.debug("skipping update by untrusted author %s in %s", entry.author, entry.doc_id)
                continue
            have = tentative.get((entry.doc_id, entry.author), self.versions(entry.doc_id).get(entry.author, 0))
            if entry.seq_to <= have:
                continue  # held already (sent by another peer too): nothing of it is used, so it costs no check
            if not self._signed_by(entry, (key_, *self._older_keys(entry.author))):
                raise UpdateRejected("bad_update_signature", "update signature does not verify")
            if not self._may_write(entry.doc_id, entry.author):
                raise UpdateRejected("not_permitted", "author may not write this document")
            try:
                plain[entry] = self._open(entry.doc_id, entry.author, entry.body)
                if entry.seq_from > have + 1 or self.check_remote is None or not self._checked(entry.doc_id):
                    # Decoded in a scratch document; a checked document's entry is decoded by its trial instead
                    # (`_check_rules`), which refuses it the same way: a new Doc per entry was a twentieth of a
                    # catch-up.
                    check_update(plain[entry])
            except NoKey as exc:
                raise UpdateRejected("no_key", "update of a document this node holds no key for") from exc
            except CryptoError as exc:
                raise UpdateRejected("undecryptable", "update does not decrypt with the document key") from exc
            except CrdtError as exc:
                raise UpdateRejected("malformed_update", "update cannot be decoded") from exc
            if entry.seq_from > have + 1:
                gap = True
                continue
            tentative[(entry.doc_id, entry.author)] = entry.seq_to
            to_store.append(entry)
        if not to_store:
            return ApplyResult([], gap)
        offered = len(to_store)
        trials, to_store = self._check_rules(to_store, plain)
        gap = gap or len(to_store) < offered
        if not to_store:
            return ApplyResult([], gap)
        touched: dict[str, _Held] = {}
        try:
            with self._db.write(grouped=True) as db:
                for entry in to_store:
                    trial = trials.get(entry.doc_id)
                    held = touched.get(entry.doc_id) or self._held(entry.doc_id)
                    if held is None:  # new here: its trial, if it had one, is the document (a new one costs)
                        held = _Held(trial if trial is not None else CrdtDocument())
                    touched[entry.doc_id] = held
                    if trial is not None:
                        held.crdt = trial
                    else:
                        held.crdt.apply(plain[entry])
                    held.versions[entry.author] = entry.seq_to
                    held.since_snapshot += 1
                    held.size += len(plain[entry])
                    self._insert(db, entry)
                    self._audit(
                        db, entry.author, "sync.apply", entry.doc_id, f"seq {entry.seq_from}-{entry.seq_to} via {via}"
                    )
                for doc_id, held in touched.items():
                    if held.since_snapshot >= SNAPSHOT_EVERY:
                        self._snapshot(db, doc_id, held, held.versions)
                    for indexer in self._indexers:
                        indexer(db, doc_id, held.crdt)
        except CrdtError as exc:
            for doc_id in touched:
                self._reload(doc_id)
            raise UpdateRejected("malformed_update", "update cannot be applied") from exc
        except WriteErrors as exc:
            for doc_id in touched:
                self._reload(doc_id)
            raise ReplicaUnavailable("received updates could not be stored") from exc
        except BaseException:
            for doc_id in touched:
                self._reload(doc_id)
            raise
        for doc_id, held in touched.items():
            self._versions[doc_id] = dict(held.versions)
            self._keep(doc_id, held)
        self._db.on_abort(lambda: [self._reload(doc_id) for doc_id in touched])
        self._db.after_commit(lambda: self._notify(to_store, via))  # durable before it is forwarded
        return ApplyResult(to_store, gap)

    @staticmethod
    def _signed_by(entry: SignedUpdate, keys: Sequence[bytes]) -> bool:
        """Signed by one of its author's keys (the current one, or one it had before rotating its keys)."""
        for key in keys:
            try:
                verify_update(
                    key,
                    entry.sig,
                    doc_id=entry.doc_id,
                    author_id=entry.author,
                    seq_from=entry.seq_from,
                    seq_to=entry.seq_to,
                    update=entry.body,
                )
                return True
            except SignatureInvalid:
                continue
        return False

    def _check_rules(
        self, entries: list[SignedUpdate], plain: dict[SignedUpdate, bytes]
    ) -> tuple[dict[str, CrdtDocument], list[SignedUpdate]]:
        """Try each entry on a trial copy and let the document's rules judge what it changed.

        An entry is judged only once the CRDT integrates it fully: one that builds on another
        author's entry later in the batch waits for it, so every change is seen, and attributed
        to its own author, in causal order. Returns the trial documents and the entries, in the
        order judged; entries whose causes are missing are left out (the peer sends them again).

        One trial per document takes the whole batch: each entry is judged between two views
        (`DocView`) of it, so catching up with n entries of a case reads the case n times instead
        of copying it 2n times. An entry the CRDT cannot integrate yet is undone by rebuilding
        the trial from where it started and the entries judged so far (rare: a causal gap).
        """
        if self.check_remote is None:
            return {}, entries
        trials: dict[str, CrdtDocument] = {}
        views: dict[str, DocView] = {}
        starts: dict[str, bytes | None] = {}
        taken: dict[str, list[bytes]] = defaultdict(list)
        judged: list[SignedUpdate] = []
        pending = [e for e in entries if self._checked(e.doc_id)]
        unchecked = [e for e in entries if not self._checked(e.doc_id)]
        progress = True
        while pending and progress:
            progress = False
            waiting: set[tuple[str, str]] = set()  # an author's later entries wait for its earlier one
            still: list[SignedUpdate] = []
            for entry in pending:
                doc_id = entry.doc_id
                if (doc_id, entry.author) in waiting:
                    still.append(entry)
                    continue
                trial = trials.get(doc_id)
                if trial is None:
                    current = self._held(doc_id)
                    starts[doc_id] = current.crdt.encode_state() if current else None
                    trial = trials[doc_id] = _rebuilt(starts[doc_id], [])
                    # The document as it stands, read from the one held (whose last read is kept: usually the view
                    # that judged its previous update), not from the trial, a copy that would be read afresh. One new
                    # here (every case of an initial sync) reads as empty: nothing to read.
                    views[doc_id] = current.crdt.view(*self.checked_roots) if current else DocView({}, {})
                try:
                    trial.apply(plain[entry])
                except CrdtError as exc:
                    raise UpdateRejected("malformed_update", "update cannot be applied") from exc
                if not trial.integrated(plain[entry]):
                    trials[doc_id] = _rebuilt(starts[doc_id], taken[doc_id])
                    waiting.add((doc_id, entry.author))
                    still.append(entry)
                    continue
                after = trial.view(*self.checked_roots)
                self.check_remote(doc_id, entry.author, views[doc_id], after)
                views[doc_id] = after
                taken[doc_id].append(plain[entry])
                judged.append(entry)
                progress = True
            pending = still
        if pending:
            log.info("%d updates wait for what they build on", len(pending))
        return trials, unchecked + judged

    def compact_all(self) -> int:
        """Compact every document holding more than `COMPACT_OWN_ABOVE` of this node's entries; how many were.

        The candidates come from one pass over the log's primary key, which holds what the count needs: asking
        each document in turn read every entry's body, 3.4 s of a blocked event loop every five minutes on a node
        of 100,000 cases, against 0.1 s for this."""
        rows = self._db.query(
            "SELECT doc_id FROM doc_log WHERE author = ? GROUP BY doc_id HAVING count(*) > ?",
            (self._me, COMPACT_OWN_ABOVE),
        )
        return sum(self.compact(row["doc_id"]) for row in rows)

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
        try:
            merged = merge_updates([self._open(doc_id, self._me, r["body"]) for r in old])
            body = self._seal(doc_id, self._me, merged)
        except CryptoError:
            log.warning("cannot compact %s: its key is not available", doc_id)
            return False
        sig = sign_update(self._identity, doc_id=doc_id, seq_from=first, seq_to=last, update=body)
        with self._db.write() as db:
            self._insert(db, SignedUpdate(doc_id, self._me, first, last, body, sig))
        return True

    def snapshot_all(self) -> None:
        """Snapshot every loaded document with unsnapshotted changes (on shutdown, so the next start is quick)."""
        with self._db.write() as db:
            for doc_id, held in self._docs.items():
                if held.since_snapshot:
                    self._snapshot(db, doc_id, held, held.versions)

    # -- internals ------------------------------------------------------------------------

    def _insert(self, db: sqlite_utils.Database, entry: SignedUpdate) -> None:
        # An entry covering a run of seqs replaces the entries inside that run. A single seq has none to replace:
        # it is stored only if beyond what the author's entries here reach (and the key would refuse a twin).
        if entry.seq_from < entry.seq_to:
            db.execute(
                "DELETE FROM doc_log WHERE doc_id = ? AND author = ? AND seq_from >= ? AND seq_to <= ?",
                (entry.doc_id, entry.author, entry.seq_from, entry.seq_to),
            )
        # Plain SQL on the hot path: sqlite_utils' `insert` re-reads the schema on every call (~0.5 ms).
        db.execute(
            "INSERT INTO doc_log (doc_id, author, seq_from, seq_to, body, sig, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (entry.doc_id, entry.author, entry.seq_from, entry.seq_to, entry.body, entry.sig, self._clock()),
        )

    def _audit(self, db: sqlite_utils.Database, actor: str, action: str, doc_id: str, subject: str) -> None:
        db.execute(
            "INSERT INTO audit_log (at, actor, action, doc_id, subject) VALUES (?, ?, ?, ?, ?)",
            (self._clock(), actor, action, doc_id, subject),
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

    def _held(self, doc_id: str) -> _Held | None:
        held = self._docs.get(doc_id)
        if held is not None:
            self._docs.move_to_end(doc_id)
            return held
        if doc_id not in self._versions or doc_id in self._forgotten:
            return None
        return self._reload(doc_id)

    def _keep(self, doc_id: str, held: _Held) -> None:
        self._docs[doc_id] = held
        self._docs.move_to_end(doc_id)
        self._loaded_bytes += held.size - self._counted.get(doc_id, 0)
        self._counted[doc_id] = held.size
        while len(self._docs) > self._max_loaded or (
            self._loaded_bytes > self._max_loaded_bytes and len(self._docs) > 1
        ):
            self._drop(next(iter(self._docs)))  # its log and snapshot are on disk; it reloads on use

    def _drop(self, doc_id: str) -> None:
        self._docs.pop(doc_id, None)
        self._loaded_bytes -= self._counted.pop(doc_id, 0)

    def _seal(self, doc_id: str, author: str, plain: bytes) -> bytes:
        if not self._encrypted(doc_id):
            return plain
        cipher = self._keys.cipher(doc_id) if self._keys else None
        if cipher is None:
            raise NoKey()
        return cipher.seal_update(plain, author=author)

    def _open(self, doc_id: str, author: str, body: bytes) -> bytes:
        if not self._encrypted(doc_id):
            return body
        cipher = self._keys.cipher(doc_id) if self._keys else None
        if cipher is None:
            raise NoKey()
        return cipher.open_update(body, author=author)

    def _reload(self, doc_id: str) -> _Held | None:
        """(Re)build a document from its snapshot and the log after it, dropping any change not on disk."""
        self._drop(doc_id)
        held = _Held(CrdtDocument())
        snap = self._db.query("SELECT state, versions FROM doc_snapshots WHERE doc_id = ?", (doc_id,))
        if snap:
            held.crdt.apply(snap[0]["state"])
            held.size = len(snap[0]["state"])
            held.versions = json.loads(snap[0]["versions"])
        rows = self._db.query(
            "SELECT author, seq_to, body FROM doc_log WHERE doc_id = ? ORDER BY author, seq_to", (doc_id,)
        )
        bodies: list[bytes] = []
        for row in rows:
            if row["seq_to"] > held.versions.get(row["author"], 0):
                try:
                    bodies.append(self._open(doc_id, row["author"], row["body"]))
                except CryptoError:
                    log.warning("document %s cannot be read: its key is not available", doc_id)
                    return None
                held.versions[row["author"]] = row["seq_to"]
                held.since_snapshot += 1
        if bodies:
            held.crdt.apply(merge_updates(bodies))
            held.size += sum(len(body) for body in bodies)
        if not (rows or snap):
            self._versions.pop(doc_id, None)
            return None
        self._versions[doc_id] = dict(held.versions)
        self._keep(doc_id, held)
        return held

    def _notify(self, entries: Iterable[SignedUpdate], source: str | None) -> None:
        batch = list(entries)
        for listener in self._listeners:
            try:
                listener(batch, source)
            except Exception:  # a listener's bug must not undo a stored change
                log.exception("document listener failed")


def _rebuilt(state: bytes | None, updates: Sequence[bytes]) -> CrdtDocument:
    """A fresh document holding `state` (None: empty) and then `updates`."""
    doc = CrdtDocument()
    if state is not None:
        doc.apply(state)
    if updates:
        doc.apply(merge_updates(list(updates)))
    return doc
