"""Admin of executions (read-only, with cancel, approve and reject) and the "Rebalance now"
actions of the account and allocation admins: thin adapters over `execution_create`,
`execution_cancel`, `execution_approve` and `execution_reject`."""

from collections import defaultdict

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from core import formatting
from core.charts import line_chart
from core.errors import DomainError
from core.ids import parse_uuid
from portfolios.admin.base import ReadOnlyAdmin, UUIDSearchMixin
from portfolios.models import AccountStatus, Configuration, PortfolioAccount

from ..models import EXECUTION_ENDED, Execution, ExecutionResult, ExecutionStatus, Method, TradeOrder, Trigger
from ..services import MAX_EXECUTION_ACCOUNTS, execution_cancel, execution_create
from ..selectors.progress import execution_progress_series
from ..services.approval import APPROVE_PERMISSION, execution_approve, execution_reject
from .common import money_text, plural, short_id

EXECUTE_PERMISSION = "rebalancing.execute_rebalance"
RESULTS_PER_PAGE = 100
# The detail page polls its progress while the execution is in one of these.
POLLED_STATUSES = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)
# Executions approved or rejected by one admin action.
MAX_DECISIONS = 100


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
                "units": formatting.units(order.units, order.instrument.block_size),
                "unit_price": formatting.price(order.unit_price),
                "trade_amount": formatting.money(order.trade_amount, order.currency, code=False),
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
                "total_value": money_text(r.total_value, r.account.base_currency),
                "cash_before": money_text(r.cash_before, r.account.base_currency),
                "cash_after": money_text(r.cash_after, r.account.base_currency),
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


def _elapsed(seconds) -> str:
    seconds = int(round(float(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def progress_chart(execution, total: int) -> str:
    """The line chart of accounts done over time (one query), with the rate in its title."""
    series = execution_progress_series(execution=execution)
    title = "Accounts done over time"
    if series.rate:
        title += f" ({series.rate:,.1f} accounts/s"
        left = total - series.points[-1][1]
        title += f", about {_elapsed(left / series.rate)} left)" if left > 0 else ")"
    return line_chart(
        series.points, title=title, y_max=total or 1, width=640, height=200, chart_id="chart-execution-progress",
        x_text=lambda x: _elapsed(x), y_text=lambda y: f"{y:,}",
    ) + format_html('<p class="help" id="execution-progress-caption">{}</p>', title)


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
            "held", "approval_currency", "approval_gross_limit_text", "approval_order_limit", "gross_amount_text",
            "order_count",
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
        """{status, done, total, chart} as JSON, for the detail page's progress bar and
        its line chart of accounts done over time (two queries)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        execution_id = parse_uuid(object_id)
        execution = (
            Execution.objects.filter(pk=execution_id).only("status", "done", "total", "started_at", "created_at").first()
            if execution_id else None
        )
        if execution is None:
            raise Http404("No such execution.")
        return JsonResponse({
            **execution_progress(execution.status, execution.done, execution.total),
            "status_label": execution.get_status_display(),
            "chart": progress_chart(execution, execution.total),
        })

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
            "title": f"{verb.capitalize()} {plural(len(executions), 'execution')}",
            "verb": verb,
            "executions": [
                {
                    "pk": e.pk, "label": str(e), "url": reverse("admin:rebalancing_execution_change", args=[e.pk]),
                    "status": e.status, "reason": e.approval_reason, "gross_amount": money_text(e.gross_amount, e.approval_currency),
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
                request, f"{DECIDED[verb].capitalize()} {plural(decided, 'execution')}.", messages.SUCCESS
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
                progress_chart=progress_chart(obj, obj.total),
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

    @admin.display(description="approval gross limit")
    def approval_gross_limit_text(self, obj):
        if obj.approval_gross_limit is None:
            return "no limit"
        return formatting.money(obj.approval_gross_limit, obj.approval_currency or "EUR")

    @admin.display(description="gross amount")
    def gross_amount_text(self, obj):
        """Σ |trade amount| of the execution's orders in the approval currency (held executions)."""
        if obj.gross_amount is None:
            return "—"
        return formatting.money(obj.gross_amount, obj.approval_currency or "EUR")

    @admin.display(description="execution", ordering="created_at")
    def short_id(self, obj):
        return short_id(obj.pk)

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
            self.message_user(request, f"Cancelled {plural(cancelled, 'execution')}.", messages.SUCCESS)


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
            else f"all {plural(execution.total, 'account')} already in another running execution (FAILED results)"
        )
        return f"Execution {short_id(execution.pk)} ended at once ({execution.status}): {why}."
    refused = execution.done
    return (
        f"Execution {short_id(execution.pk)} started ({execution.method}, {execution.rebalance_date:%Y-%m-%d}) for "
        f"{plural(execution.total, 'account')}"
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
