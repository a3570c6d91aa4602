"""Charts drawn on the server by pygal (https://www.pygal.org, LGPL-3.0-or-later, from
PyPI through the project's locked requirements): SVG built from the page's own numbers,
so they render offline (no CDN, no script: pygal's tooltip script is left out) and print
(docs/admin.md, "Charts").

Every figure printed on a chart, and each bar's or point's hover text (an SVG <title>),
is the caller's own text of the exact Decimal (`value_text`); pygal gets a float of it
only to place the shapes. Bars link where the operator acts (`url`)."""

from __future__ import annotations

from decimal import Decimal
from xml.etree import ElementTree

import pygal
from django.utils.safestring import mark_safe
from pygal.style import Style

PALETTE = ("#417690", "#e0a526", "#70a35e", "#ba2121", "#8e6cbf", "#5b8fb9", "#999999")
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
SVG_NS = "http://www.w3.org/2000/svg"


def _style(colors=PALETTE) -> Style:
    return Style(
        background="transparent", plot_background="transparent", foreground="#333333",
        foreground_strong="#222222", foreground_subtle="#d6d6d6", opacity="0.9", opacity_hover="1",
        colors=tuple(colors), font_family=FONT, label_font_size=12, major_label_font_size=12,
        value_font_size=12, value_label_font_size=12, title_font_size=14, legend_font_size=12,
        tooltip_font_size=12, no_data_font_size=14,
    )


def _config(width: int, height: int, title: str, **options) -> dict:
    return {
        "width": width, "height": height, "explicit_size": True, "title": title, "js": [],
        "disable_xml_declaration": True, "no_data_text": "Nothing to show", "show_y_guides": False,
        "margin": 6, "spacing": 8, "truncate_label": -1, "print_values": True,
        "print_values_position": "top", "margin_right": 90, "max_scale": 5,
        # Each printed value starts where its bar ends, outside it, never over the label.
        "css": ["file://style.css", "file://graph.css", "inline:.text-overlay .value{text-anchor:start}"],
        **options,
    }


def _render(chart, chart_id: str, title: str) -> str:
    """The chart's <svg>, with `id` = chart_id, a <title> per value (the exact text) and
    no <script>."""
    # pygal names the root "chart-<uuid>" and scopes its CSS to that id.
    chart.uuid = chart_id.removeprefix("chart-") if chart_id else chart.uuid
    root = chart.render_tree()
    root.set("class", "ballast-chart pygal-chart")
    root.set("role", "img")
    root.set("aria-label", title)
    for name in ("xmlns", "xmlns:xlink"):  # written again by the serializer
        root.attrib.pop(name, None)
    for parent in root.iter():
        guides = "guides" in (parent.get("class") or "").split()
        for child in list(parent):
            tag = child.tag if isinstance(child.tag, str) else ""
            # pygal's script, and the axis labels' hover text (their position, 0.25…).
            if tag.endswith("script") or (guides and tag.endswith("title")):
                parent.remove(child)
            # The step line's corners are points of radius 0: no dot, no hover text.
            elif tag.endswith("g") and any(
                isinstance(c.tag, str) and c.tag.endswith("circle") and c.get("r") == "0" for c in child
            ):
                parent.remove(child)
    for node in root.iter():
        descs = {d.get("class"): d.text for d in node if isinstance(d.tag, str) and d.tag.endswith("desc")}
        if "value" in descs:
            label = descs.get("label")
            hover = ElementTree.SubElement(node, f"{{{SVG_NS}}}title")
            hover.text = f"{label}: {descs['value']}" if label else descs["value"]
    ElementTree.register_namespace("", SVG_NS)
    ElementTree.register_namespace("xlink", "http://www.w3.org/1999/xlink")
    return mark_safe(ElementTree.tostring(root, encoding="unicode", method="xml"))


def _value(value, text: str, *, label: str = "", url: str = "", color: str = "") -> dict:
    node = {"value": float(Decimal(value)), "formatter": lambda _v, text=text: text, "label": label}
    if url:
        node["xlink"] = {"href": url, "target": "_top"}
    if color:
        node["color"] = color
    return node


def bar_chart(bars, *, title: str, width: int = 460, bar_height: int = 18, value_text=str, chart_id: str = ""):
    """Horizontal bars: `bars` is a list of dicts {label, value, url?, color?}; each value
    printed with `value_text`. Empty input draws "Nothing to show"."""
    bars = list(bars)
    height = 44 + max(1, len(bars)) * (bar_height + 10)
    chart = pygal.HorizontalBar(
        style=_style(), **_config(width, height, title, show_legend=False, show_x_labels=False, show_x_guides=False),
    )
    values = [
        _value(bar["value"], value_text(bar["value"]), label=str(bar["label"]), url=bar.get("url", ""),
               color=bar.get("color") or PALETTE[index % len(PALETTE)])
        for index, bar in enumerate(bars)
    ]
    # pygal draws the first bar at the bottom: reversed, the caller's first is on top.
    chart.x_labels = [_clip(bar["label"]) for bar in reversed(bars)]
    if bars:
        chart.add(title, values[::-1])
    return _render(chart, chart_id, title)


def paired_bar_chart(rows, *, title: str, series=("target", "actual"), width: int = 560, value_text=str, chart_id=""):
    """Two bars per row (e.g. target and actual weight): rows are {label, values: (a, b)}."""
    rows = list(rows)
    height = 80 + max(1, len(rows)) * 34
    chart = pygal.HorizontalBar(
        style=_style(), **_config(width, height, title, legend_at_bottom=True, show_x_labels=False,
                                  show_x_guides=False, legend_box_size=10),
    )
    rows.reverse()  # top-down in the caller's order
    chart.x_labels = [_clip(row["label"], 26) for row in rows]
    if rows:
        for position, name in enumerate(series):
            chart.add(name, [
                _value(row["values"][position], value_text(row["values"][position]), label=f"{row['label']} {name}")
                for row in rows
            ])
    return _render(chart, chart_id, title)


def line_chart(points, *, title: str, y_max, width: int = 560, height: int = 180, x_text=str, y_text=str, chart_id=""):
    """A step line of (x, y) points, x increasing numbers (seconds), y from 0 to y_max;
    each point's hover text is "x_text(x): y_text(y)"."""
    points = list(points)
    chart = pygal.XY(
        style=_style(), **_config(
            width, height, title, show_legend=False, fill=True, print_values=False, dots_size=3,
            margin_right=16, show_x_labels=bool(points), show_y_labels=bool(points),
            range=(0, float(Decimal(y_max or 1))), include_x_axis=True, show_x_guides=False, show_y_guides=bool(points),
            x_value_formatter=lambda x: x_text(_exact(x)), value_formatter=lambda y: y_text(_exact(y)),
        ),
    )
    chart.no_data_text = "No progress yet"
    if points:
        # A step line: flat until the next point, then up to it (a chunk's accounts are done at once).
        steps, previous = [{"value": (0.0, 0.0), "node": {"r": 0}}], Decimal(0)
        for x, y in points:
            steps.append({"value": (float(Decimal(x)), float(previous)), "node": {"r": 0}})
            steps.append({"value": (float(Decimal(x)), float(Decimal(y))), "label": x_text(x),
                          "formatter": lambda _v, text=y_text(y): text})
            previous = Decimal(y)
        chart.add(title, steps)
        # Whole numbers on the x axis (seconds): a quarter apart, deduplicated.
        end = Decimal(points[-1][0])
        chart.x_labels = sorted({0, int(end)} | {int(end * quarter / 4) for quarter in (1, 2, 3)})
    return _render(chart, chart_id, title)


def _exact(number):
    """An axis label's float back to a Decimal (an integer when it is whole)."""
    value = Decimal(str(number))
    return int(value) if value == value.to_integral_value() else value


def _clip(text, length: int = 24) -> str:
    text = str(text)
    return text if len(text) <= length else text[: length - 1] + "…"
