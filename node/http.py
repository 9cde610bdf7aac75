"""HTTP helpers shared by the node's API modules: JSON in and out, and who is acting."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from node.errors import BadRequest


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False))


def error_response(status: int, message: str, **extra: Any) -> web.Response:
    return json_response({"error": message, **extra}, status=status)


async def read_json(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise BadRequest("send the request body as JSON with Content-Type: application/json")
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest("the request body is not valid JSON") from exc


def actor_of(request: web.Request) -> str:
    """The audit log's actor for a request (one per API token until accounts arrive)."""
    return "api"
