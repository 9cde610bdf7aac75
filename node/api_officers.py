"""Responsibility in the API: who at this node answers for a case or a contact point, and handing it all over.

`PUT /api/v1/cases/{id}/officer` names the responsible officer, `PUT /api/v1/contacts/{id}/account` the account
an own contact point describes, and `POST /api/v1/users/{username}/handover` moves a leaving officer's open
cases and directory entries to a successor (`node.handover`). A bearer token is the operator's credential, so
it may do what an admin may; the rules for signed-in officers are those of `node.officers`.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from node.errors import NotFound, ValidationError
from node.handover import handover_of
from node.http import actor_of, json_response, read_json
from node.officers import officers_of
from node.openapi_parts import _errors, _json
from node.runtime import NODE_KEY


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("send a JSON object")
    return body


async def get_officer(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    case_id = request.match_info["case_id"]
    if node.cases.index.get(case_id) is None:
        raise NotFound("no such case on this node")
    return json_response(officers_of(node).of_case(case_id))


async def put_officer(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = _object(await read_json(request))
    officer = officers_of(node).assign(request.match_info["case_id"], body.get("username"), actor=actor_of(request))
    return json_response(officer)


async def put_contact_account(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = _object(await read_json(request))
    if "username" not in body:
        raise ValidationError("give the account's username, or null to unlink", fields={"username": "is required"})
    link = officers_of(node).link_contact(request.match_info["contact_id"], body["username"], actor=actor_of(request))
    return json_response(link)


async def handover(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = _object(await read_json(request))
    summary = handover_of(node).hand_over(
        request.match_info["username"], body.get("to"), actor=actor_of(request), disable=body.get("disable", False)
    )
    return json_response(summary.as_json())


def add_officer_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/cases/{case_id}/officer", get_officer)
    app.router.add_put("/api/v1/cases/{case_id}/officer", put_officer)
    app.router.add_put("/api/v1/contacts/{contact_id}/account", put_contact_account)
    app.router.add_post("/api/v1/users/{username}/handover", handover)


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_OFFICER: Final = {
    "type": ["object", "null"],
    "properties": {
        "username": {"type": "string"},
        "full_name": {"type": "string"},
        "disabled": {"type": "boolean"},
        "assigned_at": {"type": "string", "format": "date-time"},
        "assigned_by": {"type": "string", "description": "audit actor: user:NAME, api or cli"},
    },
}

OPENAPI_PATHS: Final[dict[str, Any]] = {
    "/api/v1/cases/{case_id}/officer": {
        "parameters": [_path("case_id")],
        "get": {
            "summary": "The officer of this node responsible for the case (null if nobody is yet)",
            "security": [{"bearer": []}],
            "responses": {"200": _json(_OFFICER, "The responsible officer, or null"), **_errors(401, 404)},
        },
        "put": {
            "summary": "Make an active account responsible for the case at this node (never sent to other nodes)",
            "security": [{"bearer": []}],
            "requestBody": _body({"username": {"type": "string"}}, ["username"]),
            "responses": {"200": _json(_OFFICER, "The responsible officer"), **_errors(400, 401, 403, 404, 422)},
        },
    },
    "/api/v1/contacts/{contact_id}/account": {
        "parameters": [_path("contact_id")],
        "put": {
            "summary": "Link one of this authority's contact points to the account of the person it describes",
            "security": [{"bearer": []}],
            "requestBody": _body({"username": {"type": ["string", "null"]}}, ["username"]),
            "responses": {"200": _json({"type": "object"}, "The link"), **_errors(400, 401, 403, 404, 422)},
        },
    },
    "/api/v1/users/{username}/handover": {
        "parameters": [_path("username")],
        "post": {
            "summary": "Hand a leaving officer's open cases and directory entries to a successor, in one action",
            "description": (
                "Moves every case the officer answers for that is not closed or withdrawn, and every contact "
                "point of this authority linked to the account; each moved case gets a note in its shared history "
                "naming both officers by display name, and each entry takes the successor's name and e-mail. "
                "With disable, the previous account is disabled in the same transaction."
            ),
            "security": [{"bearer": []}],
            "requestBody": _body({"to": {"type": "string"}, "disable": {"type": "boolean"}}, ["to"]),
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "cases": {"type": "integer"},
                            "contacts": {"type": "integer"},
                            "disabled": {"type": "boolean"},
                            "case_ids": {"type": "array", "items": {"type": "string"}},
                            "contact_ids": {"type": "array", "items": {"type": "string"}},
                            "unrecorded": {
                                "type": "array",
                                "items": {"type": "string"},
                                "description": "moved items whose note or directory change could not be written",
                            },
                        },
                        "required": ["cases", "contacts", "disabled"],
                    },
                    "What was handed over",
                ),
                **_errors(400, 401, 403, 404, 422),
            },
        },
    },
}
