"""Aggregate statistics for the network secretariat: counts and durations, never a case.

The secretariat (UNODC) is there to see how cooperation works across the region: how many requests
go between which countries, for which offences, how long they take, how many run late. It has no
business knowing any one case, and a report that named one, or that let a reader single one out,
would breach the confidentiality every authority owes its own investigations. So a node reports
counts only, keyed by fixed vocabulary codes and ISO country codes; a value that is not such a code
(a newer node's code, anything a peer might have slipped into a case) is counted as "unknown", so
no reference, name or free text can leave the node. Durations are whole days; no case date is sent,
and a case is placed in a period by the date it was sent.

Small counts identify cases ("the one extradition from LA to TH this quarter" is a case, not a
pattern), hence the suppression rule below (`SUPPRESSION_RULE`, `suppress`). A small cell is
*merged* into "other" rather than blanked: the breakdown still adds up to its total, so the
secretariat's sums stay right, and the suppressed value cannot be recovered by subtracting the
visible cells from the total because "other" is itself at least k and, when needed, holds further
cells that were not small (secondary suppression). The vocabularies' own "other" code (another kind,
another offence) shares that cell: it means "anything not listed" either way.

The guarantee is per breakdown, and a report carries no breakdown that refines another it also
carries: counts by counterpart country travel only as ``pairs`` (per direction), never also as a
per-country total, from which a visible pair could be subtracted to reveal the other direction's
suppressed one; the secretariat adds the two directions up itself. When a direction's own count is
suppressed, neither side of ``pairs`` is shown, since each side adds up to its direction's count.
Breakdowns of different dimensions (kind, status, offence, urgency) partition the same cases
independently; subtracting one from another reveals no cell.

At network level (`merge_reports`) the secretariat sums what nodes sent, suppresses again, and
gives durations as histograms with the *bucket* holding the median and 90th percentile: a network
median computed from exact durations would need every case's duration, which never leaves a node.

Everything here is pure: the caller reads the case projection, builds `CaseFacts`, and sends or
shows the result.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Any, Final

from node.countries import COUNTRIES
from node.errors import ValidationError
from node.vocab import CASE_KINDS, OFFENCES, URGENCY
from node.workflow import FINAL_STATUSES

SCHEMA: Final = 1
OTHER: Final = "other"
UNKNOWN: Final = "unknown"
DIRECTIONS: Final[tuple[str, ...]] = ("incoming", "outgoing")

PERIOD_RE: Final = re.compile(r"^(?P<year>\d{4})-(?:Q(?P<quarter>[1-4])|(?P<month>0[1-9]|1[0-2]))$")

STATUS_GROUPS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "sent": "pending",
        "acknowledged": "pending",
        "in_execution": "pending",
        "partially_executed": "executed",
        "executed": "executed",
        "refused": "refused",
        "withdrawn": "withdrawn",
        "closed": "closed",
    }
)

# How a case can end before it is closed. A consultation closed once answered (from sent or acknowledged)
# has no such outcome and counts as "closed".
_OUTCOMES: Final = frozenset({"partially_executed", "executed", "refused", "withdrawn"})

HISTOGRAM_BUCKETS: Final[tuple[tuple[int, int | None, str], ...]] = (
    (0, 1, "0-1"),
    (2, 3, "2-3"),
    (4, 7, "4-7"),
    (8, 14, "8-14"),
    (15, 30, "15-30"),
    (31, 60, "31-60"),
    (61, 90, "61-90"),
    (91, 180, "91-180"),
    (181, 365, "181-365"),
    (366, None, "366+"),
)
_BUCKET_LABELS: Final = tuple(label for _, _, label in HISTOGRAM_BUCKETS)

SUPPRESSION_RULE: Final = (
    "Counts below the threshold k are never shown, because a small count can point to a single case. "
    "In every breakdown (by kind, status, direction, offence, counterpart country, urgency, each side of the "
    "country pairs, each duration histogram) a cell with a count from 1 to k-1 is removed and its count added "
    'to an "other" cell (which also holds the vocabulary\'s own "other" code). If "other" is then still below '
    "k, the smallest remaining cells (ties broken by name) are moved into it until it reaches k, so a hidden "
    "count cannot be worked out by subtracting the visible cells from the total; a breakdown whose whole total "
    "is below k shows nothing. Empty cells are left out. A single count (cases, overdue cases, cases with a "
    "measured duration) from 1 to k-1 is shown as unknown, and a median or 90th percentile is shown only when "
    "at least k durations were measured. If fewer than k cases were sent in the period, the report says only "
    "that it is suppressed. If either direction (incoming or outgoing) is hidden, the country pairs are not "
    "shown either, since each side of the pairs adds up to its direction's count. The secretariat sums the "
    "reports and applies the same rule again to the network totals."
)

_BREAKDOWNS: Final = (
    "by_kind",
    "by_status",
    "by_direction",
    "by_offence",
    "by_urgency",
)
_RESPONSES: Final = ("sent_to_acknowledged", "sent_to_executed")
# What a key in a peer's report may look like: vocabulary codes, country codes, bucket labels, "other".
_REPORT_KEY_RE: Final = re.compile(r"^[A-Za-z0-9_+\-]{1,40}$")


# --- periods -------------------------------------------------------------------------------------------------------


def _period_error(period: str) -> ValidationError:
    return ValidationError(
        f"'{period}' is not a period", fields={"period": "give a quarter as YYYY-Qn (2026-Q4) or a month as YYYY-MM"}
    )


def _parts(period: str) -> tuple[int, str, int]:
    """(year, "Q" or "M", quarter or month number) of a period, or `ValidationError`."""
    match = PERIOD_RE.match(period) if isinstance(period, str) else None
    if match is None or int(match["year"]) < 1:
        raise _period_error(period)
    if match["quarter"] is not None:
        return int(match["year"]), "Q", int(match["quarter"])
    return int(match["year"]), "M", int(match["month"])


def _format(year: int, unit: str, number: int) -> str:
    if not 1 <= year <= 9999:
        raise ValidationError("that period is out of range", fields={"period": "the year must be 0001 to 9999"})
    return f"{year:04d}-Q{number}" if unit == "Q" else f"{year:04d}-{number:02d}"


def parse_period(period: str) -> tuple[date, date]:
    """The days a period covers, as [start, end): a case sent on `start` counts, one sent on `end` does not."""
    year, unit, number = _parts(period)
    first_month = 3 * (number - 1) + 1 if unit == "Q" else number
    months = 3 if unit == "Q" else 1
    end_index = year * 12 + first_month - 1 + months  # months since year 0, January = 0
    end_year, end_month = divmod(end_index, 12)
    if end_year > 9999:
        raise _period_error(period)
    return date(year, first_month, 1), date(end_year, end_month + 1, 1)


def current_quarter(today: date) -> str:
    return f"{today.year:04d}-Q{(today.month - 1) // 3 + 1}"


def previous_period(period: str) -> str:
    """The period just before, of the same length (2026-Q1 -> 2025-Q4, 2026-01 -> 2025-12)."""
    year, unit, number = _parts(period)
    if number > 1:
        return _format(year, unit, number - 1)
    return _format(year - 1, unit, 4 if unit == "Q" else 12)


def periods_back(period: str, n: int) -> list[str]:
    """The `n` periods ending with `period`, oldest first (for a trend chart)."""
    if n < 1:
        raise ValidationError("ask for at least one period", fields={"n": "must be 1 or more"})
    out = [_format(*_parts(period))]
    while len(out) < n:
        out.append(previous_period(out[-1]))
    return out[::-1]


# --- one node's report ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseFacts:
    """What statistics may know of one case; the caller builds it from the case projection.

    `outcome` is, for a closed case, the status it had just before closing (executed, partially_executed,
    refused, withdrawn), else None. `direction` is "outgoing" when this node is the requesting side and
    "incoming" when it is the requested side; cases merely shared with this node are not passed in, since
    they are another authority's work. Timestamps are ISO ('YYYY-MM-DDTHH:MM:SS.mmmZ') and `requested_by`
    is a date; only their calendar dates are read, and none of them leaves this module.
    """

    kind: str
    status: str
    outcome: str | None
    direction: str
    counterpart_country: str | None
    offences: tuple[str, ...]
    urgency: str
    sent_at: str | None
    acknowledged_at: str | None
    executed_at: str | None
    requested_by: str | None


def status_group(status: str, outcome: str | None) -> str:
    """The group a case is counted in: a closed case counts by how it ended, "closed" only if that is unknown."""
    if status == "closed" and outcome is not None and outcome in _OUTCOMES:
        return STATUS_GROUPS[outcome]
    return STATUS_GROUPS.get(status, UNKNOWN)


def days_between(start: str | None, end: str | None) -> int | None:
    """Whole days between the calendar dates of two timestamps; None if either is missing or unreadable.

    The two ends are often written by different nodes, whose clocks may disagree by a little: an end
    dated before its start counts as 0 days rather than a negative duration.
    """
    first, last = _day(start), _day(end)
    if first is None or last is None:
        return None
    return max((last - first).days, 0)


def bucket_of(days: int) -> str:
    for low, high, label in HISTOGRAM_BUCKETS:
        if days >= low and (high is None or days <= high):
            return label
    raise ValueError(f"no bucket for {days} days")


def build_report(facts: Iterable[CaseFacts], *, period: str, country: str, k: int, today: date) -> dict[str, Any]:
    """The statistics this node sends the secretariat for `period`: exactly the payload that leaves the node.

    A case counts when it was sent in the period (drafts never count); "overdue" is a case sent in the period,
    not final as of `today`, whose requested-by date is before `today`. Every breakdown, scalar and median is
    suppressed by `SUPPRESSION_RULE`; see the module docstring for why.
    """
    start, end = parse_period(period)
    _check_k(k)
    if country not in COUNTRIES:
        raise ValidationError(f"'{country}' is not a country code", fields={"country": "an ISO 3166-1 alpha-2 code"})

    counted = [
        f for f in facts if f.status != "draft" and (sent := _day(f.sent_at)) is not None and start <= sent < end
    ]
    head: dict[str, Any] = {"schema": SCHEMA, "period": period, "country": country, "k": k}
    if 0 < len(counted) < k:
        return {**head, "totals": {"cases": None}, "suppressed": True}

    by: dict[str, Counter[str]] = {name: Counter() for name in _BREAKDOWNS}
    pairs: dict[str, Counter[str]] = {d: Counter() for d in DIRECTIONS}
    durations: dict[str, list[int]] = {name: [] for name in _RESPONSES}
    overdue = 0
    for f in counted:
        if f.direction not in DIRECTIONS:
            raise ValueError(f"direction must be incoming or outgoing, not {f.direction!r}")
        counterpart = _country(f.counterpart_country)
        by["by_kind"][_code(f.kind, CASE_KINDS)] += 1
        by["by_status"][status_group(f.status, f.outcome)] += 1
        by["by_direction"][f.direction] += 1
        for offence in sorted({_code(o, OFFENCES) for o in f.offences} or {UNKNOWN}):
            by["by_offence"][offence] += 1
        by["by_urgency"][_code(f.urgency, URGENCY)] += 1
        pairs[f.direction][counterpart] += 1
        due = _day(f.requested_by)
        if f.status not in FINAL_STATUSES and due is not None and due < today:
            overdue += 1
        for name, end_at in (("sent_to_acknowledged", f.acknowledged_at), ("sent_to_executed", f.executed_at)):
            days = days_between(f.sent_at, end_at)
            if days is not None:
                durations[name].append(days)

    shown_pairs = {d: suppress(_sorted(pairs[d]), k) for d in DIRECTIONS}
    if any(0 < by["by_direction"][d] < k for d in DIRECTIONS):
        shown_pairs = {d: {} for d in DIRECTIONS}
    return {
        **head,
        "totals": {
            "cases": _scalar(len(counted), k),
            **{name: suppress(_sorted(by[name]), k) for name in _BREAKDOWNS},
            "overdue": _scalar(overdue, k),
        },
        "pairs": shown_pairs,
        "response_days": {name: _response(durations[name], k) for name in _RESPONSES},
    }


def _response(days: list[int], k: int) -> dict[str, Any]:
    ordered = sorted(days)
    n = len(ordered)
    enough = n >= k and n > 0
    return {
        "n": _scalar(n, k),
        # Nearest rank: the lower median, and the smallest value at or above 90% of the durations.
        "median": ordered[(n - 1) // 2] if enough else None,
        "p90": ordered[math.ceil(0.9 * n) - 1] if enough else None,
        "histogram": suppress(_in_bucket_order(Counter(bucket_of(d) for d in ordered)), k),
    }


def suppress(counts: Mapping[str, int], k: int) -> dict[str, int]:
    """One breakdown as it may be shown: no cell from 1 to k-1, and "other" either absent or at least k.

    Small cells (and any "other" already present) go into "other"; while "other" is from 1 to k-1 the
    smallest remaining cell (ties: by key) joins it. Merging rather than blanking keeps the breakdown's sum
    equal to its total, which is what lets the secretariat add reports up. Visible cells keep their order.
    When the whole total is from 1 to k-1 nothing at all can be shown: any non-empty result would state it.
    """
    _check_k(k)
    if any(n < 0 for n in counts.values()):
        raise ValueError("counts cannot be negative")
    cells = {key: int(n) for key, n in counts.items() if n > 0}
    if sum(cells.values()) < k:
        return {}
    other = cells.pop(OTHER, 0)
    for key in [key for key, n in cells.items() if n < k]:
        other += cells.pop(key)
    while 0 < other < k and cells:
        smallest = min(cells, key=lambda key: (cells[key], key))
        other += cells.pop(smallest)
    return {**cells, **({OTHER: other} if other else {})}


def _sorted(counts: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items()))


def _in_bucket_order(counts: Mapping[str, int]) -> dict[str, int]:
    """Buckets shortest first (the order a reader expects), then anything else, such as "other"."""
    return {
        **{label: counts[label] for label in _BUCKET_LABELS if label in counts},
        **{key: n for key, n in counts.items() if key not in _BUCKET_LABELS},
    }


def _scalar(n: int, k: int) -> int | None:
    return None if 0 < n < k else n


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValidationError(
            "the suppression threshold must be a whole number of 1 or more", fields={"k": "1 or more"}
        )


def _code(value: object, vocabulary: Mapping[str, str]) -> str:
    """A vocabulary code as-is; anything else (None, a newer node's code, text) as "unknown": only codes leave."""
    return value if isinstance(value, str) and value in vocabulary else UNKNOWN


def _country(value: object) -> str:
    return value if isinstance(value, str) and value in COUNTRIES else UNKNOWN


def _day(value: object) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


# --- the secretariat -----------------------------------------------------------------------------------------------


def merge_reports(
    reports: Mapping[str, Mapping[str, Any]],
    *,
    period: str,
    k: int,
    expected: Mapping[str, str],
    not_reporting: Collection[str],
) -> dict[str, Any]:
    """The network's figures for `period` from the members' reports (reporter node id -> report).

    `expected` maps each authority that should report to its country; `not_reporting` are those that turned
    reporting off. A report for another period, of another schema or of the wrong shape is not counted and is
    listed under "invalid_reports" (by node id). Sums are of what reports show: a suppressed report adds
    nothing and is counted in "suppressed_reports", a suppressed overdue count in "suppressed_overdue". Sums
    are suppressed again with `k`. Durations are summed histograms, with the bucket holding the network median
    and 90th percentile: exact network figures would need every case's duration, which no node sends.
    """
    parse_period(period)
    _check_k(k)
    valid: dict[str, Mapping[str, Any]] = {}
    invalid: list[str] = []
    for node_id, report in reports.items():
        if is_valid_report(report, period):
            valid[node_id] = report
        else:
            invalid.append(node_id)

    switched_off = set(not_reporting)
    cases = 0
    overdue = 0
    suppressed_reports = 0
    suppressed_overdue = 0
    sums: dict[str, Counter[str]] = {name: Counter() for name in (*_BREAKDOWNS, "by_counterpart_country")}
    pairs: Counter[str] = Counter()
    histograms: dict[str, Counter[str]] = {name: Counter() for name in _RESPONSES}
    by_member: dict[str, int | None] = {}
    for node_id in sorted(valid):
        report = valid[node_id]
        totals = report["totals"]
        # The secretariat's own list says which country an authority is; a report cannot claim another.
        member = expected.get(node_id) or str(report["country"])
        if totals["cases"] is None:
            suppressed_reports += 1
            by_member[member] = None
            continue
        cases += totals["cases"]
        if member not in by_member or by_member[member] is not None:
            by_member[member] = (by_member.get(member) or 0) + totals["cases"]
        if totals["overdue"] is None:
            suppressed_overdue += 1
        else:
            overdue += totals["overdue"]
        for name in _BREAKDOWNS:
            sums[name].update(totals[name])
        for counterpart, n in report["pairs"]["outgoing"].items():
            pairs[f"{member}>{counterpart}"] += n
        for direction in DIRECTIONS:  # per-country totals are the secretariat's sum of both directions
            sums["by_counterpart_country"].update(report["pairs"][direction])
        for name in _RESPONSES:
            histograms[name].update(report["response_days"][name]["histogram"])

    return {
        "schema": SCHEMA,
        "period": period,
        "k": k,
        "reporting_nodes": len(valid),
        "not_reporting": sorted(expected.get(i, i) for i in switched_off if i not in valid),
        "missing": sorted(c for i, c in expected.items() if i not in valid and i not in switched_off),
        "invalid_reports": sorted(invalid),
        "totals": {
            "cases": _scalar(cases, k),
            **{name: suppress(_sorted(sums[name]), k) for name in sums},
            "overdue": _scalar(overdue, k),
            "suppressed_reports": suppressed_reports,
            "suppressed_overdue": suppressed_overdue,
        },
        "by_member_country": {cc: (n if n is None else _scalar(n, k)) for cc, n in sorted(by_member.items())},
        "pairs": suppress(_sorted(pairs), k),
        "response_days": {name: _merged_response(histograms[name], k) for name in _RESPONSES},
    }


def _merged_response(histogram: Counter[str], k: int) -> dict[str, Any]:
    n = sum(histogram.values())
    enough = n >= k and n > 0
    return {
        "n": _scalar(n, k),
        "histogram": suppress(_in_bucket_order(histogram), k),
        "median_range": _rank_bucket(histogram, (n + 1) // 2) if enough else None,
        "p90_range": _rank_bucket(histogram, math.ceil(0.9 * n)) if enough else None,
    }


def _rank_bucket(histogram: Mapping[str, int], rank: int) -> str | None:
    """The bucket holding the `rank`-th shortest duration, or None if it cannot be told.

    A report's "other" cell holds durations whose buckets are not known: the answer is given only if it is
    the same whether those durations were all the shortest or all the longest.
    """
    unplaced = histogram.get(OTHER, 0)

    def find(before: int) -> str | None:
        seen = before
        for label in _BUCKET_LABELS:
            seen += histogram.get(label, 0)
            if seen >= rank:
                return label
        return None

    low, high = find(unplaced), find(0)
    return low if low == high else None


def is_valid_report(report: object, period: str) -> bool:
    """Whether a peer's report is one this module could have built for `period`: the secretariat trusts no
    sender to have followed the rules, and a bad key could otherwise end up in a spreadsheet."""
    if not isinstance(report, Mapping) or report.get("schema") != SCHEMA or report.get("period") != period:
        return False
    if report.get("country") not in COUNTRIES:
        return False
    totals = report.get("totals")
    if not isinstance(totals, Mapping) or not _is_count(totals.get("cases"), allow_none=True):
        return False
    if totals["cases"] is None:
        return True
    if not _is_count(totals.get("overdue"), allow_none=True):
        return False
    if not all(_is_breakdown(totals.get(name)) for name in _BREAKDOWNS):
        return False
    pairs = report.get("pairs")
    if not isinstance(pairs, Mapping) or not all(_is_breakdown(pairs.get(d)) for d in DIRECTIONS):
        return False
    responses = report.get("response_days")
    if not isinstance(responses, Mapping):
        return False
    for name in _RESPONSES:
        response = responses.get(name)
        if not isinstance(response, Mapping) or not _is_breakdown(response.get("histogram")):
            return False
        if not set(response["histogram"]) <= {*_BUCKET_LABELS, OTHER}:
            return False
    return True


def _is_count(value: object, *, allow_none: bool = False) -> bool:
    if value is None:
        return allow_none
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_breakdown(value: object) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(key, str) and _REPORT_KEY_RE.match(key) is not None and _is_count(n) for key, n in value.items()
    )


# --- export --------------------------------------------------------------------------------------------------------


def to_csv(aggregate: Mapping[str, Any]) -> str:
    """The aggregate as CSV, one row per figure: period,section,key,value.

    `section` is the dotted path to the figure's table ("totals.by_kind", "response_days.sent_to_executed");
    figures at the top level have section "summary". A list gives one row per item, the item as key and an
    empty value; an empty table or list gives no row; None is an empty value, a boolean "true" or "false".
    Rows follow the aggregate's own order (which `merge_reports` makes deterministic: codes sorted, buckets
    shortest first), so the same aggregate always gives the same file.
    """
    period = str(aggregate.get("period", ""))
    rows: list[tuple[str, str, str]] = []

    def walk(section: str, table: Mapping[str, Any]) -> None:
        for key, value in table.items():
            path = f"{section}.{key}" if section else str(key)
            if isinstance(value, Mapping):
                walk(path, value)
            elif isinstance(value, list | tuple | set | frozenset):
                rows.extend((path, str(item), "") for item in value)
            elif section or key != "period":
                rows.append((section or "summary", str(key), _cell(value)))

    walk("", aggregate)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("period", "section", "key", "value"))
    writer.writerows((period, *row) for row in rows)
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
