"""The trusted nodes: who this node exchanges data with, and whether the exchange is working.

Each node is named by its node ID, the fingerprint of its keys (`crypto.node_id`), which two operators
compare over the telephone before trusting a card: the page shows it large, in a monospace font, in its
groups of four with the check character, and this node's own ID above the list for the other side.
Adding or removing a peer stays with the operator (CLI or API): it decides whom the node trusts.
"""

from __future__ import annotations

from aiohttp import web

from node.runtime import NODE_KEY
from ui.pages_network import network_page


async def peers(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    listed = sorted((node.peer_status(p) for p in node.peers.all()), key=lambda p: (str(p["country"]), str(p["name"])))
    return network_page(
        request,
        "peers.html",
        {"peers": listed, "own": {"node_id": node.node_id, "role": node.config.role, "url": node.config.url}},
    )


def add_peer_routes(app: web.Application) -> None:
    app.router.add_get("/ui/peers", peers)
