"""Charts as server-rendered SVG: drawn on the server from the page's own numbers, so
they render offline, with no JavaScript library, CDN or licence to track, and print
(docs/admin.md, "Charts"). Each chart is an <svg> with a <title> per bar or point for
the exact figure, and bars that link where the operator acts."""

from decimal import Decimal

from django.utils.html import format_html
from django.utils.safestring import mark_safe

PALETTE = ("#417690", "#e0a526", "#70a35e", "#ba2121", "#8e6cbf", "#5b8fb9", "#999999")
TEXT = 'font-family="system-ui, sans-serif" font-size="11" fill="currentColor"'


def _scale(value, top, length: int) -> int:
    if not top:
        return 0
    return int((Decimal(value) * length / Decimal(top)).to_integral_value())


def bar_chart(bars, *, title: str, width: int = 460, bar_height: int = 18, value_text=str, chart_id: str = ""):
    """Horizontal bars: `bars` is a list of dicts {label, value, url?, color?}; the
    value is drawn with `value_text`. Empty input draws "Nothing to show"."""
    bars = list(bars)
    label_width, text_width = 150, 110
    plot = width - label_width - text_width
    height = max(1, len(bars)) * (bar_height + 6) + 8
    top = max((abs(Decimal(b["value"])) for b in bars), default=0)
    parts = [format_html(
        '<svg class="ballast-chart" id="{}" role="img" aria-label="{}" width="{}" height="{}" viewBox="0 0 {} {}" '
        'xmlns="http://www.w3.org/2000/svg"><title>{}</title>',
        chart_id, title, width, height, width, height, title,
    )]
    if not bars:
        parts.append(format_html('<text x="4" y="16" {}>Nothing to show</text>', mark_safe(TEXT)))
    for index, bar in enumerate(bars):
        y = 4 + index * (bar_height + 6)
        length = max(1 if Decimal(bar["value"]) else 0, _scale(abs(Decimal(bar["value"])), top, plot))
        color = bar.get("color") or PALETTE[index % len(PALETTE)]
        shape = format_html(
            '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {}</title></rect>',
            label_width, y, length, bar_height, color, bar["label"], value_text(bar["value"]),
        )
        if bar.get("url"):
            shape = format_html('<a href="{}">{}</a>', bar["url"], shape)
        parts.append(format_html(
            '<text x="{}" y="{}" text-anchor="end" {}>{}</text>{}<text x="{}" y="{}" {}>{}</text>',
            label_width - 6, y + bar_height - 5, mark_safe(TEXT), _clip(bar["label"]), shape,
            label_width + length + 6, y + bar_height - 5, mark_safe(TEXT), value_text(bar["value"]),
        ))
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(parts))


def paired_bar_chart(rows, *, title: str, series=("target", "actual"), width: int = 560, value_text=str, chart_id=""):
    """Two bars per row (e.g. target and actual weight): rows are {label, values: (a, b)}."""
    rows = list(rows)
    label_width, text_width, bar_height = 170, 80, 11
    plot = width - label_width - text_width
    row_height = 2 * bar_height + 10
    height = max(1, len(rows)) * row_height + 26
    top = max((abs(Decimal(v)) for r in rows for v in r["values"]), default=0)
    parts = [format_html(
        '<svg class="ballast-chart" id="{}" role="img" aria-label="{}" width="{}" height="{}" viewBox="0 0 {} {}" '
        'xmlns="http://www.w3.org/2000/svg"><title>{}</title>',
        chart_id, title, width, height, width, height, title,
    )]
    for index, name in enumerate(series):  # legend
        parts.append(format_html(
            '<rect x="{}" y="4" width="10" height="10" fill="{}"></rect><text x="{}" y="13" {}>{}</text>',
            label_width + index * 90, PALETTE[index], label_width + index * 90 + 14, mark_safe(TEXT), name,
        ))
    for index, row in enumerate(rows):
        y = 22 + index * row_height
        parts.append(format_html(
            '<text x="{}" y="{}" text-anchor="end" {}>{}</text>', label_width - 6, y + bar_height + 4,
            mark_safe(TEXT), _clip(row["label"], 26),
        ))
        for position, value in enumerate(row["values"]):
            top_y = y + position * (bar_height + 2)
            length = _scale(abs(Decimal(value)), top, plot)
            parts.append(format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{} {}: {}</title></rect>'
                '<text x="{}" y="{}" {}>{}</text>',
                label_width, top_y, length, bar_height, PALETTE[position], row["label"], series[position],
                value_text(value), label_width + length + 4, top_y + bar_height - 2, mark_safe(TEXT), value_text(value),
            ))
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(parts))


def line_chart(points, *, title: str, y_max, width: int = 560, height: int = 180, x_text=str, y_text=str, chart_id=""):
    """A step line of (x, y) points, x increasing numbers (seconds), y from 0 to y_max."""
    points = list(points)
    left, bottom, right, top_pad = 50, 24, 16, 10
    plot_w, plot_h = width - left - right, height - bottom - top_pad
    parts = [format_html(
        '<svg class="ballast-chart" id="{}" role="img" aria-label="{}" width="{}" height="{}" viewBox="0 0 {} {}" '
        'xmlns="http://www.w3.org/2000/svg"><title>{}</title>',
        chart_id, title, width, height, width, height, title,
    )]
    parts.append(format_html(
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"></line><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"></line>'
        '<text x="{}" y="{}" text-anchor="end" {}>{}</text><text x="{}" y="{}" text-anchor="end" {}>0</text>',
        left, top_pad, left, top_pad + plot_h, left, top_pad + plot_h, left + plot_w, top_pad + plot_h,
        left - 4, top_pad + 8, mark_safe(TEXT), y_text(y_max), left - 4, top_pad + plot_h, mark_safe(TEXT),
    ))
    if not points:
        parts.append(format_html('<text x="{}" y="{}" {}>No progress yet</text>', left + 8, top_pad + 20, mark_safe(TEXT)))
    else:
        x_max = max(Decimal(points[-1][0]), Decimal(1))
        coords = [
            (left + _scale(x, x_max, plot_w), top_pad + plot_h - _scale(y, y_max or 1, plot_h)) for x, y in points
        ]
        path = [f"M{left},{top_pad + plot_h}"]
        for cx, cy in coords:
            path.append(f"H{cx}V{cy}")
        # The area under the line, lightly filled, then the line itself.
        parts.append(format_html(
            '<path d="{} V{} Z" fill="{}" fill-opacity="0.25" stroke="none"></path>',
            " ".join(path), top_pad + plot_h, PALETTE[0],
        ))
        parts.append(format_html(
            '<path d="{}" fill="none" stroke="{}" stroke-width="2"></path>', " ".join(path), PALETTE[0]
        ))
        for (x, y), (cx, cy) in zip(points, coords):
            parts.append(format_html(
                '<circle cx="{}" cy="{}" r="3" fill="{}"><title>{}: {}</title></circle>',
                cx, cy, PALETTE[0], x_text(x), y_text(y),
            ))
        parts.append(format_html(
            '<text x="{}" y="{}" text-anchor="end" {}>{}</text>', left + plot_w, height - 6, mark_safe(TEXT),
            x_text(points[-1][0]),
        ))
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(parts))


def _clip(text, length: int = 24) -> str:
    text = str(text)
    return text if len(text) <= length else text[: length - 1] + "…"
