"""The network roster in the API: see it, and (by role) found the network, admit, endorse and revoke.

Each action signs one statement (`crypto.statements`) into this node's roster document, from where
it replicates; the answer is the roster as this node now computes it.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from node.errors import ValidationError
from node.http import actor_of, json_response, read_json
from node.openapi_parts import _errors, _json, _request_body
from node.runtime import NODE_KEY


async def _body(request: web.Request, *names: str) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict) or any(not isinstance(body.get(n), str) for n in names):
        raise ValidationError(f"give {', '.join(names)}", fields={n: "required text" for n in names})
    return body


async def get_roster(request: web.Request) -> web.Response:
    return json_response(request.app[NODE_KEY].membership.describe())


async def found(request: web.Request) -> web.Response:
    body = await _body(request, "network")
    node = request.app[NODE_KEY]
    return json_response(node.membership.found(body["network"], actor=actor_of(request)), status=201)


async def admit(request: web.Request) -> web.Response:
    body = await _body(request, "card", "standing")
    node = request.app[NODE_KEY]
    return json_response(node.membership.admit(body["card"], body["standing"], actor=actor_of(request)))


async def endorse(request: web.Request) -> web.Response:
    body = await _body(request, "node_id")
    node = request.app[NODE_KEY]
    return json_response(node.membership.endorse(body["node_id"], actor=actor_of(request)))


async def revoke(request: web.Request) -> web.Response:
    body = await _body(request, "node_id", "reason")
    node = request.app[NODE_KEY]
    return json_response(node.membership.revoke(body["node_id"], body["reason"], actor=actor_of(request)))


def add_roster_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/roster", get_roster)
    app.router.add_post("/api/v1/roster/found", found)
    app.router.add_post("/api/v1/roster/admit", admit)
    app.router.add_post("/api/v1/roster/endorse", endorse)
    app.router.add_post("/api/v1/roster/revoke", revoke)


def _action(summary: str, fields: dict[str, Any], *errors: int) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}],
            "requestBody": _request_body(fields),
            "responses": {"200": _json({"type": "object"}, "The roster"), **_errors(400, 401, *errors)},
        }
    }


_TEXT: Final = {"type": "string"}
OPENAPI_PATHS: Final[dict[str, Any]] = {
    "/api/v1/roster": {
        "get": {
            "summary": "The network roster: members, observers, secretariat, admissions awaiting endorsement, revoked",
            "security": [{"bearer": []}],
            "responses": {"200": _json({"type": "object"}, "The roster"), **_errors(401)},
        }
    },
    "/api/v1/roster/found": _action("Found the network (a secretariat node, once)", {"network": _TEXT}, 403, 409, 422),
    "/api/v1/roster/admit": _action(
        "Admit a node by its card (secretariat); it joins once a member endorses it",
        {"card": _TEXT, "standing": {"type": "string", "enum": ["member", "observer", "secretariat"]}},
        403,
        409,
        422,
    ),
    "/api/v1/roster/endorse": _action("Endorse an admission (a member)", {"node_id": _TEXT}, 403, 404, 422),
    "/api/v1/roster/revoke": _action(
        "Revoke a node (secretariat, or a node itself): refused everywhere, its cases re-keyed without it",
        {"node_id": _TEXT, "reason": {"type": "string", "enum": ["compromised", "left", "other"]}},
        403,
        404,
        422,
    ),
}
