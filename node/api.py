"""The node's JSON API (`/api/v1`), its health check, and the middleware that guards both.

All errors leave through one middleware: a `SeajustError` becomes its HTTP status with
`{"error": message}` (plus `fields` for validation errors); anything else is logged and
becomes a 500 that tells the caller nothing about the internals.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from crypto.errors import SeajustError
from node import key_rotation
from node.api_cases import add_case_routes
from node.api_discovery import add_discovery_routes
from node.api_invitations import add_invitation_routes
from node.api_notices import add_notice_routes
from node.api_officers import add_officer_routes
from node.api_profiles import add_profile_routes
from node.api_roster import add_roster_routes
from node.api_stats import add_stats_routes
from node.errors import CheckFailed, NotFound, Unauthorized, ValidationError
from node.http import actor_of, error_response, json_response, read_json
from node.openapi import openapi_document
from node.runtime import NODE_KEY, Node
from node.tokens import token_is_valid
from sync.transport import SYNC_PATH

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC_PATHS = frozenset({"/healthz", "/api/v1/openapi.json"})


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ValidationError as exc:
        return error_response(exc.http_status, exc.message, fields=exc.fields)
    except CheckFailed as exc:
        return error_response(exc.http_status, exc.message, problems=exc.problems)
    except SeajustError as exc:
        return error_response(getattr(exc, "http_status", 400), exc.message)
    except web.HTTPException as exc:
        if exc.status < 400 or request.path == SYNC_PATH:
            raise
        return error_response(exc.status, exc.reason or "error")
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal error; the operator can find details in the node's log")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if (request.path.startswith("/api/") or request.path == "/metrics") and request.path not in PUBLIC_PATHS:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token_is_valid(request.app[NODE_KEY].db, token.strip()):
            raise Unauthorized()
    return await handler(request)


async def healthz(request: web.Request) -> web.Response:
    """200 while the node serves; "degraded" says its disk refuses writes (restarting would not help)."""
    storage = request.app[NODE_KEY].db.health()
    if storage.state == "ok":
        return json_response({"status": "ok"})
    return json_response({"status": "degraded", "storage": storage.state, "detail": storage.detail})


async def get_node(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    waiting = key_rotation.pending(node)
    rotation = None
    if waiting is not None:
        rotation = {"announced_at": waiting.created_at, "unconfirmed": list(waiting.unconfirmed)}
    return json_response({**node.describe(), "key_rotations": len(node.identity.rotations), "key_rotation": rotation})


async def get_openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document())


async def list_peers(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    return json_response(node.peer_statuses(node.peers.all()))


async def add_peer(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = await read_json(request)
    card = body.get("card") if isinstance(body, dict) else None
    if not isinstance(card, str) or not card.strip():
        raise ValidationError('give the peer\'s card as {"card": "SJCARD1...."}', fields={"card": "is required"})
    peer = node.peers.add_card(card, actor=actor_of(request))
    node.peers_changed()
    return json_response(node.peer_status(peer), status=201)


async def list_contacts(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    query = request.query
    return json_response(
        node.directory.list(country=query.get("country"), expertise=query.get("expertise"), q=query.get("q"))
    )


async def create_contact(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    contact = node.directory.create(await read_json(request), actor=actor_of(request))
    return json_response(contact, status=201)


async def get_contact(request: web.Request) -> web.Response:
    return json_response(request.app[NODE_KEY].directory.get(request.match_info["contact_id"]))


async def update_contact(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    contact = node.directory.update(request.match_info["contact_id"], await read_json(request), actor=actor_of(request))
    return json_response(contact)


async def delete_contact(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    node.directory.delete(request.match_info["contact_id"], actor=actor_of(request))
    return web.Response(status=204)


async def sync_status(request: web.Request) -> web.Response:
    return json_response(request.app[NODE_KEY].sync_status())


async def not_found(request: web.Request) -> web.Response:
    raise NotFound(f"no such endpoint: {request.method} {request.path}")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/openapi.json", get_openapi)
    app.router.add_get("/api/v1/node", get_node)
    app.router.add_get("/api/v1/peers", list_peers)
    app.router.add_post("/api/v1/peers", add_peer)
    app.router.add_get("/api/v1/contacts", list_contacts)
    app.router.add_post("/api/v1/contacts", create_contact)
    app.router.add_get("/api/v1/contacts/{contact_id}", get_contact)
    app.router.add_patch("/api/v1/contacts/{contact_id}", update_contact)
    app.router.add_delete("/api/v1/contacts/{contact_id}", delete_contact)
    app.router.add_get("/api/v1/sync", sync_status)
    add_profile_routes(app)
    add_notice_routes(app)
    add_case_routes(app)
    add_stats_routes(app)
    add_invitation_routes(app)
    add_roster_routes(app)
    add_discovery_routes(app)
    add_officer_routes(app)


__all__ = ["Node", "add_routes", "auth_middleware", "error_middleware"]
