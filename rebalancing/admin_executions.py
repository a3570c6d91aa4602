"""Admin of executions, trade orders and portfolio orders (spec §1, §5, §6).

Everything here is produced by the services (`execution_create`, the chunk tasks,
`portfolio_order_create`) and is read-only in the admin; the actions are thin
adapters over the same services the API calls: `execution_cancel`,
`trade_orders_transition`, `execution_create` ("Rebalance now" on accounts and
allocations). The trade-order changelist is built for a large table: no full count,
no facet counts, filters that never list every related row (autocomplete instead),
an exact, index-friendly search, and CSV / blotter views that reuse the changelist's
own filtering.
"""

import csv
from collections import defaultdict

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG, IGNORED_PARAMS, ChangeList
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q, Subquery
from django.http import Http404, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from portfolios.admin.base import ReadOnlyAdmin, ReadOnlyInline, ServiceAdmin, UUIDSearchMixin, plain
from portfolios.errors import DomainError
from portfolios.forms import ServiceModelForm
from portfolios.models import AccountStatus, Configuration, Instrument, PortfolioAccount
from portfolios.selectors import parse_uuid

from . import selectors_orders
from .models import (
    EXECUTION_ENDED,
    Execution,
    ExecutionResult,
    ExecutionStatus,
    Initiation,
    Method,
    PortfolioOrder,
    TradeOrder,
    TradeOrderStatus,
    Trigger,
)
from .services import (
    MAX_EXECUTION_ACCOUNTS,
    allowed_transitions,
    execution_cancel,
    execution_create,
    portfolio_order_create,
    trade_orders_transition,
)
from .services.approval import APPROVE_PERMISSION, execution_approve, execution_reject

EXECUTE_PERMISSION = "rebalancing.execute_rebalance"
RESULTS_PER_PAGE = 100
# The detail page polls its progress while the execution is in one of these.
POLLED_STATUSES = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)
# At most this many orders per transition action (each moves in its own savepoint).
MAX_TRANSITION_ORDERS = 10_000
# Executions approved or rejected by one admin action.
MAX_DECISIONS = 100
# Refusals listed one by one; beyond, a count.
MAX_REFUSAL_MESSAGES = 50
TRANSITION_TARGETS = (
    TradeOrderStatus.ACCEPTED, TradeOrderStatus.EXECUTABLE, TradeOrderStatus.SENT_TO_EXECUTION,
    TradeOrderStatus.IN_EXECUTION, TradeOrderStatus.EXECUTED_IN_MARKET, TradeOrderStatus.SETTLED_IN_MARKET,
    TradeOrderStatus.SETTLED, TradeOrderStatus.CANCELLED, TradeOrderStatus.REJECTED,
)


def _short(pk) -> str:
    return str(pk)[:8] if pk else "—"


def _link(view: str, pk, text) -> str:
    return format_html('<a href="{}">{}</a>', reverse(view, args=[pk]), text)


def _money(value, currency: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:,.2f}{' ' + currency if currency else ''}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


# --- Filters and CSV ----------------------------------------------------------------------


class AutocompleteFilter(admin.FieldListFilter):
    """Filter by one related row picked with the admin's autocomplete (select2), so the
    sidebar never lists every account, instrument or execution of a large table. The
    related model's admin must have search_fields. Sets `<field>__<pk>__exact`."""

    template = "admin/rebalancing/tradeorder/autocomplete_filter.html"

    def __init__(self, field, request, params, model, model_admin, field_path):
        self.lookup_kwarg = f"{field_path}__{field.target_field.name}__exact"
        value = params.get(self.lookup_kwarg)
        self.lookup_val = value[-1] if isinstance(value, list) else value
        super().__init__(field, request, params, model, model_admin, field_path)
        self.admin_site = model_admin.admin_site
        self.title = field.verbose_name

    def expected_parameters(self):
        return [self.lookup_kwarg]

    def widget_html(self) -> str:
        """The autocomplete select, with the chosen row (one query) if there is one."""
        remote = self.field.remote_field.model
        widget = AutocompleteSelect(self.field, self.admin_site, attrs={
            "class": "ballast-autocomplete-filter", "data-filter-param": self.lookup_kwarg,
            "data-placeholder": f"Any {self.title}", "style": "width: 100%",
        })
        widget.choices = forms.ModelChoiceField(queryset=remote._default_manager.all(), required=False).choices
        value = self.lookup_val if parse_uuid(self.lookup_val or "") else None
        return widget.render(f"filter-{self.field_path}", value)

    def choices(self, changelist):
        yield {
            "selected": self.lookup_val is None,
            "query_string": changelist.get_query_string(remove=[self.lookup_kwarg]),
            "display": "All",
        }


class FilterOnlyChangeList(ChangeList):
    """The changelist's filtered, searched and sorted queryset without the page and counts
    (for the CSV export and the blotter)."""

    def get_results(self, request):
        self.result_count = self.full_result_count = None
        self.result_list = []


class _Echo:
    def write(self, value):
        return value


def csv_response(rows, filename: str) -> StreamingHttpResponse:
    """Stream `rows` (an iterable of tuples) as a CSV attachment."""
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse((writer.writerow(row) for row in rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _stamp() -> str:
    return timezone.localtime().strftime("%Y%m%d-%H%M%S")


class ExactSearchMixin:
    """Search orders by the exact client id of their account or their own full UUID (and,
    for trade orders, the exact ISIN): lookups the indexes answer, not ILIKE scans."""

    isin_search = False

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        found = Q(account_id__in=Subquery(PortfolioAccount.objects.filter(client_id=term).values("pk")))
        if self.isin_search:
            found |= Q(instrument_id__in=Subquery(Instrument.objects.filter(isin=term.upper()).values("pk")))
        order_id = parse_uuid(term)
        if order_id is not None:
            found |= Q(pk=order_id)
        return queryset.filter(found), False


# --- Executions -----------------------------------------------------------------------------


def results_page(execution: Execution, *, page_number, status: str = "") -> dict:
    """One page of the execution's results (by account id), each with the orders the
    execution wrote for the account and its sub-portfolios. At most four queries,
    whatever the page size: status counts, results, sub-accounts, orders."""
    counts = dict(
        ExecutionResult.objects.filter(execution=execution).order_by().values_list("status")
        .annotate(n=Count("pk")).values_list("status", "n")
    )
    status = status if status in counts else ""
    total = counts.get(status) if status else sum(counts.values())
    paginator = Paginator(range(total), RESULTS_PER_PAGE)  # counted above: no COUNT query here
    page = paginator.get_page(page_number)
    rows = ExecutionResult.objects.filter(execution=execution).select_related("account").order_by("account_id")
    if status:
        rows = rows.filter(status=status)
    results = list(rows[page.start_index() - 1:page.end_index()]) if total else []

    with_orders = [r.account_id for r in results if r.order_count]
    owner = {a: a for a in with_orders}
    if with_orders:
        # Sells may come from sub-portfolios: their orders belong to the parent's result.
        owner.update(PortfolioAccount.objects.filter(parent_id__in=with_orders).order_by().values_list("pk", "parent_id"))
    orders = defaultdict(list)
    if owner:
        for order in (
            TradeOrder.objects.filter(execution=execution, account_id__in=list(owner))
            .select_related("instrument", "account").order_by("instrument__name", "side", "id")
        ):
            orders[owner[order.account_id]].append({
                "id": order.pk,
                "url": reverse("admin:rebalancing_tradeorder_change", args=[order.pk]),
                "sub_account": order.account.client_id if owner[order.account_id] != order.account_id else "",
                "isin": order.instrument.isin or "—",
                "name": order.instrument.name,
                "side": order.side,
                "transaction_type": order.transaction_type,
                "units": plain(order.units),
                "unit_price": plain(order.unit_price),
                "trade_amount": plain(order.trade_amount),
                "currency": order.currency,
                "execution_method": order.execution_method,
                "status": order.status,
            })
    return {
        "results": [
            {
                "account_id": r.account_id,
                "url": reverse("admin:portfolios_portfolioaccount_change", args=[r.account_id]),
                "client_id": r.account.client_id,
                "status": r.status,
                "error": r.error,
                "total_value": _money(r.total_value, r.account.base_currency),
                "cash_before": _money(r.cash_before, r.account.base_currency),
                "cash_after": _money(r.cash_after, r.account.base_currency),
                "orders": orders.get(r.account_id, []),
            }
            for r in results
        ],
        "status_counts": sorted(counts.items()),
        "status": status,
        "total": total,
        "page": page,
        "paginator": paginator,
    }


def execution_progress(status: str, done: int, total: int) -> dict:
    """What the progress endpoint answers and the detail page starts from."""
    return {"status": status, "done": done, "total": total}


class DecisionForm(forms.Form):
    comment = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Optional: why, in a few words; kept on the execution.",
    )


def _requested_by(execution: Execution, user) -> bool:
    """Whether `user` asked for the execution (and so may not approve it)."""
    return execution.requested_by_id is not None and execution.requested_by_id == user.pk


DECISIONS = {"approve": execution_approve, "reject": execution_reject}
DECIDED = {"approve": "approved", "reject": "rejected"}
DECISION_CONFIRMED = "decision_confirmed"


@admin.register(Execution)
class ExecutionAdmin(UUIDSearchMixin, ReadOnlyAdmin):
    """Executions are created by "Rebalance now", the API, beat and the command; here they
    are watched (progress, results, orders) and cancelled."""

    list_display = (
        "short_id", "status", "trigger", "method", "rebalance_date", "allocation", "requested_by", "progress",
        "created_at", "started_at", "finished_at",
    )
    list_display_links = ("short_id",)
    list_select_related = ("allocation", "requested_by")
    list_filter = ("status", "trigger", "method")
    date_hierarchy = "created_at"
    search_fields = ("allocation__name",)
    search_help_text = "The execution's full UUID, or part of its allocation's name."
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ["cancel_executions", "approve_executions", "reject_executions"]
    fieldsets = (
        (None, {"fields": (
            "id", "status", "trigger", "method", "rebalance_date", "allocation", "requested_by", "total", "done",
            "error", "created_at", "started_at", "finished_at",
        )}),
        ("Approval (four eyes)", {"fields": (
            "held", "approval_currency", "approval_gross_limit", "approval_order_limit", "gross_amount", "order_count",
            "approval_reason", "approved_by", "approved_at", "approval_comment",
        )}),
    )
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]
    change_form_template = "admin/rebalancing/execution/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("allocation", "requested_by", "approved_by")

    def has_execute_rebalance_permission(self, request):
        return request.user.has_perm(EXECUTE_PERMISSION)

    def has_approve_execution_permission(self, request):
        return request.user.has_perm(APPROVE_PERMISSION)

    def get_urls(self):
        return [
            path("<path:object_id>/progress/", self.admin_site.admin_view(self.progress_view),
                 name="rebalancing_execution_progress"),
            path("<path:object_id>/cancel/", self.admin_site.admin_view(require_POST(self.cancel_view)),
                 name="rebalancing_execution_cancel"),
            path("<path:object_id>/approve/", self.admin_site.admin_view(self.approve_view),
                 name="rebalancing_execution_approve"),
            path("<path:object_id>/reject/", self.admin_site.admin_view(self.reject_view),
                 name="rebalancing_execution_reject"),
            *super().get_urls(),
        ]

    def progress_view(self, request, object_id):
        """{status, done, total} as JSON, for the detail page's progress bar (one query)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        execution_id = parse_uuid(object_id)
        row = Execution.objects.filter(pk=execution_id).values("status", "done", "total").first() if execution_id else None
        if row is None:
            raise Http404("No such execution.")
        return JsonResponse(execution_progress(**row))

    def cancel_view(self, request, object_id):
        if not self.has_execute_rebalance_permission(request):
            raise PermissionDenied
        execution = self.get_object(request, object_id)
        if execution is None:
            raise Http404("No such execution.")
        self._cancel(request, [execution])
        return redirect("admin:rebalancing_execution_change", execution.pk)

    def approve_view(self, request, object_id):
        return self._decision_view(request, object_id, "approve")

    def reject_view(self, request, object_id):
        return self._decision_view(request, object_id, "reject")

    def _decision_view(self, request, object_id, verb: str):
        """The detail page's Approve / Reject: GET asks for the comment, POST decides."""
        if not self.has_approve_execution_permission(request):
            raise PermissionDenied
        execution = self.get_object(request, object_id)
        if execution is None:
            raise Http404("No such execution.")
        if request.method == "POST":
            form = DecisionForm(request.POST)
            if form.is_valid():
                self._decide(request, [execution], verb, form.cleaned_data["comment"])
                return redirect("admin:rebalancing_execution_change", execution.pk)
        else:
            form = DecisionForm()
        return self._decision_page(request, [execution], verb, form, form_url=request.get_full_path())

    def _decision_page(self, request, executions, verb: str, form, *, form_url: str, action: str = ""):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"{verb.capitalize()} {_plural(len(executions), 'execution')}",
            "verb": verb,
            "executions": [
                {
                    "pk": e.pk, "label": str(e), "url": reverse("admin:rebalancing_execution_change", args=[e.pk]),
                    "status": e.status, "reason": e.approval_reason, "gross_amount": _money(e.gross_amount, e.approval_currency),
                    "order_count": e.order_count, "requested_by": e.requested_by,
                    "own": _requested_by(e, request.user),
                }
                for e in executions
            ],
            "form": form,
            "form_url": form_url,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "confirm_field": DECISION_CONFIRMED,
        }
        return TemplateResponse(request, "admin/rebalancing/execution/decide.html", context)

    def _decide(self, request, executions, verb: str, comment: str) -> None:
        decided = 0
        for execution in executions:
            try:
                DECISIONS[verb](execution=execution, user=request.user, comment=comment)
            except DomainError as exc:
                self.message_user(request, f"Execution {execution.pk} not {DECIDED[verb]}: {exc.detail}", messages.ERROR)
            else:
                decided += 1
        if decided:
            self.message_user(
                request, f"{DECIDED[verb].capitalize()} {_plural(decided, 'execution')}.", messages.SUCCESS
            )

    def _decision_action(self, request, queryset, verb: str):
        executions = list(queryset.select_related("requested_by")[:MAX_DECISIONS + 1])
        if len(executions) > MAX_DECISIONS:
            self.message_user(request, f"At most {MAX_DECISIONS} executions at a time: select fewer.", messages.ERROR)
            return None
        if DECISION_CONFIRMED in request.POST:
            form = DecisionForm(request.POST)
            if form.is_valid():
                self._decide(request, executions, verb, form.cleaned_data["comment"])
                return None
        else:
            form = DecisionForm()
        return self._decision_page(
            request, executions, verb, form, form_url=request.get_full_path(), action=request.POST.get("action", "")
        )

    @admin.action(description="Approve selected executions (four eyes)", permissions=["approve_execution"])
    def approve_executions(self, request, queryset):
        return self._decision_action(request, queryset, "approve")

    @admin.action(description="Reject selected executions (four eyes)", permissions=["approve_execution"])
    def reject_executions(self, request, queryset):
        return self._decision_action(request, queryset, "reject")

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(
                may_decide=(
                    obj.status == ExecutionStatus.AWAITING_APPROVAL and self.has_approve_execution_permission(request)
                ),
                own_execution=_requested_by(obj, request.user),
                approve_url=reverse("admin:rebalancing_execution_approve", args=[obj.pk]),
                reject_url=reverse("admin:rebalancing_execution_reject", args=[obj.pk]),
                progress=execution_progress(obj.status, obj.done, obj.total),
                polling=obj.status in POLLED_STATUSES,
                progress_url=reverse("admin:rebalancing_execution_progress", args=[obj.pk]),
                cancel_url=reverse("admin:rebalancing_execution_cancel", args=[obj.pk]),
                may_cancel=obj.status not in EXECUTION_ENDED and self.has_execute_rebalance_permission(request),
                orders_url=reverse("admin:rebalancing_tradeorder_changelist") + f"?execution__id__exact={obj.pk}",
                blotter_url=reverse("admin:rebalancing_tradeorder_blotter") + f"?execution__id__exact={obj.pk}",
                results_page=results_page(
                    obj, page_number=request.GET.get("results_page") or 1, status=request.GET.get("result_status", ""),
                ),
            )
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    @admin.display(description="execution", ordering="created_at")
    def short_id(self, obj):
        return _short(obj.pk)

    @admin.display(description="progress")
    def progress(self, obj):
        return format_html(
            '<progress value="{}" max="{}" style="width: 5em"></progress> {}/{}',
            obj.done, obj.total or 1, obj.done, obj.total,
        )

    @admin.action(description="Cancel selected executions", permissions=["execute_rebalance"])
    def cancel_executions(self, request, queryset):
        self._cancel(request, list(queryset))

    def _cancel(self, request, executions):
        cancelled = 0
        for execution in executions:
            try:
                execution_cancel(execution=execution, user=request.user)
            except DomainError as exc:
                self.message_user(request, f"Execution {execution.pk} not cancelled: {exc.detail}", messages.WARNING)
            else:
                cancelled += 1
        if cancelled:
            self.message_user(request, f"Cancelled {_plural(cancelled, 'execution')}.", messages.SUCCESS)


# --- Trade orders ---------------------------------------------------------------------------


def _transition_action(target: str):
    def action(modeladmin, request, queryset):
        return modeladmin.transition(request, queryset, target)

    action.__name__ = f"move_to_{target.lower()}"
    return admin.action(description=f"Move selected trade orders to {target}", permissions=["transition"])(action)


@admin.register(TradeOrder)
class TradeOrderAdmin(ExactSearchMixin, ReadOnlyAdmin):
    """Trade orders are written by executions and portfolio orders; operators move them
    along the status flow (trade_orders_transition), export them and build the blotter."""

    list_display = (
        "short_id", "client_id", "instrument_label", "side", "transaction_type", "units_text", "unit_price_text",
        "trade_amount_text", "currency", "execution_method", "status", "execution_link", "created_at",
    )
    list_display_links = ("short_id",)
    list_select_related = ("account", "instrument")
    list_filter = (
        "status", "side", "execution_method",
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
        "settled_amount", "execution", "portfolio_order", "created_at", "updated_at",
    )
    readonly_fields = fields
    change_list_template = "admin/rebalancing/tradeorder/change_list.html"

    @property
    def media(self):
        # The autocomplete filters' select2.
        return super().media + AutocompleteSelect(TradeOrder._meta.get_field("account"), self.admin_site).media

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("account", "instrument")

    def has_transition_permission(self, request):
        return request.user.has_perm("rebalancing.change_tradeorder")

    def get_changelist(self, request, **kwargs):
        if getattr(request, "_filter_only", False):
            return FilterOnlyChangeList
        return super().get_changelist(request, **kwargs)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("export/", view(self.export_view), name="rebalancing_tradeorder_export"),
            path("blotter/", view(self.blotter_view), name="rebalancing_tradeorder_blotter"),
            path("blotter/csv/", view(self.blotter_csv_view), name="rebalancing_tradeorder_blotter_csv"),
            *super().get_urls(),
        ]

    # Columns -------------------------------------------------------------------------

    @admin.display(description="order", ordering="id")
    def short_id(self, obj):
        return _short(obj.pk)

    @admin.display(description="account")
    def client_id(self, obj):
        return obj.account.client_id

    @admin.display(description="instrument")
    def instrument_label(self, obj):
        return f"{obj.instrument.isin} {obj.instrument.name}" if obj.instrument.isin else obj.instrument.name

    @admin.display(description="units", ordering="units")
    def units_text(self, obj):
        return plain(obj.units)

    @admin.display(description="unit price")
    def unit_price_text(self, obj):
        return plain(obj.unit_price)

    @admin.display(description="trade amount", ordering="trade_amount")
    def trade_amount_text(self, obj):
        return plain(obj.trade_amount)

    @admin.display(description="execution")
    def execution_link(self, obj):
        if obj.execution_id is None:
            if obj.portfolio_order_id is not None:
                return _link("admin:rebalancing_portfolioorder_change", obj.portfolio_order_id,
                             f"portfolio order {_short(obj.portfolio_order_id)}")
            return "—"
        return _link("admin:rebalancing_execution_change", obj.execution_id, _short(obj.execution_id))

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
            self.message_user(request, f"Moved {_plural(done, 'trade order')} to {target}.", messages.SUCCESS)
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
        return csv_response(selectors_orders.trade_order_csv_rows(queryset), f"trade-orders-{_stamp()}.csv")

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
        return csv_response(selectors_orders.trade_order_csv_rows(changelist.queryset), f"trade-orders-{_stamp()}.csv")

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
                    "orders": row.orders, "units": plain(row.units), "trade_amount": plain(row.trade_amount),
                    "instrument_id": row.instrument_id,
                    "url": changelist_url + changelist.get_query_string({
                        "instrument__id__exact": row.instrument_id, "side__exact": row.side, "currency": row.currency,
                    }),
                }
                for row in rows
            ],
            "totals": [
                {**total, "trade_amount": plain(total["trade_amount"])}
                for total in selectors_orders.blotter_totals(rows)
            ],
            "csv_url": reverse("admin:rebalancing_tradeorder_blotter_csv") + query,
            "changelist_url": changelist_url + query,
        }
        return TemplateResponse(request, "admin/rebalancing/tradeorder/blotter.html", context)

    def blotter_csv_view(self, request):
        changelist, response = self._blotter(request, "rebalancing_tradeorder_blotter_csv")
        if response is not None:
            return response
        rows = selectors_orders.trade_order_blotter(changelist.queryset)
        return csv_response(selectors_orders.blotter_csv_rows(rows), f"blotter-{_stamp()}.csv")


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
        return _short(obj.pk)

    @admin.display(description="account")
    def client_id(self, obj):
        return obj.account.client_id

    @admin.display(description="amount", ordering="cash_amount")
    def amount(self, obj):
        return plain(obj.cash_amount)


# --- "Rebalance now" (actions of the account and allocation admins) ------------------------


class RebalanceNowForm(forms.Form):
    method = forms.ChoiceField(choices=Method.choices, initial=Method.FULL)
    rebalance_date = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"), input_formats=["%Y-%m-%d"],
        help_text="Prices and targets as of this date.",
    )


CONFIRM_FIELD = "rebalance_now_confirmed"


def rebalance_now(
    model_admin, request, *, intro: str, targets: list[dict], account_total: int, executions: int, more: int = 0, start
):
    """The confirmation page of a "Rebalance now" action (method and date), and on
    confirmation `start(method=..., rebalance_date=...)`, which returns the executions it
    created and the refusals (texts) it met.

    The page posts back to the changelist with the same filters: a "select all" across
    pages is posted as such, not as every id, so large selections fit in the request.
    `targets` lists what will be rebalanced ({"label", "url", "accounts"}).
    """
    confirmed = CONFIRM_FIELD in request.POST
    form = RebalanceNowForm(
        request.POST if confirmed else None, initial={"method": Method.FULL, "rebalance_date": timezone.localdate()}
    )
    if confirmed and form.is_valid():
        executions, refusals = start(method=form.cleaned_data["method"], rebalance_date=form.cleaned_data["rebalance_date"])
        for refusal in refusals:
            model_admin.message_user(request, refusal, messages.ERROR)
        for execution in executions:
            model_admin.message_user(request, _started_message(execution), messages.SUCCESS)
        if not executions:
            return None
        if len(executions) == 1:
            return redirect("admin:rebalancing_execution_change", executions[0].pk)
        return HttpResponseRedirect(
            reverse("admin:rebalancing_execution_changelist") + "?id__in=" + ",".join(str(e.pk) for e in executions)
        )
    select_across = request.POST.get("select_across") == "1"
    selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": "Rebalance now",
        "form": form,
        "action": request.POST.get("action", ""),
        "intro": intro,
        "targets": targets,
        "account_total": account_total,
        "execution_count": executions,
        "more": more,
        "form_url": request.get_full_path(),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "select_across": select_across,
        # With select_across Django needs one id to take the action at all; it then uses the filter.
        "selected": selected[:1] if select_across else selected,
        "confirm_field": CONFIRM_FIELD,
    }
    return TemplateResponse(request, "admin/rebalancing/execution/rebalance_now.html", context)


def _started_message(execution: Execution) -> str:
    if execution.status in EXECUTION_ENDED:  # no chunk to run: nothing selected, or every account taken
        why = (
            "no account to rebalance" if not execution.total
            else f"all {_plural(execution.total, 'account')} already in another running execution (FAILED results)"
        )
        return f"Execution {execution.pk} ended at once ({execution.status}): {why}."
    refused = execution.done
    return (
        f"Execution {execution.pk} started ({execution.method}, {execution.rebalance_date:%Y-%m-%d}) for "
        f"{_plural(execution.total, 'account')}"
        + (f"; {refused} already in another running execution got a FAILED result." if refused else ".")
    )


def rebalance_accounts_now(model_admin, request, queryset):
    """"Rebalance now" for the selected accounts: one execution_create for all of them."""
    ids = list(queryset.order_by().values_list("pk", flat=True)[:MAX_EXECUTION_ACCOUNTS + 1])
    if len(ids) > MAX_EXECUTION_ACCOUNTS:
        model_admin.message_user(
            request, f"An execution takes at most {MAX_EXECUTION_ACCOUNTS:,} accounts: select fewer.", messages.ERROR
        )
        return None
    shown = list(queryset.order_by("client_id", "pk").values_list("pk", "client_id")[:20])
    targets = [
        {"label": client_id, "url": reverse("admin:portfolios_portfolioaccount_change", args=[pk]), "accounts": None}
        for pk, client_id in shown
    ]

    def start(*, method, rebalance_date):
        try:
            execution = execution_create(
                account_ids=ids, method=method, trigger=Trigger.MANUAL, user=request.user, rebalance_date=rebalance_date,
            )
        except DomainError as exc:
            return [], [f"Nothing started: {exc.detail}"]
        return [execution], []

    return rebalance_now(
        model_admin, request, intro="One execution for the selected accounts.", targets=targets,
        account_total=len(ids), executions=1, more=len(ids) - len(shown), start=start,
    )


def rebalance_allocations_now(model_admin, request, queryset):
    """"Rebalance now" for the selected allocations: one execution_create(allocation=...)
    per allocation, each over the ACTIVE top-level accounts that follow it."""
    allocations = list(queryset.order_by("name", "pk"))
    # The accounts execution_create will take (shown on the page; the service decides).
    counts = dict(
        Configuration.objects.filter(
            allocation__in=allocations, account__status=AccountStatus.ACTIVE, account__parent__isnull=True
        ).order_by().values_list("allocation_id").annotate(n=Count("pk")).values_list("allocation_id", "n")
    )
    targets = [
        {
            "label": str(allocation), "url": reverse("admin:portfolios_allocation_change", args=[allocation.pk]),
            "accounts": counts.get(allocation.pk, 0),
        }
        for allocation in allocations
    ]

    def start(*, method, rebalance_date):
        executions, refusals = [], []
        for allocation in allocations:  # each its own transaction: one refusal leaves the others started
            try:
                executions.append(execution_create(
                    allocation=allocation, method=method, trigger=Trigger.MANUAL, user=request.user,
                    rebalance_date=rebalance_date,
                ))
            except DomainError as exc:
                refusals.append(f"Allocation {allocation}: not started: {exc.detail}")
        return executions, refusals

    return rebalance_now(
        model_admin, request,
        intro="One execution per allocation, over the ACTIVE top-level accounts following it at the start.",
        targets=targets, account_total=sum(counts.values()), executions=len(allocations), start=start,
    )


__all__ = [
    "AutocompleteFilter",
    "ExecutionAdmin",
    "PortfolioOrderAdmin",
    "TradeOrderAdmin",
    "rebalance_accounts_now",
    "rebalance_allocations_now",
]
