"""Case records: MLA and extradition requests that two authorities work on together.

A case is one CRDT document, `case/<id>`, shared by exactly its parties (the requesting and
the requested authority, and any third party a party later shares it with) and sealed with its
own key (`node.case_keys`). Inside it:

* `case/main`: the request as the requesting side wrote it (summary, offences, measures, ...),
  plus who the parties are; only the requesting side changes the request;
* `refs/<node id>`: each side's own reference number, written only by that side;
* `attachments/<id>`: metadata of the encrypted files (`node.blobs`), added by either side;
* `history`: the tamper-evident, signed hash DAG of status changes, notes and reminders
  (`node.case_history`), from which the status is *derived* (`node.workflow.replay`) rather
  than stored, so two sides moving at once can never leave the case in a state neither wrote.

A peer's update to a case is tried on a copy and judged by `check_remote` before anything of it
is applied: a forged transition, a rewritten history or a change to the other side's fields is
refused and logged. Lists, filters and search never load documents: every stored change is
projected, in the same transaction, into `node.case_index`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, Final

import sqlite_utils

from crypto.identity import Identity
from crypto.node_id import ALPHABET
from node import case_fields, case_history, workflow
from node.blobs import BlobStore
from node.case_history import HistoryInvalid
from node.case_index import CaseFilter, CaseIndex, Reminders, ageing, reasons
from node.case_keys import ROLE_REQUESTED, ROLE_REQUESTING, ROLE_SHARED, CaseKeys
from node.crdt import CrdtDocument, DocumentChange, DocView
from node.documents import DocumentStore, utc_now
from node.draft_check import blocking, check_draft
from node.errors import CheckFailed, Forbidden, NodeError, NotFound, PeerError, ValidationError
from node.policy import CASE_PREFIX, is_case
from node.storage import Database
from node.workflow import IllegalTransition
from sync.errors import UpdateRejected

log = logging.getLogger(__name__)

MAIN: Final = ("case", "main")
REFS: Final = "refs"
ATTACHMENTS: Final = "attachments"
HISTORY: Final = "history"
# What `check_remote` compares before and after a peer's update: these collections, and this list.
CHECKED_ROOTS: Final = ((MAIN[0], REFS, ATTACHMENTS), (HISTORY,))
FIXED_FIELDS: Final = (
    "requesting",
    "requested",
    "requesting_country",
    "requested_country",
    "requesting_name",
    "requested_name",
    "created_at",
    "created_by",
)
ATTACHMENT_FIXED: Final = ("id", "name", "media_type", "size", "sha256", "blob", "added_by", "added_at")
ATTACHMENT_EDITABLE: Final = ("language", "translation")
MEDIA_TYPES: Final = (
    "application/pdf",
    "image/",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.",
    "application/vnd.oasis.opendocument.",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/rtf",
    "text/plain",
    "text/csv",
    "audio/",
    "video/",
)
DEFAULT_MAX_ATTACHMENT = 50 * 1024 * 1024
STATES_KEPT = 2_000  # cases whose last worked-out state is remembered (as many as CRDTs held in memory)


@dataclass(frozen=True)
class _Replayed:
    """A case's state and the history entries and parties it was worked out from (see `Cases._state`)."""

    ids: frozenset[str]
    sides: dict[str, str]
    state: workflow.CaseState


class AttachmentRefused(NodeError):
    """That file cannot be attached."""

    http_status = 413


def new_case_id() -> str:
    """12 Crockford base32 characters (60 bits): readable over the phone, unique in practice."""
    return "".join(secrets.choice(ALPHABET) for _ in range(12))


def case_doc(case_id: str) -> str:
    return CASE_PREFIX + case_id


def utc_today() -> date:
    return datetime.now(UTC).date()


def _sides(roles: Mapping[str, str]) -> dict[str, str]:
    return {node: (role if role in (ROLE_REQUESTING, ROLE_REQUESTED) else ROLE_SHARED) for node, role in roles.items()}


_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _check_attachment(att: Mapping[str, Any]) -> None:
    """A peer's attachment record must be one this node could have written (it is shown and served)."""
    try:
        case_fields.attachment_name(att.get("name"))
        case_fields.translation_fields(att)
    except ValidationError as exc:
        raise UpdateRejected("not_permitted", "attachment record is malformed") from exc
    media_type = att.get("media_type")
    size = att.get("size")
    well_formed = (
        isinstance(media_type, str)
        and media_type.startswith(MEDIA_TYPES)
        and re.fullmatch(r"[a-z0-9.+/-]{3,127}", media_type) is not None
        and isinstance(size, int | float)
        and 0 < size <= 2**40
        and all(isinstance(att.get(k), str) and _HEX64.match(att[k]) for k in ("sha256", "blob"))
    )
    if not well_formed:
        raise UpdateRejected("not_permitted", "attachment record is malformed")


def _executed_at(state: workflow.CaseState) -> str | None:
    """When the request was reported executed (in full if it was, else in part): for response times."""
    for status in ("executed", "partially_executed"):
        times = [str(t["at"]) for t in state.timeline if t.get("to") == status]
        if times:
            return min(times)
    return None


def _listed(row: Mapping[str, Any]) -> dict[str, Any]:
    """A projection row as the API lists it: named like the full case (`id`), internals left out."""
    out = {k: v for k, v in row.items() if k not in ("case_id", "doc_id", "updated_at")}
    return {"id": row["case_id"], **out}


class Cases:
    def __init__(
        self,
        db: Database,
        store: DocumentStore,
        keys: CaseKeys,
        index: CaseIndex,
        blobs: BlobStore,
        identity: Identity,
        *,
        country: str,
        name: str,
        peer_info: Callable[[str], Mapping[str, Any] | None],
        sign_key_of: Callable[[str], tuple[bytes, ...]],
        profile_of: Callable[[str], Mapping[str, Any] | None],
        reminders: Reminders | None = None,
        max_attachment: int = DEFAULT_MAX_ATTACHMENT,
        clock: Callable[[], str] = utc_now,
        today: Callable[[], date] = utc_today,
    ) -> None:
        self._store = store
        self._db = db
        self._keys = keys
        self.index = index
        self._blobs = blobs
        self._identity = identity
        self._me = identity.node_id
        self._country = country
        self._name = name
        self._peer_info = peer_info
        self._sign_key_of = sign_key_of
        self._profile_of = profile_of
        self.reminders = reminders or Reminders()
        self.max_attachment = max_attachment
        self._clock = clock
        self._today = today
        self.on_shared: Callable[[str, list[str]], None] = lambda doc_id, parties: None
        self._replayed: OrderedDict[str, _Replayed] = OrderedDict()  # the last state worked out per case

    # -- reading --------------------------------------------------------------------------

    def _doc(self, case_id: str) -> tuple[str, CrdtDocument, dict[str, str]]:
        doc_id = case_doc(case_id) if isinstance(case_id, str) and case_id.isalnum() else ""
        roles = self._keys.roles(doc_id) if doc_id else {}
        doc = self._store.get(doc_id) if roles else None
        if doc is None or doc.record(*MAIN) is None:
            raise NotFound("no such case on this node")
        return doc_id, doc, roles

    def _key_of(self, node_id: str) -> tuple[bytes, ...] | None:
        """Every signing key the node has had (current first), or None for a node this node does not know."""
        return self._sign_key_of(node_id) or None

    def get(self, case_id: str) -> dict[str, Any]:
        _, doc, roles = self._doc(case_id)
        return self._view(case_id, doc, roles)

    def _state(self, doc_id: str, doc: CrdtDocument, roles: Mapping[str, str]) -> workflow.CaseState:
        """The case's workflow state: carried forward from the last one worked out for this case when the
        entries added since change no status (`workflow.advance`), else replayed from the whole history.

        The last state is trusted only for the very entries it was worked out from (their ids, all distinct,
        a subset of today's) and the same parties, so a document reloaded after a rolled-back commit, or one
        whose parties changed, is replayed.
        """
        history = doc.items(HISTORY)
        sides = _sides(roles)
        ids = [e.get("id") for e in history]
        id_set = frozenset(i for i in ids if isinstance(i, str))
        state: workflow.CaseState | None = None
        known = self._replayed.get(doc_id)
        if known is not None and known.sides == sides and len(id_set) == len(ids) and known.ids <= id_set:
            state = workflow.advance(known.state, [e for e in history if e["id"] not in known.ids])
        if state is None:
            state = workflow.replay(history, sides)
        self._replayed[doc_id] = _Replayed(id_set, sides, state)
        self._replayed.move_to_end(doc_id)
        while len(self._replayed) > STATES_KEPT:
            self._replayed.popitem(last=False)
        return replace(state, timeline=list(state.timeline), conflicts=list(state.conflicts))

    def _view(self, case_id: str, doc: CrdtDocument, roles: Mapping[str, str]) -> dict[str, Any]:
        main = doc.record(*MAIN) or {}
        state = self._state(case_doc(case_id), doc, roles)
        refs = doc.records(REFS)
        side = roles.get(self._me, ROLE_SHARED)
        requesting, requested = str(main.get("requesting", "")), str(main.get("requested", ""))
        counterpart = requested if side == ROLE_REQUESTING else requesting
        row = self._row(case_id, doc, roles, state)
        history = sorted(doc.items(HISTORY), key=lambda e: (str(e.get("at", "")), str(e.get("id", ""))))
        view: dict[str, Any] = {
            "id": case_id,
            "kind": state.kind,
            "status": state.status,
            "side": side,
            "counterpart": counterpart,
            "reference": str(refs.get(self._me, {}).get("reference", "")),
            "references": {
                ROLE_REQUESTING: str(refs.get(requesting, {}).get("reference", "")),
                ROLE_REQUESTED: str(refs.get(requested, {}).get("reference", "")),
            },
            "requesting": {
                "node_id": requesting,
                "country": main.get("requesting_country"),
                "name": main.get("requesting_name"),
            },
            "requested": {
                "node_id": requested,
                "country": main.get("requested_country"),
                "name": main.get("requested_name"),
            },
            "parties": dict(roles),
            **{name: main.get(name, case_fields.EMPTY[name]) for name in case_fields.REQUEST_FIELDS},
            "created_at": main.get("created_at"),
            "created_by": main.get("created_by"),
            "sent_at": state.sent_at,
            "acknowledged_at": state.acknowledged_at,
            "closed_at": state.closed_at,
            "last_action_at": state.last_action_at,
            "status_changed_at": state.status_changed_at,
            "next_steps": workflow.next_steps(state.kind, state.status, side) if side != ROLE_SHARED else [],
            "ageing": ageing(row, self._today()),
            "needs_action": reasons(row, self._today(), self.reminders),
            "history": history,
            "notes": [e for e in history if e.get("type") == "note"],
            "timeline": state.timeline,
            "conflicts": state.conflicts,
            "attachments": self._attachments(case_id, doc, side, main),
        }
        return view

    def _attachments(self, case_id: str, doc: CrdtDocument, side: str, main: Mapping[str, Any]) -> list[dict[str, Any]]:
        accepted: set[str] = set()
        if side == ROLE_REQUESTED:
            profile = self._profile_of(self._country) or {}
            accepted = set(profile.get("languages") or [])
        out = []
        for att in sorted(
            doc.records(ATTACHMENTS).values(), key=lambda a: (str(a.get("added_at", "")), str(a.get("id")))
        ):
            item = {k: att.get(k) for k in (*ATTACHMENT_FIXED, *ATTACHMENT_EDITABLE, "translation_of")}
            item["available"] = isinstance(att.get("blob"), str) and self._blobs.has(att["blob"])
            language = att.get("language")
            # What the requested side can act on: a document in a language it accepts, or certified.
            item["actionable"] = att.get("translation") == "certified" or (
                not accepted or language in accepted or not language
            )
            out.append(item)
        return out

    def search(self, filters: CaseFilter) -> list[dict[str, Any]]:
        return [_listed(r) for r in self.index.search(filters, today=self._today(), reminders=self.reminders)]

    def needs_action(self) -> list[dict[str, Any]]:
        return [_listed(r) for r in self.index.needs_action(today=self._today(), reminders=self.reminders)]

    # -- the projection -------------------------------------------------------------------

    def _row(
        self, case_id: str, doc: CrdtDocument, roles: Mapping[str, str], state: workflow.CaseState
    ) -> dict[str, Any]:
        main = doc.record(*MAIN) or {}
        refs = doc.records(REFS)
        side = roles.get(self._me, ROLE_SHARED)
        requesting, requested = str(main.get("requesting", "")), str(main.get("requested", ""))
        counterpart = requested if side == ROLE_REQUESTING else requesting
        reminded = [
            str(e.get("at")) for e in doc.items(HISTORY) if e.get("type") == "reminder" and e.get("node") != self._me
        ]
        return {
            "case_id": case_id,
            "doc_id": case_doc(case_id),
            "kind": state.kind,
            "status": state.status,
            "side": side,
            "counterpart": counterpart,
            "requesting": requesting,
            "requested": requested,
            "requesting_country": main.get("requesting_country"),
            "requested_country": main.get("requested_country"),
            "reference": str(refs.get(self._me, {}).get("reference", "")),
            "counterpart_reference": str(refs.get(counterpart, {}).get("reference", "")),
            "urgency": main.get("urgency", "normal"),
            "requested_by": main.get("requested_by"),
            "created_at": main.get("created_at"),
            "sent_at": state.sent_at,
            "acknowledged_at": state.acknowledged_at,
            "closed_at": state.closed_at,
            "last_action_at": state.last_action_at,
            "status_changed_at": state.status_changed_at,
            "reminded_at": max(reminded) if reminded else None,
            "executed_at": _executed_at(state),
            "outcome": next((t["from"] for t in reversed(state.timeline) if t.get("to") == "closed"), None),
            "offences": list(main.get("offences") or []),
            "measures": list(main.get("measures") or []),
            "summary": str(main.get("summary", "")),
            "updated_at": self._clock(),
        }

    def reindex(self, db: sqlite_utils.Database, doc_id: str, doc: CrdtDocument) -> None:
        """The indexer `DocumentStore` calls inside the transaction that stored a change."""
        if not is_case(doc_id):
            return
        roles = self._keys.roles(doc_id)
        if not roles or doc.record(*MAIN) is None:
            return
        case_id = doc_id[len(CASE_PREFIX) :]
        try:
            state = self._state(doc_id, doc, roles)
        except HistoryInvalid:
            return  # not created yet (a partial catch-up); indexed once the creation arrives
        notes = [
            (str(e.get("id")), str(e.get("text", "")))
            for e in doc.items(HISTORY)
            if e.get("type") in ("note", "reminder")
        ]
        attachments = [
            {
                "attachment_id": str(a.get("id")),
                "blob_id": str(a.get("blob")),
                "sha256": a.get("sha256"),
                "name": a.get("name"),
                "media_type": a.get("media_type"),
                "size": a.get("size"),
                "language": a.get("language"),
                "translation": a.get("translation"),
                "added_by": a.get("added_by"),
                "added_at": a.get("added_at"),
                "have": isinstance(a.get("blob"), str) and self._blobs.has(str(a.get("blob"))),
            }
            for a in doc.records(ATTACHMENTS).values()
        ]
        self.index.upsert(db, self._row(case_id, doc, roles, state), notes=notes, attachments=attachments)

    def rebuild_index(self) -> int:
        """Re-project every case this node holds (after an upgrade, or if the projection was lost)."""
        count = 0
        for doc_id in self._keys.doc_ids():
            doc = self._store.get(doc_id)
            if doc is None:
                continue
            with self._db.write() as db:
                self.reindex(db, doc_id, doc)
            count += 1
        return count

    # -- writing --------------------------------------------------------------------------

    def _entry(self, doc: CrdtDocument, type_: str, actor: str, **fields: Any) -> dict[str, Any]:
        return case_history.make_entry(
            self._identity,
            prev=case_history.heads(doc.items(HISTORY)),
            type=type_,
            user=actor,
            at=self._clock(),
            **fields,
        )

    def create(self, body: Any, *, actor: str) -> dict[str, Any]:
        kind, counterpart, reference, fields = case_fields.new_case_fields(body)
        peer = self._peer_info(counterpart)
        if counterpart == self._me:
            raise ValidationError("a case is between two authorities", fields={"counterpart": "is this node"})
        if peer is None:
            raise PeerError("the counterpart is not a trusted peer of this node; add its card first")
        if peer.get("role") != "authority":
            raise ValidationError(
                "cases are shared between authorities only", fields={"counterpart": "is not an authority"}
            )
        case_id = new_case_id()
        doc_id = case_doc(case_id)
        self._keys.create(doc_id, {self._me: ROLE_REQUESTING, counterpart: ROLE_REQUESTED})
        now = self._clock()
        main = {
            **fields,
            "requesting": self._me,
            "requested": counterpart,
            "requesting_country": self._country,
            "requested_country": peer.get("country"),
            "requesting_name": self._name,
            "requested_name": peer.get("name"),
            "created_at": now,
            "created_by": actor,
        }
        created = case_history.make_entry(self._identity, prev=[], type="created", user=actor, at=now, kind=kind)

        def edit(change: DocumentChange) -> None:
            change.put_record(*MAIN, main)
            change.put_record(REFS, self._me, {"reference": reference})
            change.append(HISTORY, created)

        self._store.commit_local(doc_id, edit, actor=actor, action="case.create", subject=case_id)
        return self.get(case_id)

    def _side(self, roles: Mapping[str, str]) -> str:
        return roles.get(self._me, ROLE_SHARED)

    def update(self, case_id: str, body: Any, *, actor: str) -> dict[str, Any]:
        doc_id, doc, roles = self._doc(case_id)
        reference, fields = case_fields.patch_fields(body)
        side = self._side(roles)
        state = self._state(doc_id, doc, roles)
        main = doc.record(*MAIN) or {}
        changed = [k for k, v in fields.items() if main.get(k) != v]
        if changed:
            if side != ROLE_REQUESTING:
                raise Forbidden("only the requesting authority changes the request; add a note instead")
            if state.status in workflow.FINAL_STATUSES:
                raise Forbidden(f"a case in status {state.status!r} can no longer be changed")
        if reference is not None and side == ROLE_SHARED:
            raise Forbidden("a shared party keeps no reference on the case")
        entry = self._entry(doc, "edited", actor, fields=sorted(changed)) if changed else None

        def edit(change: DocumentChange) -> None:
            if changed:
                change.put_record(*MAIN, {k: fields[k] for k in changed})
                change.append(HISTORY, entry or {})
            if reference is not None:
                change.put_record(REFS, self._me, {"reference": reference})

        self._store.commit_local(doc_id, edit, actor=actor, action="case.update", subject=case_id)
        return self.get(case_id)

    def check(self, case_id: str) -> list[dict[str, str]]:
        doc_id, doc, roles = self._doc(case_id)
        main = doc.record(*MAIN) or {}
        case = {**main, "kind": self._state(doc_id, doc, roles).kind}
        profile = self._profile_of(str(main.get("requested_country", "")))
        return check_draft(case, profile, today=self._today())

    def transition(self, case_id: str, body: Any, *, actor: str) -> dict[str, Any]:
        data = case_fields.check_object(body)
        to = data.get("to")
        errors: dict[str, str] = {}
        reason = case_fields.clean_text("reason", data.get("reason"), errors, limit=case_fields.MAX_NOTE)
        force = data.get("force", False)
        if not isinstance(to, str) or to not in workflow.STATUSES:
            errors["to"] = f"must be one of: {', '.join(workflow.STATUSES)}"
        if not isinstance(force, bool):
            errors["force"] = "must be true or false"
        if errors:
            raise ValidationError("the transition is invalid", fields=errors)
        assert isinstance(to, str) and reason is not None
        doc_id, doc, roles = self._doc(case_id)
        state = self._state(doc_id, doc, roles)
        workflow.check_transition(state.kind, state.status, to, self._side(roles))
        if to == "sent":
            problems = blocking(self.check(case_id))
            if problems and not force:
                raise CheckFailed(problems)
            if problems and not reason:
                raise ValidationError("say why the draft is sent despite the check", fields={"reason": "is required"})
        entry = self._entry(doc, "transition", actor, **{"from": state.status, "to": to, "reason": reason})
        self._store.commit_local(
            doc_id, lambda c: c.append(HISTORY, entry), actor=actor, action="case.transition", subject=f"{case_id} {to}"
        )
        return self.get(case_id)

    def add_note(self, case_id: str, body: Any, *, actor: str, kind: str = "note") -> dict[str, Any]:
        text = case_fields.note_text(body)
        doc_id, doc, roles = self._doc(case_id)
        if kind == "reminder":
            state = self._state(doc_id, doc, roles)
            if state.status in workflow.FINAL_STATUSES or state.status == "draft":
                raise Forbidden("a reminder is for a request that is sent and not yet finished")
        entry = self._entry(doc, kind, actor, text=text)
        self._store.commit_local(
            doc_id, lambda c: c.append(HISTORY, entry), actor=actor, action=f"case.{kind}", subject=case_id
        )
        return entry

    def remind(self, case_id: str, body: Any, *, actor: str) -> dict[str, Any]:
        data = case_fields.check_object(body) if body is not None else {}
        text = data.get("text") or "Reminder: we are awaiting your action on this request."
        return self.add_note(case_id, {"text": text}, actor=actor, kind="reminder")

    def convert(self, case_id: str, body: Any, *, actor: str) -> dict[str, Any]:
        data = case_fields.check_object(body)
        to_kind = data.get("kind")
        doc_id, doc, roles = self._doc(case_id)
        state = self._state(doc_id, doc, roles)
        if not isinstance(to_kind, str):
            raise ValidationError("say which kind of request it becomes", fields={"kind": "is required"})
        workflow.check_conversion(state.kind, state.status, self._side(roles), to_kind)
        entry = self._entry(doc, "converted", actor, from_kind=state.kind, to_kind=to_kind)
        self._store.commit_local(
            doc_id, lambda c: c.append(HISTORY, entry), actor=actor, action="case.convert", subject=case_id
        )
        return self.get(case_id)

    def share(self, case_id: str, body: Any, *, actor: str) -> dict[str, Any]:
        data = case_fields.check_object(body)
        node_id = data.get("node_id")
        doc_id, doc, roles = self._doc(case_id)
        if self._side(roles) == ROLE_SHARED:
            raise Forbidden("only the requesting or requested authority shares a case")
        peer = self._peer_info(node_id) if isinstance(node_id, str) else None
        if peer is None:
            raise PeerError("share with a trusted peer: give its node ID")
        if peer.get("role") != "authority":
            raise Forbidden("a case is shared with authorities only; the secretariat receives statistics, never cases")
        assert isinstance(node_id, str)
        if node_id in roles:
            return self.get(case_id)
        self._keys.share(doc_id, node_id)
        entry = self._entry(doc, "shared", actor, **{"with": node_id})
        self._store.commit_local(
            doc_id, lambda c: c.append(HISTORY, entry), actor=actor, action="case.share", subject=case_id
        )
        self.on_shared(doc_id, [p for p in self._keys.roles(doc_id) if p != self._me])
        return self.get(case_id)

    def verify(self, case_id: str) -> dict[str, Any]:
        _, doc, roles = self._doc(case_id)
        report = case_history.verify_chain(doc.items(HISTORY), self._key_of).as_json()
        foreign = [e.get("id") for e in doc.items(HISTORY) if e.get("node") not in roles]
        if foreign:
            report["ok"] = False
            report["problems"] = [
                *report["problems"],
                *({"entry": str(i), "problem": "written by a node that is not a party"} for i in foreign),
            ]
        return report

    # -- attachments ----------------------------------------------------------------------

    def add_attachment(
        self, case_id: str, *, name: Any, media_type: str, data: bytes, meta: Mapping[str, Any], actor: str
    ) -> dict[str, Any]:
        filename = case_fields.attachment_name(name)
        media_type = (media_type or "application/octet-stream").split(";")[0].strip().lower()
        if not media_type.startswith(MEDIA_TYPES):
            raise ValidationError(
                "attach PDF, images, office documents, text, audio or video only",
                fields={"media_type": f"{media_type} is not accepted"},
            )
        if not data:
            raise ValidationError("the file is empty", fields={"file": "is empty"})
        if len(data) > self.max_attachment:
            raise AttachmentRefused(f"the file is larger than {self.max_attachment // (1024 * 1024)} MB")
        extra = case_fields.translation_fields(meta)
        translation_of = meta.get("translation_of")
        doc_id, doc, _ = self._doc(case_id)
        if translation_of is not None and translation_of not in doc.records(ATTACHMENTS):
            raise ValidationError("no such attachment to translate", fields={"translation_of": "unknown"})
        cipher = self._keys.cipher(doc_id)
        assert cipher is not None
        attachment_id = new_case_id()
        blob = self._blobs.put(cipher.seal_blob(data, attachment_id=attachment_id))
        record = {
            "id": attachment_id,
            "name": filename,
            "media_type": media_type,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "blob": blob,
            "added_by": self._me,
            "added_at": self._clock(),
            "language": extra.get("language", ""),
            "translation": extra.get("translation", "not_needed"),
        }
        if translation_of:
            record["translation_of"] = translation_of
        entry = self._entry(doc, "attachment", actor, attachment=attachment_id, name=filename, sha256=record["sha256"])

        def edit(change: DocumentChange) -> None:
            change.put_record(ATTACHMENTS, attachment_id, record)
            change.append(HISTORY, entry)

        self._store.commit_local(doc_id, edit, actor=actor, action="case.attach", subject=case_id)
        return self._attachment_view(case_id, attachment_id)

    def update_attachment(self, case_id: str, attachment_id: str, body: Any, *, actor: str) -> dict[str, Any]:
        changes = case_fields.translation_fields(case_fields.check_object(body))
        doc_id, doc, _ = self._doc(case_id)
        if attachment_id not in doc.records(ATTACHMENTS):
            raise NotFound("no such attachment on this case")
        if changes:
            self._store.commit_local(
                doc_id,
                lambda c: c.put_record(ATTACHMENTS, attachment_id, changes),
                actor=actor,
                action="case.attachment",
                subject=case_id,
            )
        return self._attachment_view(case_id, attachment_id)

    def _attachment_view(self, case_id: str, attachment_id: str) -> dict[str, Any]:
        """One attachment as the case lists it (with `available` and `actionable`)."""
        _, doc, roles = self._doc(case_id)
        items = self._attachments(case_id, doc, self._side(roles), doc.record(*MAIN) or {})
        return next(item for item in items if item["id"] == attachment_id)

    def read_attachment(self, case_id: str, attachment_id: str) -> tuple[dict[str, Any], bytes]:
        doc_id, doc, _ = self._doc(case_id)
        att = doc.records(ATTACHMENTS).get(attachment_id)
        if att is None:
            raise NotFound("no such attachment on this case")
        blob = att.get("blob")
        if not isinstance(blob, str) or not self._blobs.has(blob):
            raise NotFound("the file has not arrived from the counterpart yet; it is fetched automatically")
        return dict(att), self.open_blob(doc_id, att, self._blobs.read(blob))

    def open_blob(self, doc_id: str, att: Mapping[str, Any], data: bytes) -> bytes:
        """Decrypt an attachment and check it is the file its author described (SHA-256)."""
        cipher = self._keys.cipher(doc_id)
        if cipher is None:
            raise NotFound("no such case on this node")
        plain = cipher.open_blob(data, attachment_id=str(att.get("id")))
        if hashlib.sha256(plain).hexdigest() != att.get("sha256"):
            raise case_history.HistoryInvalid("the attachment does not match its recorded SHA-256")
        return plain

    def blob_owner(self, blob_id: str) -> tuple[str, dict[str, Any]] | None:
        """(doc id, attachment metadata) of the case attachment stored as this blob, if any."""
        rows = self._db.query(
            "SELECT c.doc_id, a.attachment_id FROM case_attachments a JOIN cases c ON c.case_id = a.case_id "
            "WHERE a.blob_id = ? LIMIT 1",
            (blob_id,),
        )
        if not rows:
            return None
        doc = self._store.get(rows[0]["doc_id"])
        att = doc.records(ATTACHMENTS).get(rows[0]["attachment_id"]) if doc else None
        return (rows[0]["doc_id"], dict(att)) if att else None

    # -- checking a peer's update ---------------------------------------------------------

    def check_remote(self, doc_id: str, author: str, before: DocView, after: DocView) -> None:
        """Refuse a peer's change to a case unless its author may make it (see the module docstring)."""
        if not is_case(doc_id):
            return
        try:
            self._check_remote(doc_id, author, before, after)
        except IllegalTransition as exc:
            raise UpdateRejected("illegal_transition", exc.message) from exc
        except HistoryInvalid as exc:
            raise UpdateRejected("bad_history", exc.message) from exc

    def _check_remote(self, doc_id: str, author: str, before: DocView, after: DocView) -> None:
        roles = self._keys.roles(doc_id)
        side = roles.get(author)
        if side is None:
            raise UpdateRejected("not_permitted", "case changed by a node that is not a party")
        old_main, new_main = before.record(*MAIN), after.record(*MAIN)
        if new_main is None:
            if old_main is not None:
                raise UpdateRejected("not_permitted", "a case record cannot be deleted")
        elif old_main is None:
            if side != ROLE_REQUESTING:
                raise UpdateRejected("not_permitted", "only the requesting authority creates a case")
            if new_main.get("requesting") != author or roles.get(str(new_main.get("requested"))) != ROLE_REQUESTED:
                raise UpdateRejected("not_permitted", "the case names other parties than its key grant")
        else:
            if any(old_main.get(f) != new_main.get(f) for f in FIXED_FIELDS) or set(old_main) - set(new_main):
                raise UpdateRejected("not_permitted", "the parties of a case cannot be changed")
            if side != ROLE_REQUESTING and any(old_main.get(f) != new_main.get(f) for f in new_main):
                raise UpdateRejected("not_permitted", "only the requesting authority changes the request")
        old_refs, new_refs = before.records(REFS), after.records(REFS)
        for node in set(old_refs) | set(new_refs):
            if old_refs.get(node) != new_refs.get(node) and node != author:
                raise UpdateRejected("not_permitted", "each side writes only its own reference")
        old_att, new_att = before.records(ATTACHMENTS), after.records(ATTACHMENTS)
        if set(old_att) - set(new_att):
            raise UpdateRejected("not_permitted", "attachments cannot be removed")
        for att_id, att in new_att.items():
            previous = old_att.get(att_id)
            if previous is None:
                if att.get("added_by") != author or att.get("id") != att_id:
                    raise UpdateRejected("not_permitted", "attachment attributed to another node")
                _check_attachment(att)
            elif any(previous.get(f) != att.get(f) for f in ATTACHMENT_FIXED):
                raise UpdateRejected("not_permitted", "an attachment's file cannot be replaced")
        old_history, new_history = before.items(HISTORY), after.items(HISTORY)
        new_by_id: dict[str, dict[str, Any]] = {}
        for item in new_history:
            if str(item.get("id")) in new_by_id:
                raise UpdateRejected("bad_history", "an entry appears twice in the history")
            new_by_id[str(item.get("id"))] = item
        for item in old_history:
            if new_by_id.get(str(item.get("id"))) != item:
                raise UpdateRejected("bad_history", "the history of a case only grows: an entry was changed or removed")
        old_ids = {str(e.get("id")) for e in old_history}
        added = [e for e in new_history if str(e.get("id")) not in old_ids]
        if not added and new_main is not None and old_main is None:
            raise UpdateRejected("bad_history", "a case arrives with its creation entry")
        key = self._key_of(author)
        if key is None:
            raise UpdateRejected("untrusted_sender", "case changed by an untrusted node")
        for entry in added:
            case_history.verify_entry(entry, key)
        if added:
            ids = [str(e["id"]) for e in added]
            workflow.check_new_entries(new_history, ids, _sides(roles), author, verified=True)
