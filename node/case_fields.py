"""The fields of a case record: what an officer may enter, checked before anything is written.

Kept apart from `node.cases` (which writes and syncs) so the rules read in one place and the
API, the CLI and the UI all get the same messages. Every error names its field, so the API can
answer 422 with all of them at once instead of one per round trip.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any, Final

from node.errors import ValidationError
from node.vocab import CASE_KINDS, LEGAL_BASES, MEASURES, OFFENCES, TRANSLATION_STATUS, URGENCY

# Fields the requesting side writes (the request itself).
REQUEST_FIELDS: Final = (
    "summary",
    "offences",
    "measures",
    "legal_basis",
    "treaty",
    "urgency",
    "urgency_reason",
    "requested_by",
    "languages",
    "translation",
    "provided",
)
TEXT_LIMITS: Final = {"summary": 20_000, "treaty": 300, "urgency_reason": 2_000, "reference": 100}
SINGLE_LINE: Final = frozenset({"treaty", "reference"})
CODE_LISTS: Final[dict[str, Mapping[str, str]]] = {
    "offences": OFFENCES,
    "measures": MEASURES,
    "legal_basis": LEGAL_BASES,
}
MAX_NOTE: Final = 10_000
MAX_NAME: Final = 255
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
_SLUG = re.compile(r"^[a-z0-9_]{1,60}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAK = re.compile(r"[\r\n]")

EMPTY: Final[dict[str, Any]] = {
    "summary": "",
    "offences": [],
    "measures": [],
    "legal_basis": [],
    "treaty": "",
    "urgency": "normal",
    "urgency_reason": "",
    "requested_by": None,
    "languages": [],
    "translation": "not_needed",
    "provided": [],
}


def clean_text(name: str, value: Any, errors: dict[str, str], *, limit: int, single_line: bool = False) -> str | None:
    if value is None:
        return ""
    if not isinstance(value, str):
        errors[name] = "must be text"
        return None
    text = str(value).strip()
    if len(text) > limit:
        errors[name] = f"must be at most {limit} characters"
    elif _CONTROL.search(text) or (single_line and _LINE_BREAK.search(text)):
        errors[name] = "must not contain control characters" + (" or line breaks" if single_line else "")
    else:
        return text
    return None


def _code_list(name: str, value: Any, allowed: Mapping[str, str], errors: dict[str, str]) -> list[str] | None:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors[name] = "must be a list of codes"
        return None
    unknown = [v for v in value if v not in allowed]
    if unknown:
        errors[name] = f"unknown code {unknown[0]!r}; use one of: {', '.join(allowed)}"
        return None
    return list(dict.fromkeys(value))


def _pattern_list(
    name: str, value: Any, pattern: re.Pattern[str], what: str, errors: dict[str, str]
) -> list[str] | None:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors[name] = "must be a list of text"
        return None
    items = list(dict.fromkeys(v.strip().lower() for v in value if v.strip()))
    if len(items) > 50:
        errors[name] = "at most 50 entries"
    elif any(not pattern.match(v) for v in items):
        errors[name] = f"each entry must be {what}"
    else:
        return items
    return None


def _choice(name: str, value: Any, allowed: Mapping[str, str], errors: dict[str, str]) -> str | None:
    if not isinstance(value, str) or value not in allowed:
        errors[name] = f"must be one of: {', '.join(allowed)}"
        return None
    return str(value)


def _date(name: str, value: Any, errors: dict[str, str]) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    errors[name] = "must be a date like 2026-12-31"
    return None


def request_fields(body: Mapping[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    """The request fields present in `body`, validated (errors collected into `errors`)."""
    out: dict[str, Any] = {}
    for name in REQUEST_FIELDS:
        if name not in body:
            continue
        value = body[name]
        result: Any
        if name in TEXT_LIMITS:
            result = clean_text(name, value, errors, limit=TEXT_LIMITS[name], single_line=name in SINGLE_LINE)
        elif name in CODE_LISTS:
            result = _code_list(name, value, CODE_LISTS[name], errors)
        elif name == "languages":
            result = _pattern_list(name, value, _LANGUAGE, "an ISO 639 language code like en, th or km", errors)
        elif name == "provided":
            result = _pattern_list(name, value, _SLUG, "a content item code like court_order", errors)
        elif name == "urgency":
            result = _choice(name, value, URGENCY, errors)
        elif name == "translation":
            result = _choice(name, value, TRANSLATION_STATUS, errors)
        else:  # requested_by
            result = _date(name, value, errors)
            if result is None and name not in errors:
                out[name] = None
                continue
        if result is not None:
            out[name] = result
    return out


def check_object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("send the case as a JSON object", fields={})
    return body


def new_case_fields(body: Any) -> tuple[str, str, str, dict[str, Any]]:
    """(kind, counterpart, reference, request fields) of a new case, or ValidationError listing every problem."""
    data = check_object(body)
    allowed = {"kind", "counterpart", "reference", *REQUEST_FIELDS}
    errors: dict[str, str] = {name: "is not a case field" for name in data if name not in allowed}
    kind = _choice("kind", data.get("kind"), CASE_KINDS, errors)
    counterpart = data.get("counterpart")
    if not isinstance(counterpart, str) or not counterpart.strip():
        errors["counterpart"] = "give the node ID of the requested authority (see GET /api/v1/peers)"
    reference = clean_text("reference", data.get("reference"), errors, limit=TEXT_LIMITS["reference"], single_line=True)
    fields = {**EMPTY, **request_fields(data, errors)}
    if errors:
        raise ValidationError("the case has invalid fields", fields=errors)
    assert kind is not None and isinstance(counterpart, str) and reference is not None
    return kind, counterpart.strip(), reference, fields


def patch_fields(body: Any) -> tuple[str | None, dict[str, Any]]:
    """(new own reference or None, changed request fields) of a PATCH, or ValidationError."""
    data = check_object(body)
    allowed = {"reference", *REQUEST_FIELDS}
    errors: dict[str, str] = {name: "cannot be changed" for name in data if name not in allowed}
    reference = None
    if "reference" in data:
        reference = clean_text("reference", data["reference"], errors, limit=TEXT_LIMITS["reference"], single_line=True)
    fields = request_fields(data, errors)
    if errors:
        raise ValidationError("the change has invalid fields", fields=errors)
    return reference, fields


def note_text(body: Any, name: str = "text") -> str:
    data = check_object(body)
    errors: dict[str, str] = {}
    text = clean_text(name, data.get(name), errors, limit=MAX_NOTE)
    if not errors and not text:
        errors[name] = "is required"
    if errors or text is None:
        raise ValidationError("the note is invalid", fields=errors)
    return text


def attachment_name(value: Any) -> str:
    """A file name safe to show and to offer for download: no folders, no control characters."""
    if not isinstance(value, str):
        raise ValidationError("the attachment needs a file name", fields={"name": "is required"})
    name = value.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name in {".", ".."} or len(name) > MAX_NAME or _CONTROL.search(name) or _LINE_BREAK.search(name):
        raise ValidationError("the attachment's file name is invalid", fields={"name": "must be a plain file name"})
    return name


def translation_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """`language` and `translation` of an attachment (or of a change to them)."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    if body.get("language") not in (None, ""):
        language = str(body["language"]).strip().lower()
        if not _LANGUAGE.match(language):
            errors["language"] = "must be an ISO 639 language code like en, th or km"
        out["language"] = language
    if body.get("translation") not in (None, ""):
        translation = _choice("translation", body["translation"], TRANSLATION_STATUS, errors)
        out["translation"] = translation
    if errors:
        raise ValidationError("the attachment has invalid fields", fields=errors)
    return out
