"""The new request wizard: the request built step by step, checked against the requested state's profile.

Like the EJN Compendium or UNODC's MLA Request Writer Tool, it asks one thing at a time: the requested
authority (with what its country profile says it accepts), the facts, the assistance sought and what the
requested state requires for it, the legal basis and languages, urgency and date; then it shows the whole
request with the draft check (`node.draft_check`, pure) run on the unsaved answers, each problem pointing
at the step that fixes it. Only "Save as draft" writes anything, through `node.cases.create` like the API.

Every step is the same form with every answer in it: the steps not shown are `hidden` sections, which the
browser still submits, so Back and Next keep everything without a server-side draft or JavaScript. The
button pressed (`go`) says which step to draw next or to save; a form posted without one (the one-page form
this replaced, or a script) is saved directly. `wizard.js` only adds a live check panel, fed by
`POST /ui/cases/new/check`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from node.case_fields import new_case_fields
from node.cases import utc_today
from node.draft_check import check_draft
from node.errors import NotFound, PeerError, ValidationError
from node.officers import officers_of
from node.runtime import NODE_KEY, Node
from node.vocab import CASE_KINDS, CONTENT_ITEMS, LANGUAGES, LEGAL_BASES, MEASURES, OFFENCES, URGENCY
from ui.i18n import N_, language_of, translations
from ui.render import done, page
from ui.sessions import actor

LIST_FIELDS: Final = ("offences", "measures", "legal_basis", "languages", "provided")
TEXT_FIELDS: Final = (
    "counterpart",
    "kind",
    "reference",
    "summary",
    "treaty",
    "urgency",
    "urgency_reason",
    "requested_by",
)
OPTIONAL: Final = ("requested_by", "treaty", "urgency_reason")

# The wizard's steps, in order (numbered from 1 on the page and in the `go` button's value).
STEPS: Final = (
    N_("Requested authority"),
    N_("The facts"),
    N_("Assistance requested"),
    N_("Legal basis and languages"),
    N_("Urgency and date"),
    N_("Review and save"),
)
REVIEW: Final = len(STEPS)
# The step where each field (of `node.case_fields`, or of a draft check problem) is answered.
STEP_OF: Final[Mapping[str, int]] = {
    "counterpart": 1,
    "kind": 1,
    "profile": 1,
    "reference": 2,
    "summary": 2,
    "offences": 2,
    "measures": 3,
    "provided": 3,
    "legal_basis": 4,
    "treaty": 4,
    "languages": 4,
    "translation": 4,
    "urgency": 5,
    "urgency_reason": 5,
    "requested_by": 5,
}
# What each field is called on the page, for the messages that name it.
FIELD_LABELS: Final[Mapping[str, str]] = {
    "counterpart": N_("Requested authority"),
    "kind": N_("Kind of request"),
    "reference": N_("Your reference"),
    "summary": N_("Summary of the facts"),
    "offences": N_("Offences"),
    "measures": N_("Measures sought"),
    "provided": N_("Items the request contains"),
    "legal_basis": N_("Legal basis"),
    "treaty": N_("Name of the treaty"),
    "languages": N_("Languages"),
    "urgency": N_("Urgency"),
    "urgency_reason": N_("Why it is urgent"),
    "requested_by": N_("Requested by"),
}
NO_COUNTERPART: Final = N_("Choose the authority you are sending the request to.")


def answers(form: MultiDictProxy[Any]) -> dict[str, Any]:
    """Every answer in the form, as typed: text fields stripped, lists from checkboxes, nothing left out."""
    values: dict[str, Any] = {name: str(form.get(name, "")).strip() for name in TEXT_FIELDS}
    for name in LIST_FIELDS:
        values[name] = list(dict.fromkeys(str(v) for v in form.getall(name, [])))
    values["kind"] = values["kind"] or "mla"
    values["urgency"] = values["urgency"] or "normal"
    return values


def api_body(values: Mapping[str, Any]) -> dict[str, Any]:
    """The API's JSON body for the answers: empty optional fields left out."""
    return {name: value for name, value in values.items() if name not in OPTIONAL or value}


def _profile(node: Node, country: str) -> dict[str, Any] | None:
    try:
        return node.profiles.get(country)
    except NotFound:
        return None


def _authorities(node: Node) -> list[dict[str, Any]]:
    """The trusted central authorities, each with its country's profile (None if it has published none)."""
    peers = sorted((p for p in node.peers.all() if p.role == "authority"), key=lambda p: (p.country, p.name.casefold()))
    profiles = {country: _profile(node, country) for country in {p.country for p in peers}}
    return [{"node_id": p.node_id, "name": p.name, "country": p.country, "profile": profiles[p.country]} for p in peers]


def _chosen(authorities: list[dict[str, Any]], values: Mapping[str, Any]) -> dict[str, Any] | None:
    return next((a for a in authorities if a["node_id"] == values.get("counterpart")), None)


def _problems(values: Mapping[str, Any], chosen: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The draft check on the unsaved answers, each problem with the step that fixes it."""
    problems = check_draft(api_body(values), chosen["profile"] if chosen else None, today=utc_today())
    if chosen is None:  # no authority chosen yet: there is no profile to miss, the choice itself is missing
        problems = [p for p in problems if p["code"] != "no_profile"]
    return [{**p, "step": STEP_OF.get(p.get("field", ""), 1)} for p in problems]


def _invalid(values: Mapping[str, Any], authorities: list[dict[str, Any]]) -> dict[str, str]:
    """What `node.case_fields` refuses in the answers (saving would fail), by field."""
    try:
        new_case_fields(api_body(values))
        errors: dict[str, str] = {}
    except ValidationError as exc:
        errors = dict(exc.fields)
    if not values.get("counterpart") or _chosen(authorities, values) is None:
        errors["counterpart"] = NO_COUNTERPART
    return errors


def _required_items(profile: Mapping[str, Any] | None, measures: list[str]) -> dict[str, list[str]]:
    """Each content item the requested state requires for the chosen measures, with the measures needing it."""
    requirements = profile.get("requirements", {}) if profile else {}
    items: dict[str, list[str]] = {}
    for measure in measures:
        for item in requirements.get(measure, []):
            items.setdefault(item, []).append(measure)
    return items


def _options(vocabulary: Mapping[str, str], *extra: list[str]) -> list[str]:
    """The vocabulary's codes, then any other code the profile or the answers use (shown as-is)."""
    codes = list(vocabulary)
    for more in extra:
        codes.extend(c for c in more if c not in codes)
    return codes


def _step_of(errors: Mapping[str, str]) -> int:
    return min((STEP_OF.get(name, REVIEW) for name in errors), default=REVIEW)


def _wizard_page(
    request: web.Request,
    values: dict[str, Any],
    step: int,
    *,
    errors: dict[str, str] | None = None,
    message: str = "",
    status: int = 200,
) -> web.Response:
    node = request.app[NODE_KEY]
    authorities = _authorities(node)
    chosen = _chosen(authorities, values)
    profile = chosen["profile"] if chosen else None
    required = _required_items(profile, values["measures"])
    execution = profile.get("execution_days", {}) if profile else {}
    review = step == REVIEW
    return page(
        request,
        "new_case.html",
        {
            "values": values,
            "errors": errors or {},
            "message": message,
            "step": step,
            "steps": STEPS,
            "step_of": STEP_OF,
            "field_labels": FIELD_LABELS,
            "authorities": authorities,
            "chosen": chosen,
            "profile": profile,
            "required": required,
            "kept_provided": [item for item in values["provided"] if item not in required],
            "execution": [(m, execution[m]) for m in values["measures"] if m in execution],
            "kinds": CASE_KINDS,
            "offences": OFFENCES,
            "measures": MEASURES,
            "content_items": CONTENT_ITEMS,
            "legal_bases": _options(LEGAL_BASES, values["legal_basis"]),
            "legal_base_names": LEGAL_BASES,
            "urgencies": URGENCY,
            "case_languages": _options(LANGUAGES, profile["languages"] if profile else [], values["languages"]),
            "accepted_languages": [c.lower() for c in profile["languages"]] if profile else [],
            "accepted_bases": profile["legal_bases"] if profile else [],
            "problems": _problems(values, chosen) if review else [],
            "invalid": _invalid(values, authorities) if review else {},
        },
        status=status,
    )


def _step(value: Any) -> int | None:
    """The step a `go` button asks for, or None for "save"."""
    if value == "save":
        return None
    try:
        return min(max(int(str(value)), 1), REVIEW)
    except ValueError:
        return 1


async def new_case_form(request: web.Request) -> web.Response:
    return _wizard_page(request, answers(MultiDictProxy(MultiDict())), 1)


async def new_case_post(request: web.Request) -> web.Response:
    """A wizard button: draw the step it asks for, or save the request ("save", or no button at all)."""
    form = await request.post()
    values = answers(form)
    go = form.get("go", "save")
    step = _step(go)
    if step is not None:
        return _wizard_page(request, values, step)
    return _save(request, values)


def _save(request: web.Request, values: dict[str, Any]) -> web.Response:
    node = request.app[NODE_KEY]
    try:
        case = node.cases.create(api_body(values), actor=actor(request))
    except ValidationError as exc:
        errors = dict(exc.fields)
        if "counterpart" in errors and not values["counterpart"]:
            errors["counterpart"] = NO_COUNTERPART
        return _wizard_page(
            request, values, _step_of(errors), errors=errors, status=exc.http_status, message=exc.message
        )
    except PeerError as exc:
        errors = {"counterpart": exc.message}
        return _wizard_page(request, values, 1, errors=errors, status=exc.http_status, message=exc.message)
    officers_of(node).creator_takes(case["id"], actor(request))
    raise done(f"/ui/cases/{case['id']}", "created")


async def check(request: web.Request) -> web.Response:
    """`{"problems": [...], "invalid": {...}}` for the posted answers: the live panel's content (JSON)."""
    node = request.app[NODE_KEY]
    values = answers(await request.post())
    authorities = _authorities(node)
    gettext = translations(language_of(request)).gettext
    problems = [
        {**p, "step_title": gettext(STEPS[p["step"] - 1])} for p in _problems(values, _chosen(authorities, values))
    ]
    invalid = {
        name: {
            "label": gettext(FIELD_LABELS.get(name, name)),
            "message": gettext(text),
            "step": STEP_OF.get(name, REVIEW),
        }
        for name, text in _invalid(values, authorities).items()
    }
    return web.json_response({"problems": problems, "invalid": invalid})


def add_new_case_routes(app: web.Application) -> None:
    app.router.add_get("/ui/cases/new", new_case_form)
    app.router.add_post("/ui/cases/new", new_case_post)
    app.router.add_post("/ui/cases/new/check", check)
