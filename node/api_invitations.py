"""Invitations in the API: an admin makes a code on one node; the other node's admin enters it with the address.

`POST /api/v1/invitations` returns a one-time code to read over the phone; `POST /api/v1/invitations/accept`
with `{"code", "url"}` claims it at the inviting node, and both nodes then trust each other's cards.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from crypto.errors import SeajustError
from crypto.invitation import INVITATION_LIFETIME
from node.errors import Forbidden, ValidationError
from node.http import actor_of, json_response, read_json
from node.openapi_parts import _errors, _json, _request_body
from node.runtime import NODE_KEY
from node.tls import client_session
from sync.invite_transport import exchange_claim


async def create_invitation(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    code = node.invitations.create(actor=actor_of(request))
    return json_response({"code": code, "expires_in": INVITATION_LIFETIME}, status=201)


async def accept_invitation(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = await read_json(request)
    code = body.get("code") if isinstance(body, dict) else None
    url = body.get("url") if isinstance(body, dict) else None
    if not isinstance(code, str) or not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValidationError(
            "give the code and the inviting node's address",
            fields={"code": "the code read to you", "url": "the inviting node's address, like https://..."},
        )
    try:
        claim, state = node.invitations.make_claim(code)
        async with client_session(node.config.peer_tls) as http:
            answer = await exchange_claim(http, url, claim)
        peer = node.invitations.finish(answer, state, actor=actor_of(request))
    except SeajustError as exc:
        raise Forbidden(exc.message) from exc
    node.peers_changed()
    return json_response(node.peer_status(peer), status=201)


def add_invitation_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/invitations", create_invitation)
    app.router.add_post("/api/v1/invitations/accept", accept_invitation)


OPENAPI_PATHS: Final[dict[str, Any]] = {
    "/api/v1/invitations": {
        "post": {
            "summary": "A one-time invitation code (24 hours) to read to another authority's admin",
            "security": [{"bearer": []}],
            "responses": {"201": _json({"type": "object"}, "The code"), **_errors(401)},
        }
    },
    "/api/v1/invitations/accept": {
        "post": {
            "summary": "Claim another node's invitation: both nodes then trust each other's cards",
            "security": [{"bearer": []}],
            "requestBody": _request_body({"code": {"type": "string"}, "url": {"type": "string"}}),
            "responses": {"201": _json({"type": "object"}, "The new peer"), **_errors(400, 401, 403, 422)},
        }
    },
}
