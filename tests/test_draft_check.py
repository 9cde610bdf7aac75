"""The draft check as a table: each problem is raised when its requirement is missing, never when it is met.

Every row starts from a draft that passes the check against a profile and changes only what the
row is about, so a row proves both that its code fires and that it fires alone.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.draft_check import PROBLEM_CODES, PROBLEMS, blocking, check_draft

TODAY = date(2025, 3, 1)
CASE: dict[str, Any] = {
    "kind": "mla",
    "summary": "Proceeds of an online fraud laundered through accounts in Bangkok.",
    "offences": ["fraud", "money_laundering"],
    "measures": ["bank_records"],
    "legal_basis": ["asean_mlat"],
    "treaty": "",
    "urgency": "normal",
    "urgency_reason": "",
    "requested_by": "2025-06-30",
    "languages": ["en"],
    "provided": ["summary_of_facts", "account_details", "court_order"],
}
PROFILE: dict[str, Any] = {
    "country": "TH",
    "languages": ["th", "en"],
    "legal_bases": ["asean_mlat", "untoc", "bilateral_treaty"],
    "requirements": {"bank_records": ["account_details", "court_order"], "statement": ["questions"]},
    "execution_days": {"bank_records": 60, "statement": 30},
}
DROP = object()  # remove the key altogether
NO_PROFILE = object()


def _check(case: dict[str, Any] | None = None, profile: Any = None) -> list[dict[str, str]]:
    draft = {**CASE, **(case or {})}
    draft = {k: v for k, v in draft.items() if v is not DROP}
    if profile is NO_PROFILE:
        return check_draft(draft, None, today=TODAY)
    return check_draft(draft, {**PROFILE, **(profile or {})}, today=TODAY)


def _codes(problems: list[dict[str, str]]) -> list[str]:
    return [p["code"] for p in problems]


# code -> ([(case changes, profile changes) that break it], [(case changes, profile changes) that satisfy it])
ROWS: dict[str, tuple[list[tuple[dict[str, Any], Any]], list[tuple[dict[str, Any], Any]]]] = {
    "missing_summary": (
        [({"summary": " \n "}, None), ({"summary": DROP}, None), ({"summary": 12}, None)],
        [({"summary": "Facts."}, None)],
    ),
    "missing_offences": (
        [({"offences": []}, None), ({"offences": DROP}, None), ({"kind": "extradition", "offences": [""]}, None)],
        [({"kind": "consultation", "offences": [], "measures": []}, None)],
    ),
    "missing_measures": (
        [({"measures": []}, None), ({"measures": DROP}, None)],
        [({"kind": "extradition", "measures": []}, None), ({"kind": "consultation", "measures": []}, None)],
    ),
    "no_legal_basis": (
        [({"legal_basis": []}, None), ({"kind": "transfer_of_proceedings", "legal_basis": DROP}, None)],
        [({"kind": "consultation", "legal_basis": []}, None)],
    ),
    "treaty_name_missing": (
        [({"legal_basis": ["bilateral_treaty"], "treaty": " "}, None)],
        [({"legal_basis": ["bilateral_treaty"], "treaty": "Thailand-Viet Nam Treaty on MLA (2008)"}, None)],
    ),
    "urgent_without_reason": (
        [({"urgency": "urgent"}, None), ({"urgency": "urgent", "urgency_reason": DROP}, None)],
        [({"urgency": "urgent", "urgency_reason": "The suspect is due to leave Thailand on 5 March."}, None)],
    ),
    "requested_by_invalid": (
        [({"requested_by": "30/06/2025"}, None), ({"requested_by": "2025-02-30"}, None), ({"requested_by": 5}, None)],
        [({"requested_by": DROP}, None), ({"requested_by": ""}, None)],
    ),
    "requested_by_past": (
        [({"requested_by": "2025-02-28"}, None), ({"requested_by": "2024-12-31"}, None)],
        [({"requested_by": "2025-03-01"}, {"execution_days": {}})],
    ),
    "missing_languages": (
        [({"languages": []}, None), ({"languages": DROP}, None)],
        [({"languages": ["th"]}, None)],
    ),
    "language_not_accepted": (
        [({"languages": ["vi"]}, None), ({"languages": ["vi", "fr"]}, None)],
        [({"languages": ["vi", "EN"]}, None), ({"languages": ["vi"]}, {"languages": []})],
    ),
    "no_common_legal_basis": (
        [({"legal_basis": ["uncac"]}, None)],
        [({"legal_basis": ["uncac", "untoc"]}, None), ({"legal_basis": ["uncac"]}, {"legal_bases": []})],
    ),
    "required_item_missing": (
        [({"provided": ["account_details"]}, None), ({"measures": ["bank_records", "statement"]}, None)],
        [
            (
                {
                    "measures": ["bank_records", "statement"],
                    "provided": ["account_details", "court_order", "questions"],
                },
                None,
            ),
            ({"provided": []}, {"requirements": {"statement": ["questions"]}}),
        ],
    ),
    "no_profile": (
        [({}, NO_PROFILE)],
        [({}, None), ({}, {"languages": [], "legal_bases": [], "requirements": {}, "execution_days": {}})],
    ),
    "execution_time": (
        [
            ({"requested_by": "2025-04-01"}, None),
            ({"measures": ["statement"], "provided": ["questions"], "requested_by": "2025-03-15"}, None),
        ],
        [
            ({"requested_by": "2025-04-30"}, None),
            ({"requested_by": "2025-04-01"}, {"execution_days": {"statement": 90}}),
        ],
    ),
}


def test_the_baseline_draft_passes() -> None:
    assert _check() == []


def test_every_code_has_a_row_and_a_meaning() -> None:
    assert set(ROWS) == set(PROBLEM_CODES) == set(PROBLEMS)
    assert all(text.strip() for text in PROBLEM_CODES.values())


@pytest.mark.parametrize("code", list(ROWS))
def test_problem_is_raised_when_missing_and_not_when_satisfied(code: str) -> None:
    broken, satisfied = ROWS[code]
    for case, profile in broken:
        problems = _check(case, profile)
        assert set(_codes(problems)) == {code}, (case, profile)
        for problem in problems:
            assert problem["severity"] == PROBLEMS[code][0]
            assert problem["field"] and problem["message"].strip()
    for case, profile in satisfied:
        assert _check(case, profile) == [], (case, profile)


def test_language_message_names_both_sides() -> None:
    [problem] = _check({"languages": ["th"]}, {"languages": ["en", "fr"]})
    assert problem["message"].startswith("The requested state does not accept requests in th; it accepts: en, fr")
    assert problem["field"] == "languages"


def test_one_problem_per_measure_and_missing_item() -> None:
    problems = _check({"measures": ["bank_records", "statement"], "provided": ["court_order"]})
    assert sorted((p["measure"], p["item"]) for p in problems) == [
        ("bank_records", "account_details"),
        ("statement", "questions"),
    ]
    [bank] = [p for p in problems if p["measure"] == "bank_records"]
    assert "bank records" in bank["message"] and "account numbers" in bank["message"]


def test_items_outside_the_vocabulary_are_named_by_their_code() -> None:
    [problem] = _check({}, {"requirements": {"bank_records": ["account_details", "court_order", "notarised_copy"]}})
    assert problem["item"] == "notarised_copy" and "notarised_copy" in problem["message"]


def test_execution_time_names_the_measure_and_dates() -> None:
    [problem] = _check({"requested_by": "2025-04-01"})
    assert (problem["severity"], problem["measure"]) == ("warning", "bank_records")
    assert "60 days" in problem["message"] and "2025-04-01" in problem["message"]


def test_no_profile_tells_the_prosecutor_what_to_do() -> None:
    [problem] = _check({}, NO_PROFILE)
    assert problem["message"] == (
        "The requested state has not published a country profile; check its requirements directly."
    )


def test_a_past_date_is_not_also_an_execution_time_warning() -> None:
    assert _codes(_check({"requested_by": "2025-02-01"})) == ["requested_by_past"]


def test_blocking_keeps_the_errors_only() -> None:
    problems = _check({"summary": "", "requested_by": "2025-04-01"}, None)
    assert _codes(problems) == ["missing_summary", "execution_time"]
    assert _codes(blocking(problems)) == ["missing_summary"]
    assert blocking(_check({}, NO_PROFILE)) == []


def test_an_empty_draft_lists_what_it_lacks() -> None:
    codes = _codes(check_draft({}, None, today=TODAY))
    assert codes == ["missing_summary", "missing_offences", "no_legal_basis", "missing_languages", "no_profile"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_keys = st.sampled_from([*CASE, "languages", "legal_bases", "requirements", "execution_days", "other"])


@given(
    case=st.dictionaries(_keys, _json | st.sampled_from(list(CASE.values())), max_size=8),
    profile=st.none() | st.dictionaries(_keys, _json | st.sampled_from(list(PROFILE.values())), max_size=6),
)
def test_any_json_is_checked_without_raising(case: dict[str, Any], profile: dict[str, Any] | None) -> None:
    problems = check_draft(case, profile, today=TODAY)
    for problem in problems:
        assert problem["code"] in PROBLEM_CODES
        assert problem["severity"] in ("error", "warning")
        assert all(isinstance(v, str) for v in problem.values())
