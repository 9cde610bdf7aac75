"""The form for a new request: what an officer fills in to open a case with another central authority.

Codes (kind, offences, measures, legal bases, languages) are offered as choices from `node.vocab`, so an
officer never types a code; the counterpart is chosen by name and country among the trusted central
authorities. The form becomes exactly the JSON body the API takes, and `node.cases.create` checks it:
its per-field messages are shown next to the fields, with everything the officer typed kept.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from node.errors import PeerError, ValidationError
from node.runtime import NODE_KEY, Node
from node.vocab import CASE_KINDS, LANGUAGES, LEGAL_BASES, MEASURES, OFFENCES, URGENCY
from ui.render import done, page
from ui.sessions import actor

LIST_FIELDS = ("offences", "measures", "legal_basis", "languages")
TEXT_FIELDS = ("counterpart", "kind", "reference", "summary", "treaty", "urgency", "urgency_reason", "requested_by")


def _authorities(node: Node) -> list[dict[str, str]]:
    peers = [p for p in node.peers.all() if p.role == "authority"]
    return [
        {"node_id": p.node_id, "name": p.name, "country": p.country}
        for p in sorted(peers, key=lambda p: (p.country, p.name.casefold()))
    ]


def _form_page(
    request: web.Request, values: dict[str, Any], errors: dict[str, str], *, status: int = 200, message: str = ""
) -> web.Response:
    node = request.app[NODE_KEY]
    return page(
        request,
        "new_case.html",
        {
            "values": values,
            "errors": errors,
            "message": message,
            "authorities": _authorities(node),
            "kinds": CASE_KINDS,
            "offences": OFFENCES,
            "measures": MEASURES,
            "legal_bases": LEGAL_BASES,
            "urgencies": URGENCY,
            "case_languages": LANGUAGES,
        },
        status=status,
    )


async def new_case_form(request: web.Request) -> web.Response:
    values: dict[str, Any] = {"kind": "mla", "urgency": "normal", **{name: [] for name in LIST_FIELDS}}
    return _form_page(request, values, {})


def _body(form: MultiDictProxy[Any]) -> dict[str, Any]:
    """The API's JSON body from the form: lists from checkboxes, empty optional fields left out."""
    body: dict[str, Any] = {name: str(form.get(name, "")).strip() for name in TEXT_FIELDS}
    for name in LIST_FIELDS:
        body[name] = [str(v) for v in form.getall(name, [])]
    for optional in ("requested_by", "treaty", "urgency_reason"):
        if not body[optional]:
            del body[optional]
    return body


async def create(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    form = await request.post()
    body = _body(form)
    try:
        case = node.cases.create(body, actor=actor(request))
    except ValidationError as exc:
        errors = dict(exc.fields)
        if "counterpart" in errors and not body["counterpart"]:
            errors["counterpart"] = "Choose the authority you are sending the request to."
        return _form_page(request, body, errors, status=exc.http_status, message=exc.message)
    except PeerError as exc:
        return _form_page(request, body, {"counterpart": exc.message}, status=exc.http_status, message=exc.message)
    raise done(f"/ui/cases/{case['id']}", "created")


def add_new_case_routes(app: web.Application) -> None:
    app.router.add_get("/ui/cases/new", new_case_form)
    app.router.add_post("/ui/cases/new", create)
