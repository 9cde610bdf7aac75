"""The OpenAPI 3.1 description of the node's API, served at /api/v1/openapi.json.

Written out rather than generated: the API is small, and a hand-kept document is reviewed
like code. `tests/test_api.py` checks that every route the app serves is described here and
that every response the tests see matches its documented status codes.
"""

from __future__ import annotations

from typing import Any

from node.api_discovery import OPENAPI_PATHS as DISCOVERY_PATHS
from node.api_invitations import OPENAPI_PATHS as INVITATION_PATHS
from node.api_notices import OPENAPI_PATHS as NOTICE_PATHS
from node.api_notices import OPENAPI_SCHEMAS as NOTICE_SCHEMAS
from node.api_officers import OPENAPI_PATHS as OFFICER_PATHS
from node.api_profiles import OPENAPI_PATHS, OPENAPI_SCHEMAS
from node.api_roster import OPENAPI_PATHS as ROSTER_PATHS
from node.api_stats import OPENAPI_PATHS as STATS_PATHS
from node.api_stats import OPENAPI_SCHEMAS as STATS_SCHEMAS
from node.directory import LIST_FIELDS, TEXT_FIELDS
from node.metrics import OPENAPI_PATHS as METRICS_PATHS
from node.openapi_cases import OPENAPI_PATHS as CASE_PATHS
from node.openapi_cases import OPENAPI_SCHEMAS as CASE_SCHEMAS
from node.openapi_parts import _errors, _json, _request_body


def _contact_schema(*, for_input: bool) -> dict[str, Any]:
    props: dict[str, Any] = {name: {"type": "string", "maxLength": size} for name, size in TEXT_FIELDS.items()}
    props["country"] = {"type": "string", "pattern": "^[A-Z]{2}$", "description": "ISO 3166-1 alpha-2"}
    for name, (most, longest) in LIST_FIELDS.items():
        props[name] = {"type": "array", "maxItems": most, "items": {"type": "string", "maxLength": longest}}
    if for_input:
        return {"type": "object", "properties": props, "additionalProperties": False}
    props.update(
        {
            "id": {"type": "string"},
            "owner": {"type": "string", "description": "node ID of the authority that keeps this entry"},
            "updated_at": {"type": ["string", "null"], "format": "date-time"},
        }
    )
    return {"type": "object", "properties": props, "required": ["id", "owner", "name", "country"]}


def openapi_document() -> dict[str, Any]:
    contact = {"$ref": "#/components/schemas/Contact"}
    contact_id = {"name": "contact_id", "in": "path", "required": True, "schema": {"type": "string"}}
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SEAJust Node API",
            "version": "1",
            "description": "The JSON API of one node of the SEAJust judicial cooperation network.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "fields": {"type": "object"}},
                    "required": ["error"],
                },
                "Node": {
                    "type": "object",
                    "properties": {
                        "node_id": {"type": "string"},
                        "name": {"type": "string"},
                        "country": {"type": "string"},
                        "role": {"type": "string", "enum": ["authority", "secretariat"]},
                        "url": {"type": "string"},
                        "card": {"type": "string"},
                    },
                    "required": ["node_id", "name", "country", "role"],
                },
                "Peer": {
                    "type": "object",
                    "properties": {
                        "node_id": {"type": "string"},
                        "name": {"type": "string"},
                        "country": {"type": "string"},
                        "role": {"type": "string"},
                        "addresses": {"type": "array", "items": {"type": "string"}},
                        "trusted_at": {"type": "string"},
                        "last_sync": {"type": ["string", "null"]},
                        "connected": {"type": "boolean"},
                        "outbox": {
                            "type": "integer",
                            "description": "updates the peer is not known to hold yet",
                        },
                    },
                    "required": ["node_id", "name", "country", "role", "last_sync"],
                },
                "Contact": _contact_schema(for_input=False),
                "ContactInput": _contact_schema(for_input=True),
                **OPENAPI_SCHEMAS,
                **NOTICE_SCHEMAS,
                **CASE_SCHEMAS,
                **STATS_SCHEMAS,
            },
        },
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Liveness check (no token needed)",
                    "responses": {"200": _json({"type": "object"}, "The node is up")},
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI")},
                }
            },
            "/api/v1/node": {
                "get": {
                    "summary": "This node's identity and card",
                    "security": secured,
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Node"}, "This node"),
                        **_errors(401),
                    },
                }
            },
            "/api/v1/peers": {
                "get": {
                    "summary": "Trusted peers and their sync state",
                    "security": secured,
                    "responses": {
                        "200": _json({"type": "array", "items": {"$ref": "#/components/schemas/Peer"}}, "Peers"),
                        **_errors(401),
                    },
                },
                "post": {
                    "summary": "Trust a peer from its signed card",
                    "security": secured,
                    "requestBody": _request_body({"card": {"type": "string"}}),
                    "responses": {
                        "201": _json({"$ref": "#/components/schemas/Peer"}, "Peer trusted"),
                        **_errors(400, 401, 422),
                    },
                },
            },
            "/api/v1/contacts": {
                "get": {
                    "summary": "The network's contact points",
                    "security": secured,
                    "parameters": [
                        {"name": "country", "in": "query", "schema": {"type": "string"}},
                        {"name": "expertise", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "q",
                            "in": "query",
                            "schema": {"type": "string"},
                            "description": "free-text search",
                        },
                    ],
                    "responses": {
                        "200": _json({"type": "array", "items": contact}, "Contacts"),
                        **_errors(401),
                    },
                },
                "post": {
                    "summary": "Add a contact point of this authority",
                    "security": secured,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ContactInput"}}},
                    },
                    "responses": {"201": _json(contact, "Stored contact"), **_errors(400, 401, 422)},
                },
            },
            "/api/v1/contacts/{contact_id}": {
                "parameters": [contact_id],
                "get": {
                    "summary": "One contact point",
                    "security": secured,
                    "responses": {"200": _json(contact, "Contact"), **_errors(401, 404)},
                },
                "patch": {
                    "summary": "Change fields of one of this authority's contact points",
                    "security": secured,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ContactInput"}}},
                    },
                    "responses": {
                        "200": _json(contact, "Updated contact"),
                        **_errors(400, 401, 403, 404, 422),
                    },
                },
                "delete": {
                    "summary": "Remove one of this authority's contact points",
                    "security": secured,
                    "responses": {"204": {"description": "Removed"}, **_errors(401, 403, 404)},
                },
            },
            "/api/v1/sync": {
                "get": {
                    "summary": "Connected peers, refused messages by reason, and document versions",
                    "security": secured,
                    "responses": {"200": _json({"type": "object"}, "Sync state"), **_errors(401)},
                }
            },
            **OPENAPI_PATHS,
            **NOTICE_PATHS,
            **CASE_PATHS,
            **STATS_PATHS,
            **INVITATION_PATHS,
            **ROSTER_PATHS,
            **DISCOVERY_PATHS,
            **METRICS_PATHS,
            **OFFICER_PATHS,
        },
    }
