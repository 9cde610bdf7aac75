"""The officer's first page: what needs action today, what moved recently, and whether the peers are reachable.

"Needs action" is `node.cases.needs_action()`, the same worklist the API serves, with each reason in plain
words; the peer list says when each authority was last heard from, because a case sent to a peer that has
not synced for a week has not really arrived.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from node.case_index import CaseFilter
from node.runtime import NODE_KEY
from ui.pages_cases import listed
from ui.render import page

RECENT: Final = 10


async def dashboard(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    return page(
        request,
        "dashboard.html",
        {
            "needs_action": listed(node, node.cases.needs_action()),
            "recent": listed(node, node.cases.search(CaseFilter(limit=RECENT))),
            "peers": node.peer_statuses(node.peers.all()),
        },
    )


async def to_dashboard(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/ui/")


def add_dashboard_routes(app: web.Application) -> None:
    app.router.add_get("/ui", to_dashboard)
    app.router.add_get("/ui/", dashboard)
