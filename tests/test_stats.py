"""Secretariat statistics: periods, one node's report, small-count suppression, the network merge, CSV."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.errors import ValidationError
from node.stats import (
    HISTOGRAM_BUCKETS,
    PERIOD_RE,
    STATUS_GROUPS,
    SUPPRESSION_RULE,
    CaseFacts,
    bucket_of,
    build_report,
    current_quarter,
    days_between,
    merge_reports,
    parse_period,
    periods_back,
    previous_period,
    status_group,
    suppress,
    to_csv,
)
from node.vocab import CASE_KINDS, OFFENCES
from node.workflow import STATUSES

TODAY = date(2027, 1, 15)
PERIOD = "2026-Q4"
BASE = CaseFacts(
    kind="mla",
    status="sent",
    outcome=None,
    direction="outgoing",
    counterpart_country="VN",
    offences=("fraud",),
    urgency="normal",
    sent_at="2026-11-05T10:00:00.000Z",
    acknowledged_at=None,
    executed_at=None,
    requested_by=None,
)


def fact(**changes: Any) -> CaseFacts:
    return replace(BASE, **changes)


def report(facts: list[CaseFacts], k: int = 1, period: str = PERIOD) -> dict[str, Any]:
    return build_report(facts, period=period, country="TH", k=k, today=TODAY)


# --- periods ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        ("2026-Q1", date(2026, 1, 1), date(2026, 4, 1)),
        ("2026-Q2", date(2026, 4, 1), date(2026, 7, 1)),
        ("2026-Q3", date(2026, 7, 1), date(2026, 10, 1)),
        ("2026-Q4", date(2026, 10, 1), date(2027, 1, 1)),
        ("2026-01", date(2026, 1, 1), date(2026, 2, 1)),
        ("2024-02", date(2024, 2, 1), date(2024, 3, 1)),
        ("2026-11", date(2026, 11, 1), date(2026, 12, 1)),
        ("2026-12", date(2026, 12, 1), date(2027, 1, 1)),
    ],
)
def test_parse_period(period: str, start: date, end: date) -> None:
    assert parse_period(period) == (start, end)
    assert PERIOD_RE.match(period)


@pytest.mark.parametrize(
    "period",
    [
        "2026-Q5",
        "2026-Q0",
        "2026-13",
        "2026-00",
        "2026-1",
        "2026-q4",
        "26-Q4",
        "2026-Q4 ",
        " 2026-11",
        "junk",
        "",
        "0000-Q1",
        "9999-Q4",
        "2026-11-05",
    ],
)
def test_parse_period_rejects(period: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_period(period)
    assert "period" in caught.value.fields


@pytest.mark.parametrize(
    ("today", "quarter"),
    [
        (date(2026, 1, 1), "2026-Q1"),
        (date(2026, 3, 31), "2026-Q1"),
        (date(2026, 4, 1), "2026-Q2"),
        (date(2026, 6, 30), "2026-Q2"),
        (date(2026, 7, 1), "2026-Q3"),
        (date(2026, 9, 30), "2026-Q3"),
        (date(2026, 10, 1), "2026-Q4"),
        (date(2026, 12, 31), "2026-Q4"),
    ],
)
def test_current_quarter(today: date, quarter: str) -> None:
    assert current_quarter(today) == quarter
    start, end = parse_period(quarter)
    assert start <= today < end


def test_previous_period_and_periods_back() -> None:
    assert previous_period("2026-Q1") == "2025-Q4"
    assert previous_period("2026-Q3") == "2026-Q2"
    assert previous_period("2026-01") == "2025-12"
    assert previous_period("2026-11") == "2026-10"
    assert periods_back("2026-Q2", 4) == ["2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2"]
    assert periods_back("2026-02", 3) == ["2025-12", "2026-01", "2026-02"]
    assert periods_back("2026-Q2", 1) == ["2026-Q2"]
    with pytest.raises(ValidationError):
        periods_back("2026-Q2", 0)
    with pytest.raises(ValidationError):
        previous_period("2026-Q9")
    with pytest.raises(ValidationError):
        previous_period("0001-Q1")


# --- counting ---------------------------------------------------------------------------------------------------------


def test_counts_only_cases_sent_in_the_period() -> None:
    facts = [
        fact(sent_at="2026-10-01T00:00:00.000Z"),  # first instant of Q4
        fact(sent_at="2026-12-31T23:59:59.999Z"),  # last instant of Q4
        fact(sent_at="2026-09-30T23:59:59.999Z"),  # Q3
        fact(sent_at="2027-01-01T00:00:00.000Z"),  # Q1 next year
        fact(sent_at=None),  # never sent
        fact(status="draft", sent_at=None),
        fact(status="draft", sent_at="2026-11-01T00:00:00.000Z"),  # a converted consultation: a draft again
        fact(sent_at="garbage"),
    ]
    assert report(facts)["totals"]["cases"] == 2
    assert report(facts, period="2026-Q3")["totals"]["cases"] == 1
    assert report(facts, period="2026-10")["totals"]["cases"] == 1
    assert report(facts, period="2026-11")["totals"]["cases"] == 0


def test_every_breakdown() -> None:
    facts = [
        fact(kind="mla", offences=("fraud", "money_laundering"), counterpart_country="VN", urgency="urgent"),
        fact(kind="mla", offences=("fraud",), counterpart_country="VN", direction="incoming"),
        fact(kind="extradition", offences=(), counterpart_country=None, status="executed"),
        fact(kind="extradition", offences=("fraud", "fraud"), counterpart_country="LA", direction="incoming"),
    ]
    got = report(facts)
    assert got["schema"] == 1 and got["period"] == PERIOD and got["country"] == "TH" and got["k"] == 1
    assert "suppressed" not in got
    totals = got["totals"]
    assert totals["cases"] == 4
    assert totals["by_kind"] == {"extradition": 2, "mla": 2}
    assert totals["by_status"] == {"executed": 1, "pending": 3}
    assert totals["by_direction"] == {"incoming": 2, "outgoing": 2}
    assert totals["by_offence"] == {"fraud": 3, "money_laundering": 1, "unknown": 1}
    assert "by_counterpart_country" not in totals  # only as pairs: a total beside them would let one be derived
    assert totals["by_urgency"] == {"normal": 3, "urgent": 1}
    assert totals["overdue"] == 0
    assert got["pairs"] == {"outgoing": {"VN": 1, "unknown": 1}, "incoming": {"LA": 1, "VN": 1}}
    json.dumps(got)  # the payload is plain JSON


def test_codes_outside_the_vocabularies_leave_as_unknown() -> None:
    secret = "Somchai Jaidee account 123-456"
    got = report(
        [
            fact(kind=secret, offences=(secret, "fraud"), counterpart_country=secret, urgency=secret),
            fact(kind="other", offences=("other",), counterpart_country="vn"),
        ]
    )
    assert secret not in json.dumps(got)
    assert got["totals"]["by_kind"] == {"unknown": 1, "other": 1}
    assert got["totals"]["by_offence"] == {"fraud": 1, "unknown": 1, "other": 1}
    assert got["pairs"]["outgoing"] == {"unknown": 2}
    assert got["totals"]["by_urgency"] == {"normal": 1, "unknown": 1}


def test_unknown_direction_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="direction"):
        report([fact(direction="shared")])


@pytest.mark.parametrize(
    ("status", "outcome", "group"),
    [
        ("sent", None, "pending"),
        ("acknowledged", None, "pending"),
        ("in_execution", None, "pending"),
        ("partially_executed", None, "executed"),
        ("executed", None, "executed"),
        ("refused", None, "refused"),
        ("withdrawn", None, "withdrawn"),
        ("closed", "executed", "executed"),
        ("closed", "partially_executed", "executed"),
        ("closed", "refused", "refused"),
        ("closed", "withdrawn", "withdrawn"),
        ("closed", None, "closed"),
        ("closed", "sent", "closed"),  # a consultation closed once answered
        ("closed", "nonsense", "closed"),
        ("invented_later", None, "unknown"),
    ],
)
def test_status_groups(status: str, outcome: str | None, group: str) -> None:
    assert status_group(status, outcome) == group
    assert report([fact(status=status, outcome=outcome)])["totals"]["by_status"] == {group: 1}


def test_status_groups_cover_every_status_but_draft() -> None:
    assert set(STATUS_GROUPS) == set(STATUSES) - {"draft"}


def test_overdue() -> None:
    facts = [
        fact(requested_by="2027-01-14"),  # yesterday: overdue
        fact(requested_by="2027-01-15"),  # today: not yet
        fact(requested_by=None),
        fact(requested_by="2026-12-01", status="executed"),  # done
        fact(requested_by="2026-12-01", status="closed", outcome="refused"),
        fact(requested_by="2026-12-01", status="partially_executed"),  # work still owed
        fact(requested_by="2026-12-01", sent_at="2026-09-01T00:00:00.000Z"),  # another period
    ]
    assert report(facts)["totals"]["overdue"] == 2


# --- days -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        ("2026-11-05T10:00:00.000Z", "2026-11-05T23:59:59.999Z", 0),
        ("2026-11-05T23:59:00.000Z", "2026-11-06T00:01:00.000Z", 1),  # by calendar date, not 24-hour spans
        ("2026-11-05T10:00:00.000Z", "2026-12-05T09:00:00.000Z", 30),
        ("2028-02-28T10:00:00.000Z", "2028-03-01T10:00:00.000Z", 2),  # leap year
        ("2026-12-31T10:00:00.000Z", "2027-01-01T10:00:00.000Z", 1),
        ("2026-11-05T10:00:00.000Z", "2026-11-04T23:00:00.000Z", 0),  # the peer's clock runs behind
        ("2026-11-05T10:00:00.000Z", "2027-11-05", 365),
        ("2026-11-05T10:00:00.000Z", None, None),
        (None, "2026-11-05T10:00:00.000Z", None),
        ("2026-11-05T10:00:00.000Z", "soon", None),
    ],
)
def test_days_between(start: str | None, end: str | None, days: int | None) -> None:
    assert days_between(start, end) == days


def test_histogram_buckets() -> None:
    assert [label for _, _, label in HISTOGRAM_BUCKETS] == [
        "0-1", "2-3", "4-7", "8-14", "15-30", "31-60", "61-90", "91-180", "181-365", "366+"
    ]  # fmt: skip
    for low, high, label in HISTOGRAM_BUCKETS:
        assert bucket_of(low) == label
        if high is not None:
            assert bucket_of(high) == label
            assert bucket_of(high + 1) != label
    assert bucket_of(10_000) == "366+"


def test_response_days() -> None:
    sent = "2026-11-01T08:00:00.000Z"
    acks = ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-05", "2026-11-11", "2026-12-01"]  # 0,1,2,4,10,30
    facts = [fact(sent_at=sent, acknowledged_at=f"{a}T12:00:00.000Z") for a in acks]
    facts.append(fact(sent_at=sent, acknowledged_at="2026-11-03T00:00:00.000Z", executed_at="2027-03-01"))
    got = report(facts)["response_days"]
    acked = got["sent_to_acknowledged"]  # 0,1,2,2,4,10,30
    assert acked["n"] == 7
    assert acked["median"] == 2
    assert acked["p90"] == 30  # nearest rank: the 7th of 7
    assert acked["histogram"] == {"0-1": 2, "2-3": 2, "4-7": 1, "8-14": 1, "15-30": 1}
    assert list(acked["histogram"]) == ["0-1", "2-3", "4-7", "8-14", "15-30"]  # shortest first
    assert got["sent_to_executed"] == {"n": 1, "median": 120, "p90": 120, "histogram": {"91-180": 1}}


def test_median_and_p90_of_ten() -> None:
    facts = [
        fact(acknowledged_at=f"2026-11-{5 + d:02d}T00:00:00.000Z")
        for d in range(10)  # 0..9 days
    ]
    acked = report(facts)["response_days"]["sent_to_acknowledged"]
    assert (acked["median"], acked["p90"]) == (4, 8)


# --- suppression ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [3, 5])
def test_a_cell_at_k_shows_and_below_k_does_not(k: int) -> None:
    assert suppress({"mla": 10, "extradition": k}, k) == {"mla": 10, "extradition": k}
    # k-1 goes to "other", which is then too small, so the next smallest joins it.
    assert suppress({"mla": 10, "extradition": k - 1}, k) == {"other": 10 + k - 1}
    assert suppress({"mla": 10, "extradition": k - 1, "other": 1}, k) == {"mla": 10, "other": k}
    facts = [fact(kind="mla")] * 10 + [fact(kind="extradition")] * k
    assert report(facts, k)["totals"]["by_kind"] == {"extradition": k, "mla": 10}
    facts = [fact(kind="mla")] * 10 + [fact(kind="extradition")] * (k - 1) + [fact(kind="consultation")]
    assert report(facts, k)["totals"]["by_kind"] == {"mla": 10, "other": k}


@pytest.mark.parametrize("k", [3, 5])
def test_total_cases_at_k_shows_and_below_k_suppresses_everything(k: int) -> None:
    below = report([fact(acknowledged_at="2026-11-06T00:00:00.000Z")] * (k - 1), k)
    assert below == {
        "schema": 1,
        "period": PERIOD,
        "country": "TH",
        "k": k,
        "totals": {"cases": None},
        "suppressed": True,
    }
    at = report([fact(acknowledged_at="2026-11-06T00:00:00.000Z")] * k, k)
    assert at["totals"]["cases"] == k and "suppressed" not in at
    assert at["totals"]["by_kind"] == {"mla": k}
    assert at["response_days"]["sent_to_acknowledged"]["n"] == k


def test_no_cases_is_reported_as_zero() -> None:
    got = report([], 3)
    assert got["totals"]["cases"] == 0 and "suppressed" not in got
    assert got["totals"]["by_kind"] == {} and got["totals"]["overdue"] == 0
    assert got["pairs"] == {"outgoing": {}, "incoming": {}}
    assert got["response_days"]["sent_to_acknowledged"] == {"n": 0, "median": None, "p90": None, "histogram": {}}


@pytest.mark.parametrize("k", [3, 5])
def test_overdue_at_k_shows_and_below_k_does_not(k: int) -> None:
    late = fact(requested_by="2026-12-01")
    assert report([late] * (k - 1) + [BASE] * 10, k)["totals"]["overdue"] is None
    assert report([late] * k + [BASE] * 10, k)["totals"]["overdue"] == k


@pytest.mark.parametrize("k", [3, 5])
def test_response_n_at_k_shows_and_below_k_does_not(k: int) -> None:
    acked = fact(acknowledged_at="2026-11-08T00:00:00.000Z")  # 3 days
    below = report([acked] * (k - 1) + [BASE] * 10, k)["response_days"]["sent_to_acknowledged"]
    assert below == {"n": None, "median": None, "p90": None, "histogram": {}}
    at = report([acked] * k + [BASE] * 10, k)["response_days"]["sent_to_acknowledged"]
    assert at == {"n": k, "median": 3, "p90": 3, "histogram": {"2-3": k}}


def test_secondary_suppression() -> None:
    # One small cell is not enough for "other": the next smallest joins it, ties broken by key.
    assert suppress({"a": 10, "b": 5, "c": 1}, 3) == {"a": 10, "other": 6}
    assert suppress({"a": 4, "b": 4, "c": 1}, 3) == {"b": 4, "other": 5}
    assert suppress({"b": 4, "a": 4, "c": 1}, 3) == {"b": 4, "other": 5}
    # Two small cells that add up to k need no more.
    assert suppress({"a": 10, "b": 2, "c": 1}, 3) == {"a": 10, "other": 3}
    # A total below k cannot be shown at all; zeros are omitted.
    assert suppress({"a": 1, "b": 1}, 3) == {}
    assert suppress({"a": 0, "b": 7}, 3) == {"b": 7}
    assert suppress({}, 3) == {}
    with pytest.raises(ValidationError):
        suppress({"a": 1}, 0)
    with pytest.raises(ValueError):
        suppress({"a": -1}, 1)


def test_pairs_hidden_when_a_direction_is_hidden() -> None:
    # 2 outgoing with k=3: by_direction hides both directions, so the incoming pairs (which add up to the
    # incoming count) must not show either, or outgoing = cases - incoming.
    facts = [fact(direction="outgoing")] * 2 + [fact(direction="incoming", counterpart_country="LA")] * 8
    got = report(facts, 3)
    assert got["totals"]["by_direction"] == {"other": 10}
    assert got["pairs"] == {"outgoing": {}, "incoming": {}}
    facts = [fact(direction="outgoing")] * 3 + [fact(direction="incoming", counterpart_country="LA")] * 8
    assert report(facts, 3)["pairs"] == {"outgoing": {"VN": 3}, "incoming": {"LA": 8}}


def test_suppression_rule_is_documented() -> None:
    assert "other" in SUPPRESSION_RULE and "k-1" in SUPPRESSION_RULE
    import node.stats

    assert node.stats.__doc__ is not None and "suppress" in node.stats.__doc__


# --- the property -----------------------------------------------------------------------------------------------------

_DAY = st.dates(min_value=date(2026, 8, 1), max_value=date(2027, 2, 28))


@st.composite
def _facts(draw: st.DrawFn) -> CaseFacts:
    sent = draw(st.none() | _DAY)
    hour = draw(st.integers(0, 23))

    def stamp(d: date | None) -> str | None:
        return None if d is None else f"{d.isoformat()}T{hour:02d}:17:09.{hour:03d}Z"

    def later() -> str | None:
        gap = draw(st.none() | st.integers(0, 400))
        return None if sent is None or gap is None else stamp(date.fromordinal(sent.toordinal() + gap))

    status = draw(st.sampled_from(STATUSES))
    return CaseFacts(
        kind=draw(st.sampled_from(sorted(CASE_KINDS))),
        status=status,
        outcome=draw(st.sampled_from(["executed", "refused", "withdrawn"])) if status == "closed" else None,
        direction=draw(st.sampled_from(["incoming", "outgoing"])),
        counterpart_country=draw(st.sampled_from(["VN", "LA", "KH", "MY", None])),
        offences=tuple(draw(st.sets(st.sampled_from(sorted(OFFENCES)), max_size=3))),
        urgency=draw(st.sampled_from(["normal", "urgent"])),
        sent_at=stamp(sent),
        acknowledged_at=later(),
        executed_at=later(),
        requested_by=draw(st.none() | _DAY.map(date.isoformat)),
    )


def _check_cells(shown: dict[str, int], true: Counter[str], k: int) -> None:
    total = sum(true.values())
    if total < k:
        assert shown == {}
        return
    assert sum(shown.values()) == total
    for key, n in shown.items():
        assert n >= k
        if key != "other":
            assert n == true[key]


@settings(max_examples=300, deadline=None)
@given(facts=st.lists(_facts(), max_size=40), k=st.integers(1, 6))
def test_property_no_small_cell_and_sums_kept(facts: list[CaseFacts], k: int) -> None:
    got = report(facts, k)
    text = json.dumps(got)
    for f in facts:
        for value in (f.sent_at, f.acknowledged_at, f.executed_at, f.requested_by):
            if value is not None:
                assert value[:10] not in text
    start, end = parse_period(PERIOD)
    counted = [
        f for f in facts if f.status != "draft" and f.sent_at and start <= date.fromisoformat(f.sent_at[:10]) < end
    ]
    if 0 < len(counted) < k:
        assert got == {
            "schema": 1,
            "period": PERIOD,
            "country": "TH",
            "k": k,
            "totals": {"cases": None},
            "suppressed": True,
        }
        return
    totals = got["totals"]
    assert totals["cases"] == len(counted)
    true = {
        "by_kind": Counter(f.kind for f in counted),
        "by_status": Counter(status_group(f.status, f.outcome) for f in counted),
        "by_direction": Counter(f.direction for f in counted),
        "by_offence": Counter(o for f in counted for o in (f.offences or ("unknown",))),
        "by_urgency": Counter(f.urgency for f in counted),
    }
    for name, counts in true.items():
        _check_cells(totals[name], counts, k)
    directions = true["by_direction"]
    for d in ("incoming", "outgoing"):
        pairs = Counter(f.counterpart_country or "unknown" for f in counted if f.direction == d)
        if any(0 < directions[x] < k for x in ("incoming", "outgoing")):
            assert got["pairs"][d] == {}
        else:
            _check_cells(got["pairs"][d], pairs, k)
    for name, attr in (("sent_to_acknowledged", "acknowledged_at"), ("sent_to_executed", "executed_at")):
        days = [days_between(f.sent_at, getattr(f, attr)) for f in counted if getattr(f, attr)]
        response = got["response_days"][name]
        _check_cells(response["histogram"], Counter(bucket_of(d) for d in days if d is not None), k)
        assert response["n"] == (None if 0 < len(days) < k else len(days))
        assert (response["median"] is None) == (len(days) < k or not days)
    overdue = sum(1 for f in counted if f.status not in ("executed", "refused", "withdrawn", "closed")
                  and f.requested_by is not None and date.fromisoformat(f.requested_by) < TODAY)  # fmt: skip
    assert totals["overdue"] == (None if 0 < overdue < k else overdue)


@settings(max_examples=200, deadline=None)
@given(counts=st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 12)), k=st.integers(1, 8))
def test_property_suppress(counts: dict[str, int], k: int) -> None:
    shown = suppress(counts, k)
    _check_cells(shown, Counter(counts), k)
    assert all(n > 0 for n in shown.values())


# --- the secretariat --------------------------------------------------------------------------------------------------

EXPECTED = {"n-th": "TH", "n-vn": "VN", "n-la": "LA", "n-kh": "KH", "n-my": "MY"}


def _network() -> dict[str, dict[str, Any]]:
    th = [fact(counterpart_country="VN", acknowledged_at="2026-11-06T00:00:00.000Z")] * 4 + [
        fact(counterpart_country="LA", kind="extradition", direction="incoming", requested_by="2026-12-01")
    ] * 3
    vn = [fact(counterpart_country="TH", direction="incoming", acknowledged_at="2026-11-20T00:00:00.000Z")] * 5 + [
        fact(counterpart_country="LA", kind="extradition", acknowledged_at="2026-11-06T00:00:00.000Z")
    ] * 3
    la = [fact(counterpart_country="TH")] * 2
    return {
        "n-th": build_report(th, period=PERIOD, country="TH", k=3, today=TODAY),
        "n-vn": build_report(vn, period=PERIOD, country="VN", k=3, today=TODAY),
        "n-la": build_report(la, period=PERIOD, country="LA", k=3, today=TODAY),
    }


def test_merge_reports() -> None:
    merged = merge_reports(_network(), period=PERIOD, k=3, expected=EXPECTED, not_reporting={"n-kh"})
    assert merged["period"] == PERIOD
    assert merged["reporting_nodes"] == 3
    assert merged["not_reporting"] == ["KH"]
    assert merged["missing"] == ["MY"]
    assert merged["invalid_reports"] == []
    totals = merged["totals"]
    assert totals["cases"] == 15
    assert totals["suppressed_reports"] == 1
    assert totals["overdue"] == 3
    assert totals["by_kind"] == {"extradition": 6, "mla": 9}
    assert totals["by_direction"] == {"incoming": 8, "outgoing": 7}
    assert totals["by_counterpart_country"] == {"LA": 6, "TH": 5, "VN": 4}
    assert totals["by_status"] == {"pending": 15}
    assert totals["by_urgency"] == {"normal": 15}
    assert totals["by_offence"] == {"fraud": 15}
    assert merged["by_member_country"] == {"LA": None, "TH": 7, "VN": 8}
    assert merged["pairs"] == {"TH>VN": 4, "VN>LA": 3}
    acked = merged["response_days"]["sent_to_acknowledged"]
    # TH: 4 x 1 day; VN: 5 x 15 days (incoming cases sent 11-05, acknowledged 11-20), 3 x 1 day.
    assert acked["n"] == 12
    assert acked["histogram"] == {"0-1": 7, "15-30": 5}
    assert acked["median_range"] == "0-1"  # the 6th of 12
    assert acked["p90_range"] == "15-30"
    assert merged["response_days"]["sent_to_executed"] == {
        "n": 0,
        "histogram": {},
        "median_range": None,
        "p90_range": None,
    }
    json.dumps(merged)


def test_merge_suppresses_again_with_the_network_k() -> None:
    merged = merge_reports(_network(), period=PERIOD, k=5, expected=EXPECTED, not_reporting=())
    assert merged["missing"] == ["KH", "MY"] and merged["not_reporting"] == []
    assert merged["pairs"] == {"other": 7}  # TH>VN 4 and VN>LA 3, both below 5
    assert merged["totals"]["overdue"] is None  # 3 < 5
    assert merged["by_member_country"] == {"LA": None, "TH": 7, "VN": 8}


def test_merge_median_range_unknown_when_other_could_move_it() -> None:
    reports = _network()
    hist = reports["n-vn"]["response_days"]["sent_to_acknowledged"]["histogram"]
    assert hist == {"0-1": 3, "15-30": 5}
    reports["n-vn"]["response_days"]["sent_to_acknowledged"]["histogram"] = {"0-1": 3, "other": 5}
    acked = merge_reports(reports, period=PERIOD, k=3, expected=EXPECTED, not_reporting=())["response_days"]
    # 7 in 0-1 and 5 unplaced: the 6th of 12 is in 0-1 wherever they lie, the 11th is not known.
    assert acked["sent_to_acknowledged"]["median_range"] == "0-1"
    assert acked["sent_to_acknowledged"]["p90_range"] is None
    reports["n-vn"]["response_days"]["sent_to_acknowledged"]["histogram"] = {"15-30": 5, "other": 3}
    acked = merge_reports(reports, period=PERIOD, k=3, expected=EXPECTED, not_reporting=())["response_days"]
    # 4 in 0-1, 5 in 15-30, 3 unplaced: the 6th of 12 is in 0-1 if they are short, in 15-30 if not.
    assert acked["sent_to_acknowledged"]["median_range"] is None
    assert acked["sent_to_acknowledged"]["p90_range"] is None


def test_merge_rejects_reports_it_could_not_have_come_from_a_node() -> None:
    reports: dict[str, Any] = _network()
    reports["n-my"] = {**reports["n-th"], "period": "2026-Q3"}
    bad = json.loads(json.dumps(reports["n-vn"]))
    bad["totals"]["by_kind"] = {'=HYPERLINK("http://x")': 5}
    reports["n-vn"] = bad
    reports["n-kh"] = "not a report"
    merged = merge_reports(reports, period=PERIOD, k=3, expected=EXPECTED, not_reporting={"n-kh"})
    assert merged["invalid_reports"] == ["n-kh", "n-my", "n-vn"]
    assert merged["reporting_nodes"] == 2
    assert merged["missing"] == ["MY", "VN"]
    assert merged["not_reporting"] == ["KH"]
    assert merged["totals"]["cases"] == 7


def test_merge_a_report_counts_even_if_reporting_was_later_switched_off() -> None:
    merged = merge_reports(_network(), period=PERIOD, k=3, expected=EXPECTED, not_reporting={"n-th", "n-kh"})
    assert merged["not_reporting"] == ["KH"]
    assert merged["totals"]["cases"] == 15


# --- CSV --------------------------------------------------------------------------------------------------------------


def test_to_csv_round_trip() -> None:
    merged = merge_reports(_network(), period=PERIOD, k=3, expected=EXPECTED, not_reporting={"n-kh"})
    text = to_csv(merged)
    assert text == to_csv(merged)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["period", "section", "key", "value"]
    assert all(len(row) == 4 and row[0] == PERIOD for row in rows[1:])
    cells = {(section, key): value for _, section, key, value in rows[1:]}
    assert cells[("totals", "cases")] == "15"
    assert cells[("totals.by_kind", "extradition")] == "6"
    assert cells[("pairs", "TH>VN")] == "4"
    assert cells[("by_member_country", "LA")] == ""
    assert cells[("response_days.sent_to_acknowledged", "median_range")] == "0-1"
    assert cells[("response_days.sent_to_acknowledged.histogram", "15-30")] == "5"
    assert cells[("summary", "reporting_nodes")] == "3"
    assert cells[("missing", "MY")] == "" and cells[("not_reporting", "KH")] == ""
    assert ("summary", "period") not in cells

    # Rebuild the aggregate from the rows: nothing lost, nothing added.
    rebuilt: dict[str, Any] = {}
    for _, section, key, value in rows[1:]:
        if section in ("missing", "not_reporting", "invalid_reports"):
            rebuilt.setdefault(section, []).append(key)
            continue
        target = rebuilt
        if section != "summary":
            for part in section.split("."):
                target = target.setdefault(part, {})
        target[key] = None if value == "" else (int(value) if value.isdigit() else value)
    assert rebuilt == _without_empty({key: value for key, value in merged.items() if key != "period"})


def _without_empty(table: dict[str, Any]) -> dict[str, Any]:
    """What CSV can carry: an empty table or list has no rows."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            value = _without_empty(value)
        if value not in ({}, []):
            out[key] = value
    return out


def test_to_csv_quotes_awkward_text() -> None:
    text = to_csv({"period": "2026-11", "notes": {'a,"b"\nc': None, "flag": True}})
    assert list(csv.reader(io.StringIO(text))) == [
        ["period", "section", "key", "value"],
        ["2026-11", "notes", 'a,"b"\nc', ""],
        ["2026-11", "notes", "flag", "true"],
    ]
