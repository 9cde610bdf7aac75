"""Case keys over time: regular key epochs for open cases, crypto-shredding of closed ones past retention.

Both run once a day (`node.app`), and both are off the hot path: a case moves to a new key when its
current one has sealed for `case_key_days` (the requesting side does it, so the parties do not
both), and a case closed more than `shred_closed_after_days` ago is crypto-shredded: every key of it
is destroyed and its content dropped in one transaction. What remains is a tombstone (the version
vector, so peers do not offer it again) and an audit line. Copies of its ciphertext elsewhere (the
relay, a backup, traffic captured on the wire) can no longer be opened with anything this node
holds; the counterpart shreds its own copy under its own retention.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from node.blobs import BlobStore
from node.case_index import CaseIndex
from node.case_keys import CaseKeys
from node.documents import DocumentStore, utc_now
from node.storage import Database
from node.workflow import FINAL_STATUSES

log = logging.getLogger(__name__)


class Retention:
    def __init__(
        self,
        db: Database,
        store: DocumentStore,
        case_keys: CaseKeys,
        blobs: BlobStore,
        index: CaseIndex,
        *,
        shred_after_days: int,
        rotate_after_days: int,
        today: Callable[[], date],
        on_rekeyed: Callable[[str, list[str]], None] = lambda doc_id, parties: None,
    ) -> None:
        self._db = db
        self._index = index
        self._store = store
        self._keys = case_keys
        self._blobs = blobs
        self.shred_after_days = shred_after_days
        self.rotate_after_days = rotate_after_days
        self._today = today
        self.on_rekeyed = on_rekeyed
        self.may_rekey: Callable[[], str | None] = lambda: None  # why key epochs must wait (catch-up), or None

    def run(self) -> dict[str, int]:
        """The daily pass; counts only (no case IDs) so it can be logged."""
        rotated = self.rotate_due()
        shredded = self.shred_due()
        if rotated or shredded:
            log.info("case keys: %d moved to a new epoch, %d closed cases shredded", len(rotated), len(shredded))
        return {"rotated": len(rotated), "shredded": len(shredded)}

    def _status(self, doc_id: str) -> str | None:
        rows = self._db.query("SELECT status FROM cases WHERE doc_id = ?", (doc_id,))
        return str(rows[0]["status"]) if rows else None

    def rotate_due(self) -> list[str]:
        if self.rotate_after_days <= 0 or self.may_rekey() is not None:
            return []
        cutoff = (datetime.now(UTC) - timedelta(days=self.rotate_after_days)).isoformat().replace("+00:00", "Z")
        rotated = self._keys.rotate_due(
            older_than=cutoff, open_case=lambda doc_id: self._status(doc_id) not in (None, *FINAL_STATUSES)
        )
        for doc_id in rotated:
            self.on_rekeyed(doc_id, list(self._keys.roles(doc_id)))
        return rotated

    def shred_due(self) -> list[str]:
        if self.shred_after_days <= 0:
            return []
        cutoff = (self._today() - timedelta(days=self.shred_after_days)).isoformat()
        rows = self._db.query(
            "SELECT case_id, doc_id FROM cases WHERE status = 'closed' AND closed_at IS NOT NULL AND closed_at < ?",
            (cutoff,),
        )
        for row in rows:
            self.shred(str(row["case_id"]), str(row["doc_id"]))
        return [str(row["case_id"]) for row in rows]

    def shred(self, case_id: str, doc_id: str) -> None:
        """Destroy a case's keys and content here, all at once or not at all."""
        blob_ids = [
            str(r["blob_id"])
            for r in self._db.query("SELECT blob_id FROM case_attachments WHERE case_id = ?", (case_id,))
        ]
        with self._db.write() as db:
            self._store.forget(db, doc_id)
            self._keys.shred(db, doc_id)
            self._index.remove(db, case_id)  # the search text too: it is the case's content in plain text
            db.execute("DELETE FROM case_officers WHERE case_id = ?", (case_id,))
            db.table("audit_log").insert(
                {"at": utc_now(), "actor": "retention", "action": "case.shredded", "doc_id": doc_id, "subject": case_id}
            )
        self._store.forgot(doc_id)
        self._keys.shredded(doc_id)
        for blob_id in blob_ids:
            self._blobs.delete(blob_id)  # sealed with the destroyed key already; this frees the disk
