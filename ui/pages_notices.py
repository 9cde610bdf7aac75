"""Network notices: the secretariat's meetings, trainings, working groups and announcements.

Every node lists the notices it holds (`node.notices`, replicated from the secretariat). Only a
secretariat node publishes, edits and deletes them, and only its own: the forms are drawn there alone,
and `node.notices` refuses anyone else, so a form posted to an authority's node is a 403 page.
A notice's link is shown as a link only when it is a web address (a peer's notice is read, not trusted).
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from node.errors import Forbidden, ValidationError
from node.notices import CATEGORIES, EDITABLE
from node.runtime import NODE_KEY, Node
from ui.i18n import N_
from ui.pages_network import network_page
from ui.parties import party
from ui.render import done
from ui.sessions import actor

CATEGORY_WORDS: Final[dict[str, str]] = {
    "meeting": N_("Meeting"),
    "training": N_("Training"),
    "working_group": N_("Working group"),
    "announcement": N_("Announcement"),
}
_ID: Final = "{notice_id:[0-9a-f]{1,64}}"


def _blank() -> dict[str, Any]:
    return {name: "" for name in EDITABLE}


def _shown(node: Node, notice: dict[str, Any]) -> dict[str, Any]:
    link = notice["link"]
    return {
        **notice,
        "publisher_name": party(node, notice["publisher"])["name"],
        "web_link": link if link.lower().startswith(("https://", "http://")) else "",
        "own": notice["publisher"] == node.node_id,
    }


def _list_page(
    request: web.Request,
    *,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> web.Response:
    node = request.app[NODE_KEY]
    category = request.query.get("category", "")
    category = category if category in CATEGORIES else ""
    upcoming = request.query.get("upcoming") == "1"
    notices = node.notices.list(category=category or None, upcoming=upcoming)
    return network_page(
        request,
        "notices.html",
        {
            "notices": [_shown(node, n) for n in notices],
            "filters": {"category": category, "upcoming": upcoming},
            "categories": CATEGORY_WORDS,
            "can_publish": node.config.role == "secretariat",
            "values": values or _blank(),
            "errors": errors or {},
        },
        status=status,
    )


async def notices(request: web.Request) -> web.Response:
    return _list_page(request)


async def _notice_from(request: web.Request) -> dict[str, Any]:
    form = await request.post()
    return {name: str(form.get(name, "")) for name in EDITABLE}


async def publish(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    values = await _notice_from(request)
    try:
        node.notices.create(values, actor=actor(request))
    except ValidationError as exc:
        if not exc.fields:
            raise
        return _list_page(request, status=exc.http_status, values=values, errors=dict(exc.fields))
    raise done("/ui/notices", "notice_published")


def _edit_page(
    request: web.Request,
    notice_id: str,
    values: dict[str, Any],
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> web.Response:
    return network_page(
        request,
        "notice_edit.html",
        {"notice_id": notice_id, "values": values, "errors": errors or {}, "categories": CATEGORY_WORDS},
        status=status,
    )


def _own(node: Node, notice_id: str) -> dict[str, Any]:
    """The notice, if this node may change it (the same rule `node.notices` applies on saving)."""
    notice = node.notices.get(notice_id)
    if node.config.role != "secretariat" or notice["publisher"] != node.node_id:
        raise Forbidden("only the secretariat node that published a notice can change it")
    return notice


async def edit(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    notice_id = request.match_info["notice_id"]
    notice = _own(node, notice_id)
    return _edit_page(request, notice_id, {name: notice[name] or "" for name in EDITABLE})


async def save(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    notice_id = request.match_info["notice_id"]
    values = await _notice_from(request)
    try:
        node.notices.update(notice_id, values, actor=actor(request))
    except ValidationError as exc:
        if not exc.fields:
            raise
        return _edit_page(request, notice_id, values, status=exc.http_status, errors=dict(exc.fields))
    raise done("/ui/notices", "notice_saved")


async def delete(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    node.notices.delete(request.match_info["notice_id"], actor=actor(request))
    raise done("/ui/notices", "notice_deleted")


def add_notice_routes(app: web.Application) -> None:
    app.router.add_get("/ui/notices", notices)
    app.router.add_post("/ui/notices", publish)
    app.router.add_get(f"/ui/notices/{_ID}/edit", edit)
    app.router.add_post(f"/ui/notices/{_ID}/edit", save)
    app.router.add_post(f"/ui/notices/{_ID}/delete", delete)
