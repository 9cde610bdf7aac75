"""Signing in and out, setting up the first administrator, and choosing the language.

A wrong user name and a wrong password get the same answer, so the page never tells a stranger which
accounts exist; repeated failures lock the account for a while (`node.accounts` decides, the page only
says so). Signing in always starts a new session, so a session ID planted before login is worthless.
The first administrator is created with the one-time setup code the node prints when it has no account.
"""

from __future__ import annotations

from aiohttp import web

from node.accounts import LockedOut, LoginRefused
from node.errors import NodeError, ValidationError
from ui.i18n import LANG_COOKIE, LANGUAGES, N_
from ui.render import page
from ui.sessions import (
    SESSION_ID_KEY,
    accounts_of,
    clear_session_cookie,
    current_session,
    safe_next,
    set_session_cookie,
)

_WRONG = N_("Wrong user name or password.")


def _signed_in(request: web.Request, username: str, target: str) -> web.HTTPSeeOther:
    session_id, _session = accounts_of(request.app).start_session(username)
    response = web.HTTPSeeOther(safe_next(target))
    set_session_cookie(request, response, session_id)
    return response


async def login_form(request: web.Request) -> web.Response:
    if current_session(request) is not None:
        raise web.HTTPSeeOther(safe_next(request.query.get("next")))
    if not accounts_of(request.app).has_users():
        raise web.HTTPSeeOther("/ui/setup")
    return page(request, "login.html", {"next": safe_next(request.query.get("next")), "username": ""})


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))
    context = {"next": target, "username": username}
    try:
        user = accounts_of(request.app).authenticate(username, password, client=request.remote or "unknown")
    except LockedOut as exc:
        response = page(request, "login.html", {**context, "error": exc.message}, status=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except LoginRefused:
        return page(request, "login.html", {**context, "error": _WRONG, "translate_error": True}, status=401)
    raise _signed_in(request, user.username, target)


async def logout(request: web.Request) -> web.Response:
    session_id = request.get(SESSION_ID_KEY)
    if session_id:
        accounts_of(request.app).end_session(session_id)
    response = web.HTTPSeeOther("/ui/login?done=signed_out")
    clear_session_cookie(response)
    raise response


async def setup_form(request: web.Request) -> web.Response:
    if accounts_of(request.app).has_users():
        raise web.HTTPSeeOther("/ui/login")
    return page(request, "setup.html", {"username": "", "errors": {}})


async def setup(request: web.Request) -> web.Response:
    accounts = accounts_of(request.app)
    if accounts.has_users():
        raise web.HTTPSeeOther("/ui/login")
    form = await request.post()
    code = str(form.get("code", "")).strip()
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    errors: dict[str, str] = {}
    if password != str(form.get("password_again", "")):
        errors["password_again"] = "The two passwords are not the same."
    else:
        try:
            accounts.claim_setup(code, username, password)
        except ValidationError as exc:
            errors = dict(exc.fields) or {"code": exc.message}
        except NodeError as exc:
            errors = {"code": exc.message}
    if errors:
        return page(request, "setup.html", {"username": username, "errors": errors}, status=422)
    raise _signed_in(request, username, "/ui/?done=welcome")


async def choose_language(request: web.Request) -> web.Response:
    form = await request.post()
    lang = str(form.get("lang", ""))
    response = web.HTTPSeeOther(safe_next(str(form.get("next", ""))))
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, path="/", max_age=365 * 24 * 3600, samesite="Strict", httponly=True)
    raise response


def add_auth_routes(app: web.Application) -> None:
    app.router.add_get("/ui/login", login_form)
    app.router.add_post("/ui/login", login)
    app.router.add_post("/ui/logout", logout)
    app.router.add_get("/ui/setup", setup_form)
    app.router.add_post("/ui/setup", setup)
    app.router.add_post("/ui/language", choose_language)
