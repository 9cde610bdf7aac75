"""The statistics API: `/api/v1/stats` and its preview, send, log, members, trends and CSV.

On an authority, `GET /api/v1/stats` is the node's own report; on the secretariat it is the
network's merge of the members' reports. `GET /api/v1/stats/preview` is byte for byte the
payload `POST /api/v1/stats/send` publishes, so an officer sees exactly what leaves the node.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from node.http import actor_of, json_response, read_json
from node.openapi_parts import _errors, _json
from node.runtime import NODE_KEY
from node.stats import SUPPRESSION_RULE

PERIOD_PARAM: Final = {
    "name": "period",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "pattern": r"^\d{4}-(Q[1-4]|0[1-9]|1[0-2])$"},
    "description": "A quarter (2026-Q4) or a month (2026-11); default: the current quarter",
}


async def get_stats(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE_KEY]
    period = request.query.get("period") or None
    if request.query.get("format") == "csv":
        text = node.reporting.csv(period)
        name = f"seajust-stats-{node.reporting.period_or_default(period)}.csv"
        return web.Response(
            text=text, content_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )
    return json_response(node.reporting.network(period))


async def preview(request: web.Request) -> web.Response:
    return json_response(request.app[NODE_KEY].reporting.preview(request.query.get("period") or None))


async def send(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body: Any = await read_json(request) if request.can_read_body else {}
    period = body.get("period") if isinstance(body, dict) else None
    return json_response(node.reporting.send(period if isinstance(period, str) else None, actor=actor_of(request)))


async def sent_log(request: web.Request) -> web.Response:
    return json_response(request.app[NODE_KEY].reporting.sent_log())


async def members(request: web.Request) -> web.Response:
    return json_response(request.app[NODE_KEY].reporting.members(request.query.get("period") or None))


async def trends(request: web.Request) -> web.Response:
    raw = request.query.get("periods", "4")
    count = int(raw) if raw.isdigit() else 0
    return json_response(request.app[NODE_KEY].reporting.trends(request.query.get("period") or None, count))


async def rule(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    return json_response({"k": node.reporting.k, "rule": SUPPRESSION_RULE, "schedule": node.reporting.schedule})


def add_stats_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/stats", get_stats)
    app.router.add_get("/api/v1/stats/preview", preview)
    app.router.add_post("/api/v1/stats/send", send)
    app.router.add_get("/api/v1/stats/sent", sent_log)
    app.router.add_get("/api/v1/stats/members", members)
    app.router.add_get("/api/v1/stats/trends", trends)
    app.router.add_get("/api/v1/stats/rule", rule)


_SECURED: Final[list[dict[str, list[str]]]] = [{"bearer": []}]
_OBJECT: Final = {"type": "object"}

OPENAPI_SCHEMAS: Final[dict[str, Any]] = {
    "StatsReport": {
        "type": "object",
        "description": "Aggregates only: counts (small ones merged into 'other') and day counts, never a case's "
        "id, reference, names, text or dates.",
        "properties": {
            "period": {"type": "string"},
            "reporting_nodes": {"type": "integer"},
            "totals": _OBJECT,
            "response_days": _OBJECT,
        },
        "required": ["period", "totals"],
    },
}

OPENAPI_PATHS: Final[dict[str, Any]] = {
    "/api/v1/stats": {
        "get": {
            "summary": "An authority's own report, or on the secretariat the network's merged statistics; "
            "format=csv for a CSV export",
            "security": _SECURED,
            "parameters": [
                PERIOD_PARAM,
                {"name": "format", "in": "query", "required": False, "schema": {"type": "string", "enum": ["csv"]}},
            ],
            "responses": {
                "200": {
                    "description": "The statistics",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/StatsReport"}},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                **_errors(401, 422),
            },
        }
    },
    "/api/v1/stats/preview": {
        "get": {
            "summary": "Exactly the payload `POST /api/v1/stats/send` would send the secretariat (authorities only)",
            "security": _SECURED,
            "parameters": [PERIOD_PARAM],
            "responses": {
                "200": _json({"$ref": "#/components/schemas/StatsReport"}, "The payload"),
                **_errors(401, 403, 422),
            },
        }
    },
    "/api/v1/stats/send": {
        "post": {
            "summary": "Publish this authority's report for a period to the secretariat now (it leaves with the "
            "next sync)",
            "security": _SECURED,
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {"schema": {"type": "object", "properties": {"period": {"type": "string"}}}}
                },
            },
            "responses": {"200": _json(_OBJECT, "What was sent, and when"), **_errors(400, 401, 403, 422)},
        }
    },
    "/api/v1/stats/sent": {
        "get": {
            "summary": "Every report this node sent, newest first, with its exact payload",
            "security": _SECURED,
            "responses": {"200": _json({"type": "array", "items": _OBJECT}, "The log"), **_errors(401)},
        }
    },
    "/api/v1/stats/members": {
        "get": {
            "summary": "Each member authority and whether it reported for the period: reported, not reporting "
            "(switched off) or missing (secretariat only)",
            "security": _SECURED,
            "parameters": [PERIOD_PARAM],
            "responses": {"200": _json({"type": "array", "items": _OBJECT}, "Members"), **_errors(401, 403, 422)},
        }
    },
    "/api/v1/stats/trends": {
        "get": {
            "summary": "The statistics of several periods, oldest first, ending with `period`",
            "security": _SECURED,
            "parameters": [
                PERIOD_PARAM,
                {"name": "periods", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}},
            ],
            "responses": {
                "200": _json({"type": "array", "items": _OBJECT}, "One entry per period"),
                **_errors(401, 404, 422),
            },
        }
    },
    "/api/v1/stats/rule": {
        "get": {
            "summary": "The small-count rule (k) and reporting schedule of this node",
            "security": _SECURED,
            "responses": {"200": _json(_OBJECT, "The rule"), **_errors(401)},
        }
    },
}
