"""Accounts of this node's officers, for administrators: who may sign in, with which role.

Only admins reach these pages (`ui.sessions.ADMIN_PREFIXES`). Disabling an account ends its sessions at
once; `node.accounts` refuses to disable the last enabled administrator, and the page says why.
"""

from __future__ import annotations

from aiohttp import web

from node.accounts import ROLES
from node.errors import NodeError, ValidationError
from ui.render import done, page
from ui.sessions import accounts_of, actor


def _users_page(
    request: web.Request, *, status: int = 200, errors: dict[str, str] | None = None, **extra: object
) -> web.Response:
    context = {
        "users": accounts_of(request.app).list(),
        "roles": ROLES,
        "errors": errors or {},
        "values": {"username": "", "role": "officer"},
        "error": None,
        **extra,
    }
    return page(request, "users.html", context, status=status)


async def users(request: web.Request) -> web.Response:
    return _users_page(request)


async def add_user(request: web.Request) -> web.Response:
    form = await request.post()
    username = str(form.get("username", "")).strip()
    role = str(form.get("role", "officer"))
    values = {"username": username, "role": role}
    try:
        accounts_of(request.app).add(username, str(form.get("password", "")), role, actor=actor(request))
    except ValidationError as exc:
        return _users_page(request, status=exc.http_status, errors=dict(exc.fields), values=values)
    raise done("/ui/users", "user_added")


async def set_enabled(request: web.Request) -> web.Response:
    form = await request.post()
    username = request.match_info["username"]
    accounts = accounts_of(request.app)
    try:
        if form.get("enabled") == "1":
            accounts.enable(username, actor=actor(request))
            code = "user_enabled"
        else:
            accounts.disable(username, actor=actor(request))
            code = "user_disabled"
    except NodeError as exc:
        if exc.http_status == 404:
            raise
        return _users_page(request, status=exc.http_status, error=exc.message)
    raise done("/ui/users", code)


def add_user_routes(app: web.Application) -> None:
    app.router.add_get("/ui/users", users)
    app.router.add_post("/ui/users", add_user)
    app.router.add_post("/ui/users/{username}/enabled", set_enabled)
