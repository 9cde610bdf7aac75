"""LAN discovery in the API: nodes met on the LAN that offered their card, and this node's own offer.

Accepting a discovered node is adding its card (`POST /api/v1/peers`), after comparing its node ID
with the one its operator reads out; the card is in the listing so no copy-paste is needed.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from node.http import json_response, read_json
from node.openapi_parts import _errors, _json, _request_body
from node.runtime import NODE_KEY, Node


def discovery_state(node: Node) -> dict[str, Any]:
    offers = node.lan_offers
    return {
        "enabled": node.config.discovery,
        "offering": offers.offering(),
        "offering_until": offers.offering_until if offers.offering() else None,
        "discovered": [o.public_json() for o in offers.listed()],
    }


async def get_discovery(request: web.Request) -> web.Response:
    return json_response(discovery_state(request.app[NODE_KEY]))


async def offer(request: web.Request) -> web.Response:
    body = await read_json(request)
    node = request.app[NODE_KEY]
    node.lan_offers.offer(body.get("minutes") if isinstance(body, dict) else None)
    return json_response(discovery_state(node))


def add_discovery_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/discovery", get_discovery)
    app.router.add_post("/api/v1/discovery/offer", offer)


OPENAPI_PATHS: Final[dict[str, Any]] = {
    "/api/v1/discovery": {
        "get": {
            "summary": "Nodes met on the LAN that offered their card (discovered, not trusted), and this node's offer",
            "security": [{"bearer": []}],
            "responses": {"200": _json({"type": "object"}, "Discovery state"), **_errors(401)},
        }
    },
    "/api/v1/discovery/offer": {
        "post": {
            "summary": "Offer this node's card on the LAN for some minutes (0 stops), so a new peer can find it",
            "security": [{"bearer": []}],
            "requestBody": _request_body({"minutes": {"type": "integer", "minimum": 0, "maximum": 120}}),
            "responses": {"200": _json({"type": "object"}, "Discovery state"), **_errors(400, 401, 422)},
        }
    },
}
