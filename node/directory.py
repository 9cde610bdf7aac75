"""The network's contact-point directory.

Each authority keeps its own contact points in its own part of the directory (one document,
`directory/<node id>`), which every member replicates and only that authority may write; an
update to it signed by anyone else is refused on receipt (`node.policy`). Reading merges the
parts into one list.

Fields are validated when written here, and read defensively, since a peer running another
version may hold fields this one does not know.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Final

from node.countries import normalise_country
from node.crdt import DocumentChange
from node.documents import DocumentStore, utc_now
from node.errors import Forbidden, NotFound, ValidationError
from node.policy import DIRECTORY_PREFIX, directory_doc, directory_owner

COLLECTION: Final = "contacts"
TEXT_FIELDS: Final = {"name": 200, "title": 200, "authority": 300, "phone": 60, "email": 254}
LIST_FIELDS: Final = {"languages": (20, 60), "expertise": (30, 100)}
FIELDS: Final = (*TEXT_FIELDS, "country", *LIST_FIELDS)
# Suggested areas of expertise; officers may add their own words.
EXPERTISE_SUGGESTIONS: Final = (
    "mutual legal assistance",
    "extradition",
    "asset recovery",
    "cybercrime",
    "electronic evidence",
    "trafficking in persons",
    "migrant smuggling",
    "drug trafficking",
    "money laundering",
    "corruption",
    "terrorism",
    "wildlife crime",
    "transfer of proceedings",
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^[0-9+()\-./ x]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text(name: str, value: Any, errors: dict[str, str]) -> str | None:
    if not isinstance(value, str):
        errors[name] = "must be text"
        return None
    value = value.strip()
    if len(value) > TEXT_FIELDS[name]:
        errors[name] = f"must be at most {TEXT_FIELDS[name]} characters"
    elif _CONTROL.search(value):
        errors[name] = "must not contain control characters"
    elif name == "email" and value and not _EMAIL.match(value):
        errors[name] = "must be an e-mail address like name@example.org"
    elif name == "phone" and not _PHONE.match(value):
        errors[name] = "may contain digits, spaces and + ( ) - . / x only"
    else:
        return str(value)
    return None


def _list(name: str, value: Any, errors: dict[str, str]) -> list[str] | None:
    most, longest = LIST_FIELDS[name]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors[name] = "must be a list of text"
        return None
    items: list[str] = []
    for item in (v.strip() for v in value):
        if item and item not in items:
            items.append(item)
    if len(items) > most:
        errors[name] = f"at most {most} entries"
    elif any(len(v) > longest or _CONTROL.search(v) for v in items):
        errors[name] = f"each entry at most {longest} characters, no control characters"
    else:
        return items
    return None


def validate_contact(data: Any, *, partial: bool) -> dict[str, Any]:
    """Check a contact's fields; the cleaned fields, or ValidationError naming each bad one."""
    if not isinstance(data, Mapping):
        raise ValidationError("a contact must be a JSON object")
    errors: dict[str, str] = {}
    unknown = sorted(set(data) - set(FIELDS) - {"id", "owner", "updated_at"})
    for name in unknown:
        errors[name] = "unknown field"
    clean: dict[str, Any] = {}
    for name, value in data.items():
        if name in TEXT_FIELDS:
            text = _text(name, value, errors)
            if text is not None:
                clean[name] = text
        elif name in LIST_FIELDS:
            items = _list(name, value, errors)
            if items is not None:
                clean[name] = items
        elif name == "country":
            code = normalise_country(value) if isinstance(value, str) else None
            if code is None:
                errors[name] = "must be an ISO 3166 two-letter country code such as TH or VN"
            else:
                clean[name] = code
    if not partial and not clean.get("name") and "name" not in errors:
        errors["name"] = "is required"
    if partial and "name" in clean and not clean["name"]:
        errors["name"] = "cannot be empty"
    if errors:
        detail = "; ".join(f"{k} {v}" for k, v in sorted(errors.items()))
        raise ValidationError(f"invalid contact: {detail}", fields=errors)
    return clean


def _read(record: Mapping[str, Any], contact_id: str, owner: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": contact_id, "owner": owner}
    for name in TEXT_FIELDS:
        value = record.get(name)
        out[name] = value if isinstance(value, str) else ""
    country = record.get("country")
    out["country"] = country if isinstance(country, str) else ""
    for name in LIST_FIELDS:
        value = record.get(name)
        out[name] = [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
    updated = record.get("updated_at")
    out["updated_at"] = updated if isinstance(updated, str) else None
    return out


class Directory:
    def __init__(
        self,
        store: DocumentStore,
        own_id: str,
        own_country: str,
        *,
        revoked: Callable[[str], bool] = lambda node_id: False,
    ) -> None:
        """`revoked(owner)`: the owner was revoked from the network, so its contact points are no longer listed."""
        self._store = store
        self._own_id = own_id
        self._own_country = own_country
        self._revoked = revoked

    def list(
        self, *, country: str | None = None, expertise: str | None = None, q: str | None = None
    ) -> list[dict[str, Any]]:
        found = []
        for doc_id in self._store.doc_ids(DIRECTORY_PREFIX):
            owner = directory_owner(doc_id)
            if owner is None or self._revoked(owner):
                continue
            doc = self._store.get(doc_id)
            if doc is None:
                continue
            for contact_id, record in doc.records(COLLECTION).items():
                found.append(_read(record, contact_id, owner))
        if country:
            found = [c for c in found if c["country"] == country.strip().upper()]
        if expertise:
            wanted = expertise.strip().casefold()
            found = [c for c in found if any(wanted in e.casefold() for e in c["expertise"])]
        if q:
            needle = q.strip().casefold()
            found = [
                c
                for c in found
                if any(needle in str(c[f]).casefold() for f in ("name", "title", "authority", "email"))
                or any(needle in v.casefold() for v in c["expertise"] + c["languages"])
            ]
        found.sort(key=lambda c: (c["country"], c["authority"].casefold(), c["name"].casefold(), c["id"]))
        return found

    def get(self, contact_id: str) -> dict[str, Any]:
        for doc_id in self._store.doc_ids(DIRECTORY_PREFIX):
            doc = self._store.get(doc_id)
            record = doc.record(COLLECTION, contact_id) if doc else None
            owner = directory_owner(doc_id)
            if record is not None and owner is not None:
                return _read(record, contact_id, owner)
        raise NotFound(f"no contact point {contact_id}")

    def create(self, data: Any, *, actor: str) -> dict[str, Any]:
        fields = validate_contact(data, partial=False)
        fields.setdefault("country", self._own_country)
        for name in TEXT_FIELDS:
            fields.setdefault(name, "")
        for name in LIST_FIELDS:
            fields.setdefault(name, [])
        fields["updated_at"] = utc_now()
        contact_id = secrets.token_hex(8)

        def edit(change: DocumentChange) -> None:
            change.put_record(COLLECTION, contact_id, fields)

        self._store.commit_local(self._own_doc, edit, actor=actor, action="contact.create", subject=contact_id)
        return self.get(contact_id)

    def update(self, contact_id: str, data: Any, *, actor: str) -> dict[str, Any]:
        self._require_own(contact_id)
        fields = validate_contact(data, partial=True)
        if not fields:
            return self.get(contact_id)
        fields["updated_at"] = utc_now()

        def edit(change: DocumentChange) -> None:
            change.put_record(COLLECTION, contact_id, fields)

        self._store.commit_local(self._own_doc, edit, actor=actor, action="contact.update", subject=contact_id)
        return self.get(contact_id)

    def delete(self, contact_id: str, *, actor: str) -> None:
        self._require_own(contact_id)

        def edit(change: DocumentChange) -> None:
            change.delete_record(COLLECTION, contact_id)

        self._store.commit_local(self._own_doc, edit, actor=actor, action="contact.delete", subject=contact_id)

    @property
    def _own_doc(self) -> str:
        return directory_doc(self._own_id)

    def _require_own(self, contact_id: str) -> None:
        contact = self.get(contact_id)
        if contact["owner"] != self._own_id:
            raise Forbidden("this contact point belongs to another authority; only its own node can change it")
