"""Admin of trade orders and portfolio orders (spec §5, §6).

Trade orders are produced by executions and portfolio orders and are read-only here;
their actions are thin adapters over `trade_orders_transition`. The trade-order
changelist is built for a large table: no full count, no facet counts, filters that
never list every related row (autocomplete instead), an exact, index-friendly search,
and CSV / blotter views that reuse the changelist's own filtering."""

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG, IGNORED_PARAMS, ChangeList
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from core import formatting
from core.counting import CappedCountAdminMixin
from portfolios.admin.base import ReadOnlyAdmin, ReadOnlyInline, ServiceAdmin
from portfolios.forms import ServiceModelForm

from ..models import Initiation, PortfolioOrder, TradeOrder, TradeOrderStatus
from ..selectors import orders as selectors_orders
from ..services import allowed_transitions, portfolio_order_create, trade_orders_transition
from .common import (
    AutocompleteFilter,
    ExactSearchMixin,
    FastRowsChangeList,
    FilterOnlyChangeList,
    admin_link,
    csv_response,
    file_stamp,
    plural,
    short_id,
)

# At most this many orders per transition action (each moves in its own savepoint).
MAX_TRANSITION_ORDERS = 10_000
# Refusals listed one by one; beyond, a count.
MAX_REFUSAL_MESSAGES = 50
TRANSITION_TARGETS = (
    TradeOrderStatus.ACCEPTED, TradeOrderStatus.EXECUTABLE, TradeOrderStatus.SENT_TO_EXECUTION,
    TradeOrderStatus.IN_EXECUTION, TradeOrderStatus.EXECUTED_IN_MARKET, TradeOrderStatus.SETTLED_IN_MARKET,
    TradeOrderStatus.SETTLED, TradeOrderStatus.CANCELLED, TradeOrderStatus.REJECTED,
)


# --- Trade orders ---------------------------------------------------------------------------


def _transition_action(target: str):
    def action(modeladmin, request, queryset):
        return modeladmin.transition(request, queryset, target)

    action.__name__ = f"move_to_{target.lower()}"
    return admin.action(description=f"Move selected trade orders to {target}", permissions=["transition"])(action)


class TransactionTypeFilter(admin.SimpleListFilter):
    """The transaction types the system writes (a fixed list: no DISTINCT over the table)."""

    title = "transaction type"
    parameter_name = "transaction_type"

    def lookups(self, request, model_admin):
        return [("BUY", "BUY"), ("SELL", "SELL"), ("SELL_ALL", "SELL_ALL"), ("FX", "FX (currency exchange)"),
                ("WITHDRAWAL", "WITHDRAWAL (cash out)")]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(transaction_type=value) if value else queryset


@admin.register(TradeOrder)
class TradeOrderAdmin(CappedCountAdminMixin, ExactSearchMixin, ReadOnlyAdmin):
    """Trade orders are written by executions and portfolio orders; operators move them
    along the status flow (trade_orders_transition), export them and build the blotter.
    Millions of rows: the changelist counts them only up to a cap (core.counting)."""

    list_display = (
        "short_id", "client_id", "instrument_label", "side", "transaction_type", "units_text", "unit_price_text",
        "trade_amount_text", "currency", "execution_method", "status", "execution_link", "created_at",
    )
    list_display_links = ("short_id",)
    list_select_related = ("account", "instrument")
    list_filter = (
        "status", "side", TransactionTypeFilter, "execution_method",
        ("execution", AutocompleteFilter), ("account", AutocompleteFilter), ("instrument", AutocompleteFilter),
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("=account__client_id", "=instrument__isin")  # see ExactSearchMixin
    search_help_text = "Exact client id of the account, exact ISIN, or the order's full UUID."
    isin_search = True
    sortable_by = ("short_id", "units_text", "trade_amount_text", "status", "created_at")
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = [*(_transition_action(target) for target in TRANSITION_TARGETS), "export_selected"]
    fields = (
        "id", "account", "instrument", "side", "transaction_type", "units", "unit_price", "trade_amount", "currency",
        "execution_method", "status", "next_statuses", "executed_units", "executed_amount", "settled_units",
        "settled_amount", "cash_account", "counter_cash_account", "execution", "portfolio_order", "created_at",
        "updated_at",
    )
    readonly_fields = fields
    change_list_template = "admin/rebalancing/tradeorder/change_list.html"

    @property
    def media(self):
        # The autocomplete filters' select2.
        return super().media + AutocompleteSelect(TradeOrder._meta.get_field("account"), self.admin_site).media

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("account", "instrument")

    def get_sortable_by(self, request):
        # Units and amounts have no index: sorted over the whole table that is a sort of
        # millions of rows on each page load. Filtered by one execution or account (an
        # index narrows the rows first) they sort.
        if any(key in request.GET for key in ("execution__id__exact", "account__id__exact")):
            return self.sortable_by
        return ("short_id", "status", "created_at")

    def has_transition_permission(self, request):
        return request.user.has_perm("rebalancing.change_tradeorder")

    def get_changelist(self, request, **kwargs):
        if getattr(request, "_filter_only", False):
            return FilterOnlyChangeList
        return FastRowsChangeList

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("export/", view(self.export_view), name="rebalancing_tradeorder_export"),
            path("blotter/", view(self.blotter_view), name="rebalancing_tradeorder_blotter"),
            path("blotter/csv/", view(self.blotter_csv_view), name="rebalancing_tradeorder_blotter_csv"),
            path("blotter/xlsx/", view(self.blotter_xlsx_view), name="rebalancing_tradeorder_blotter_xlsx"),
            path("blotter/fix/", view(self.blotter_fix_view), name="rebalancing_tradeorder_blotter_fix"),
            path("export/xlsx/", view(self.export_xlsx_view), name="rebalancing_tradeorder_export_xlsx"),
            *super().get_urls(),
        ]

    # Columns -------------------------------------------------------------------------

    @admin.display(description="order", ordering="id")
    def short_id(self, obj):
        return short_id(obj.pk)

    @admin.display(description="account")
    def client_id(self, obj):
        return obj.account.client_id

    @admin.display(description="instrument")
    def instrument_label(self, obj):
        return f"{obj.instrument.isin} {obj.instrument.name}" if obj.instrument.isin else obj.instrument.name

    @admin.display(description="units", ordering="units")
    def units_text(self, obj):
        return formatting.units(obj.units, obj.instrument.block_size)

    @admin.display(description="unit price")
    def unit_price_text(self, obj):
        return formatting.price(obj.unit_price)

    @admin.display(description="trade amount", ordering="trade_amount")
    def trade_amount_text(self, obj):
        return formatting.money(obj.trade_amount, obj.currency, code=False)

    @admin.display(description="execution")
    def execution_link(self, obj):
        if obj.execution_id is None:
            if obj.portfolio_order_id is not None:
                return admin_link("admin:rebalancing_portfolioorder_change", obj.portfolio_order_id,
                             f"portfolio order {short_id(obj.portfolio_order_id)}")
            return "—"
        return admin_link("admin:rebalancing_execution_change", obj.execution_id, short_id(obj.execution_id))

    @admin.display(description="may go to")
    def next_statuses(self, obj):
        return ", ".join(allowed_transitions(obj.status)) or f"nothing ({obj.status} is final)"

    # Actions -------------------------------------------------------------------------

    def transition(self, request, queryset, target: str):
        ids = list(queryset.values_list("pk", flat=True)[:MAX_TRANSITION_ORDERS + 1])
        if len(ids) > MAX_TRANSITION_ORDERS:
            self.message_user(
                request, f"At most {MAX_TRANSITION_ORDERS:,} trade orders per action: select fewer.", messages.ERROR
            )
            return
        done, refusals = trade_orders_transition(order_ids=ids, status=target, user=request.user)
        if done:
            self.message_user(request, f"Moved {plural(done, 'trade order')} to {target}.", messages.SUCCESS)
        for refusal in refusals[:MAX_REFUSAL_MESSAGES]:
            self.message_user(request, f"Refused: {refusal}", messages.WARNING)
        if len(refusals) > MAX_REFUSAL_MESSAGES:
            self.message_user(
                request, f"… and {len(refusals) - MAX_REFUSAL_MESSAGES} more refused (not listed).", messages.WARNING
            )
        if not done and not refusals:
            self.message_user(request, "No trade order selected.", messages.WARNING)

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_selected(self, request, queryset):
        return csv_response(selectors_orders.trade_order_csv_rows(queryset), f"trade-orders-{file_stamp()}.csv")

    # Views on the changelist's filter --------------------------------------------------

    def filtered_changelist(self, request) -> ChangeList:
        """The changelist of this request's filters, search and sorting, without a page.
        Raises IncorrectLookupParameters like the changelist."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        request._filter_only = True
        try:
            return self.get_changelist_instance(request)
        finally:
            request._filter_only = False

    def _bad_filter(self):
        return HttpResponseRedirect(reverse("admin:rebalancing_tradeorder_changelist") + f"?{ERROR_FLAG}=1")

    def export_view(self, request):
        """Every order of the current filter as CSV, streamed (`.iterator()`)."""
        try:
            changelist = self.filtered_changelist(request)
        except IncorrectLookupParameters:
            return self._bad_filter()
        return csv_response(selectors_orders.trade_order_csv_rows(changelist.queryset), f"trade-orders-{file_stamp()}.csv")

    def _blotter(self, request, url_name: str):
        """(changelist, None), or (None, a redirect): to the default filter (OPEN) when
        the request has none, or to the changelist's error page for a bad filter."""
        if not request.GET:
            default = f"?status__exact={selectors_orders.BLOTTER_DEFAULT_STATUS}"
            return None, HttpResponseRedirect(reverse(f"admin:{url_name}") + default)
        try:
            return self.filtered_changelist(request), None
        except IncorrectLookupParameters:
            return None, self._bad_filter()

    def blotter_view(self, request):
        """The orders of the current filter (default: OPEN) summed by instrument, side and
        currency across accounts: what the dealing desk sends to a broker."""
        changelist, response = self._blotter(request, "rebalancing_tradeorder_blotter")
        if response is not None:
            return response
        rows = selectors_orders.trade_order_blotter(changelist.queryset)
        gains = selectors_orders.blotter_estimated_gains(changelist.queryset)  # §12, tax-aware sells only
        query = changelist.get_query_string()
        changelist_url = reverse("admin:rebalancing_tradeorder_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Trade order blotter",
            "filters": _active_filters(changelist),
            "rows": [
                {
                    "isin": row.isin or "—", "name": row.name, "side": row.side, "currency": row.currency,
                    "orders": row.orders, "units": formatting.number(row.units),
                    "trade_amount": formatting.money(row.trade_amount, row.currency, code=False),
                    "instrument_id": row.instrument_id,
                    "estimated_gain": "; ".join(
                        formatting.money(amount, currency) for currency, amount in sorted(gains[row.instrument_id].items())
                    ) if row.side == "SELL" and row.instrument_id in gains else "",
                    "url": changelist_url + changelist.get_query_string({
                        "instrument__id__exact": row.instrument_id, "side__exact": row.side, "currency": row.currency,
                    }),
                }
                for row in rows
            ],
            "tax_aware": bool(gains),
            "totals": [
                {**total, "trade_amount": formatting.money(total["trade_amount"], total.get("currency", ""), code=False)}
                for total in selectors_orders.blotter_totals(rows)
            ],
            "csv_url": reverse("admin:rebalancing_tradeorder_blotter_csv") + query,
            "xlsx_url": reverse("admin:rebalancing_tradeorder_blotter_xlsx") + query,
            "fix_url": reverse("admin:rebalancing_tradeorder_blotter_fix") + query,
            "changelist_url": changelist_url + query,
        }
        return TemplateResponse(request, "admin/rebalancing/tradeorder/blotter.html", context)

    def blotter_csv_view(self, request):
        changelist, response = self._blotter(request, "rebalancing_tradeorder_blotter_csv")
        if response is not None:
            return response
        rows = selectors_orders.trade_order_blotter(changelist.queryset)
        return csv_response(selectors_orders.blotter_csv_rows(rows), f"blotter-{file_stamp()}.csv")

    def blotter_xlsx_view(self, request):
        changelist, response = self._blotter(request, "rebalancing_tradeorder_blotter_xlsx")
        if response is not None:
            return response
        rows = selectors_orders.trade_order_blotter(changelist.queryset)
        return _download(selectors_orders.rows_xlsx(selectors_orders.blotter_csv_rows(rows), sheet="blotter"),
                         XLSX, f"blotter-{file_stamp()}.xlsx")

    def blotter_fix_view(self, request):
        """The blotter as a FIX 4.4 order list: one NewOrderSingle per line (docs/imports.md)."""
        changelist, response = self._blotter(request, "rebalancing_tradeorder_blotter_fix")
        if response is not None:
            return response
        rows = selectors_orders.trade_order_blotter(changelist.queryset)
        text = "".join(selectors_orders.blotter_fix_lines(rows, now=timezone.now()))
        return _download(text.encode(), "text/plain; charset=utf-8", f"blotter-{file_stamp()}.fix")

    def export_xlsx_view(self, request):
        """Every order of the current filter as XLSX (at most XLSX_MAX_ORDERS: a
        workbook is built in memory; CSV streams any number)."""
        try:
            changelist = self.filtered_changelist(request)
        except IncorrectLookupParameters:
            return self._bad_filter()
        orders = changelist.queryset
        if orders.count() > XLSX_MAX_ORDERS:
            self.message_user(request, f"More than {XLSX_MAX_ORDERS} orders: export them as CSV, or filter further.",
                              messages.WARNING)
            return HttpResponseRedirect(reverse("admin:rebalancing_tradeorder_changelist") + changelist.get_query_string())
        data = selectors_orders.rows_xlsx(selectors_orders.trade_order_csv_rows(orders), sheet="trade orders")
        return _download(data, XLSX, f"trade-orders-{file_stamp()}.xlsx")


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLSX_MAX_ORDERS = 200_000


def _download(data: bytes, content_type: str, name: str):
    from django.http import HttpResponse

    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _active_filters(changelist: ChangeList) -> list[str]:
    """The changelist's filters and search, in words ("status: OPEN")."""
    described = []
    for spec in changelist.filter_specs:
        for name, value in getattr(spec, "used_parameters", {}).items():
            values = value if isinstance(value, list) else [value]
            described.append(f"{spec.title}: {', '.join(str(v) for v in values)}" + (
                "" if name.endswith("__exact") or "__" not in name else f" ({name.split('__')[-1]})"
            ))
    if changelist.query:
        described.append(f"search: {changelist.query}")
    known = {p for spec in changelist.filter_specs for p in spec.expected_parameters()}
    for name, values in changelist.filter_params.items():
        if name not in known and name not in IGNORED_PARAMS:
            described.append(f"{name}: {', '.join(values)}")
    return described


# --- Portfolio orders -------------------------------------------------------------------------


class PortfolioOrderForm(ServiceModelForm):
    """portfolio_order_create, initiated by the admin."""

    error_aliases = {"account_id": "account"}

    class Meta:
        model = PortfolioOrder
        fields = ["account", "side", "cash_amount", "currency"]

    def apply(self, *, user=None) -> PortfolioOrder:
        data = self.cleaned_data
        return portfolio_order_create(
            account=data["account"], side=data["side"], cash_amount=data["cash_amount"], currency=data["currency"],
            initiation=Initiation.ADMIN, user=user,
        )


class TradeOrderInline(ReadOnlyInline, admin.TabularInline):
    model = TradeOrder
    fk_name = "portfolio_order"
    fields = ("instrument", "side", "transaction_type", "units", "unit_price", "trade_amount", "currency", "status",
              "executed_units")
    readonly_fields = fields
    show_change_link = True
    verbose_name_plural = "trade orders"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("instrument")


@admin.register(PortfolioOrder)
class PortfolioOrderAdmin(ExactSearchMixin, ServiceAdmin):
    """A client's cash order, split into trade orders by portfolio_order_create; its
    status follows its trade orders, so nothing on it is edited."""

    form = PortfolioOrderForm
    inlines = [TradeOrderInline]
    list_display = ("short_id", "client_id", "side", "amount", "currency", "status", "initiation", "requested_by",
                    "created_at")
    list_display_links = ("short_id",)
    list_select_related = ("account", "requested_by")
    list_filter = ("status", "side", "initiation", ("account", AutocompleteFilter), ("created_at", admin.DateFieldListFilter))
    search_fields = ("=account__client_id",)  # see ExactSearchMixin
    search_help_text = "Exact client id of the account, or the order's full UUID."
    sortable_by = ("short_id", "amount", "status", "created_at")
    autocomplete_fields = ("account",)
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    @property
    def media(self):
        return super().media + AutocompleteSelect(PortfolioOrder._meta.get_field("account"), self.admin_site).media

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("account", "requested_by")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("account", "side", "cash_amount", "currency")
        return ("id", "account", "side", "cash_amount", "currency", "status", "initiation", "requested_by",
                "created_at", "updated_at")

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj is not None else ()

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def has_change_permission(self, request, obj=None):
        return False  # its status follows its trade orders

    def response_add(self, request, obj, post_url_continue=None):
        # Straight to the new order and the trade orders it was split into.
        self.message_user(request, f"Portfolio order {obj.pk} created.", messages.SUCCESS)
        return redirect("admin:rebalancing_portfolioorder_change", obj.pk)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="portfolio order", ordering="created_at")
    def short_id(self, obj):
        return short_id(obj.pk)

    @admin.display(description="account")
    def client_id(self, obj):
        return obj.account.client_id

    @admin.display(description="amount", ordering="cash_amount")
    def amount(self, obj):
        return formatting.money(obj.cash_amount, obj.currency, code=False)
