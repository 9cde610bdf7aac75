"""Who is signed in to the web UI: the `sj_session` cookie, and the pages each person may open.

The cookie holds only a random session ID; the session itself (user, role, CSRF token, last use) lives
in the node's database (`node.accounts`), which also expires it, so ending a session there ends it here.
The cookie is HttpOnly (no script reads it) and SameSite=Strict (no other site's page sends it), and
Secure whenever the node is reached over HTTPS.

Every page under `/ui/` needs a session, except the few that let a person get one; without it the
officer is sent to the login page and brought back afterwards. Administration pages refuse officers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import quote

from aiohttp import web

from node.accounts import Accounts, Session
from node.errors import Forbidden
from node.runtime import NODE_KEY

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION_COOKIE: Final = "sj_session"
UI_PREFIX: Final = "/ui/"
# Pages open without a session: how one gets a session, the language picker, and the stylesheet.
PUBLIC_PAGES: Final = frozenset({"/ui/login", "/ui/setup", "/ui/language"})
PUBLIC_PREFIXES: Final = ("/ui/static/",)
ADMIN_PREFIXES: Final = ("/ui/users",)

SESSION_KEY: Final = web.RequestKey("ui_session", Session)
SESSION_ID_KEY: Final = web.RequestKey("ui_session_id", str)


class AdminsOnly(Forbidden):
    """This page is for administrators of this node. Ask one of them if you need something changed here."""


def is_ui(path: str) -> bool:
    return path == "/ui" or path.startswith(UI_PREFIX)


def accounts_of(app: web.Application) -> Accounts:
    """The node's user accounts (the one place the UI reaches for them)."""
    return app[NODE_KEY].accounts


def current_session(request: web.Request) -> Session | None:
    return request.get(SESSION_KEY)


def require_session(request: web.Request) -> Session:
    """The signed-in officer's session (the middleware guarantees one on every non-public page)."""
    session = current_session(request)
    if session is None:
        raise web.HTTPSeeOther(login_url(request))
    return session


def actor(request: web.Request) -> str:
    """Who the audit log and the case history name for what this request does."""
    return f"user:{require_session(request).username}"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a page of this UI only (never another site, never `//host`)."""
    if not target or not target.startswith(UI_PREFIX) or target.startswith("//") or "\\" in target:
        return UI_PREFIX
    if any(ord(c) < 0x20 for c in target):
        return UI_PREFIX
    return target


def login_url(request: web.Request) -> str:
    back = request.path_qs if request.method == "GET" else UI_PREFIX
    return "/ui/login" if back == UI_PREFIX else f"/ui/login?next={quote(back, safe='/')}"


def set_session_cookie(request: web.Request, response: web.StreamResponse, session_id: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, session_id, path="/", httponly=True, samesite="Strict", secure=request.secure or None
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")


def _public(path: str) -> bool:
    return path in PUBLIC_PAGES or path.startswith(PUBLIC_PREFIXES)


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_ui(request.path):
        return await handler(request)
    session_id = request.cookies.get(SESSION_COOKIE)
    session = accounts_of(request.app).session(session_id) if session_id else None
    if session is not None and session_id is not None:
        request[SESSION_KEY] = session
        request[SESSION_ID_KEY] = session_id
    elif not _public(request.path):
        raise web.HTTPSeeOther(login_url(request))
    if request.path.startswith(ADMIN_PREFIXES) and (session is None or session.role != "admin"):
        raise AdminsOnly()
    return await handler(request)
