"""Statistics: an authority's own figures and what it sends the secretariat; the secretariat's network view.

On an authority the page shows its own figures for a chosen quarter, and a second page shows exactly
what would leave the node for the secretariat (`node.reporting.preview`, as JSON and as a table), a
button to send it now, and the log of every report sent. Nothing else leaves: the preview is the payload.

On the secretariat the page shows the network's figures merged from the members' reports
(`node.reporting.network`), which members reported, switched reporting off or are missing, the trend
over the last four periods and a CSV download. Counts below the network's threshold come hidden from
`node.stats` and are shown as hidden, never guessed. Charts are SVG drawn here (`ui.svg_charts`); every
chart has a table with the same figures beside it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from babel import Locale
from markupsafe import Markup

from node import stats
from node.errors import ValidationError
from node.runtime import NODE_KEY, Node
from node.vocab import CASE_KINDS, OFFENCES, URGENCY
from ui.i18n import N_, language_of, translations
from ui.pages_network import network_page
from ui.parties import party
from ui.render import done
from ui.sessions import actor
from ui.svg_charts import bar_chart, column_chart

PERIODS_OFFERED: Final = 8
TREND_PERIODS: Final = 4

STATUS_GROUPS: Final[dict[str, str]] = {
    "pending": N_("Pending (sent, acknowledged or being carried out)"),
    "executed": N_("Carried out, fully or partly"),
    "refused": N_("Refused"),
    "withdrawn": N_("Withdrawn"),
    "closed": N_("Closed without a recorded outcome"),
}
DIRECTIONS: Final[dict[str, str]] = {"incoming": N_("Received"), "outgoing": N_("Sent")}
MERGED: Final[dict[str, str]] = {stats.OTHER: N_("Other (small counts merged)"), stats.UNKNOWN: N_("Unknown")}
MEMBER_STATUS: Final[dict[str, str]] = {
    "reported": N_("Reported"),
    "not reporting": N_("Switched reporting off"),
    "missing": N_("No report yet"),
}
# Names of the figures in a report, for the table beside the preview's JSON.
FIGURES: Final[dict[str, str]] = {
    "schema": N_("Format version"),
    "period": N_("Period"),
    "country": N_("Country"),
    "k": N_("Threshold (smaller counts are hidden)"),
    "suppressed": N_("Whole report hidden (too few cases)"),
    "totals": N_("Totals"),
    "cases": N_("Cases"),
    "overdue": N_("Late"),
    "by_kind": N_("By kind"),
    "by_status": N_("By status"),
    "by_direction": N_("By direction"),
    "by_offence": N_("By offence"),
    "by_urgency": N_("By urgency"),
    "pairs": N_("By other country"),
    "response_days": N_("Response times (days)"),
    "sent_to_acknowledged": N_("From sending to acknowledgement"),
    "sent_to_executed": N_("From sending to execution"),
    "n": N_("Cases measured"),
    "median": N_("Median"),
    "p90": N_("90th percentile"),
    "histogram": N_("Histogram"),
}
BREAKDOWNS: Final[tuple[tuple[str, str], ...]] = (
    ("by_direction", N_("Requests by direction")),
    ("by_status", N_("Requests by status")),
    ("by_kind", N_("Requests by kind")),
    ("by_offence", N_("Requests by offence (a request may concern several)")),
    ("by_urgency", N_("Requests by urgency")),
    ("by_counterpart_country", N_("Requests by other country (sent and received)")),
)
RESPONSES: Final[tuple[tuple[str, str], ...]] = (
    ("sent_to_acknowledged", N_("Days from sending to acknowledgement")),
    ("sent_to_executed", N_("Days from sending to execution")),
)


class Words:
    """Plain words, in the officer's language, for the codes a report holds."""

    def __init__(self, lang: str) -> None:
        self.gettext: Callable[[str], str] = translations(lang).gettext
        self._territories = Locale.parse(lang).territories

    def country(self, code: str) -> str:
        if code in MERGED:
            return self.gettext(MERGED[code])
        return str(self._territories.get(code.upper(), code))

    def code(self, code: str, vocabulary: Mapping[str, str] | None = None) -> str:
        """The words for `code` in `vocabulary` (or for "other"/"unknown"), else the code itself."""
        words = (vocabulary or {}).get(code) or MERGED.get(code)
        return self.gettext(words) if words else code

    def figure(self, key: str) -> str:
        for vocabulary in (FIGURES, STATUS_GROUPS, DIRECTIONS, CASE_KINDS, OFFENCES, URGENCY, MERGED):
            if key in vocabulary:
                return self.gettext(vocabulary[key])
        if len(key) == 2 and key.isupper():
            return self.country(key)
        return key


@dataclass(frozen=True)
class Breakdown:
    """One table of a report with its chart: (label, count) rows, a count of None being hidden."""

    key: str
    title: str
    rows: list[tuple[str, int | None]]
    chart: Markup


def _breakdown(
    words: Words, key: str, title: str, counts: Mapping[str, Any], name: Callable[[str], str], *, columns: bool = False
) -> Breakdown:
    rows = [(name(code), n if isinstance(n, int) else None) for code, n in counts.items()]
    draw = column_chart if columns else bar_chart
    chart = draw(rows, title=title, chart_id=f"chart-{key.replace('_', '-')}", hidden_text=words.gettext("hidden"))
    return Breakdown(key=key, title=title, rows=rows, chart=chart)


def _namer(words: Words, key: str) -> Callable[[str], str]:
    vocabularies: dict[str, Mapping[str, str]] = {
        "by_kind": CASE_KINDS,
        "by_status": STATUS_GROUPS,
        "by_direction": DIRECTIONS,
        "by_offence": OFFENCES,
        "by_urgency": URGENCY,
    }
    if key in vocabularies:
        vocabulary = vocabularies[key]
        return lambda code: words.code(code, vocabulary)
    return words.country


def _breakdowns(words: Words, totals: Mapping[str, Any]) -> list[Breakdown]:
    return [
        _breakdown(words, key, words.gettext(title), totals.get(key) or {}, _namer(words, key))
        for key, title in BREAKDOWNS
    ]


def _responses(words: Words, responses: Mapping[str, Any]) -> list[dict[str, Any]]:
    shown = []
    for key, title in RESPONSES:
        figures = responses.get(key) or {}
        histogram = figures.get("histogram") or {}
        shown.append(
            {
                **figures,
                "title": words.gettext(title),
                "histogram": _breakdown(words, key, words.gettext(title), histogram, words.code, columns=True),
            }
        )
    return shown


def _period(request: web.Request, node: Node) -> tuple[str, str | None]:
    """The period asked for in `?period=`, or the current quarter and why the one asked for was not taken."""
    asked = (request.query.get("period") or "").strip()
    try:
        return node.reporting.period_or_default(asked or None), None
    except ValidationError as exc:
        return node.reporting.period_or_default(None), exc.fields.get("period", exc.message)


def _periods(current: str, chosen: str) -> list[str]:
    offered = stats.periods_back(current, PERIODS_OFFERED)[::-1]
    return offered if chosen in offered else [chosen, *offered]


def _base(request: web.Request, node: Node) -> tuple[Words, dict[str, Any]]:
    period, period_error = _period(request, node)
    words = Words(language_of(request))
    context = {
        "period": period,
        "periods": _periods(node.reporting.period_or_default(None), period),
        "period_error": period_error,
        "k": node.reporting.k,
        "is_secretariat": node.config.role == "secretariat",
    }
    return words, context


async def statistics(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    words, context = _base(request, node)
    period = context["period"]
    if context["is_secretariat"]:
        context.update(_network_context(node, words, period))
    else:
        own = node.reporting.own(period)
        counts = node.cases.index.counts()
        context.update(
            {
                "report": own,
                "breakdowns": _breakdowns(words, own["totals"]) if not own.get("suppressed") else [],
                "responses": _responses(words, own.get("response_days") or {}),
                "counts": counts,
                "total": sum(counts.values()),
            }
        )
    return network_page(request, "statistics.html", context)


def _network_context(node: Node, words: Words, period: str) -> dict[str, Any]:
    network = node.reporting.network(period)
    members = [
        {**m, "name": party(node, m["node_id"])["name"], "status_text": words.code(m["status"], MEMBER_STATUS)}
        for m in node.reporting.members(period)
    ]
    trends = [(t["period"], t["totals"]["cases"]) for t in node.reporting.trends(period, TREND_PERIODS)]
    hidden = words.gettext("hidden")
    pairs = [(_pair_name(words, key), n) for key, n in network["pairs"].items()]
    return {
        "report": network,
        "members": members,
        "breakdowns": _breakdowns(words, network["totals"]),
        "by_member": _breakdown(
            words, "by_member", words.gettext("Requests by member country"), network["by_member_country"], words.country
        ),
        "pairs": Breakdown(
            key="pairs",
            title=words.gettext("Requests between countries (requesting → requested)"),
            rows=pairs,
            chart=bar_chart(
                pairs, title=words.gettext("Requests between countries"), chart_id="chart-pairs", hidden_text=hidden
            ),
        ),
        "responses": _responses(words, network["response_days"]),
        "trend": Breakdown(
            key="trend",
            title=words.gettext("Requests per period"),
            rows=trends,
            chart=column_chart(
                trends, title=words.gettext("Requests per period"), chart_id="chart-trend", hidden_text=hidden
            ),
        ),
    }


def _pair_name(words: Words, key: str) -> str:
    if ">" not in key:
        return words.code(key)
    requesting, requested = key.split(">", 1)
    return f"{words.country(requesting)} → {words.country(requested)}"


def _figures(words: Words, report: Mapping[str, Any], path: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The report as table rows: the names of each figure's path, and its value (None: hidden)."""
    rows: list[dict[str, Any]] = []
    for key, value in report.items():
        here = (*path, words.figure(str(key)))
        if isinstance(value, Mapping):
            if value:
                rows.extend(_figures(words, value, here))
            else:
                rows.append({"path": here, "value": "—", "hidden": False})
        else:
            rows.append({"path": here, "value": value, "hidden": value is None})
    return rows


async def preview(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    words, context = _base(request, node)
    report = node.reporting.preview(context["period"])
    log = [
        {**entry, "json": json.dumps(entry["payload"], indent=2, sort_keys=True)} for entry in node.reporting.sent_log()
    ]
    context.update(
        {
            "report_json": json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False),
            "figures": _figures(words, report),
            "sent_log": log,
            "schedule": node.reporting.schedule,
        }
    )
    return network_page(request, "statistics_preview.html", context)


async def send(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    form = await request.post()
    period = node.reporting.period_or_default(str(form.get("period", "")).strip() or None)
    node.reporting.send(period, actor=actor(request))
    raise done("/ui/statistics/preview", "stats_sent", period=period)


async def csv_download(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    period = node.reporting.period_or_default((request.query.get("period") or "").strip() or None)
    return web.Response(
        text=node.reporting.csv(period),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="seajust-statistics-{period}.csv"'},
    )


def add_stats_routes(app: web.Application) -> None:
    app.router.add_get("/ui/statistics", statistics)
    app.router.add_get("/ui/statistics/preview", preview)
    app.router.add_post("/ui/statistics/send", send)
    app.router.add_get("/ui/statistics.csv", csv_download)
