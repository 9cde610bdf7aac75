"""Refused sync input: counted, logged and kept in the database, never with its content.

An operator needs to see that a peer is sending forged or stale messages (a stolen key, a
misconfigured clock, an attacker on the path); the reason and the claimed peer are enough for
that, and nothing in a refused message is trusted enough to be worth recording.
"""

from __future__ import annotations

import logging
from collections import Counter

from node.documents import utc_now
from node.storage import Database, WriteErrors

log = logging.getLogger("seajust.rejections")


class RejectionLog:
    def __init__(self, db: Database) -> None:
        self._db = db
        self.counts: Counter[str] = Counter(
            {
                row["reason"]: row["n"]
                for row in db.query("SELECT reason, count(*) AS n FROM rejections GROUP BY reason")
            }
        )

    def record(self, peer: str | None, reason: str, detail: str) -> None:
        self.counts[reason] += 1
        log.warning("rejected sync input from %s: %s (%s)", peer or "unknown node", reason, detail)
        try:
            with self._db.write() as db:
                db.table("rejections").insert({"at": utc_now(), "peer": peer, "reason": reason, "detail": detail[:200]})
        except WriteErrors:
            log.exception("could not record a rejection")
