"""Statistics for the secretariat: each authority's aggregate report, and the network's view of them.

An authority's report is computed from its case projection by `node.stats.build_report` (counts
and durations only, small counts merged) and published in its own document `report/<node id>`,
which `node.policy` sends to secretariat nodes only: every member signs its report (the update's
author signature) and it travels sealed for the secretariat (the sync envelope), so no other
authority and no relay reads it. What leaves is exactly the `payload` string an officer can preview
(`preview`), and every send is logged in `stats_sent`.

The secretariat never computes anything from cases (it holds none); it merges the reports of the
members it trusts (`network`), and lists those that switched reporting off (their document says
so) apart from those that simply have not reported: it never guesses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import date
from typing import Any, Final

from node import stats
from node.crdt import DocumentChange
from node.documents import DocumentStore, utc_now
from node.errors import CatchingUp, Forbidden, NotFound
from node.policy import REPORT_PREFIX, report_doc
from node.storage import Database

log = logging.getLogger(__name__)

REPORTS: Final = "reports"
SETTINGS: Final = ("settings", "main")
INTERVALS: Final = {"daily": 86_400.0, "weekly": 7 * 86_400.0}


class Reporting:
    def __init__(
        self,
        db: Database,
        store: DocumentStore,
        *,
        node_id: str,
        country: str,
        role: str,
        k: int,
        schedule: str,
        members: Callable[[], dict[str, str]],
        today: Callable[[], date],
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self._db = db
        self._store = store
        self._me = node_id
        self._country = country
        self.role = role
        self.k = k
        self.schedule = schedule
        self._members = members  # authority node ID -> country, of the trusted peers (secretariat view)
        self._today = today
        self._clock = clock

    # -- an authority's own report --------------------------------------------------------

    def period_or_default(self, period: str | None) -> str:
        chosen = period or stats.current_quarter(self._today())
        stats.parse_period(chosen)  # ValidationError for a malformed period
        return chosen

    def _facts(self, period: str) -> list[stats.CaseFacts]:
        start, end = stats.parse_period(period)
        rows = self._db.query(
            "SELECT kind, status, outcome, side, requesting_country, requested_country, offences, urgency, "
            "sent_at, acknowledged_at, executed_at, requested_by FROM cases "
            "WHERE side IN ('requesting', 'requested') AND sent_at >= ? AND sent_at < ?",
            (start.isoformat(), end.isoformat()),
        )
        facts = []
        for row in rows:
            outgoing = row["side"] == "requesting"
            facts.append(
                stats.CaseFacts(
                    kind=row["kind"],
                    status=row["status"],
                    outcome=row["outcome"],
                    direction="outgoing" if outgoing else "incoming",
                    counterpart_country=row["requested_country"] if outgoing else row["requesting_country"],
                    offences=tuple(json.loads(row["offences"] or "[]")),
                    urgency=row["urgency"] or "normal",
                    sent_at=row["sent_at"],
                    acknowledged_at=row["acknowledged_at"],
                    executed_at=row["executed_at"],
                    requested_by=row["requested_by"],
                )
            )
        return facts

    def preview(self, period: str | None = None) -> dict[str, Any]:
        """Exactly what `send` would publish for the period: nothing more leaves the node."""
        self._require_authority()
        chosen = self.period_or_default(period)
        report: dict[str, Any] = stats.build_report(
            self._facts(chosen), period=chosen, country=self._country, k=self.k, today=self._today()
        )
        return report

    def own(self, period: str | None = None) -> dict[str, Any]:
        """The authority's `GET /api/v1/stats`: its own report, shaped like the network's (which adds up the
        two directions of `pairs` per country, as here: the report itself does not carry that sum)."""
        report = self.preview(period)
        if isinstance(report.get("pairs"), dict):
            per_country: dict[str, int] = {}
            for side in report["pairs"].values():
                for country, n in side.items():
                    per_country[country] = per_country.get(country, 0) + n
            report["totals"]["by_counterpart_country"] = dict(sorted(per_country.items()))
        return {"reporting_nodes": 1, **report}

    def send(self, period: str | None = None, *, actor: str, trigger: str = "on demand") -> dict[str, Any]:
        """Publish the report for the secretariat (it leaves with the next sync) and log it."""
        return self._publish(self.preview(period), actor=actor, trigger=trigger)

    def _publish(self, report: dict[str, Any], *, actor: str, trigger: str) -> dict[str, Any]:
        payload = _payload(report)
        at = self._clock()

        def edit(change: DocumentChange) -> None:
            change.put_record(REPORTS, report["period"], {"payload": payload})
            change.put_record(*SETTINGS, {"reporting": self.schedule})

        self._store.commit_local(report_doc(self._me), edit, actor=actor, action="stats.send", subject=report["period"])
        with self._db.write() as db:
            db.table("stats_sent").insert(
                {"period": report["period"], "sent_at": at, "payload": payload, "trigger": trigger}
            )
        return {"period": report["period"], "sent_at": at, "payload": report}

    def sent_log(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = self._db.query(
            "SELECT period, sent_at, trigger, payload FROM stats_sent ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [{**r, "payload": json.loads(r["payload"])} for r in rows]

    def scheduled(self) -> None:
        """The schedule's work: refresh the current and the previous quarter, or say reporting is off."""
        if self.role != "authority":
            return
        try:
            self._scheduled()
        except CatchingUp:  # restored from a backup: the next run reports (or an officer sends by hand)
            log.info("scheduled statistics report skipped: the node is catching up after a restore")

    def _scheduled(self) -> None:
        if self.schedule == "off":
            self._store.commit_local(
                report_doc(self._me),
                lambda change: change.put_record(*SETTINGS, {"reporting": "off"}),
                actor="schedule",
                action="stats.off",
            )
            return
        current = stats.current_quarter(self._today())
        for period in (stats.previous_period(current), current):
            # Worked out once and published as it is: on a node with many cases a report reads every case sent in
            # the quarter, and the event loop waits for it.
            report = self.preview(period)
            if self._changed(period, report):
                self._publish(report, actor="schedule", trigger="schedule")

    def _changed(self, period: str, report: dict[str, Any]) -> bool:
        doc = self._store.get(report_doc(self._me))
        held = doc.record(REPORTS, period) if doc else None
        return held is None or held.get("payload") != _payload(report)

    def _require_authority(self) -> None:
        if self.role != "authority":
            raise Forbidden("only an authority reports statistics; the secretariat merges them")

    # -- the secretariat's view -----------------------------------------------------------

    def _reports(self, period: str) -> tuple[dict[str, dict[str, Any]], set[str]]:
        reports: dict[str, dict[str, Any]] = {}
        off: set[str] = set()
        members = self._members()
        for doc_id in self._store.doc_ids(REPORT_PREFIX):
            author = doc_id[len(REPORT_PREFIX) :]
            doc = self._store.get(doc_id)
            if author not in members or doc is None:
                continue
            settings = doc.record(*SETTINGS) or {}
            if settings.get("reporting") == "off":
                off.add(author)
            record = doc.record(REPORTS, period)
            if record and isinstance(record.get("payload"), str):
                try:
                    report = json.loads(record["payload"])
                except ValueError:
                    log.warning("unreadable statistics report from %s", author)
                    continue
                if stats.is_valid_report(report, period):
                    reports[author] = report
                else:
                    log.warning("statistics report from %s is not of the expected shape; not counted", author)
        return reports, off

    def network(self, period: str | None = None) -> dict[str, Any]:
        if self.role != "secretariat":
            return self.own(period)
        chosen = self.period_or_default(period)
        reports, off = self._reports(chosen)
        merged: dict[str, Any] = stats.merge_reports(
            reports, period=chosen, k=self.k, expected=self._members(), not_reporting=off
        )
        return merged

    def members(self, period: str | None = None) -> list[dict[str, Any]]:
        """Each member authority and whether it reported for the period (secretariat only)."""
        if self.role != "secretariat":
            raise Forbidden("the list of reporting members is the secretariat's")
        chosen = self.period_or_default(period)
        reports, off = self._reports(chosen)
        return [
            {
                "node_id": node_id,
                "country": country,
                "status": "reported" if node_id in reports else ("not reporting" if node_id in off else "missing"),
            }
            for node_id, country in sorted(self._members().items(), key=lambda m: (m[1], m[0]))
        ]

    def trends(self, period: str | None = None, count: int = 4) -> list[dict[str, Any]]:
        chosen = self.period_or_default(period)
        if count < 1 or count > 40:
            raise NotFound("ask for 1 to 40 periods")
        return [self.network(p) for p in stats.periods_back(chosen, count)]

    def csv(self, period: str | None = None) -> str:
        text: str = stats.to_csv(self.network(period))
        return text


def _payload(report: dict[str, Any]) -> str:
    """A report as it is published and compared: canonical JSON, so an unchanged report is not sent again."""
    return json.dumps(report, sort_keys=True, separators=(",", ":"))
