"""Read-only pages about the network: the contact-point directory, the country profiles, the peers and
this node's case counts.

They show what the node already holds (replicated from the other members); changing a profile or the
directory is still done through the API or the CLI, so these pages cannot disagree with those rules.
"""

from __future__ import annotations

from aiohttp import web

from node.runtime import NODE_KEY
from ui.render import page


async def directory(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    q = (request.query.get("q") or "").strip()[:200]
    contacts = node.directory.list(q=q or None)
    return page(request, "directory.html", {"contacts": contacts, "q": q})


async def profiles(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    return page(request, "profiles.html", {"profiles": node.profiles.list()})


async def peers(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    return page(request, "peers.html", {"peers": [node.peer_status(p) for p in node.peers.all()]})


async def statistics(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    counts = node.cases.index.counts()
    return page(request, "statistics.html", {"counts": counts, "total": sum(counts.values())})


def add_network_routes(app: web.Application) -> None:
    app.router.add_get("/ui/directory", directory)
    app.router.add_get("/ui/profiles", profiles)
    app.router.add_get("/ui/peers", peers)
    app.router.add_get("/ui/statistics", statistics)
