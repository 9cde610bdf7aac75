"""Country profiles: what each central authority tells the others before they send it a request.

A requesting prosecutor needs to know, before drafting, which languages the requested state
accepts, which legal bases it acts on, what it requires for each measure and how long it
usually takes; today that knowledge sits in e-mails and old PDFs. Each authority publishes
its own profile as one record in its own document (`profile/<node id>`), which every member
replicates and only that authority may write (`node.policy`), exactly like its part of the
contact directory. The draft check (`node.draft_check`) reads these profiles.

A country may have more than one central authority on the network; asked for a country, the
most recently updated of their profiles is the answer. Fields are validated when written here
and read defensively, since a peer running another version may store fields or types this one
does not expect; unknown codes are kept and shown as-is, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from node import vocab
from node.countries import normalise_country
from node.crdt import DocumentChange
from node.documents import DocumentStore, utc_now
from node.errors import Forbidden, NotFound, ValidationError
from node.policy import PROFILE_PREFIX, owner_of, profile_doc

COLLECTION: Final = "profile"
KEY: Final = "main"
TEXT_FIELDS: Final = {"authority": 300, "urgent_channel": 500, "notes": 2000}
MULTILINE_FIELDS: Final = frozenset({"urgent_channel", "notes"})
MAX_LANGUAGES: Final = 20
MAX_LEGAL_BASES: Final = 20
MAX_TREATIES: Final = 100
TREATY_LENGTH: Final = 200
MAX_ITEMS_PER_MEASURE: Final = 30
MAX_EXECUTION_DAYS: Final = 3650
EDITABLE: Final = (
    "authority",
    "languages",
    "legal_bases",
    "treaties",
    "requirements",
    "execution_days",
    "urgent_channel",
    "notes",
)
# Shown by GET and so often sent back by a client that edits what it read: accepted, not stored.
READ_ONLY: Final = ("node_id", "country", "updated_at")

_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
_SLUG = re.compile(r"^[a-z0-9_]{1,60}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _text(name: str, value: Any, errors: dict[str, str]) -> str | None:
    if not isinstance(value, str):
        errors[name] = "must be text"
        return None
    text = value.strip()
    control = _CONTROL_BUT_LINES if name in MULTILINE_FIELDS else _CONTROL
    if len(text) > TEXT_FIELDS[name]:
        errors[name] = f"must be at most {TEXT_FIELDS[name]} characters"
    elif control.search(text):
        errors[name] = "must not contain control characters"
    else:
        return text
    return None


def _strings(name: str, value: Any, errors: dict[str, str]) -> list[str] | None:
    """A list of text, stripped, blanks and repeats dropped; None (and an error) if it is not one."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors[name] = "must be a list of text"
        return None
    items: list[str] = []
    for item in (v.strip() for v in value):
        if item and item not in items:
            items.append(item)
    return items


def _languages(value: Any, errors: dict[str, str]) -> list[str] | None:
    items = _strings("languages", value, errors)
    if items is None:
        return None
    items = list(dict.fromkeys(v.lower() for v in items))
    bad = [v for v in items if not _LANGUAGE.match(v)]
    if bad:
        errors["languages"] = f"must be ISO 639 language codes of 2 or 3 letters such as en or th, not {', '.join(bad)}"
    elif len(items) > MAX_LANGUAGES:
        errors["languages"] = f"at most {MAX_LANGUAGES} languages"
    else:
        return items
    return None


def _legal_bases(value: Any, errors: dict[str, str]) -> list[str] | None:
    items = _strings("legal_bases", value, errors)
    if items is None:
        return None
    bad = [v for v in items if v not in vocab.LEGAL_BASES]
    if bad:
        errors["legal_bases"] = f"unknown legal basis {', '.join(bad)}; use one of {', '.join(vocab.LEGAL_BASES)}"
    elif len(items) > MAX_LEGAL_BASES:
        errors["legal_bases"] = f"at most {MAX_LEGAL_BASES} legal bases"
    else:
        return items
    return None


def _treaties(value: Any, errors: dict[str, str]) -> list[str] | None:
    items = _strings("treaties", value, errors)
    if items is None:
        return None
    if len(items) > MAX_TREATIES:
        errors["treaties"] = f"at most {MAX_TREATIES} treaties"
    elif any(len(v) > TREATY_LENGTH or _CONTROL.search(v) for v in items):
        errors["treaties"] = f"each treaty at most {TREATY_LENGTH} characters, no control characters"
    else:
        return items
    return None


def _per_measure(name: str, value: Any, errors: dict[str, str]) -> Mapping[str, Any] | None:
    if not isinstance(value, Mapping):
        errors[name] = "must be an object keyed by measure code, such as bank_records"
        return None
    unknown = [m for m in value if m not in vocab.MEASURES]
    if unknown:
        errors[name] = f"unknown measure {', '.join(map(str, unknown))}; use one of {', '.join(vocab.MEASURES)}"
        return None
    return value


def _requirements(value: Any, errors: dict[str, str]) -> dict[str, list[str]] | None:
    by_measure = _per_measure("requirements", value, errors)
    if by_measure is None:
        return None
    clean: dict[str, list[str]] = {}
    problems: list[str] = []
    for measure, raw in by_measure.items():
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            problems.append(f"{measure} must be a list of content item codes")
            continue
        items = list(dict.fromkeys(v.strip() for v in raw if v.strip()))
        if bad := [v for v in items if not _SLUG.match(v)]:
            problems.append(
                f"{measure}: {', '.join(bad)} is not a content item code (lowercase letters, digits and _, "
                "at most 60), such as court_order"
            )
        elif len(items) > MAX_ITEMS_PER_MEASURE:
            problems.append(f"{measure}: at most {MAX_ITEMS_PER_MEASURE} items")
        elif items:
            clean[measure] = items
    if problems:
        errors["requirements"] = "; ".join(problems)
        return None
    return clean


def _execution_days(value: Any, errors: dict[str, str]) -> dict[str, int] | None:
    by_measure = _per_measure("execution_days", value, errors)
    if by_measure is None:
        return None
    bad = [
        m
        for m, days in by_measure.items()
        if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_EXECUTION_DAYS
    ]
    if bad:
        errors["execution_days"] = (
            f"days for {', '.join(bad)} must be a whole number of days from 0 to {MAX_EXECUTION_DAYS}"
        )
        return None
    return dict(by_measure)


def validate_profile(data: Any, *, country: str) -> dict[str, Any]:
    """Every editable field, cleaned (those not given empty); or ValidationError naming each bad one."""
    if not isinstance(data, Mapping):
        raise ValidationError("a country profile must be a JSON object")
    errors: dict[str, str] = {}
    for name in sorted(set(data) - set(EDITABLE) - set(READ_ONLY), key=str):
        errors[str(name)] = "unknown field"
    given = data.get("country")
    if given is not None and (not isinstance(given, str) or normalise_country(given) != country):
        errors["country"] = f"is set from this node ({country}) and cannot be changed"
    clean: dict[str, Any] = {name: "" for name in TEXT_FIELDS}
    clean.update({"languages": [], "legal_bases": [], "treaties": [], "requirements": {}, "execution_days": {}})
    for name in TEXT_FIELDS:
        if name in data:
            text = _text(name, data[name], errors)
            if text is not None:
                clean[name] = text
    for name, check in (
        ("languages", _languages),
        ("legal_bases", _legal_bases),
        ("treaties", _treaties),
        ("requirements", _requirements),
        ("execution_days", _execution_days),
    ):
        if name in data:
            value = check(data[name], errors)
            if value is not None:
                clean[name] = value
    if errors:
        detail = "; ".join(f"{k} {v}" for k, v in sorted(errors.items()))
        raise ValidationError(f"invalid country profile: {detail}", fields=errors)
    return clean


def _str_list(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _days(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:  # NaN
        return None
    return int(value) if value >= 0 and value == int(value) else None


def _read(record: Mapping[str, Any], node_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {"node_id": node_id}
    country = record.get("country")
    out["country"] = country if isinstance(country, str) else ""
    for name in TEXT_FIELDS:
        value = record.get(name)
        out[name] = value if isinstance(value, str) else ""
    for name in ("languages", "legal_bases", "treaties"):
        out[name] = _str_list(record.get(name))
    requirements = record.get("requirements")
    out["requirements"] = (
        {m: _str_list(items) for m, items in requirements.items() if isinstance(m, str)}
        if isinstance(requirements, Mapping)
        else {}
    )
    execution = record.get("execution_days")
    out["execution_days"] = (
        {m: d for m, d in ((m, _days(v)) for m, v in execution.items()) if isinstance(m, str) and d is not None}
        if isinstance(execution, Mapping)
        else {}
    )
    updated = record.get("updated_at")
    out["updated_at"] = updated if isinstance(updated, str) else None
    return out


class Profiles:
    """The country profiles this node holds: its own, which it writes, and every member's, replicated."""

    def __init__(self, store: DocumentStore, node_id: str, country: str) -> None:
        self._store = store
        self._node_id = node_id
        self._country = country

    def get(self, country: str) -> dict[str, Any]:
        """The profile of that country; the most recently updated if several of its authorities publish one."""
        code = normalise_country(country) if isinstance(country, str) else None
        if code is None:
            raise NotFound(f"{country!r} is not an ISO 3166 two-letter country code such as TH or VN")
        found = [p for p in self._all() if p["country"] == code]
        if not found:
            raise NotFound(f"{code} has not published a country profile on the network yet")
        return max(found, key=lambda p: (p["updated_at"] or "", p["node_id"]))

    def put(self, country: str, body: Any, *, actor: str) -> dict[str, Any]:
        """Replace this authority's own profile with `body`; fields not given become empty."""
        code = normalise_country(country) if isinstance(country, str) else None
        if code != self._country:
            raise Forbidden(
                f"each authority edits only its own country profile; this node's country is {self._country}"
            )
        fields = validate_profile(body, country=self._country)
        fields["country"] = self._country
        fields["updated_at"] = utc_now()

        def edit(change: DocumentChange) -> None:
            change.put_record(COLLECTION, KEY, fields)

        doc_id = profile_doc(self._node_id)
        self._store.commit_local(doc_id, edit, actor=actor, action="profile.put", subject=self._country)
        doc = self._store.get(doc_id)
        record = doc.record(COLLECTION, KEY) if doc else None
        return _read(record or fields, self._node_id)

    def _all(self) -> list[dict[str, Any]]:
        found = []
        for doc_id in self._store.doc_ids(PROFILE_PREFIX):
            owner = owner_of(doc_id)
            doc = self._store.get(doc_id)
            record = doc.record(COLLECTION, KEY) if doc else None
            if owner is not None and record is not None:
                found.append(_read(record, owner))
        found.sort(key=lambda p: (p["country"], p["authority"].casefold(), p["node_id"]))
        return found

    def list(self) -> list[dict[str, Any]]:
        """Every profile held, by country and then authority."""
        return self._all()
