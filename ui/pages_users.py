"""Accounts of this node's officers, for administrators: who may sign in, with which role.

Only admins reach these pages (`ui.sessions.ADMIN_PREFIXES`). The list adds accounts and disables or
enables them; each account's own page changes its role or sets a new password (which ends its
sessions, as disabling does). `node.accounts` refuses to disable or demote the last enabled
administrator, and checks names and passwords; the page shows its reason next to the form used.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from node.accounts import ROLES, User
from node.errors import NodeError, NotFound, ValidationError
from node.handover import STAYS, handover_of
from node.officers import officers_of
from node.runtime import NODE_KEY
from ui.i18n import N_
from ui.render import done, page
from ui.sessions import accounts_of, actor, require_session

# Messages of this page's own `?done=` codes (the others are `ui.render.DONE`'s).
MESSAGES: Final[dict[str, str]] = {
    "role_changed": N_("The role was changed."),
    "details_saved": N_("The name and e-mail were saved."),
    "handed_over": N_(
        "The open cases and directory entries were handed over. Each case has a note for the other authority."
    ),
}


def _message(request: web.Request) -> dict[str, str]:
    message = MESSAGES.get(request.query.get("done", ""))
    return {"flash": message} if message else {}


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


def _account(request: web.Request) -> User:
    user = accounts_of(request.app).get(request.match_info["username"])
    if user is None:
        raise NotFound("there is no such account on this node")
    return user


def _user_page(
    request: web.Request,
    *,
    status: int = 200,
    role_error: str | None = None,
    password_errors: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    user = _account(request)
    officers = officers_of(request.app[NODE_KEY])
    context = {
        "account": user,
        "open_cases": sum(1 for c in officers.cases_of(user.username) if c["status"] not in STAYS),
        "contacts": len(officers.contacts_of(user.username)),
        "successors": [u for u in accounts_of(request.app).list() if not u.disabled and u.username != user.username],
        "details_errors": {},
        "handover_error": None,
        "roles": ROLES,
        "is_self": user.username == require_session(request).username,
        "role_error": role_error,
        "password_errors": password_errors or {},
        **_message(request),
        **extra,
    }
    return page(request, "user.html", context, status=status)


async def user_detail(request: web.Request) -> web.Response:
    return _user_page(request)


async def set_role(request: web.Request) -> web.Response:
    form = await request.post()
    user = _account(request)
    try:
        accounts_of(request.app).set_role(user.username, str(form.get("role", "")), actor=actor(request))
    except NodeError as exc:
        if exc.http_status == 404:
            raise
        fields = getattr(exc, "fields", {})
        return _user_page(request, status=exc.http_status, role_error=fields.get("role", exc.message))
    raise done(f"/ui/users/{user.username}", "role_changed")


async def set_password(request: web.Request) -> web.Response:
    form = await request.post()
    user = _account(request)
    password = str(form.get("password", ""))
    if password != str(form.get("password_again", "")):
        return _user_page(request, status=422, password_errors={"password_again": "the two passwords are not the same"})
    try:
        accounts_of(request.app).set_password(user.username, password, actor=actor(request))
    except ValidationError as exc:
        return _user_page(request, status=exc.http_status, password_errors=dict(exc.fields))
    raise done(f"/ui/users/{user.username}", "password_set")


async def set_details(request: web.Request) -> web.Response:
    form = await request.post()
    user = _account(request)
    try:
        accounts_of(request.app).set_details(
            user.username,
            full_name=str(form.get("full_name", "")),
            email=str(form.get("email", "")),
            actor=actor(request),
        )
    except ValidationError as exc:
        return _user_page(request, status=exc.http_status, details_errors=dict(exc.fields))
    raise done(f"/ui/users/{user.username}", "details_saved")


async def hand_over(request: web.Request) -> web.Response:
    form = await request.post()
    user = _account(request)
    try:
        handover_of(request.app[NODE_KEY]).hand_over(
            user.username, str(form.get("to", "")), actor=actor(request), disable=form.get("disable") == "1"
        )
    except NodeError as exc:
        if exc.http_status == 404:
            raise
        fields = getattr(exc, "fields", {})
        message = "; ".join(fields.values()) if fields else exc.message
        return _user_page(request, status=exc.http_status, handover_error=message)
    raise done(f"/ui/users/{user.username}", "handed_over")


def add_user_routes(app: web.Application) -> None:
    app.router.add_get("/ui/users", users)
    app.router.add_post("/ui/users", add_user)
    app.router.add_get("/ui/users/{username}", user_detail)
    app.router.add_post("/ui/users/{username}/enabled", set_enabled)
    app.router.add_post("/ui/users/{username}/role", set_role)
    app.router.add_post("/ui/users/{username}/password", set_password)
    app.router.add_post("/ui/users/{username}/details", set_details)
    app.router.add_post("/ui/users/{username}/handover", hand_over)
