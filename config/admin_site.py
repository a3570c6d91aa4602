"""The admin site: the operator's dashboard as its index, the business apps first and
the framework's own sections grouped under "System" at the end (docs/admin.md)."""

from urllib.parse import urlencode

from django.contrib import admin
from django.urls import reverse

from core import charts, formatting
from rebalancing.selectors.dashboard import dashboard

BUSINESS_APPS = ("portfolios", "rebalancing", "webhooks", "audit", "auditlog")
# Inside an app, the models an operator opens most come first.
MODEL_ORDER = {
    "portfolios": ("PortfolioAccount", "Allocation", "Instrument", "Price", "FxRate", "Configuration", "Position",
                   "CashAccount", "RestrictionList", "Substitute"),
    "rebalancing": ("Execution", "TradeOrder", "PortfolioOrder", "Strategy", "StrategyRun", "SavingsPlan",
                    "SavingsPlanRun", "RebalancePreferences"),
}


class BallastAdminSite(admin.AdminSite):
    site_header = "Ballast operations"
    site_title = "Ballast"
    index_title = "Dashboard"
    # A back office has no public site: no "View site" link leading to a 404.
    site_url = None
    index_template = "admin/ballast_index.html"

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        if app_label is not None:
            return apps
        business = {app["app_label"]: app for app in apps if app["app_label"] in BUSINESS_APPS}
        ordered = []
        for label in BUSINESS_APPS:
            app = business.get(label)
            if app is None:
                continue
            order = MODEL_ORDER.get(label, ())
            app["models"].sort(key=lambda m: (order.index(m["object_name"]) if m["object_name"] in order else len(order),
                                              m["name"]))
            ordered.append(app)
        system = [
            {**model, "name": f"{model['name']} ({app['name']})"}
            for app in apps if app["app_label"] not in BUSINESS_APPS for model in app["models"]
        ]
        if system:
            ordered.append({
                "name": "System", "app_label": "system", "app_url": "#system", "has_module_perms": True,
                "models": sorted(system, key=lambda m: m["name"]),
            })
        return ordered

    def index(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "dashboard": dashboard_context(request)}
        return super().index(request, extra_context)


def _url(name: str, **query) -> str:
    url = reverse(name)
    return f"{url}?{urlencode(query)}" if query else url


def dashboard_context(request) -> dict:
    """The dashboard's sections, in words and pictures, from selectors.dashboard."""
    user = request.user
    board = dashboard(user=user if user.has_perm("rebalancing.approve_execution") else None)
    accounts_url = reverse("admin:portfolios_portfolioaccount_changelist")
    executions_url = reverse("admin:rebalancing_execution_changelist")
    histogram = [
        {"label": label, "value": count, "url": f"{accounts_url}?drift={index}"}
        for index, (label, count, _lower, _upper) in enumerate(board.drift_histogram)
    ]
    day = {"created_at__year": board.on_date.year, "created_at__month": board.on_date.month,
           "created_at__day": board.on_date.day}
    context = {
        "on_date": board.on_date,
        "reporting_currency": board.reporting_currency,
        "accounts_total": sum(n for _, n in board.accounts_by_status),
        "accounts_chart": charts.bar_chart(
            [{"label": status, "value": n, "url": f"{accounts_url}?status__exact={status}"}
             for status, n in board.accounts_by_status],
            title="Accounts by status", chart_id="chart-accounts", value_text=lambda v: f"{v:,}",
        ),
        "aum_rows": [
            {"currency": c, "total": formatting.money(t, c), "reporting": formatting.money(r, board.reporting_currency)}
            for c, t, r in board.aum_by_currency
        ],
        "aum_reporting": formatting.money(board.aum_reporting, board.reporting_currency),
        "aum_missing_fx": board.aum_missing_fx,
        "aum_chart": charts.bar_chart(
            [{"label": c, "value": r or 0} for c, t, r in board.aum_by_currency],
            title=f"Value by currency, in {board.reporting_currency}", chart_id="chart-aum",
            value_text=lambda v: formatting.money(v, board.reporting_currency),
        ),
        "drift_as_of": board.drift_as_of,
        "drift_errors": board.drift_errors,
        "drift_chart": charts.bar_chart(
            histogram, title="Accounts by largest drift", chart_id="chart-drift", value_text=lambda v: f"{v:,}",
        ),
        "outside_band_total": board.outside_band_total,
        "summary_at": board.summary_at,
        "outside_band_chart": charts.bar_chart(
            [{"label": name or "—", "value": n, "color": "#ba2121",
              "url": f"{accounts_url}?outside_band=yes&configuration__allocation__id__exact={pk}"}
             for pk, name, n in board.outside_band],
            title="Accounts outside their band, per allocation", chart_id="chart-outside-band",
            value_text=lambda v: f"{v:,}",
        ),
        "outside_band_url": f"{accounts_url}?outside_band=yes",
        "executions_chart": charts.bar_chart(
            [{"label": status, "value": n, "url": _url("admin:rebalancing_execution_changelist", status__exact=status, **day)}
             for status, n in board.executions_today],
            title="Today's executions by status", chart_id="chart-executions", value_text=lambda v: f"{v:,}",
        ),
        "failures": [{"reason": reason or "(no reason given)", "count": n} for reason, n in board.failures_today],
        "awaiting": [
            {"label": str(e), "url": reverse("admin:rebalancing_execution_change", args=[e.pk]),
             "requested_by": e.requested_by or "—", "gross": formatting.money(e.gross_amount, e.approval_currency),
             "orders": e.order_count, "reason": e.approval_reason, "short_id": formatting.short_id(e.pk)}
            for e in board.awaiting_approval
        ],
        "awaiting_count": board.awaiting_count,
        "awaiting_url": _url("admin:rebalancing_execution_changelist", status__exact="AWAITING_APPROVAL"),
        "stalled": [
            {"label": str(e), "url": reverse("admin:rebalancing_execution_change", args=[e.pk]),
             "progress": f"{e.done:,} / {e.total:,}", "short_id": formatting.short_id(e.pk)}
            for e in board.stalled
        ],
        "missing_prices": [
            {"label": i.label, "name": i.name, "url": reverse("admin:portfolios_instrument_change", args=[i.pk])}
            for i in board.missing_prices
        ],
        "attention": [
            {"name": name, "reasons": ", ".join(reasons), "url": reverse("admin:portfolios_allocation_change", args=[pk])}
            for pk, name, reasons in board.attention
        ],
        "failing_deliveries": board.failing_deliveries,
        "retrying_deliveries": board.retrying_deliveries,
        "deliveries_url": _url("admin:webhooks_delivery_changelist", status__exact="FAILED"),
        "executions_url": executions_url,
        "accounts_url": accounts_url,
    }
    return context
