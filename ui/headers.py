"""Security headers on every response the node sends: pages, static files, the JSON API, errors, redirects.

Set in `on_response_prepare` rather than in a middleware because a middleware sees only what the handlers
inside it return: the JSON error middleware's answers, raised redirects and the router's 404 would escape
it. The policy forbids inline scripts and styles, so an injected `<script>` or `style=` that slipped past
escaping still does nothing; pages must load their CSS and JS from `/ui/static/`.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS: Final[dict[str, str]] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    # Pages show case data: never keep them in a shared or back-button cache. Static files are the exception.
    page = request.path.startswith("/ui/") and not request.path.startswith("/ui/static/")
    if page and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"


def install_security_headers(app: web.Application) -> None:
    app.on_response_prepare.append(add_security_headers)
