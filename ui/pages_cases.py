"""The case pages: the filtered list, one case with its timeline, and what an officer does on it
(change its status, add a note, attach a file, download one).

Handlers only turn forms into `node.cases` calls, as the JSON API does, so the rules and their messages
are the same everywhere. A refused action re-draws the case page with the reason next to the form that
was used (and the status the API would answer); a successful one redirects, so reloading never repeats it.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

from aiohttp import BodyPartReader, hdrs, web

from node.case_index import CaseFilter
from node.cases import AttachmentRefused
from node.errors import CheckFailed, NodeError, ValidationError
from node.http import attachment_response
from node.officers import officers_of
from node.runtime import NODE_KEY, Node
from node.vocab import CASE_KINDS, LANGUAGES, TRANSLATION_STATUS
from node.workflow import STATUSES
from ui.csrf import FIELD, FormExpired, check_token, streamed
from ui.labels import HISTORY
from ui.parties import party, who
from ui.render import done, page
from ui.sessions import actor, require_session

CHUNK: Final = 256 * 1024
PAGE_SIZE: Final = 100


def listed(node: Node, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Case rows with the counterpart's name and country, as the tables show them."""
    return [{**row, "party": party(node, row.get("counterpart"))} for row in rows]


async def case_list(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    query = request.query
    status = query.get("status") if query.get("status") in STATUSES else None
    kind = query.get("kind") if query.get("kind") in CASE_KINDS else None
    needs_action = query.get("needs_action") == "1"
    mine = query.get("mine") == "1"
    q = (query.get("q") or "").strip()[:200]
    filters = CaseFilter(
        status=status,
        kind=kind,
        needs_action=True if needs_action else None,
        q=q or None,
        officer=require_session(request).username if mine else None,
        limit=PAGE_SIZE,
    )
    cases = listed(node, node.cases.search(filters))
    return page(
        request,
        "cases.html",
        {
            "cases": cases,
            "filters": {
                "status": status or "",
                "kind": kind or "",
                "needs_action": needs_action,
                "mine": mine,
                "q": q,
            },
            "statuses": STATUSES,
            "kinds": CASE_KINDS,
            "filtered": bool(status or kind or needs_action or mine or q),
            "page_size": PAGE_SIZE,
        },
    )


def _timeline(node: Node, case: dict[str, Any]) -> list[dict[str, Any]]:
    entries = []
    for entry in case["history"]:
        kind = str(entry.get("type", ""))
        entries.append(
            {
                "type": kind if kind in HISTORY else "other",
                "raw_type": kind,
                "at": entry.get("at"),
                "who": who(node, entry.get("user"), entry.get("node")),
                "text": entry.get("text") if isinstance(entry.get("text"), str) else "",
                "from": entry.get("from"),
                "to": entry.get("to"),
                "reason": entry.get("reason") if isinstance(entry.get("reason"), str) else "",
                "name": entry.get("name") if isinstance(entry.get("name"), str) else "",
                "fields": entry.get("fields") if isinstance(entry.get("fields"), list) else [],
                "to_kind": entry.get("to_kind"),
                "with": party(node, entry.get("with"))["name"] if entry.get("with") else "",
            }
        )
    return list(reversed(entries))  # newest first: what happened last is what the officer looks for


def case_page(request: web.Request, case_id: str, *, status: int = 200, **extra: Any) -> web.Response:
    """The case page; `extra` carries a refused action's message and the officer's input to show again."""
    node = request.app[NODE_KEY]
    case = node.cases.get(case_id)
    draft_check = None
    if case["status"] == "draft" and case["side"] == "requesting":
        draft_check = node.cases.check(case_id)
    blocking = [p for p in draft_check or [] if p.get("severity") == "error"]
    officers = officers_of(node)
    officer = officers.of_case(case_id)
    me = require_session(request)
    context = {
        "officer": officer,
        # Who may pass the case on: an admin, its officer, or anyone while nobody holds it (`node.officers`).
        "may_assign": me.role == "admin" or officer is None or officer["username"] == me.username,
        "assignable": [u for u in node.accounts.list() if not u.disabled],
        "officer_error": None,
        "case": case,
        "requesting": party(node, case["requesting"]["node_id"]),
        "requested": party(node, case["requested"]["node_id"]),
        "timeline": _timeline(node, case),
        "draft_check": draft_check,
        "blocking": blocking,
        "translation_status": TRANSLATION_STATUS,
        "languages_vocab": LANGUAGES,
        "added_by": {a["id"]: party(node, a.get("added_by"))["name"] for a in case["attachments"]},
        "action_error": None,
        "problems": [],
        "note_error": None,
        "note_text": "",
        "upload_error": None,
        **extra,
    }
    return page(request, "case.html", context, status=status)


async def case_detail(request: web.Request) -> web.Response:
    return case_page(request, request.match_info["case_id"])


async def transition(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    case_id = request.match_info["case_id"]
    form = await request.post()
    body = {
        "to": str(form.get("to", "")),
        "reason": str(form.get("reason", "")),
        "force": form.get("force") == "1",
    }
    try:
        node.cases.transition(case_id, body, actor=actor(request))
    except CheckFailed as exc:
        return case_page(request, case_id, status=exc.http_status, action_error=exc.message, problems=exc.problems)
    except ValidationError as exc:
        message = "; ".join(f"{k}: {v}" for k, v in exc.fields.items()) or exc.message
        return case_page(request, case_id, status=exc.http_status, action_error=message)
    except NodeError as exc:
        if exc.http_status == 404:
            raise
        return case_page(request, case_id, status=exc.http_status, action_error=exc.message)
    raise done(f"/ui/cases/{quote(case_id)}", "moved")


async def add_note(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    case_id = request.match_info["case_id"]
    form = await request.post()
    text = str(form.get("text", ""))
    try:
        node.cases.add_note(case_id, {"text": text}, actor=actor(request))
    except ValidationError as exc:
        message = exc.fields.get("text", exc.message)
        return case_page(request, case_id, status=exc.http_status, note_error=message, note_text=text)
    raise done(f"/ui/cases/{quote(case_id)}", "noted")


async def assign_officer(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    case_id = request.match_info["case_id"]
    form = await request.post()
    try:
        officers_of(node).assign(case_id, str(form.get("username", "")), actor=actor(request))
    except NodeError as exc:
        if exc.http_status == 404:
            raise
        fields = getattr(exc, "fields", {})
        message = "; ".join(fields.values()) if fields else exc.message
        return case_page(request, case_id, status=exc.http_status, officer_error=message)
    raise done(f"/ui/cases/{quote(case_id)}", "officer_assigned")


async def _read_limited(part: BodyPartReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(CHUNK):
        size += len(chunk)
        if size > limit:
            raise AttachmentRefused(f"the file is larger than {limit // (1024 * 1024)} MB")
        chunks.append(chunk)
    return b"".join(chunks)


@streamed
async def upload(request: web.Request) -> web.Response:
    """A multipart form whose first part is the `csrf` token; then `language`, `translation` and `file`."""
    node = request.app[NODE_KEY]
    case_id = request.match_info["case_id"]
    if request.content_type != "multipart/form-data":
        raise FormExpired()
    reader = await request.multipart()
    token_seen = False
    meta: dict[str, str] = {}
    name: str | None = None
    media_type = ""
    data = b""
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == FIELD:
            check_token(request, (await part.read_chunk(1024)).decode("utf-8", "replace"))
            token_seen = True
        elif not token_seen:
            raise FormExpired()
        elif part.name == "file":
            name = part.filename
            media_type = part.headers.get(hdrs.CONTENT_TYPE, "")
            data = await _read_limited(part, node.cases.max_attachment)
        elif part.name in ("language", "translation"):
            meta[part.name] = (await part.text())[:100]
    if not token_seen:
        raise FormExpired()
    if not name or not data:
        return case_page(request, case_id, status=422, upload_error="Choose a file to attach (it must not be empty).")
    try:
        node.cases.add_attachment(
            case_id,
            name=name,
            media_type=media_type,
            data=data,
            meta={k: v for k, v in meta.items() if v},
            actor=actor(request),
        )
    except (ValidationError, AttachmentRefused) as exc:
        fields = getattr(exc, "fields", {})
        message = "; ".join(fields.values()) if fields else exc.message
        return case_page(request, case_id, status=exc.http_status, upload_error=f"{exc.message}: {message}")
    raise done(f"/ui/cases/{quote(case_id)}", "attached")


async def download(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    meta, data = node.cases.read_attachment(request.match_info["case_id"], request.match_info["attachment_id"])
    return attachment_response(meta, data)


def add_case_routes(app: web.Application) -> None:
    app.router.add_get("/ui/cases", case_list)
    app.router.add_get("/ui/cases/{case_id:[0-9A-Za-z]+}", case_detail)
    app.router.add_post("/ui/cases/{case_id:[0-9A-Za-z]+}/transition", transition)
    app.router.add_post("/ui/cases/{case_id:[0-9A-Za-z]+}/notes", add_note)
    app.router.add_post("/ui/cases/{case_id:[0-9A-Za-z]+}/officer", assign_officer)
    app.router.add_post("/ui/cases/{case_id:[0-9A-Za-z]+}/attachments", upload)
    app.router.add_get("/ui/cases/{case_id:[0-9A-Za-z]+}/attachments/{attachment_id:[0-9A-Za-z]+}", download)
