"""Pieces every OpenAPI module of the node uses (the whole document is assembled in `node.openapi`)."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed request body",
        401: "Missing or invalid bearer token",
        403: "Not this node's to change",
        404: "Not found",
        409: "Already done, or in conflict with what is recorded",
        422: "Invalid fields",
    }
    return {str(code): _json(ERROR, text[code]) for code in codes}


def _request_body(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """A required JSON object request body with these properties (all required unless said otherwise)."""
    schema = {
        "type": "object",
        "properties": properties,
        "required": sorted(properties) if required is None else required,
    }
    return {"required": True, "content": {"application/json": {"schema": schema}}}
