"""The contact-point directory: every member's contact points, searchable, and this node's own, editable.

Searching is a GET form (country, area of expertise, free text), so a search can be bookmarked or sent
to a colleague. Only this authority's own contact points can be added, changed or removed here:
`node.directory` refuses any other (another authority's part of the directory is signed by it), and
the page offers the buttons only on this node's rows.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from node.countries import normalise_country
from node.directory import EXPERTISE_SUGGESTIONS, TEXT_FIELDS
from node.errors import Forbidden, ValidationError
from node.runtime import NODE_KEY, Node
from node.vocab import LANGUAGES
from ui.pages_network import chosen, lines, network_page
from ui.render import done
from ui.sessions import actor

QUERY_LENGTH: Final = 200
_ID: Final = "{contact_id:[0-9a-f]{1,64}}"


def _filters(request: web.Request) -> dict[str, str]:
    query = request.query
    country = normalise_country((query.get("country") or "").strip()) or ""
    return {
        "country": country,
        "expertise": (query.get("expertise") or "").strip()[:QUERY_LENGTH],
        "q": (query.get("q") or "").strip()[:QUERY_LENGTH],
    }


async def directory(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    filters = _filters(request)
    everyone = node.directory.list()
    contacts = node.directory.list(
        country=filters["country"] or None, expertise=filters["expertise"] or None, q=filters["q"] or None
    )
    countries = sorted({c["country"] for c in everyone if c["country"]} | {node.config.country})
    expertise = sorted({e for c in everyone for e in c["expertise"]} | set(EXPERTISE_SUGGESTIONS), key=str.casefold)
    return network_page(
        request,
        "directory.html",
        {
            "contacts": contacts,
            "filters": filters,
            "filtered": any(filters.values()),
            "countries": countries,
            "expertise_choices": expertise,
            "own_id": node.node_id,
            "own_count": sum(1 for c in everyone if c["owner"] == node.node_id),
        },
    )


def _blank() -> dict[str, Any]:
    return {**{name: "" for name in TEXT_FIELDS}, "languages": [], "expertise": []}


def _form_page(
    request: web.Request,
    contact: dict[str, Any],
    *,
    contact_id: str | None,
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> web.Response:
    extra_languages = [c for c in contact["languages"] if c not in LANGUAGES]
    other_expertise = [e for e in contact["expertise"] if e not in EXPERTISE_SUGGESTIONS]
    return network_page(
        request,
        "contact_form.html",
        {
            "contact": contact,
            "contact_id": contact_id,
            "language_choices": [*LANGUAGES, *extra_languages],
            "expertise_choices": EXPERTISE_SUGGESTIONS,
            "other_expertise": "\n".join(other_expertise),
            "errors": errors or {},
        },
        status=status,
    )


async def _contact_from(request: web.Request) -> dict[str, Any]:
    form = await request.post()
    contact: dict[str, Any] = {name: str(form.get(name, "")) for name in TEXT_FIELDS}
    contact["languages"] = chosen(form, "languages")
    expertise = chosen(form, "expertise") + lines(form.get("other_expertise"))
    contact["expertise"] = list(dict.fromkeys(expertise))
    return contact


def _own(node: Node, contact_id: str) -> dict[str, Any]:
    contact = node.directory.get(contact_id)
    if contact["owner"] != node.node_id:
        raise Forbidden("this contact point belongs to another authority; only its own node can change it")
    return contact


async def new_contact(request: web.Request) -> web.Response:
    return _form_page(request, _blank(), contact_id=None)


async def add_contact(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    contact = await _contact_from(request)
    try:
        node.directory.create(contact, actor=actor(request))
    except ValidationError as exc:
        return _form_page(request, contact, contact_id=None, status=exc.http_status, errors=dict(exc.fields))
    raise done("/ui/directory", "contact_added")


async def edit_contact(request: web.Request) -> web.Response:
    contact_id = request.match_info["contact_id"]
    return _form_page(request, _own(request.app[NODE_KEY], contact_id), contact_id=contact_id)


async def save_contact(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    contact_id = request.match_info["contact_id"]
    _own(node, contact_id)
    contact = await _contact_from(request)
    try:
        node.directory.update(contact_id, contact, actor=actor(request))
    except ValidationError as exc:
        return _form_page(request, contact, contact_id=contact_id, status=exc.http_status, errors=dict(exc.fields))
    raise done("/ui/directory", "contact_saved")


async def delete_contact(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    node.directory.delete(request.match_info["contact_id"], actor=actor(request))
    raise done("/ui/directory", "contact_deleted")


def add_directory_routes(app: web.Application) -> None:
    app.router.add_get("/ui/directory", directory)
    app.router.add_get("/ui/directory/new", new_contact)
    app.router.add_post("/ui/directory/new", add_contact)
    app.router.add_get(f"/ui/directory/{_ID}/edit", edit_contact)
    app.router.add_post(f"/ui/directory/{_ID}/edit", save_contact)
    app.router.add_post(f"/ui/directory/{_ID}/delete", delete_contact)
