"""The draft check: what a request lacks, said before it is sent rather than weeks later.

Requests for assistance come back, often after weeks, because they lack something the
requested state needs (a translation into a language it accepts, a legal basis it acts on, a
court order for a search). A country profile (`node.profiles`) says what each state needs; this
module compares a draft case with it and lists each problem in words a prosecutor can act on.

Pure: no I/O, no clock (today is given), so it is tested as a table and can run in the API, the
CLI or a future web form alike. Both inputs are read defensively: a draft is half-written by
nature, and a profile may come from a peer running another version. Errors block sending;
warnings are advice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from types import MappingProxyType
from typing import Any, Final, Literal

from node import vocab

Severity = Literal["error", "warning"]
LONGEST_EXECUTION_DAYS: Final = 3650  # as `node.profiles` accepts; a larger value from a peer is ignored
_ISO_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# The whole check as one table: each problem's code, its severity and what it means.
PROBLEMS: Final[Mapping[str, tuple[Severity, str]]] = MappingProxyType(
    {
        "missing_summary": ("error", "The draft has no summary of the facts."),
        "missing_offences": ("error", "The draft names no offence (every kind of case but a consultation needs one)."),
        "missing_measures": ("error", "A mutual legal assistance request names no measure sought."),
        "no_legal_basis": (
            "error",
            "The draft names no legal basis (every kind of case but a consultation needs one).",
        ),
        "treaty_name_missing": ("error", "The legal basis is a bilateral treaty, but the treaty is not named."),
        "urgent_without_reason": ("error", "The request is marked urgent without a reason for the urgency."),
        "requested_by_invalid": ("error", "The date by which execution is requested is not a date (YYYY-MM-DD)."),
        "requested_by_past": ("error", "The date by which execution is requested has already passed."),
        "missing_languages": ("error", "The draft does not say in which language(s) the request is written."),
        "language_not_accepted": (
            "error",
            "None of the draft's languages is one the requested state accepts requests in.",
        ),
        "no_common_legal_basis": ("error", "None of the draft's legal bases is one the requested state acts on."),
        "required_item_missing": (
            "error",
            "The requested state requires an item for a measure sought that the draft does not contain "
            "(one problem per measure and item).",
        ),
        "no_profile": (
            "warning",
            "The requested state has not published a country profile, so its requirements could not be checked.",
        ),
        "execution_time": (
            "warning",
            "The requested date is sooner than the average execution time the requested state reports for a "
            "measure sought (one problem per measure).",
        ),
    }
)
PROBLEM_CODES: Final[Mapping[str, str]] = MappingProxyType({code: text for code, (_, text) in PROBLEMS.items()})


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _codes(value: Any) -> list[str]:
    if not isinstance(value, list | tuple):
        return []
    return list(dict.fromkeys(v.strip() for v in value if isinstance(v, str) and v.strip()))


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or not _ISO_DATE.match(value.strip()):
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        return None


def _label(table: Mapping[str, str], code: str) -> str:
    """The label, lower-cased to sit inside a sentence unless it starts with an acronym (ASEAN, UN)."""
    label = table.get(code)
    if not label:
        return code
    return label if label[:2].isupper() else label[0].lower() + label[1:]


def _problem(code: str, field: str, message: str, **extra: str) -> dict[str, str]:
    return {"code": code, "severity": PROBLEMS[code][0], "field": field, "message": message, **extra}


def _case_problems(case: Mapping[str, Any], today: date) -> Iterable[dict[str, str]]:
    """What the draft lacks whoever it is sent to."""
    kind = _text(case.get("kind"))
    consultation = kind == "consultation"
    bases = _codes(case.get("legal_basis"))
    if not _text(case.get("summary")):
        yield _problem("missing_summary", "summary", "Add a summary of the facts.")
    if not consultation and not _codes(case.get("offences")):
        yield _problem("missing_offences", "offences", "Name at least one offence the request concerns.")
    if kind == "mla" and not _codes(case.get("measures")):
        yield _problem("missing_measures", "measures", "Name at least one measure of assistance sought.")
    if not consultation and not bases:
        yield _problem(
            "no_legal_basis", "legal_basis", "Name the legal basis of the request (a treaty, reciprocity or law)."
        )
    if "bilateral_treaty" in bases and not _text(case.get("treaty")):
        yield _problem("treaty_name_missing", "treaty", "Name the bilateral treaty the request is based on.")
    if _text(case.get("urgency")) == "urgent" and not _text(case.get("urgency_reason")):
        yield _problem(
            "urgent_without_reason",
            "urgency_reason",
            "Explain why the request is urgent; the requested state will not treat it as urgent without a reason.",
        )
    raw_date = case.get("requested_by")
    wanted = _date(raw_date)
    if raw_date not in (None, "") and wanted is None:
        yield _problem(
            "requested_by_invalid", "requested_by", "Give the date by which execution is requested as YYYY-MM-DD."
        )
    elif wanted is not None and wanted < today:
        yield _problem(
            "requested_by_past",
            "requested_by",
            f"The date by which execution is requested ({wanted.isoformat()}) has already passed.",
        )
    if not _codes(case.get("languages")):
        yield _problem("missing_languages", "languages", "Say in which language(s) the request is written.")


def _profile_problems(case: Mapping[str, Any], profile: Mapping[str, Any], today: date) -> Iterable[dict[str, str]]:
    """What the requested state says it needs that the draft does not give."""
    languages = [v.lower() for v in _codes(case.get("languages"))]
    accepted = [v.lower() for v in _codes(profile.get("languages"))]
    if languages and accepted and not set(languages) & set(accepted):
        yield _problem(
            "language_not_accepted",
            "languages",
            f"The requested state does not accept requests in {', '.join(languages)}; "
            f"it accepts: {', '.join(accepted)}. Add a translation.",
        )
    bases = _codes(case.get("legal_basis"))
    acts_on = _codes(profile.get("legal_bases"))
    if _text(case.get("kind")) != "consultation" and bases and acts_on and not set(bases) & set(acts_on):
        yield _problem(
            "no_common_legal_basis",
            "legal_basis",
            f"The requested state does not act on {', '.join(_label(vocab.LEGAL_BASES, b) for b in bases)}; "
            f"it acts on: {', '.join(_label(vocab.LEGAL_BASES, b) for b in acts_on)}.",
        )
    measures = _codes(case.get("measures"))
    provided = set(_codes(case.get("provided")))
    requirements = profile.get("requirements")
    requirements = requirements if isinstance(requirements, Mapping) else {}
    for measure in measures:
        for item in _codes(requirements.get(measure)):
            if item not in provided:
                yield _problem(
                    "required_item_missing",
                    "provided",
                    f"For {_label(vocab.MEASURES, measure)}, the requested state requires: "
                    f"{_label(vocab.CONTENT_ITEMS, item)}. Add it to the request.",
                    measure=measure,
                    item=item,
                )
    wanted = _date(case.get("requested_by"))
    execution = profile.get("execution_days")
    execution = execution if isinstance(execution, Mapping) else {}
    if wanted is None or wanted < today:
        return
    for measure in measures:
        days = execution.get(measure)
        if isinstance(days, bool) or not isinstance(days, int | float) or not 0 <= days <= LONGEST_EXECUTION_DAYS:
            continue
        usual = today + timedelta(days=int(days))
        if wanted < usual:
            yield _problem(
                "execution_time",
                "requested_by",
                f"The requested state reports an average of {int(days)} days to execute "
                f"{_label(vocab.MEASURES, measure)}; execution by {wanted.isoformat()} is unlikely "
                f"(at that pace it would be done around {usual.isoformat()}). Consider marking the request urgent or "
                "contacting the requested state.",
                measure=measure,
            )


def check_draft(case: Mapping[str, Any], profile: Mapping[str, Any] | None, *, today: date) -> list[dict[str, str]]:
    """Every problem of a draft case against the requested state's profile (None if it has published none)."""
    problems = list(_case_problems(case, today))
    if profile is None:
        problems.append(
            _problem(
                "no_profile",
                "profile",
                "The requested state has not published a country profile; check its requirements directly.",
            )
        )
    else:
        problems.extend(_profile_problems(case, profile, today))
    return problems


def blocking(problems: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    """The problems that must be solved before the request is sent (the errors)."""
    return [dict(p) for p in problems if p.get("severity") == "error"]
