"""Network notices: meetings, trainings, working groups and announcements from the secretariat.

The secretariat (UNODC) tells every central authority about the network's meetings and
trainings; today that is a mailing list. Each secretariat node publishes its notices in its own
document (`notices/<node id>`), which every member replicates and only that node may write
(`node.policy`), like an authority's part of the contact directory.

Only a node whose role is secretariat publishes: `node.policy` refuses, locally and on receipt,
a notices document written by any other node. Reading also lists only documents whose owner is a
secretariat (this node if it is one, else a trusted peer whose signed card says so), in case a
peer that was a secretariat is trusted differently later. Fields are validated when
written and read defensively, since a peer running another version may store fields or types
this one does not expect; an unknown category is kept and shown as-is.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from node.crdt import DocumentChange
from node.documents import DocumentStore, utc_now
from node.errors import Forbidden, NotFound, ValidationError
from node.policy import NOTICES_PREFIX, notices_doc, owner_of

COLLECTION: Final = "notices"
SECRETARIAT: Final = "secretariat"
CATEGORIES: Final = ("meeting", "training", "working_group", "announcement")
TEXT_FIELDS: Final = {"title": 200, "body": 5000, "location": 300}
MULTILINE_FIELDS: Final = frozenset({"body"})
DATE_FIELDS: Final = ("starts_on", "ends_on")
LINK_LENGTH: Final = 500
EDITABLE: Final = ("title", "body", "category", "starts_on", "ends_on", "location", "link")
# Shown by GET and so often sent back by a client that edits what it read: accepted, not stored.
READ_ONLY: Final = ("id", "publisher", "published_at", "updated_at")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_BLANK_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")


def _today() -> date:
    return datetime.now(UTC).date()


def _text(name: str, value: Any, errors: dict[str, str]) -> str | None:
    if not isinstance(value, str):
        errors[name] = "must be text"
        return None
    text = value.strip()
    control = _CONTROL_BUT_LINES if name in MULTILINE_FIELDS else _CONTROL
    if len(text) > TEXT_FIELDS[name]:
        errors[name] = f"must be at most {TEXT_FIELDS[name]} characters"
    elif control.search(text):
        errors[name] = "must not contain control characters" + ("" if name in MULTILINE_FIELDS else " or line breaks")
    else:
        return text
    return None


def _date(name: str, value: Any, errors: dict[str, str]) -> str | None:
    """The date as YYYY-MM-DD, "" to clear it; None (and an error) if it is not one."""
    if value is None or value == "":
        return ""
    if isinstance(value, str) and _ISO_DATE.match(value.strip()):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    errors[name] = "must be a date like 2026-12-31"
    return None


def _link(value: Any, errors: dict[str, str]) -> str | None:
    if value is None:
        return ""
    if not isinstance(value, str):
        errors["link"] = "must be text"
        return None
    link = value.strip()
    if not link:
        return ""
    if len(link) > LINK_LENGTH:
        errors["link"] = f"must be at most {LINK_LENGTH} characters"
        return None
    try:
        parts = urlsplit(link)
        web = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:  # such as a malformed [IPv6] host
        web = False
    if not web or _BLANK_OR_CONTROL.search(link):
        errors["link"] = "must be an http or https address like https://www.unodc.org/..."
        return None
    return link


def validate_notice(data: Any, *, partial: bool) -> dict[str, Any]:
    """The fields given, cleaned ("" where a date or link is cleared); or ValidationError naming each bad one."""
    if not isinstance(data, Mapping):
        raise ValidationError("a notice must be a JSON object")
    errors: dict[str, str] = {}
    for name in sorted(set(data) - set(EDITABLE) - set(READ_ONLY), key=str):
        errors[str(name)] = "unknown field"
    clean: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        if name in data:
            text = _text(name, data[name], errors)
            if text is not None:
                clean[name] = text
    for name in DATE_FIELDS:
        if name in data:
            day = _date(name, data[name], errors)
            if day is not None:
                clean[name] = day
    if "link" in data:
        link = _link(data["link"], errors)
        if link is not None:
            clean["link"] = link
    if "category" in data:
        if data["category"] in CATEGORIES:
            clean["category"] = data["category"]
        else:
            errors["category"] = f"must be one of {', '.join(CATEGORIES)}"
    if "title" not in errors and not clean.get("title") and (not partial or "title" in data):
        errors["title"] = "is required" if not partial else "cannot be empty"
    if not partial and "category" not in data:
        errors["category"] = f"is required: one of {', '.join(CATEGORIES)}"
    if errors:
        detail = "; ".join(f"{k} {v}" for k, v in sorted(errors.items()))
        raise ValidationError(f"invalid notice: {detail}", fields=errors)
    return clean


def _check_dates(fields: Mapping[str, Any]) -> None:
    starts, ends = fields.get("starts_on") or "", fields.get("ends_on") or ""
    if starts and ends and ends < starts:
        message = f"must be on or after starts_on ({starts})"
        raise ValidationError(f"invalid notice: ends_on {message}", fields={"ends_on": message})


def _read_date(value: Any) -> str | None:
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            return None
    return None


def _read(record: Mapping[str, Any], notice_id: str, publisher: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": notice_id, "publisher": publisher}
    for name in TEXT_FIELDS:
        value = record.get(name)
        out[name] = value if isinstance(value, str) else ""
    category = record.get("category")
    out["category"] = category if isinstance(category, str) else ""
    for name in DATE_FIELDS:
        out[name] = _read_date(record.get(name))
    link = record.get("link")
    out["link"] = link if isinstance(link, str) else ""
    for name in ("published_at", "updated_at"):
        value = record.get(name)
        out[name] = value if isinstance(value, str) else None
    return out


def is_upcoming(notice: Mapping[str, Any], today: date) -> bool:
    """Not over yet: it ends (or, without an end, starts) today or later; undated notices are not upcoming."""
    last = notice.get("ends_on") or notice.get("starts_on")
    return isinstance(last, str) and last >= today.isoformat()


class Notices:
    """The notices this node holds: its own, if it is a secretariat node, and every secretariat's, replicated."""

    def __init__(
        self,
        store: DocumentStore,
        node_id: str,
        role: str,
        *,
        role_of: Callable[[str], str | None] = lambda node_id: None,
        today: Callable[[], date] = _today,
    ) -> None:
        self._store = store
        self._node_id = node_id
        self._role = role
        self._role_of = role_of
        self._today = today

    def _is_secretariat(self, node_id: str) -> bool:
        role = self._role if node_id == self._node_id else self._role_of(node_id)
        return role == SECRETARIAT

    def _all(self) -> list[dict[str, Any]]:
        found = []
        for doc_id in self._store.doc_ids(NOTICES_PREFIX):
            owner = owner_of(doc_id)
            if owner is None or not self._is_secretariat(owner):
                continue
            doc = self._store.get(doc_id)
            for notice_id, record in (doc.records(COLLECTION) if doc else {}).items():
                found.append(_read(record, notice_id, owner))
        found.sort(key=lambda n: (n["published_at"] or "", n["id"]), reverse=True)
        return found

    def list(self, *, category: str | None = None, upcoming: bool = False) -> list[dict[str, Any]]:
        """Every notice held, newest first; only those of `category`, or only those not over yet."""
        if category is not None and category not in CATEGORIES:
            message = f"must be one of {', '.join(CATEGORIES)}"
            raise ValidationError(f"invalid filter: category {message}", fields={"category": message})
        found = self._all()
        if category is not None:
            found = [n for n in found if n["category"] == category]
        if upcoming:
            today = self._today()
            found = [n for n in found if is_upcoming(n, today)]
        return found

    def get(self, notice_id: str) -> dict[str, Any]:
        for notice in self._all():
            if notice["id"] == notice_id:
                return notice
        raise NotFound(f"no notice {notice_id}")

    def create(self, data: Any, *, actor: str) -> dict[str, Any]:
        self._require_secretariat()
        fields: dict[str, Any] = {name: "" for name in (*TEXT_FIELDS, *DATE_FIELDS, "link")}
        fields.update(validate_notice(data, partial=False))
        _check_dates(fields)
        fields["published_at"] = fields["updated_at"] = utc_now()
        notice_id = secrets.token_hex(8)

        def edit(change: DocumentChange) -> None:
            change.put_record(COLLECTION, notice_id, fields)

        self._store.commit_local(self._own_doc, edit, actor=actor, action="notice.create", subject=notice_id)
        return self.get(notice_id)

    def update(self, notice_id: str, data: Any, *, actor: str) -> dict[str, Any]:
        current = self._require_own(notice_id)
        given = validate_notice(data, partial=True)
        _check_dates({**current, **given})
        fields = {name: value for name, value in given.items() if (current[name] or "") != value}
        if not fields:
            return current
        fields["updated_at"] = utc_now()

        def edit(change: DocumentChange) -> None:
            change.put_record(COLLECTION, notice_id, fields)

        self._store.commit_local(self._own_doc, edit, actor=actor, action="notice.update", subject=notice_id)
        return self.get(notice_id)

    def delete(self, notice_id: str, *, actor: str) -> None:
        self._require_own(notice_id)

        def edit(change: DocumentChange) -> None:
            change.delete_record(COLLECTION, notice_id)

        self._store.commit_local(self._own_doc, edit, actor=actor, action="notice.delete", subject=notice_id)

    @property
    def _own_doc(self) -> str:
        return notices_doc(self._node_id)

    def _require_secretariat(self) -> None:
        if self._role != SECRETARIAT:
            raise Forbidden("only the network secretariat publishes notices")

    def _require_own(self, notice_id: str) -> dict[str, Any]:
        self._require_secretariat()
        notice = self.get(notice_id)
        if notice["publisher"] != self._node_id:
            raise Forbidden("this notice was published by another secretariat node; only that node can change it")
        return notice
