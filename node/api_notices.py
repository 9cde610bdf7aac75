"""The network-notice endpoints of the JSON API, and their part of the OpenAPI document.

Kept beside `node.notices` so the feature is one unit: `node.api` adds these routes and
`node.openapi` merges these paths and schemas, each with one line. Every member reads the
notices; only a secretariat node publishes, changes or removes them (its own).
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from node.http import actor_of, json_response, query_flag, read_json
from node.notices import CATEGORIES, DATE_FIELDS, EDITABLE, LINK_LENGTH, READ_ONLY, TEXT_FIELDS
from node.openapi_parts import _errors, _json
from node.runtime import NODE_KEY


async def list_notices(request: web.Request) -> web.Response:
    notices = request.app[NODE_KEY].notices
    category = request.query.get("category") or None
    return json_response(notices.list(category=category, upcoming=bool(query_flag(request.query, "upcoming"))))


async def create_notice(request: web.Request) -> web.Response:
    notices = request.app[NODE_KEY].notices
    body = await read_json(request)
    return json_response(notices.create(body, actor=actor_of(request)), status=201)


async def get_notice(request: web.Request) -> web.Response:
    return json_response(request.app[NODE_KEY].notices.get(request.match_info["notice_id"]))


async def update_notice(request: web.Request) -> web.Response:
    notices = request.app[NODE_KEY].notices
    body = await read_json(request)
    return json_response(notices.update(request.match_info["notice_id"], body, actor=actor_of(request)))


async def delete_notice(request: web.Request) -> web.Response:
    request.app[NODE_KEY].notices.delete(request.match_info["notice_id"], actor=actor_of(request))
    return web.Response(status=204)


def add_notice_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/notices", list_notices)
    app.router.add_post("/api/v1/notices", create_notice)
    app.router.add_get("/api/v1/notices/{notice_id}", get_notice)
    app.router.add_patch("/api/v1/notices/{notice_id}", update_notice)
    app.router.add_delete("/api/v1/notices/{notice_id}", delete_notice)


# -- OpenAPI ------------------------------------------------------------------------------


def _notice_schema(*, for_input: bool) -> dict[str, Any]:
    props: dict[str, Any] = {name: {"type": "string", "maxLength": size} for name, size in TEXT_FIELDS.items()}
    props["body"]["description"] = "the notice itself; may contain line breaks"
    props["category"] = {"type": "string", "enum": list(CATEGORIES)}
    for name in DATE_FIELDS:
        props[name] = {"type": ["string", "null"], "format": "date", "description": "YYYY-MM-DD; null or '' clears it"}
    props["ends_on"]["description"] += "; on or after starts_on"
    props["link"] = {
        "type": "string",
        "maxLength": LINK_LENGTH,
        "description": "an http or https address (registration, agenda); '' for none",
    }
    read_only: dict[str, dict[str, Any]] = {
        "id": {"type": "string"},
        "publisher": {"type": "string", "description": "node ID of the secretariat node that published it"},
        "published_at": {"type": ["string", "null"], "format": "date-time"},
        "updated_at": {"type": ["string", "null"], "format": "date-time"},
    }
    if for_input:
        props.update({name: {**schema, "readOnly": True} for name, schema in read_only.items()})
        return {
            "type": "object",
            "properties": props,
            "additionalProperties": False,
            "description": "POST needs title and category; PATCH changes the fields given. "
            "id, publisher, published_at and updated_at are ignored.",
        }
    props.update(read_only)
    props["category"] = {"type": "string", "description": f"one of {', '.join(CATEGORIES)} (or a newer code)"}
    for name in DATE_FIELDS:
        props[name] = {"type": ["string", "null"], "format": "date"}
    return {"type": "object", "properties": props, "required": [*READ_ONLY, *EDITABLE]}


_NOTICE: Final = {"$ref": "#/components/schemas/Notice"}
_INPUT: Final = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NoticeInput"}}},
}
_SECURED: Final[list[dict[str, list[str]]]] = [{"bearer": []}]
_NOTICE_ID: Final = {"name": "notice_id", "in": "path", "required": True, "schema": {"type": "string"}}

OPENAPI_SCHEMAS: Final[dict[str, Any]] = {
    "Notice": _notice_schema(for_input=False),
    "NoticeInput": _notice_schema(for_input=True),
}

OPENAPI_PATHS: Final[dict[str, Any]] = {
    "/api/v1/notices": {
        "get": {
            "summary": "Every secretariat notice this node holds, newest first",
            "security": _SECURED,
            "parameters": [
                {"name": "category", "in": "query", "schema": {"type": "string", "enum": list(CATEGORIES)}},
                {
                    "name": "upcoming",
                    "in": "query",
                    "schema": {"type": "boolean"},
                    "description": "only notices that end (or, without an end, start) today or later",
                },
            ],
            "responses": {"200": _json({"type": "array", "items": _NOTICE}, "Notices"), **_errors(401, 422)},
        },
        "post": {
            "summary": "Publish a notice to the network (secretariat nodes only)",
            "security": _SECURED,
            "requestBody": _INPUT,
            "responses": {"201": _json(_NOTICE, "Published notice"), **_errors(400, 401, 403, 422)},
        },
    },
    "/api/v1/notices/{notice_id}": {
        "parameters": [_NOTICE_ID],
        "get": {
            "summary": "One notice",
            "security": _SECURED,
            "responses": {"200": _json(_NOTICE, "Notice"), **_errors(401, 404)},
        },
        "patch": {
            "summary": "Change fields of a notice this secretariat node published",
            "security": _SECURED,
            "requestBody": _INPUT,
            "responses": {"200": _json(_NOTICE, "Updated notice"), **_errors(400, 401, 403, 404, 422)},
        },
        "delete": {
            "summary": "Withdraw a notice this secretariat node published",
            "security": _SECURED,
            "responses": {"204": {"description": "Withdrawn"}, **_errors(401, 403, 404)},
        },
    },
}
