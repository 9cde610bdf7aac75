"""The case endpoints' part of the OpenAPI document (`node.api_cases`), merged by `node.openapi`.

Kept beside the case feature, like `node.api_profiles`' paths, so a change to a case route and to
its description is one review. Field lists come from the modules that check them
(`node.case_fields`, `node.vocab`, `node.workflow`), so the document cannot drift from the rules.
"""

from __future__ import annotations

from typing import Any, Final

from node import vocab
from node.case_fields import MAX_NAME, MAX_NOTE, REQUEST_FIELDS, TEXT_LIMITS
from node.case_history import ENTRY_TYPES
from node.export import DOCX_MEDIA_TYPE
from node.openapi_parts import ERROR, _errors, _json
from node.workflow import CONVERSION_TARGETS, STATUSES

_SECURED: Final[list[dict[str, list[str]]]] = [{"bearer": []}]
_NULLABLE_TIME: Final = {"type": ["string", "null"], "format": "date-time"}
_STRINGS: Final = {"type": "array", "items": {"type": "string"}}
_LANGUAGE: Final = {"type": "string", "pattern": "^[a-z]{2,3}$", "description": "ISO 639 code"}
_BINARY: Final = {"type": "string", "contentMediaType": "application/octet-stream"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _case_errors(*codes: int, conflict: str = "", too_large: str = "") -> dict[str, Any]:
    """`node.openapi._errors`, plus the case feature's 409 and 413 with what they mean on that route."""
    out = _errors(*(c for c in codes if c not in (409, 413)))
    if 409 in codes:
        out["409"] = _json(ERROR, conflict)
    if 413 in codes:
        out["413"] = _json(ERROR, too_large)
    return dict(sorted(out.items()))


def _body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _codes(table: dict[str, str]) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string", "enum": list(table)}, "uniqueItems": True}


def _request_properties() -> dict[str, Any]:
    """The request fields (`case_fields.REQUEST_FIELDS`), as a case shows them and as they are written."""
    props: dict[str, Any] = {
        "summary": {"type": "string", "maxLength": TEXT_LIMITS["summary"], "description": "summary of the facts"},
        "offences": _codes(vocab.OFFENCES),
        "measures": _codes(vocab.MEASURES),
        "legal_basis": _codes(vocab.LEGAL_BASES),
        "treaty": {"type": "string", "maxLength": TEXT_LIMITS["treaty"], "description": "a bilateral treaty's name"},
        "urgency": {"type": "string", "enum": list(vocab.URGENCY)},
        "urgency_reason": {"type": "string", "maxLength": TEXT_LIMITS["urgency_reason"]},
        "requested_by": {
            "type": ["string", "null"],
            "format": "date",
            "description": "date by which execution is requested (YYYY-MM-DD)",
        },
        "languages": {"type": "array", "maxItems": 50, "items": _LANGUAGE, "description": "languages of the request"},
        "translation": {"type": "string", "enum": list(vocab.TRANSLATION_STATUS)},
        "provided": {
            "type": "array",
            "maxItems": 50,
            "items": {"type": "string", "pattern": "^[a-z0-9_]{1,60}$"},
            "description": "content items the request contains (see vocab.CONTENT_ITEMS)",
        },
    }
    assert tuple(props) == REQUEST_FIELDS
    return props


_REFERENCE: Final = {
    "type": "string",
    "maxLength": TEXT_LIMITS["reference"],
    "description": "this authority's own reference number (single line)",
}
_PARTY: Final = {
    "type": "object",
    "properties": {
        "node_id": {"type": "string"},
        "country": {"type": ["string", "null"]},
        "name": {"type": ["string", "null"]},
    },
    "required": ["node_id"],
}
_AGEING: Final = {
    "type": "object",
    "properties": {
        "days_since_sent": {"type": ["integer", "null"]},
        "days_since_last_action": {"type": ["integer", "null"]},
        "overdue": {"type": "boolean"},
        "days_overdue": {"type": ["integer", "null"]},
        "days_left": {"type": ["integer", "null"]},
    },
}
_NEEDS_ACTION: Final = {
    "type": "array",
    "items": {
        "type": "string",
        "enum": [
            "awaiting_my_acknowledgement",
            "overdue",
            "due_soon",
            "urgent",
            "no_acknowledgement",
            "reminder_received",
        ],
    },
    "description": "why the case needs this node's action today (empty: it does not)",
}
_SIDE: Final = {"type": "string", "enum": ["requesting", "requested", "shared"], "description": "this node's side"}
_STATUS: Final = {"type": "string", "enum": list(STATUSES)}
_KIND: Final = {"type": "string", "enum": list(vocab.CASE_KINDS)}


def _case_schema() -> dict[str, Any]:
    props: dict[str, Any] = {
        "id": {"type": "string"},
        "kind": _KIND,
        "status": _STATUS,
        "side": _SIDE,
        "counterpart": {"type": "string", "description": "node ID of the other authority"},
        "reference": _REFERENCE,
        "references": {
            "type": "object",
            "properties": {"requesting": {"type": "string"}, "requested": {"type": "string"}},
            "description": "each side's own reference number",
        },
        "requesting": _PARTY,
        "requested": _PARTY,
        "parties": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "node ID -> role (requesting, requested, shared)",
        },
        **_request_properties(),
        "created_at": {"type": "string", "format": "date-time"},
        "created_by": {"type": "string"},
        "sent_at": _NULLABLE_TIME,
        "acknowledged_at": _NULLABLE_TIME,
        "closed_at": _NULLABLE_TIME,
        "last_action_at": _NULLABLE_TIME,
        "status_changed_at": _NULLABLE_TIME,
        "next_steps": {
            "type": "array",
            "items": _STATUS,
            "description": "the statuses this node may move the case to now",
        },
        "ageing": _AGEING,
        "needs_action": _NEEDS_ACTION,
        "history": {"type": "array", "items": _ref("HistoryEntry"), "description": "oldest first"},
        "notes": {"type": "array", "items": _ref("HistoryEntry"), "description": "the history's notes"},
        "timeline": {
            "type": "array",
            "items": {"type": "object"},
            "description": "the status changes and conversions that applied, in causal order",
        },
        "conflicts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "reason": {"type": "string"}},
            },
            "description": "history entries that did not apply (usually a concurrent change came first)",
        },
        "attachments": {"type": "array", "items": _ref("Attachment")},
    }
    return {"type": "object", "properties": props, "required": list(props)}


def _list_item_schema() -> dict[str, Any]:
    props: dict[str, Any] = {
        "id": {"type": "string"},
        "kind": _KIND,
        "status": _STATUS,
        "side": _SIDE,
        "counterpart": {"type": "string"},
        "requesting": {"type": "string", "description": "node ID"},
        "requested": {"type": "string", "description": "node ID"},
        "requesting_country": {"type": ["string", "null"]},
        "requested_country": {"type": ["string", "null"]},
        "reference": {"type": "string"},
        "counterpart_reference": {"type": "string"},
        "urgency": {"type": "string", "enum": list(vocab.URGENCY)},
        "requested_by": {"type": ["string", "null"], "format": "date"},
        "created_at": _NULLABLE_TIME,
        "sent_at": _NULLABLE_TIME,
        "acknowledged_at": _NULLABLE_TIME,
        "closed_at": _NULLABLE_TIME,
        "last_action_at": _NULLABLE_TIME,
        "status_changed_at": _NULLABLE_TIME,
        "reminded_at": _NULLABLE_TIME,
        "offences": _STRINGS,
        "measures": _STRINGS,
        "summary": {"type": "string"},
        "needs_action": _NEEDS_ACTION,
        "ageing": _AGEING,
    }
    return {"type": "object", "properties": props, "required": list(props)}


def _attachment_schema() -> dict[str, Any]:
    props: dict[str, Any] = {
        "id": {"type": "string"},
        "name": {"type": "string", "maxLength": MAX_NAME},
        "media_type": {"type": "string"},
        "size": {"type": "integer", "minimum": 1},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "of the plain file"},
        "blob": {"type": "string", "description": "id of the encrypted blob"},
        "added_by": {"type": "string", "description": "node ID"},
        "added_at": {"type": "string", "format": "date-time"},
        "language": {"type": "string", "description": "ISO 639 code, or empty if not said"},
        "translation": {"type": "string", "enum": list(vocab.TRANSLATION_STATUS)},
        "translation_of": {"type": ["string", "null"], "description": "id of the attachment this translates"},
        "available": {"type": "boolean", "description": "the file is stored on this node (else it is on its way)"},
        "actionable": {
            "type": "boolean",
            "description": "for the requested side: in a language it accepts, or a certified translation",
        },
    }
    return {
        "type": "object",
        "properties": props,
        "required": ["id", "name", "media_type", "size", "sha256", "added_by", "added_at"],
    }


def _history_entry_schema() -> dict[str, Any]:
    specific = sorted({name for fields in ENTRY_TYPES.values() for name in fields})
    props: dict[str, Any] = {
        "id": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "SHA-256 of the signed content"},
        "prev": {"type": "array", "items": {"type": "string"}, "description": "ids of the entries it follows"},
        "type": {"type": "string", "enum": list(ENTRY_TYPES)},
        "node": {"type": "string", "description": "node ID of the author"},
        "user": {"type": "string"},
        "at": {"type": "string", "format": "date-time"},
        "sig": {"type": "string", "description": "Ed25519 signature of the author's node (base64url)"},
    }
    for name in specific:
        props[name] = _STRINGS if name == "fields" else {"type": "string"}
    return {
        "type": "object",
        "properties": props,
        "required": ["id", "prev", "type", "node", "user", "at", "sig"],
        "description": "One signed entry of the case's tamper-evident history; the fields after `sig` depend "
        "on `type` (created: kind; transition: from, to, reason; note and reminder: text; converted: "
        "from_kind, to_kind; attachment: attachment, name, sha256; edited: fields; shared: with).",
    }


OPENAPI_SCHEMAS: Final[dict[str, Any]] = {
    "Case": _case_schema(),
    "CaseListItem": _list_item_schema(),
    "CaseInput": {
        "type": "object",
        "properties": {
            "kind": _KIND,
            "counterpart": {"type": "string", "description": "node ID of the requested authority (a trusted peer)"},
            "reference": _REFERENCE,
            **_request_properties(),
        },
        "required": ["kind", "counterpart"],
        "additionalProperties": False,
    },
    "CasePatch": {
        "type": "object",
        "properties": {"reference": _REFERENCE, **_request_properties()},
        "additionalProperties": False,
        "description": "Only the fields given change. Either side sets its own reference; only the requesting "
        "side changes the request, and not once the case is executed, refused, withdrawn or closed.",
    },
    "Transition": {
        "type": "object",
        "properties": {
            "to": _STATUS,
            "reason": {"type": "string", "maxLength": MAX_NOTE},
            "force": {
                "type": "boolean",
                "default": False,
                "description": "send a draft despite the draft check's errors (needs a reason)",
            },
        },
        "required": ["to"],
    },
    "Note": {
        "type": "object",
        "properties": {"text": {"type": "string", "minLength": 1, "maxLength": MAX_NOTE}},
        "required": ["text"],
    },
    "HistoryEntry": _history_entry_schema(),
    "Attachment": _attachment_schema(),
    "CheckResult": {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean", "description": "no problem is an error, so the draft may be sent"},
            "problems": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string"},
                        "severity": {"type": "string", "enum": ["error", "warning"]},
                        "field": {"type": "string"},
                        "message": {"type": "string"},
                        "measure": {"type": "string"},
                        "item": {"type": "string"},
                    },
                    "required": ["code", "severity", "field", "message"],
                },
            },
        },
        "required": ["ok", "problems"],
    },
    "VerifyReport": {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "entries": {"type": "integer"},
            "heads": _STRINGS,
            "problems": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"entry": {"type": "string"}, "problem": {"type": "string"}},
                },
            },
        },
        "required": ["ok", "entries", "heads", "problems"],
    },
}

_CASE: Final = _ref("Case")
_ATTACHMENT: Final = _ref("Attachment")
_CASE_ID: Final = {"name": "case_id", "in": "path", "required": True, "schema": {"type": "string"}}
_ATTACHMENT_ID: Final = {"name": "attachment_id", "in": "path", "required": True, "schema": {"type": "string"}}
_BOOL_QUERY: Final = {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no"]}
_ILLEGAL: Final = "The workflow does not allow that (IllegalTransition; `error` says what is possible instead)"
_META_FIELDS: Final = {
    "language": _LANGUAGE,
    "translation": {"type": "string", "enum": list(vocab.TRANSLATION_STATUS)},
    "translation_of": {"type": "string", "description": "id of the attachment this file translates"},
}


def _post(summary: str, body: dict[str, Any] | None, ok: dict[str, Any], errors: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "security": _SECURED}
    if body is not None:
        op["requestBody"] = body
    op["responses"] = {**ok, **errors}
    return op


OPENAPI_PATHS: Final[dict[str, Any]] = {
    "/api/v1/vocabulary": {
        "get": {
            "summary": "The codes cases use (kinds, statuses, offences, measures, ...) and the workflow table",
            "security": _SECURED,
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "kinds": {"type": "object"},
                            "statuses": _STRINGS,
                            "offences": {"type": "object"},
                            "measures": {"type": "object"},
                            "legal_bases": {"type": "object"},
                            "urgency": {"type": "object"},
                            "translation": {"type": "object"},
                            "content_items": {"type": "object"},
                            "languages": {"type": "object"},
                            "workflow": {"type": "string", "description": "the transition table (reStructuredText)"},
                        },
                    },
                    "Code -> label tables",
                ),
                **_errors(401),
            },
        }
    },
    "/api/v1/cases": {
        "get": {
            "summary": "Cases this node is party to: urgent first, then most recently acted on",
            "security": _SECURED,
            "parameters": [
                {"name": "status", "in": "query", "schema": _STATUS},
                {"name": "kind", "in": "query", "schema": _KIND},
                {"name": "counterpart", "in": "query", "schema": {"type": "string"}, "description": "node ID"},
                {"name": "overdue", "in": "query", "schema": _BOOL_QUERY},
                {"name": "needs_action", "in": "query", "schema": _BOOL_QUERY},
                {
                    "name": "q",
                    "in": "query",
                    "schema": {"type": "string", "maxLength": 200},
                    "description": "text in references, summary, notes or file names (every word must match)",
                },
                {
                    "name": "officer",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "user name of the officer responsible at this node",
                },
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 1000}},
                {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
            ],
            "responses": {
                "200": _json({"type": "array", "items": _ref("CaseListItem")}, "One page of cases"),
                **_errors(401, 422),
            },
        },
        "post": _post(
            "Create a draft request to a trusted authority (this node is the requesting side)",
            _body(_ref("CaseInput")),
            {"201": _json(_CASE, "The new case, in status draft")},
            _errors(400, 401, 422),
        ),
    },
    "/api/v1/cases/{case_id}": {
        "parameters": [_CASE_ID],
        "get": {
            "summary": "One case with its history, notes and attachments",
            "security": _SECURED,
            "responses": {"200": _json(_CASE, "Case"), **_errors(401, 404)},
        },
        "patch": {
            "summary": "Change request fields (requesting side) or this side's own reference",
            "security": _SECURED,
            "requestBody": _body(_ref("CasePatch")),
            "responses": {"200": _json(_CASE, "Updated case"), **_errors(400, 401, 403, 404, 422)},
        },
    },
    "/api/v1/cases/{case_id}/transitions": {
        "parameters": [_CASE_ID],
        "post": _post(
            "Move the case to another status (sending a draft runs the draft check first)",
            _body(_ref("Transition")),
            {"200": _json(_CASE, "Updated case")},
            _case_errors(
                400,
                401,
                404,
                409,
                422,
                conflict=_ILLEGAL + ", or the draft check found errors (CheckFailed; `error` lists them; "
                "send again with force and a reason to override)",
            ),
        ),
    },
    "/api/v1/cases/{case_id}/notes": {
        "parameters": [_CASE_ID],
        "post": _post(
            "Add a note to the case's history",
            _body(_ref("Note")),
            {"201": _json(_ref("HistoryEntry"), "The signed note entry")},
            _errors(400, 401, 404, 422),
        ),
    },
    "/api/v1/cases/{case_id}/reminders": {
        "parameters": [_CASE_ID],
        "post": _post(
            "Remind the other side that action is awaited (only once sent and until finished)",
            _body(_ref("Note"), required=False),
            {"201": _json(_ref("HistoryEntry"), "The signed reminder entry")},
            _errors(400, 401, 403, 404, 422),
        ),
    },
    "/api/v1/cases/{case_id}/convert": {
        "parameters": [_CASE_ID],
        "post": _post(
            "Turn a consultation into a formal request: the kind changes, the status returns to draft",
            _body(
                {
                    "type": "object",
                    "properties": {"kind": {"type": "string", "enum": list(CONVERSION_TARGETS)}},
                    "required": ["kind"],
                }
            ),
            {"200": _json(_CASE, "Converted case")},
            _case_errors(400, 401, 404, 409, 422, conflict=_ILLEGAL),
        ),
    },
    "/api/v1/cases/{case_id}/share": {
        "parameters": [_CASE_ID],
        "post": _post(
            "Share the case with a third authority (it may add notes and reminders only)",
            _body(
                {
                    "type": "object",
                    "properties": {"node_id": {"type": "string", "description": "a trusted peer's node ID"}},
                    "required": ["node_id"],
                }
            ),
            {"200": _json(_CASE, "Case, now shared")},
            _errors(400, 401, 403, 404, 422),
        ),
    },
    "/api/v1/cases/{case_id}/check": {
        "parameters": [_CASE_ID],
        "post": _post(
            "Run the draft check against the requested country's published profile",
            None,
            {"200": _json(_ref("CheckResult"), "Every problem found (errors block sending)")},
            _errors(401, 404),
        ),
    },
    "/api/v1/cases/{case_id}/verify": {
        "parameters": [_CASE_ID],
        "get": {
            "summary": "Check the case history's hashes and signatures",
            "security": _SECURED,
            "responses": {
                "200": _json(_ref("VerifyReport"), "Report (ok false lists each problem)"),
                **_errors(401, 404),
            },
        },
    },
    "/api/v1/cases/{case_id}/export": {
        "parameters": [_CASE_ID],
        "get": {
            "summary": "The case as a formal request document (DOCX)",
            "security": _SECURED,
            "responses": {
                "200": {
                    "description": "The document, as an attachment download",
                    "content": {DOCX_MEDIA_TYPE: {"schema": _BINARY}},
                },
                **_errors(401, 404),
            },
        },
    },
    "/api/v1/cases/{case_id}/attachments": {
        "parameters": [_CASE_ID],
        "get": {
            "summary": "The case's attachments (metadata)",
            "security": _SECURED,
            "responses": {"200": _json({"type": "array", "items": _ATTACHMENT}, "Attachments"), **_errors(401, 404)},
        },
        "post": {
            "summary": "Attach a file: a multipart form, or the raw file as the body with ?name=",
            "security": _SECURED,
            "parameters": [
                {
                    "name": "name",
                    "in": "query",
                    "schema": {"type": "string", "maxLength": MAX_NAME},
                    "description": "file name, for a raw body (required then)",
                },
                *(
                    {"name": n, "in": "query", "schema": s, "description": "for a raw body"}
                    for n, s in _META_FIELDS.items()
                ),
            ],
            "requestBody": {
                "required": True,
                "description": "PDF, images, office documents, text, audio or video; executables are refused",
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "file": {"type": "string", "contentMediaType": "application/octet-stream"},
                                **_META_FIELDS,
                            },
                            "required": ["file"],
                        },
                    },
                    "*/*": {"schema": _BINARY},
                },
            },
            "responses": {
                "201": _json(_ATTACHMENT, "Stored attachment"),
                **_case_errors(
                    400,
                    401,
                    404,
                    413,
                    422,
                    too_large="The file is larger than this node accepts (max_attachment)",
                ),
            },
        },
    },
    "/api/v1/cases/{case_id}/attachments/{attachment_id}": {
        "parameters": [_CASE_ID, _ATTACHMENT_ID],
        "get": {
            "summary": "Download an attachment (decrypted, checked against its recorded SHA-256)",
            "security": _SECURED,
            "responses": {
                "200": {
                    "description": "The file's bytes, with its own media type",
                    "headers": {
                        "X-Content-SHA256": {"schema": {"type": "string"}, "description": "SHA-256 of the file"},
                        "Content-Disposition": {"schema": {"type": "string"}},
                    },
                    "content": {"*/*": {"schema": _BINARY}},
                },
                **_errors(401, 404, 422),
            },
        },
        "patch": {
            "summary": "Change an attachment's language or translation status",
            "security": _SECURED,
            "requestBody": _body(
                {
                    "type": "object",
                    "properties": {"language": _LANGUAGE, "translation": _META_FIELDS["translation"]},
                }
            ),
            "responses": {"200": _json(_ATTACHMENT, "Updated attachment"), **_errors(400, 401, 404, 422)},
        },
    },
}
