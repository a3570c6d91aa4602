"""core.charts: pygal's SVG, offline and exact (docs/admin.md, "Charts")."""

import re
from decimal import Decimal

from core import charts, formatting


def test_a_bar_chart_is_offline_svg_with_the_exact_figures_and_links():
    svg = charts.bar_chart(
        [{"label": "ACTIVE", "value": 98765, "url": "/admin/x/?status__exact=ACTIVE"},
         {"label": "CLOSED", "value": 3}],
        title="Accounts by status", chart_id="chart-accounts", value_text=lambda v: f"{v:,}",
    )
    assert svg.startswith("<svg") and 'id="chart-accounts"' in svg and "ballast-chart" in svg
    assert "<script" not in svg  # pygal's tooltip script is left out
    # Nothing is fetched: the only URLs are XML namespaces and pygal's comments.
    urls = set(re.findall(r'(?:href|src)="(https?:[^"]*)"', svg))
    assert urls == set()
    assert "<title>ACTIVE: 98,765</title>" in svg and "<title>CLOSED: 3</title>" in svg
    assert 'href="/admin/x/?status__exact=ACTIVE"' in svg
    # The caller's first bar is drawn on top.
    y = {label: float(found) for found, label in re.findall(r'<text x="[^"]*" y="([^"]*)"[^>]*>(ACTIVE|CLOSED)</text>', svg)}
    assert y["ACTIVE"] < y["CLOSED"]
    assert svg.count('xmlns="http://www.w3.org/2000/svg"') == 1


def test_printed_values_come_from_the_decimal_not_the_float():
    weight = Decimal("0.123456789012")
    svg = charts.paired_bar_chart(
        [{"label": "Alpha ETF", "values": (Decimal("0.1"), weight)}],
        title="Target and actual weight", chart_id="chart-w", value_text=formatting.percent,
    )
    assert ">12.35 %<" in svg and ">10.00 %<" in svg
    assert "target" in svg and "actual" in svg


def test_empty_charts_say_so():
    assert "Nothing to show" in charts.bar_chart([], title="Today's executions", chart_id="chart-e")
    line = charts.line_chart([], title="Accounts done", y_max=10, chart_id="chart-p")
    assert "No progress yet" in line and 'id="chart-p"' in line


def test_the_progress_line_has_a_point_per_chunk_with_its_time_and_count():
    svg = charts.line_chart([(5, 1000), (12, 3000)], title="Accounts done", y_max=5000, chart_id="chart-p",
                            x_text=lambda x: f"{x} s", y_text=lambda y: f"{y:,}")
    assert "<title>5 s: 1,000</title>" in svg and "<title>12 s: 3,000</title>" in svg
    assert svg.count("<circle") == 2  # the chunks' points; the step's corners draw none
