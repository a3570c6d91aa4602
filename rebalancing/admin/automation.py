"""Admin of the automation (spec §7): strategies, due-date claims, savings plans and their
runs, the schedule of one account, and "run now" of the two daily jobs.

Every write goes through `rebalancing.services.strategies` / `.automation`, so the
admin, the API and beat can never disagree; the "run now" buttons call the very
service the beat job calls, and report what it did.
"""

import uuid

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from core import formatting
from portfolios.admin.base import ReadOnlyAdmin, ServiceAdmin, percent
from portfolios.forms import ServiceModelForm
from portfolios.models import PortfolioAccount

from ..models import ClaimOutcome, SavingsPlan, SavingsPlanRun, Strategy, StrategyRun, StrategyType
from ..services import automation, strategies

RUN_PERMISSION = "rebalancing.execute_rebalance"
CHANGE_LIST_TEMPLATE = "admin/rebalancing/automation/change_list.html"


def _owner(strategy: Strategy) -> str:
    if strategy.configuration_id:
        return f"account {strategy.configuration.account.client_id}"
    return f"allocation {strategy.allocation}"


def _schedule_url(account_id) -> str:
    return reverse("admin:rebalancing_strategy_schedule", args=[account_id])


class RunNowMixin:
    """A changelist button that runs one of the daily jobs now, through its service."""

    run_label = ""

    def run_now(self, request) -> tuple[str, int]:
        """Run the job: (message, level); a run with failures is a warning, never green."""
        raise NotImplementedError

    def get_urls(self):
        opts = self.model._meta
        return [
            path("run-now/", self.admin_site.admin_view(require_POST(self.run_now_view)),
                 name=f"{opts.app_label}_{opts.model_name}_run_now"),
            *super().get_urls(),
        ]

    def run_now_view(self, request):
        if not request.user.has_perm(RUN_PERMISSION):
            raise PermissionDenied
        message, level = self.run_now(request)
        self.message_user(request, message, level)
        opts = self.model._meta
        return redirect(f"admin:{opts.app_label}_{opts.model_name}_changelist")

    def changelist_view(self, request, extra_context=None):
        opts = self.model._meta
        extra_context = {
            **(extra_context or {}),
            "run_now_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_run_now"),
            "run_now_label": self.run_label,
            "may_run_now": request.user.has_perm(RUN_PERMISSION),
            "schedule_lookup_url": reverse("admin:rebalancing_strategy_schedule_lookup"),
        }
        return super().changelist_view(request, extra_context)


def _level(failed: int) -> int:
    return messages.WARNING if failed else messages.SUCCESS


def evaluation_message(summary: automation.EvaluationSummary) -> tuple[str, int]:
    return (
        f"Evaluation of {summary.on_date:%Y-%m-%d}: {summary.claimed} due date(s) claimed, "
        f"{len(summary.executions)} execution(s) created for {summary.accounts} account(s), "
        f"{summary.failed} failed; {summary.accounts_valued} account(s) valued for their drift."
        + (f" {summary.already_claimed} due date(s) were taken by another run meanwhile." if summary.already_claimed else "")
    ), _level(summary.failed)


def savings_message(summary: automation.SavingsPlanSummary) -> tuple[str, int]:
    failed = f"{summary.failed} of {summary.due} FAILED (the reason is on each run below)" if summary.failed else "none failed"
    return (
        f"Savings plans of {summary.on_date:%Y-%m-%d}: {summary.due} due, {summary.executed} portfolio order(s) "
        f"placed, {failed}."
    ), _level(summary.failed)


# --- Strategies -----------------------------------------------------------------------------


class StrategyForm(ServiceModelForm):
    class Meta:
        model = Strategy
        fields = ["configuration", "allocation", *[k for k in strategies.STRATEGY_KEYS]]

    def apply(self, *, user=None) -> Strategy:
        values = {key: self.cleaned_data.get(key) for key in strategies.STRATEGY_KEYS}
        data = strategies.strategy_validate({k: (None if v == "" else v) for k, v in values.items()}, prefix="")
        if self.is_adding:
            return strategies.strategy_create(
                data=data, configuration=self.cleaned_data.get("configuration"),
                allocation=self.cleaned_data.get("allocation"),
            )
        # The stored row, not the form's instance (which already holds the new values).
        return strategies.strategy_update(strategy=Strategy.objects.get(pk=self.instance.pk), data=data)


@admin.register(Strategy)
class StrategyAdmin(RunNowMixin, ServiceAdmin):
    """A strategy on one configuration (one account) or on an allocation (every account
    following it without its own)."""

    form = StrategyForm
    change_list_template = CHANGE_LIST_TEMPLATE
    run_label = "Run evaluation now"
    list_display = ("owner", "type", "calendar", "threshold", "method", "cooldown_days", "paused", "next_calendar_date")
    list_select_related = ("configuration__account", "allocation")
    list_filter = ("type", "method", "paused")
    search_fields = ("configuration__account__client_id", "allocation__name")
    search_help_text = "Client reference of the account, or the allocation's name."
    autocomplete_fields = ("configuration", "allocation")
    readonly_fields = ("created_at", "updated_at")
    actions = ("pause_strategies", "resume_strategies")
    ordering = ("-updated_at", "id")
    show_full_result_count = False
    fieldsets = (
        ("Whose strategy (one of the two)", {"fields": ("configuration", "allocation")}),
        (None, {"fields": ("type", "method", "cooldown_days", "paused")}),
        ("Calendar (CALENDAR, CALENDAR_AND_THRESHOLD)", {"fields": ("period_type", "period_count", "anchor_date")}),
        ("Threshold (THRESHOLD, CALENDAR_AND_THRESHOLD)", {"fields": ("absolute_drift", "relative_drift")}),
        ("Record", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return ("configuration", "allocation", *fields) if obj is not None else fields

    def get_urls(self):
        return [
            path("schedule/", self.admin_site.admin_view(self.schedule_lookup_view),
                 name="rebalancing_strategy_schedule_lookup"),
            path("schedule/<uuid:account_id>/", self.admin_site.admin_view(self.schedule_view),
                 name="rebalancing_strategy_schedule"),
            *super().get_urls(),
        ]

    def run_now(self, request) -> tuple[str, int]:
        return evaluation_message(automation.strategies_evaluate())

    @admin.display(description="strategy of")
    def owner(self, obj):
        if obj.configuration_id:
            return format_html(
                '<a href="{}">account {}</a>', _schedule_url(obj.configuration_id), obj.configuration.account.client_id
            )
        return f"allocation {obj.allocation}"

    @admin.display(description="calendar")
    def calendar(self, obj):
        if obj.type == StrategyType.THRESHOLD:
            return "—"
        return f"every {obj.period_count} {obj.period_type} from {obj.anchor_date:%Y-%m-%d}"

    @admin.display(description="threshold")
    def threshold(self, obj):
        if obj.type == StrategyType.CALENDAR:
            return "—"
        parts = []
        if obj.absolute_drift is not None:
            parts.append(f"± {percent(obj.absolute_drift)} points")
        if obj.relative_drift is not None:
            parts.append(f"± {percent(obj.relative_drift)} of target")
        return " or ".join(parts)

    @admin.display(description="next calendar date")
    def next_calendar_date(self, obj):
        """The strategy's own next calendar date (a PERIODICAL allocation's reset dates
        are on the account's schedule page)."""
        if obj.paused:
            return "paused"
        found = automation.next_due_date(automation.strategy_periods(obj), automation.evaluation_date())
        return f"{found:%Y-%m-%d}" if found else "—"

    @admin.action(description="Pause the selected strategies", permissions=["change"])
    def pause_strategies(self, request, queryset):
        count = strategies.strategies_pause(strategy_ids=queryset.values_list("pk", flat=True), paused=True)
        self.message_user(request, f"{count} strateg{'y' if count == 1 else 'ies'} paused.", messages.SUCCESS)

    @admin.action(description="Resume the selected strategies", permissions=["change"])
    def resume_strategies(self, request, queryset):
        count = strategies.strategies_pause(strategy_ids=queryset.values_list("pk", flat=True), paused=False)
        self.message_user(
            request, f"{count} strateg{'y' if count == 1 else 'ies'} resumed; dates missed while paused are not "
            "caught up.", messages.SUCCESS,
        )

    # --- The schedule of one account --------------------------------------------------

    def schedule_lookup_view(self, request):
        """Find an account by client reference or id, and show its schedule."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        query = request.GET.get("q", "").strip()
        error = ""
        if query:
            try:
                account = PortfolioAccount.objects.filter(pk=uuid.UUID(query)).first()
            except ValueError:
                account = PortfolioAccount.objects.filter(client_id=query).first()
            if account is not None:
                return redirect(_schedule_url(account.pk))
            error = f"No account with client reference or id {query}."
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": "Schedule of an account",
            "query": query, "error": error,
        }
        return TemplateResponse(request, "admin/rebalancing/automation/schedule_lookup.html", context)

    def schedule_view(self, request, account_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        account = get_object_or_404(PortfolioAccount, pk=account_id)
        schedule = automation.account_schedule(account=account)
        strategy = schedule.strategy
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta,
            "title": f"Schedule of account {account.client_id}", "schedule": schedule, "account": account,
            "account_url": reverse("admin:portfolios_portfolioaccount_change", args=[account.pk]),
            "strategy_url": reverse("admin:rebalancing_strategy_change", args=[strategy.pk]) if strategy else None,
            "drift": [
                {
                    "label": line.label, "weight": percent(line.weight), "target": percent(line.target_weight),
                    "drift": percent(line.drift, sign=True),
                    "relative": percent(line.relative, 1) if line.relative is not None else "—",
                    "crossed": line.crossed,
                }
                for line in schedule.drift
            ],
            "absolute_limit": percent(strategy.absolute_drift) if strategy and strategy.absolute_drift else None,
            "relative_limit": percent(strategy.relative_drift, 1) if strategy and strategy.relative_drift else None,
            "total_value": formatting.money(schedule.total_value, account.base_currency) if schedule.total_value is not None else None,
            "may_run_now": request.user.has_perm(RUN_PERMISSION),
            "run_now_url": reverse("admin:rebalancing_strategy_run_now"),
        }
        return TemplateResponse(request, "admin/rebalancing/automation/schedule.html", context)


class OutcomeAdmin(ReadOnlyAdmin):
    @admin.display(description="outcome", ordering="outcome")
    def outcome_shown(self, obj):
        if obj.outcome == ClaimOutcome.FAILED:
            return format_html('<strong class="errornote-inline" style="color: var(--error-fg)">{}</strong>', obj.outcome)
        return obj.outcome


@admin.register(StrategyRun)
class StrategyRunAdmin(RunNowMixin, OutcomeAdmin):
    """The claims of (strategy, due date): each due date runs at most once."""

    change_list_template = CHANGE_LIST_TEMPLATE
    run_label = "Run evaluation now"
    list_display = ("due_date", "strategy_of", "strategy_type", "outcome_shown", "accounts", "execution_link", "detail",
                    "claimed_at")
    list_select_related = ("strategy__configuration__account", "strategy__allocation", "execution")
    list_filter = ("outcome", "strategy__type", "due_date")
    search_fields = ("strategy__configuration__account__client_id", "strategy__allocation__name")
    search_help_text = "Client reference of the account, or the allocation's name."
    fields = ("strategy", "due_date", "outcome", "accounts", "execution", "detail", "claimed_at")
    readonly_fields = fields
    ordering = ("-due_date", "-claimed_at")
    show_full_result_count = False

    def run_now(self, request) -> tuple[str, int]:
        return evaluation_message(automation.strategies_evaluate())

    @admin.display(description="strategy of")
    def strategy_of(self, obj):
        return _owner(obj.strategy)

    @admin.display(description="type", ordering="strategy__type")
    def strategy_type(self, obj):
        return obj.strategy.type

    @admin.display(description="execution")
    def execution_link(self, obj):
        if obj.execution_id is None:
            return "—"
        try:
            url = reverse("admin:rebalancing_execution_change", args=[obj.execution_id])
        except NoReverseMatch:  # the execution admin is not registered (yet)
            return str(obj.execution)
        return format_html('<a href="{}">{}</a>', url, obj.execution)


# --- Savings plans ----------------------------------------------------------------------------


class SavingsPlanForm(ServiceModelForm):
    error_aliases = {"account_id": "account"}

    class Meta:
        model = SavingsPlan
        fields = ["account", *automation.SAVINGS_PLAN_FIELDS]

    def apply(self, *, user=None) -> SavingsPlan:
        values = {name: self.cleaned_data.get(name) for name in automation.SAVINGS_PLAN_FIELDS}
        if self.is_adding:
            return automation.savings_plan_create(account=self.cleaned_data["account"], **values)
        return automation.savings_plan_update(plan=SavingsPlan.objects.get(pk=self.instance.pk), **values)


@admin.register(SavingsPlan)
class SavingsPlanAdmin(RunNowMixin, ServiceAdmin):
    form = SavingsPlanForm
    change_list_template = CHANGE_LIST_TEMPLATE
    run_label = "Run savings plans now"
    list_display = ("account", "cash_amount", "currency", "interval", "day", "start_date", "end_date", "active",
                    "next_run_date")
    list_select_related = ("account",)
    list_filter = ("interval", "active")
    search_fields = ("account__client_id",)
    search_help_text = "Client reference of the account."
    autocomplete_fields = ("account",)
    readonly_fields = ("next_run_date", "created_at", "updated_at")
    actions = ("pause_plans", "resume_plans")
    ordering = ("-created_at", "id")
    show_full_result_count = False

    def get_queryset(self, request):
        return automation.with_last_run(super().get_queryset(request))

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return ("account", *fields) if obj is not None else fields

    def run_now(self, request) -> tuple[str, int]:
        return savings_message(automation.savings_plans_run())

    @admin.display(description="next run date")
    def next_run_date(self, obj):
        if obj._state.adding:
            return "—"
        found = automation.savings_plan_next_run_date(obj, last_run=getattr(obj, "last_run", None))
        return f"{found:%Y-%m-%d}" if found else ("paused" if not obj.active else "ended")

    @admin.action(description="Pause the selected savings plans", permissions=["change"])
    def pause_plans(self, request, queryset):
        count = automation.savings_plans_pause(plan_ids=queryset.values_list("pk", flat=True), active=False)
        self.message_user(request, f"{count} savings plan(s) paused.", messages.SUCCESS)

    @admin.action(description="Resume the selected savings plans", permissions=["change"])
    def resume_plans(self, request, queryset):
        count = automation.savings_plans_pause(plan_ids=queryset.values_list("pk", flat=True), active=True)
        self.message_user(
            request, f"{count} savings plan(s) resumed; dates missed while paused are not caught up.", messages.SUCCESS
        )


@admin.register(SavingsPlanRun)
class SavingsPlanRunAdmin(RunNowMixin, OutcomeAdmin):
    """The claims of (savings plan, due date), with the portfolio order or why not."""

    change_list_template = CHANGE_LIST_TEMPLATE
    run_label = "Run savings plans now"
    list_display = ("due_date", "account", "amount", "outcome_shown", "portfolio_order", "detail", "claimed_at")
    list_select_related = ("savings_plan__account", "portfolio_order")
    list_filter = ("outcome", "due_date")
    search_fields = ("savings_plan__account__client_id",)
    search_help_text = "Client reference of the account."
    fields = ("savings_plan", "due_date", "outcome", "portfolio_order", "detail", "claimed_at")
    readonly_fields = fields
    ordering = ("-due_date", "-claimed_at")
    show_full_result_count = False

    def run_now(self, request) -> tuple[str, int]:
        return savings_message(automation.savings_plans_run())

    @admin.display(description="account", ordering="savings_plan__account__client_id")
    def account(self, obj):
        return obj.savings_plan.account

    @admin.display(description="amount")
    def amount(self, obj):
        return formatting.money(obj.savings_plan.cash_amount, obj.savings_plan.currency)
