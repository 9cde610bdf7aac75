"""Forms under `/ui/` must come from this node's own pages (protection against cross-site request forgery).

Every POST carries a hidden `csrf` field. With a session it must equal the session's token, which the
server stores and no other site can read. Before there is a session (the login, setup and language
forms) a random token is set in the `sj_csrf` cookie and repeated in the form ("double submit"): another
site can make the browser send the cookie, but cannot read it to fill in the field. Anything else is
refused with a 403 page before the handler runs, so a forged form changes nothing.

A file upload is the exception: its body may be far larger than the node reads into memory for a form,
so its handler (marked with `@streamed`) checks the token itself, as the first part of the stream,
before it reads the file.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Final, TypeVar

from aiohttp import web

from node.errors import Forbidden
from ui.sessions import Handler, current_session, is_ui

CSRF_COOKIE: Final = "sj_csrf"
FIELD: Final = "csrf"
EXPECTED_KEY: Final = web.RequestKey("ui_csrf_expected", str)
NEW_COOKIE_KEY: Final = web.RequestKey("ui_csrf_new_cookie", str)

_STREAMED: set[object] = set()
H = TypeVar("H", bound=Handler)


class FormExpired(Forbidden):
    """This form has expired; reload the page and try again."""


def streamed(handler: H) -> H:
    """Mark a handler that reads a multipart body itself and calls `check_token` on its first part."""
    _STREAMED.add(handler)
    return handler


def _expected(request: web.Request) -> str | None:
    session = current_session(request)
    return session.csrf if session is not None else request.cookies.get(CSRF_COOKIE)


def check_token(request: web.Request, given: object) -> None:
    """Raise `FormExpired` unless `given` is this browser's token."""
    expected = request.get(EXPECTED_KEY) or _expected(request)
    if not expected or not isinstance(given, str) or not hmac.compare_digest(expected.encode(), given.encode()):
        raise FormExpired()


def form_token(request: web.Request) -> str:
    """The token to put in this page's forms; before a session, a new `sj_csrf` cookie if there is none."""
    expected = _expected(request)
    if expected:
        return expected
    token = request.get(NEW_COOKIE_KEY) or secrets.token_urlsafe(32)
    request[NEW_COOKIE_KEY] = token
    return token


def set_new_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """Send the pre-session token `form_token` made for this page, if it made one."""
    token = request.get(NEW_COOKIE_KEY)
    if token:
        response.set_cookie(
            CSRF_COOKIE, token, path="/ui/", httponly=True, samesite="Strict", secure=request.secure or None
        )


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method != "POST" or not is_ui(request.path):
        return await handler(request)
    if request.content_type == "multipart/form-data" and request.match_info.handler in _STREAMED:
        expected = _expected(request)
        if not expected:
            raise FormExpired()
        request[EXPECTED_KEY] = expected
        return await handler(request)
    form = await request.post()
    check_token(request, form.get(FIELD))
    return await handler(request)
