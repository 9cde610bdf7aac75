"""The case API: `/api/v1/cases` and everything under it.

Handlers only translate HTTP to `node.cases.Cases` calls and back; the rules live there, so the
CLI and the web UI get the same ones. Attachments are streamed in (multipart form or a raw
body) with their own size limit, not the 2 MB one of JSON requests, and never held twice.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from node.accounts import normal_username
from node.case_index import CaseFilter
from node.cases import AttachmentRefused
from node.documents import utc_now
from node.errors import BadRequest, ValidationError
from node.export import DOCX_MEDIA_TYPE, export_filename, request_document
from node.http import actor_of, attachment_response, json_response, query_flag, read_json
from node.runtime import NODE_KEY
from node.vocab import (
    CASE_KINDS,
    CONTENT_ITEMS,
    LANGUAGES,
    LEGAL_BASES,
    MEASURES,
    OFFENCES,
    TRANSLATION_STATUS,
    URGENCY,
)
from node.workflow import STATUSES, render_table

CHUNK: Final = 256 * 1024


def _int(query: Any, name: str, default: int, most: int) -> int:
    value = query.get(name)
    if value is None or value == "":
        return default
    if not value.isdigit() or int(value) > most:
        raise ValidationError(f"{name} must be a whole number up to {most}", fields={name: "invalid"})
    return int(value)


def _choice(query: Any, name: str, allowed: Any) -> str | None:
    value = query.get(name) or None
    if value is not None and value not in allowed:
        raise ValidationError(f"unknown {name}", fields={name: f"must be one of: {', '.join(allowed)}"})
    return value


async def list_cases(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    query = request.query
    filters = CaseFilter(
        status=_choice(query, "status", STATUSES),
        kind=_choice(query, "kind", CASE_KINDS),
        counterpart=query.get("counterpart") or None,
        overdue=query_flag(query, "overdue"),
        needs_action=query_flag(query, "needs_action"),
        q=(query.get("q") or "").strip()[:200] or None,
        officer=normal_username(query.get("officer") or "") or None,
        limit=_int(query, "limit", 100, 1000),
        offset=_int(query, "offset", 0, 10_000_000),
    )
    return json_response(node.cases.search(filters))


async def create_case(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    return json_response(node.cases.create(await read_json(request), actor=actor_of(request)), status=201)


async def get_case(request: web.Request) -> web.Response:
    return json_response(request.app[NODE_KEY].cases.get(request.match_info["case_id"]))


async def update_case(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = await read_json(request)
    return json_response(node.cases.update(request.match_info["case_id"], body, actor=actor_of(request)))


async def transition(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = await read_json(request)
    return json_response(node.cases.transition(request.match_info["case_id"], body, actor=actor_of(request)))


async def add_note(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = await read_json(request)
    return json_response(node.cases.add_note(request.match_info["case_id"], body, actor=actor_of(request)), status=201)


async def remind(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = await read_json(request) if request.can_read_body else {}
    return json_response(node.cases.remind(request.match_info["case_id"], body, actor=actor_of(request)), status=201)


async def convert(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = await read_json(request)
    return json_response(node.cases.convert(request.match_info["case_id"], body, actor=actor_of(request)))


async def share(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = await read_json(request)
    return json_response(node.cases.share(request.match_info["case_id"], body, actor=actor_of(request)))


async def check(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    problems = node.cases.check(request.match_info["case_id"])
    return json_response({"ok": not any(p["severity"] == "error" for p in problems), "problems": problems})


async def verify(request: web.Request) -> web.Response:
    return json_response(request.app[NODE_KEY].cases.verify(request.match_info["case_id"]))


async def export(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    case = node.cases.get(request.match_info["case_id"])
    data = request_document(case, generated_at=utc_now())
    return web.Response(
        body=data,
        content_type=DOCX_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{export_filename(case)}"'},
    )


async def list_attachments(request: web.Request) -> web.Response:
    case = request.app[NODE_KEY].cases.get(request.match_info["case_id"])
    return json_response(case["attachments"])


async def _read_limited(stream: Any, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.read_chunk(CHUNK) if isinstance(stream, BodyPartReader) else await stream.read(CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise AttachmentRefused(f"the file is larger than {limit // (1024 * 1024)} MB")
        chunks.append(chunk)


async def _read_form(request: web.Request, limit: int) -> tuple[str | None, str, bytes | None, dict[str, str]]:
    """The file part (name, media type, bytes) and the text fields of an attachment upload form."""
    name: str | None = None
    media_type = ""
    data: bytes | None = None
    meta: dict[str, str] = {}
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "file":
            name = part.filename
            media_type = part.headers.get("Content-Type", "")
            data = await _read_limited(part, limit)
        elif part.name in ("language", "translation", "translation_of"):
            meta[part.name] = (await part.text())[:100]
    return name, media_type, data, meta


async def upload_attachment(request: web.Request) -> web.Response:
    """multipart/form-data with a `file` part (and `language`, `translation`, `translation_of` fields),
    or the raw file as the body with `?name=` and the file's Content-Type."""
    node = request.app[NODE_KEY]
    limit = node.cases.max_attachment
    meta: dict[str, str] = {}
    data: bytes | None = None
    name: str | None = None
    media_type = ""
    if request.content_type == "multipart/form-data":
        try:
            name, media_type, data, meta = await _read_form(request, limit)
        except (HttpProcessingError, ValueError, LookupError) as exc:  # bad boundary, part header or charset
            raise BadRequest("the body is not a well-formed multipart/form-data form") from exc
        if data is None:
            raise BadRequest("send the file in a form field named 'file'")
    else:
        name = request.query.get("name")
        media_type = request.content_type
        meta = {k: v for k, v in request.query.items() if k in ("language", "translation", "translation_of")}
        data = await _read_limited(request.content, limit)
    attachment = node.cases.add_attachment(
        request.match_info["case_id"],
        name=name,
        media_type=media_type,
        data=data,
        meta={k: v for k, v in meta.items() if v},
        actor=actor_of(request),
    )
    return json_response(attachment, status=201)


async def download_attachment(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    meta, data = node.cases.read_attachment(request.match_info["case_id"], request.match_info["attachment_id"])
    return attachment_response(meta, data)


async def update_attachment(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = await read_json(request)
    updated = node.cases.update_attachment(
        request.match_info["case_id"], request.match_info["attachment_id"], body, actor=actor_of(request)
    )
    return json_response(updated)


async def vocabulary(request: web.Request) -> web.Response:
    return json_response(
        {
            "kinds": CASE_KINDS,
            "statuses": list(STATUSES),
            "offences": OFFENCES,
            "measures": MEASURES,
            "legal_bases": LEGAL_BASES,
            "urgency": URGENCY,
            "translation": TRANSLATION_STATUS,
            "content_items": CONTENT_ITEMS,
            "languages": LANGUAGES,
            "workflow": render_table(),
        }
    )


def add_case_routes(app: web.Application) -> None:
    base = "/api/v1/cases"
    one = base + "/{case_id}"
    app.router.add_get("/api/v1/vocabulary", vocabulary)
    app.router.add_get(base, list_cases)
    app.router.add_post(base, create_case)
    app.router.add_get(one, get_case)
    app.router.add_patch(one, update_case)
    app.router.add_post(one + "/transitions", transition)
    app.router.add_post(one + "/notes", add_note)
    app.router.add_post(one + "/reminders", remind)
    app.router.add_post(one + "/convert", convert)
    app.router.add_post(one + "/share", share)
    app.router.add_post(one + "/check", check)
    app.router.add_get(one + "/verify", verify)
    app.router.add_get(one + "/export", export)
    app.router.add_get(one + "/attachments", list_attachments)
    app.router.add_post(one + "/attachments", upload_attachment)
    app.router.add_get(one + "/attachments/{attachment_id}", download_attachment)
    app.router.add_patch(one + "/attachments/{attachment_id}", update_attachment)
