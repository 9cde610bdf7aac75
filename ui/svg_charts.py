"""Bar charts drawn on the server as SVG, so the statistics pages need no script and no chart library.

Pure functions: figures in, markup out. Every piece of text (a title, a label that may be a country
name or a peer's code, a value) is escaped here, so the result is returned as `Markup` and a template
embeds it as it is. The CSP forbids inline styles, so the charts use presentation attributes (`fill`,
`font-size`) and CSS classes (`chart-*`, styled in `app.css`), never a `style` attribute.

Each chart is an image with a `<title>` (and a `<desc>` listing every figure) for screen readers, and
every bar carries its own `<title>` and a text label; the pages also show the same figures as a table.
A value of None is a count hidden by the suppression rule: drawn as no bar, labelled with `hidden_text`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from markupsafe import Markup, escape

Bars = Sequence[tuple[str, int | None]]

BAR_FILL: Final = "#0b3d6b"
TEXT_FILL: Final = "#1a1a1a"
FONT_SIZE: Final = 13
CHAR_WIDTH: Final = 7.5  # average width of a character at FONT_SIZE, for laying out labels
LABEL_CHARS: Final = 34  # longer labels are cut (the bar's <title> keeps the whole text)

_ID: Final = re.compile(r"^[a-z][a-z0-9-]{0,63}$")


def _check_id(chart_id: str) -> str:
    if not _ID.match(chart_id):
        raise ValueError(f"chart id must be lowercase letters, digits and -, not {chart_id!r}")
    return chart_id


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def _value_text(value: int | None, hidden_text: str) -> str:
    return hidden_text if value is None else str(int(value))


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _head(chart_id: str, kind: str, width: float, height: float, title: str, bars: Bars, hidden_text: str) -> str:
    desc = "; ".join(f"{label}: {_value_text(value, hidden_text)}" for label, value in bars)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" id="{chart_id}" '
        f'viewBox="0 0 {_num(width)} {_num(height)}" width="{_num(width)}" height="{_num(height)}" '
        f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" font-size="{FONT_SIZE}">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>'
    )


def _largest(bars: Bars) -> int:
    return max([v for _, v in bars if v is not None and v > 0] or [1])


def bar_chart(bars: Bars, *, title: str, chart_id: str, hidden_text: str = "—") -> Markup:
    """Horizontal bars, one row per (label, value), for breakdowns whose labels are words or names.

    An empty `bars` gives empty markup: the page says there is nothing to show instead.
    """
    if not bars:
        return Markup("")
    _check_id(chart_id)
    row, bar_height, pad = 28.0, 18.0, 6.0
    label_width = min(max(len(_short(label)) for label, _ in bars), LABEL_CHARS) * CHAR_WIDTH + 12
    plot_width, value_width = 240.0, 56.0
    width = label_width + plot_width + value_width
    height = pad * 2 + row * len(bars)
    largest = _largest(bars)
    parts = [_head(chart_id, "bars", width, height, title, bars, hidden_text)]
    for i, (label, value) in enumerate(bars):
        top = pad + i * row
        middle = top + row / 2
        length = 0.0 if not value else max(plot_width * value / largest, 2.0)
        shown = _value_text(value, hidden_text)
        parts.append(
            f'<g class="chart-item"><title>{escape(label)}: {escape(shown)}</title>'
            f'<text class="chart-label" x="{_num(label_width - 8)}" y="{_num(middle)}" text-anchor="end" '
            f'dominant-baseline="middle" fill="{TEXT_FILL}">{escape(_short(label))}</text>'
            f'<rect class="chart-bar" x="{_num(label_width)}" y="{_num(middle - bar_height / 2)}" '
            f'width="{_num(length)}" height="{_num(bar_height)}" rx="2" fill="{BAR_FILL}"/>'
            f'<text class="chart-value{" chart-hidden" if value is None else ""}" '
            f'x="{_num(label_width + length + 6)}" y="{_num(middle)}" dominant-baseline="middle" '
            f'fill="{TEXT_FILL}">{escape(shown)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def column_chart(bars: Bars, *, title: str, chart_id: str, hidden_text: str = "—") -> Markup:
    """Vertical columns, left to right in the given order, for short ordered labels: duration buckets
    ("0-1", "2-3" days) or periods ("2026-Q1"). An empty `bars` gives empty markup."""
    if not bars:
        return Markup("")
    _check_id(chart_id)
    top, plot_height, label_height, pad = 24.0, 150.0, 30.0, 8.0
    slot = max(56.0, min(max(len(_short(label)) for label, _ in bars), LABEL_CHARS) * CHAR_WIDTH + 10)
    column = min(40.0, slot - 14)
    width = pad * 2 + slot * len(bars)
    height = top + plot_height + label_height
    base = top + plot_height
    largest = _largest(bars)
    parts = [_head(chart_id, "columns", width, height, title, bars, hidden_text)]
    parts.append(
        f'<line class="chart-axis" x1="{_num(pad)}" y1="{_num(base)}" x2="{_num(width - pad)}" y2="{_num(base)}" '
        f'stroke="{TEXT_FILL}" stroke-width="1"/>'
    )
    for i, (label, value) in enumerate(bars):
        centre = pad + slot * i + slot / 2
        size = 0.0 if not value else max(plot_height * value / largest, 2.0)
        shown = _value_text(value, hidden_text)
        parts.append(
            f'<g class="chart-item"><title>{escape(label)}: {escape(shown)}</title>'
            f'<rect class="chart-bar" x="{_num(centre - column / 2)}" y="{_num(base - size)}" '
            f'width="{_num(column)}" height="{_num(size)}" rx="2" fill="{BAR_FILL}"/>'
            f'<text class="chart-value{" chart-hidden" if value is None else ""}" x="{_num(centre)}" '
            f'y="{_num(base - size - 6)}" text-anchor="middle" fill="{TEXT_FILL}">{escape(shown)}</text>'
            f'<text class="chart-label" x="{_num(centre)}" y="{_num(base + 18)}" text-anchor="middle" '
            f'fill="{TEXT_FILL}">{escape(_short(label))}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
