"""Country profiles: every member's, to read before drafting a request, and this node's own, to edit.

A profile says what the requested state needs: the languages and legal bases it accepts, the treaties
it applies, the items it requires for each measure and how many days each measure usually takes. The
check before sending a request (`node.draft_check`) reads them. An authority edits only its own
country's profile (`node.profiles` refuses any other, and so does every peer on receipt); the edit
page of another country is refused before it is drawn.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from node.errors import Forbidden, ValidationError
from node.profiles import MAX_EXECUTION_DAYS, validate_profile
from node.runtime import NODE_KEY, Node
from node.vocab import CONTENT_ITEMS, LANGUAGES, LEGAL_BASES, MEASURES
from ui.pages_network import chosen, lines, network_page
from ui.render import done
from ui.sessions import actor

TEXT: Final = ("authority", "urgent_channel", "notes")


def _own_country(node: Node, country: str) -> str:
    if country.strip().upper() != node.config.country:
        raise Forbidden(
            f"each authority edits only its own country profile; this node's country is {node.config.country}"
        )
    return node.config.country


def _own_profile(node: Node) -> dict[str, Any]:
    """This node's own profile as it stands (not another authority's of the same country), or an empty one."""
    for profile in node.profiles.list():
        if profile["node_id"] == node.node_id:
            return profile
    return {
        **{name: "" for name in TEXT},
        "languages": [],
        "legal_bases": [],
        "treaties": [],
        "requirements": {},
        "execution_days": {},
    }


def _measured(profile: dict[str, Any]) -> list[str]:
    """The measures a profile says anything about: the known ones in vocabulary order, then any other code."""
    named = [*profile["requirements"], *profile["execution_days"]]
    return [m for m in MEASURES if m in named] + sorted({m for m in named if m not in MEASURES})


async def profiles(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    listed = [{**p, "measured": _measured(p)} for p in node.profiles.list()]
    return network_page(
        request,
        "profiles.html",
        {
            "profiles": listed,
            "own_id": node.node_id,
            "has_own": any(p["node_id"] == node.node_id for p in listed),
            "measures": MEASURES,
            "content_items": CONTENT_ITEMS,
        },
    )


def _edit_page(
    request: web.Request,
    profile: dict[str, Any],
    days: dict[str, str],
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> web.Response:
    extra_languages = [c for c in profile["languages"] if c not in LANGUAGES]
    extra_bases = [c for c in profile["legal_bases"] if c not in LEGAL_BASES]
    items: dict[str, list[str]] = {}
    for measure in MEASURES:
        held = profile["requirements"].get(measure, [])
        items[measure] = [*CONTENT_ITEMS, *(i for i in held if i not in CONTENT_ITEMS)]
    return network_page(
        request,
        "profile_edit.html",
        {
            "profile": profile,
            "days": days,
            "language_choices": [*LANGUAGES, *extra_languages],
            "legal_basis_choices": [*LEGAL_BASES, *extra_bases],
            "measures": MEASURES,
            "items": items,
            "content_items": CONTENT_ITEMS,
            "treaties_text": "\n".join(profile["treaties"]),
            "max_days": MAX_EXECUTION_DAYS,
            "errors": errors or {},
        },
        status=status,
    )


async def edit_profile(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    _own_country(node, request.match_info["country"])
    profile = _own_profile(node)
    days = {m: str(d) for m, d in profile["execution_days"].items()}
    return _edit_page(request, profile, days)


async def save_profile(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    country = _own_country(node, request.match_info["country"])
    form = await request.post()
    days_given = {m: str(form.get(f"days-{m}", "")).strip() for m in MEASURES}
    execution_days: dict[str, int] = {}
    errors: dict[str, str] = {}
    for measure, text in days_given.items():
        if not text:
            continue
        if text.isdigit() and int(text) <= MAX_EXECUTION_DAYS:
            execution_days[measure] = int(text)
        else:
            errors[f"days-{measure}"] = f"must be a whole number of days from 0 to {MAX_EXECUTION_DAYS}"
    body: dict[str, Any] = {name: str(form.get(name, "")) for name in TEXT}
    body["languages"] = chosen(form, "languages")
    body["legal_bases"] = chosen(form, "legal_bases")
    body["treaties"] = lines(form.get("treaties"))
    body["requirements"] = {m: items for m in MEASURES if (items := chosen(form, f"req-{m}"))}
    body["execution_days"] = execution_days
    try:
        if errors:
            validate_profile(body, country=country)  # to show the other fields' problems as well
        else:
            node.profiles.put(country, body, actor=actor(request))
            raise done("/ui/profiles", "profile_saved")
    except ValidationError as exc:
        errors.update(exc.fields)
    return _edit_page(request, body, days_given, status=422, errors=errors)


def add_profile_routes(app: web.Application) -> None:
    app.router.add_get("/ui/profiles", profiles)
    app.router.add_get("/ui/profiles/{country:[A-Za-z]{2}}/edit", edit_profile)
    app.router.add_post("/ui/profiles/{country:[A-Za-z]{2}}/edit", save_profile)
