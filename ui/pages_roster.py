"""The network roster: who is in the network, admissions awaiting an endorsement, and revocations.

Everyone sees the roster. The buttons follow the rules of `node.roster` and are shown only to whom
they apply: a secretariat node's admins found the network, admit newcomers by card and revoke; a
member's admins endorse an admission; any node's admins may revoke their own node (a stolen laptop).
Each form is one call to `node.membership`, as the JSON API makes, so a refused action shows the
same reason.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from crypto.errors import SeajustError
from node.runtime import NODE_KEY
from ui.i18n import N_
from ui.render import done, page
from ui.sessions import AdminsOnly, actor, require_session

ROSTER_PATH: Final = "/ui/roster"
MESSAGES: Final = {
    "founded": N_("The network was founded. Its members receive the roster at the next exchange."),
    "admitted": N_("The admission was signed. The newcomer joins once a member endorses it."),
    "endorsed": N_("Your endorsement was signed."),
    "revoked": N_("The node was revoked. Every member refuses it from the next exchange; its cases move to new keys."),
}


def _require_admin(request: web.Request) -> None:
    if require_session(request).role != "admin":
        raise AdminsOnly()


def _roster_page(request: web.Request, *, status: int = 200, error: str | None = None) -> web.Response:
    node = request.app[NODE_KEY]
    view = node.membership.describe()
    context: dict[str, Any] = {
        "roster": view,
        "own_role": node.config.role,
        "error": error,
        "flash": MESSAGES.get(request.query.get("done", "")),
    }
    return page(request, "roster.html", context, status=status)


async def roster(request: web.Request) -> web.Response:
    require_session(request)
    return _roster_page(request)


async def _act(request: web.Request, code: str, action: Any) -> web.Response:
    _require_admin(request)
    form = await request.post()
    try:
        action({k: str(v) for k, v in form.items()}, actor(request))
    except SeajustError as exc:
        return _roster_page(request, status=getattr(exc, "http_status", 400), error=exc.message)
    raise done(ROSTER_PATH, code)


async def found(request: web.Request) -> web.Response:
    membership = request.app[NODE_KEY].membership
    return await _act(request, "founded", lambda f, who: membership.found(f.get("network", ""), actor=who))


async def admit(request: web.Request) -> web.Response:
    membership = request.app[NODE_KEY].membership
    return await _act(
        request, "admitted", lambda f, who: membership.admit(f.get("card", ""), f.get("standing"), actor=who)
    )


async def endorse(request: web.Request) -> web.Response:
    membership = request.app[NODE_KEY].membership
    return await _act(request, "endorsed", lambda f, who: membership.endorse(f.get("node_id"), actor=who))


async def revoke(request: web.Request) -> web.Response:
    membership = request.app[NODE_KEY].membership
    return await _act(
        request, "revoked", lambda f, who: membership.revoke(f.get("node_id"), f.get("reason"), actor=who)
    )


def add_roster_routes(app: web.Application) -> None:
    app.router.add_get(ROSTER_PATH, roster)
    app.router.add_post(ROSTER_PATH + "/found", found)
    app.router.add_post(ROSTER_PATH + "/admit", admit)
    app.router.add_post(ROSTER_PATH + "/endorse", endorse)
    app.router.add_post(ROSTER_PATH + "/revoke", revoke)
