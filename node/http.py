"""HTTP helpers shared by the node's API modules: JSON in and out, and who is acting."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

from aiohttp import web

from node.errors import BadRequest, ValidationError


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False))


def error_response(status: int, message: str, **extra: Any) -> web.Response:
    return json_response({"error": message, **extra}, status=status)


async def read_json(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise BadRequest("send the request body as JSON with Content-Type: application/json")
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest("the request body is not valid JSON") from exc
    if not _is_unicode(body):
        raise BadRequest("the request body holds text that is not valid Unicode (a lone surrogate escape)")
    return body


def _is_unicode(value: Any) -> bool:
    """JSON may escape a lone surrogate (`"\\ud800"`), which no document, database or response can hold."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending += item.keys()
            pending += item.values()
        elif isinstance(item, list):
            pending += item
        elif isinstance(item, str) and not item.isascii():
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def query_flag(query: Mapping[str, str], name: str) -> bool | None:
    """A yes/no query parameter (true/false, 1/0, yes/no); None when absent or empty; 422 for anything else."""
    value = (query.get(name) or "").strip().lower()
    if not value:
        return None
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise ValidationError(f"{name} must be true or false", fields={name: "must be true or false"})


def actor_of(request: web.Request) -> str:
    """The audit log's actor for a request (one per API token until accounts arrive)."""
    return "api"


_MEDIA_TYPE: Final = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


def _content_disposition(name: str) -> str:
    """`attachment` with the file name as given (RFC 6266 `filename*`) and an ASCII fallback. The name may come
    from a peer, which `case_fields.attachment_name` never saw: nothing in it can break or add a header."""
    fallback = "".join(c if " " <= c < "\x7f" and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def attachment_response(meta: Mapping[str, Any], data: bytes) -> web.Response:
    """A case attachment as a download (API and web UI alike), never rendered in place by the browser."""
    media_type = str(meta.get("media_type") or "")
    return web.Response(
        body=data,
        content_type=media_type if _MEDIA_TYPE.fullmatch(media_type) else "application/octet-stream",
        headers={
            "Content-Disposition": _content_disposition(str(meta.get("name") or "attachment")),
            "X-Content-SHA256": str(meta.get("sha256", "")),
            "X-Content-Type-Options": "nosniff",
        },
    )
