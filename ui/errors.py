"""Errors on a page are pages: a person who clicks a stale link or submits an old form gets a readable page
with the way back, not the API's JSON.

Outside `/ui/` this middleware does nothing, so the API keeps its `{"error": ...}` answers. Messages come
from the error's text (written for officers, see `node.errors`); an unexpected failure is logged and the
page says only that it happened.
"""

from __future__ import annotations

import logging

from aiohttp import web

from crypto.errors import SeajustError
from ui.i18n import N_
from ui.render import page
from ui.sessions import Handler, is_ui

log = logging.getLogger(__name__)

_TITLES = {
    400: N_("That did not work"),
    401: N_("Please sign in"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    405: N_("That did not work"),
    409: N_("That change is not possible now"),
    413: N_("The file is too large"),
    422: N_("Some fields need attention"),
    429: N_("Too many attempts"),
    500: N_("Something went wrong"),
}
_HTTP_MESSAGES = {
    404: N_("There is no such page. Use the menu above to find what you are looking for."),
    405: N_("This page cannot be used that way. Use the menu above."),
    413: N_("The file or form is larger than this node accepts."),
}
_INTERNAL = N_("Something went wrong on this node. Try again; if it happens again, tell the node's operator.")


def error_page(request: web.Request, status: int, message: str, *, translate: bool = False) -> web.Response:
    title = _TITLES.get(status, _TITLES[400])
    return page(request, "error.html", {"title": title, "message": message, "translate": translate}, status=status)


@web.middleware
async def error_pages_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_ui(request.path):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = _HTTP_MESSAGES.get(exc.status)
        return error_page(request, exc.status, message or exc.reason, translate=message is not None)
    except SeajustError as exc:
        return error_page(request, getattr(exc, "http_status", 400), exc.message)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_page(request, 500, _INTERNAL, translate=True)
