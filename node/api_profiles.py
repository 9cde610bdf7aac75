"""The country-profile endpoints of the JSON API, and their part of the OpenAPI document.

Kept beside `node.profiles` rather than in `node.api` so the feature is one unit: `node.api`
adds these routes and `node.openapi` merges these paths and schemas, each with one line. A
profile is replaced whole (PUT), because it is one short form that an authority reviews and
publishes at once, and a partial merge of lists such as treaties would surprise it.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from node import vocab
from node.http import actor_of, json_response, read_json
from node.openapi_parts import ERROR
from node.profiles import (
    EDITABLE,
    MAX_EXECUTION_DAYS,
    MAX_ITEMS_PER_MEASURE,
    MAX_LANGUAGES,
    MAX_LEGAL_BASES,
    MAX_TREATIES,
    READ_ONLY,
    TEXT_FIELDS,
    TREATY_LENGTH,
)
from node.runtime import NODE_KEY


async def list_profiles(request: web.Request) -> web.Response:
    return json_response(request.app[NODE_KEY].profiles.list())


async def get_profile(request: web.Request) -> web.Response:
    return json_response(request.app[NODE_KEY].profiles.get(request.match_info["country"]))


async def put_profile(request: web.Request) -> web.Response:
    profiles = request.app[NODE_KEY].profiles
    body = await read_json(request)
    return json_response(profiles.put(request.match_info["country"], body, actor=actor_of(request)))


def add_profile_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/profiles", list_profiles)
    app.router.add_get("/api/v1/profiles/{country}", get_profile)
    app.router.add_put("/api/v1/profiles/{country}", put_profile)


# -- OpenAPI ------------------------------------------------------------------------------

_ERROR_TEXT: Final = {
    400: "Malformed request body",
    401: "Missing or invalid bearer token",
    403: "Another country's profile: each authority edits only its own",
    404: "No profile published for that country",
    422: "Invalid fields (`fields` names each)",
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _json(ERROR, _ERROR_TEXT[code]) for code in codes}


def _profile_schema(*, for_input: bool) -> dict[str, Any]:
    measure_keys = {"propertyNames": {"enum": list(vocab.MEASURES)}}
    props: dict[str, Any] = {name: {"type": "string", "maxLength": size} for name, size in TEXT_FIELDS.items()}
    props["authority"]["description"] = "name of the central authority"
    props["urgent_channel"]["description"] = "how to reach the authority for urgent requests, 24/7"
    props.update(
        {
            "languages": {
                "type": "array",
                "maxItems": MAX_LANGUAGES,
                "items": {"type": "string", "pattern": "^[a-z]{2,3}$"},
                "description": "ISO 639 codes of the languages requests are accepted in",
            },
            "legal_bases": {
                "type": "array",
                "maxItems": MAX_LEGAL_BASES,
                "items": {"type": "string", "enum": list(vocab.LEGAL_BASES)},
                "description": "legal bases the authority can act on",
            },
            "treaties": {
                "type": "array",
                "maxItems": MAX_TREATIES,
                "items": {"type": "string", "maxLength": TREATY_LENGTH},
                "description": "treaties the state is party to",
            },
            "requirements": {
                "type": "object",
                **measure_keys,
                "additionalProperties": {
                    "type": "array",
                    "maxItems": MAX_ITEMS_PER_MEASURE,
                    "items": {"type": "string", "pattern": "^[a-z0-9_]{1,60}$"},
                },
                "description": "measure code -> content items required for it (see vocab.CONTENT_ITEMS)",
            },
            "execution_days": {
                "type": "object",
                **measure_keys,
                "additionalProperties": {"type": "integer", "minimum": 0, "maximum": MAX_EXECUTION_DAYS},
                "description": "measure code -> average execution time reported, in days",
            },
        }
    )
    read_only: dict[str, dict[str, Any]] = {
        "node_id": {"type": "string", "description": "node ID of the authority that publishes this profile"},
        "country": {"type": "string", "pattern": "^[A-Z]{2}$", "description": "ISO 3166-1 alpha-2, from the node"},
        "updated_at": {"type": ["string", "null"], "format": "date-time"},
    }
    if for_input:
        props.update({name: {**schema, "readOnly": True} for name, schema in read_only.items()})
        return {
            "type": "object",
            "properties": props,
            "additionalProperties": False,
            "description": "The whole profile: fields not given are emptied. node_id, country and updated_at "
            "are ignored (country must be this node's if given).",
        }
    props.update(read_only)
    return {"type": "object", "properties": props, "required": [*READ_ONLY, *EDITABLE]}


_PROFILE: Final = {"$ref": "#/components/schemas/Profile"}
_SECURED: Final[list[dict[str, list[str]]]] = [{"bearer": []}]
_COUNTRY: Final = {
    "name": "country",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "ISO 3166-1 alpha-2 country code",
}

OPENAPI_SCHEMAS: Final[dict[str, Any]] = {
    "Profile": _profile_schema(for_input=False),
    "ProfileInput": _profile_schema(for_input=True),
}

OPENAPI_PATHS: Final[dict[str, Any]] = {
    "/api/v1/profiles": {
        "get": {
            "summary": "Every country profile this node holds",
            "security": _SECURED,
            "responses": {"200": _json({"type": "array", "items": _PROFILE}, "Profiles"), **_errors(401)},
        }
    },
    "/api/v1/profiles/{country}": {
        "parameters": [_COUNTRY],
        "get": {
            "summary": "A country's profile (the most recently updated, if several of its authorities publish one)",
            "security": _SECURED,
            "responses": {"200": _json(_PROFILE, "Profile"), **_errors(401, 404)},
        },
        "put": {
            "summary": "Publish or replace this authority's own country profile",
            "security": _SECURED,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ProfileInput"}}},
            },
            "responses": {"200": _json(_PROFILE, "Stored profile"), **_errors(400, 401, 403, 422)},
        },
    },
}
