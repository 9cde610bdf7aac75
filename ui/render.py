"""Drawing a page: the template, plus what every page needs (who is signed in, the node, the language,
the form token, the navigation and the message left by the last action).

After a form succeeds, its handler redirects with `?done=<code>` (post/redirect/get, so reloading the page
never repeats the action). The code picks one of the fixed messages below: nothing a visitor puts in the
address bar is ever shown back, so a crafted link cannot make the page say something the node did not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web

from node.runtime import NODE_KEY
from ui.csrf import form_token, set_new_cookie
from ui.i18n import LANGUAGES, N_, language_of
from ui.sessions import current_session

DONE: Final[dict[str, str]] = {
    "created": N_("The request was saved as a draft. Check it, then send it when it is ready."),
    "moved": N_("The status of the case was changed."),
    "noted": N_("Your note was added to the case."),
    "attached": N_("The file was attached to the case."),
    "officer_assigned": N_("The responsible officer was changed."),
    "user_added": N_("The account was created."),
    "user_disabled": N_("The account was disabled and its sessions ended."),
    "user_enabled": N_("The account was enabled."),
    "password_set": N_("The password was changed."),
    "welcome": N_("You are signed in."),
    "signed_out": N_("You are signed out."),
}

# (path, label, admins only)
NAVIGATION: Final = (
    ("/ui/", N_("Dashboard"), False),
    ("/ui/cases", N_("Cases"), False),
    ("/ui/cases/new", N_("New request"), False),
    ("/ui/directory", N_("Directory"), False),
    ("/ui/profiles", N_("Profiles"), False),
    ("/ui/statistics", N_("Statistics"), False),
    ("/ui/notices", N_("Notices"), False),
    ("/ui/peers", N_("Peers"), False),
    ("/ui/roster", N_("Network"), False),
    ("/ui/users", N_("Users"), True),
)


def done(path: str, code: str, **query: str) -> web.HTTPSeeOther:
    """The redirect after a successful form: to `path`, showing the message for `code`."""
    return web.HTTPSeeOther(f"{path}?{urlencode({**query, 'done': code})}")


def _current_nav(path: str) -> str:
    best = ""
    for target, _label, _admin in NAVIGATION:
        if (path == target or (target != "/ui/" and path.startswith(target + "/")) or path + "/" == target) and len(
            target
        ) > len(best):
            best = target
    if path.startswith("/ui/cases/") and path != "/ui/cases/new":
        best = "/ui/cases"
    return best


def base_context(request: web.Request) -> dict[str, Any]:
    node = request.app[NODE_KEY]
    session = current_session(request)
    is_admin = session is not None and session.role == "admin"
    code = request.query.get("done", "")
    return {
        "lang": language_of(request),
        "languages": LANGUAGES,
        "node_name": node.config.name,
        "node_country": node.config.country,
        "user": session,
        "is_admin": is_admin,
        "csrf": form_token(request),
        "navigation": [(p, label) for p, label, admin in NAVIGATION if is_admin or not admin] if session else [],
        "current": _current_nav(request.path),
        "here": request.path_qs if request.method == "GET" else request.path,
        "flash": DONE.get(code),
    }


def page(
    request: web.Request, template: str, context: Mapping[str, Any] | None = None, *, status: int = 200
) -> web.Response:
    """Render `template` with the shared context and `context`; a page is HTML, never cached."""
    response = aiohttp_jinja2.render_template(
        template, request, {**base_context(request), **(context or {})}, status=status
    )
    set_new_cookie(request, response)
    return response
