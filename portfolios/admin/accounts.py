"""Portfolio accounts, their holdings and configurations."""

import copy
import uuid
from collections import Counter, defaultdict
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.contrib.admin.widgets import AutocompleteSelect
from django.db.models import F
from django.utils.html import format_html

from core import charts, formatting
from core.counting import CappedCountAdminMixin
from core.errors import DomainError
from rebalancing.admin.executions import EXECUTE_PERMISSION, rebalance_accounts_now
from rebalancing.admin.common import AutocompleteFilter, FastRowsChangeList
from rebalancing.api.serializers import result_reason
from rebalancing.models import Method
from rebalancing.selectors.dashboard import DRIFT_BUCKETS, reporting_currency
from rebalancing.services import MAX_PREVIEW_ACCOUNTS, rebalance_preview

from .. import selectors, services
from ..forms import AccountForm, CashAccountForm, ConfigurationForm, PositionForm, ServiceInlineFormSet
from ..models import (
    AccountType,
    CashAccount,
    Configuration,
    Instrument,
    Lot,
    PortfolioAccount,
    Position,
    RealizedGain,
    RestrictionList,
    RestrictionScope,
)
from .base import ReadOnlyAdmin, ServiceAdmin, UUIDSearchMixin, percent


class HoldingsInline(admin.TabularInline):
    """Holdings are part of the account: whoever may change the account edits them,
    and a save replaces them as one snapshot through holdings_replace."""

    formset = ServiceInlineFormSet
    extra = 1

    def _may_edit(self, request, obj):
        return request.user.has_perm(
            "portfolios.add_portfolioaccount" if obj is None else "portfolios.change_portfolioaccount"
        )

    def has_add_permission(self, request, obj=None):
        return self._may_edit(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._may_edit(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._may_edit(request, obj)

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("portfolios.view_portfolioaccount") or self._may_edit(request, obj)


class PositionUnitsForm(PositionForm):
    """Units shown in the input to the instrument's precision (its block size), not the
    column's ten decimals: 300, not 300.0000000000. Still the same Decimal, so an
    untouched row does not count as changed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instrument = self.instance.instrument if self.instance.pk and self.instance.instrument_id else None
        if instrument is not None and self.instance.units is not None:
            self.initial["units"] = formatting.trimmed(self.instance.units, formatting.decimals_of(instrument.block_size))


class CashBalanceForm(CashAccountForm):
    """Balances shown in the input to the currency's minor unit (1,000.00 EUR as 1000.00)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.balance is not None:
            self.initial["balance"] = formatting.trimmed(
                self.instance.balance, formatting.minor_unit(self.instance.currency)
            )


class PositionInline(HoldingsInline):
    model = Position
    form = PositionUnitsForm
    fields = ("instrument", "units", "updated_at")
    readonly_fields = ("updated_at",)
    autocomplete_fields = ("instrument",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("instrument")


class CashAccountInline(HoldingsInline):
    model = CashAccount
    form = CashBalanceForm
    fields = ("currency", "kind", "balance", "is_default", "updated_at")
    readonly_fields = ("updated_at",)


class AccountActionForm(helpers.ActionForm):
    restriction_list = forms.ModelChoiceField(
        RestrictionList.objects.filter(scope=RestrictionScope.ACCOUNT), required=False,
        label="Restriction list", help_text="For “Assign the restriction list”.",
    )


class PreviewRebalanceForm(forms.Form):
    """Method and date of a rebalance preview (the page re-runs it for the same selection)."""

    method = forms.ChoiceField(choices=Method.choices, initial=Method.FULL)
    rebalance_date = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"), input_formats=["%Y-%m-%d"],
        help_text="Prices and targets as of this date.",
    )


def _money(value, currency: str = "") -> str:
    return formatting.money(value, currency)


_EFFECT_WORDS = {
    "SUBSTITUTED": "weight to {substitute}",
    "TO_CASH": "weight to cash",
    "PRO_RATA": "weight spread pro rata over the model's other lines",
    "HELD": "held, not sold",
    "SOLD": "sold whole",
}


def adjustment_words(adjustment, instruments: dict) -> str:
    """An adjustment in words: "Tobacco Co: NO_BUY (ESG list) → weight to Substitute ETF"."""

    def name(instrument_id):
        instrument = instruments.get(instrument_id)
        return instrument.name if instrument is not None else str(instrument_id)

    effect = _EFFECT_WORDS[str(adjustment.effect)].format(
        substitute=name(adjustment.substitute_id) if adjustment.substitute_id is not None else ""
    )
    return f"{name(adjustment.instrument_id)}: {adjustment.rule} ({adjustment.list_name} list) → {effect}"


def is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


class OutsideBandFilter(admin.SimpleListFilter):
    """Accounts whose stored drift is outside their band (rebalancing.AccountDrift): the
    partial index on the drift table answers it, no account is scanned."""

    title = "drift band"
    parameter_name = "outside_band"

    def lookups(self, request, model_admin):
        return (("yes", "Outside the band"), ("no", "Inside the band"), ("unknown", "Not valued"))

    def queryset(self, request, queryset):
        value = self.value()
        # A join (not pk IN (subquery), which PostgreSQL answered with a hash join over
        # every account): with the capped count and the largest-drift order, the page is
        # read from the drift index and the accounts fetched by primary key.
        if value == "yes":
            return queryset.filter(drift__outside_band=True)
        if value == "no":
            return queryset.filter(drift__outside_band=False, drift__error="")
        if value == "unknown":
            return queryset.filter(drift__isnull=True)
        return queryset


class DriftFilter(admin.SimpleListFilter):
    """The dashboard's histogram buckets of the largest absolute drift."""

    title = "largest drift"
    parameter_name = "drift"

    def lookups(self, request, model_admin):
        return [(str(index), label) for index, (label, _) in enumerate(DRIFT_BUCKETS)]

    def queryset(self, request, queryset):
        if self.value() is None or not self.value().isdigit() or int(self.value()) >= len(DRIFT_BUCKETS):
            return queryset
        index = int(self.value())
        queryset = queryset.filter(drift__max_drift__isnull=False)
        if index:
            queryset = queryset.filter(drift__max_drift__gte=DRIFT_BUCKETS[index - 1][1])
        if DRIFT_BUCKETS[index][1] is not None:
            queryset = queryset.filter(drift__max_drift__lt=DRIFT_BUCKETS[index][1])
        return queryset


class CurrencyFilter(admin.SimpleListFilter):
    """Base currency, offered from the instruments' currencies (a small table) instead
    of a DISTINCT over every account."""

    title = "base currency"
    parameter_name = "base_currency"

    def lookups(self, request, model_admin):
        currencies = set(Instrument.objects.order_by().values_list("currency", flat=True).distinct())
        return [(c, c) for c in sorted(currencies | {reporting_currency()})]

    def queryset(self, request, queryset):
        return queryset.filter(base_currency=self.value()) if self.value() else queryset


ALLOCATION_PARAM = "configuration__allocation__id__exact"


@admin.register(PortfolioAccount)
class PortfolioAccountAdmin(CappedCountAdminMixin, UUIDSearchMixin, ServiceAdmin):
    form = AccountForm
    inlines = [PositionInline, CashAccountInline]
    list_display = (
        "client_id", "status", "account_type", "base_currency", "locked", "parent", "allocation",
        "total_value_shown", "drift_shown",
    )
    list_select_related = ("parent", "configuration__allocation", "drift")
    list_filter = (
        OutsideBandFilter, DriftFilter, "status", "account_type", "locked", CurrencyFilter,
        ("configuration__allocation", AutocompleteFilter),
    )
    show_facets = admin.ShowFacets.NEVER
    search_fields = ("client_id",)
    search_help_text = "Client reference (part of it) or the account's full UUID."
    autocomplete_fields = ("parent",)
    readonly_fields = ("id", "valuation", "allocation_link", "tax_lots", "created_at", "updated_at")
    actions = ["lock_accounts", "unlock_accounts", "preview_rebalance", "rebalance_now", "assign_restriction_list"]
    action_form = AccountActionForm
    show_full_result_count = False

    @admin.action(description="Assign the restriction list chosen below to the selected accounts",
                  permissions=["change"])
    def assign_restriction_list(self, request, queryset):
        restriction_list = RestrictionList.objects.filter(pk=request.POST.get("restriction_list") or None).first()
        if restriction_list is None:
            self.message_user(request, "Choose a restriction list in the box next to the action first.", messages.ERROR)
            return
        try:
            added = services.accounts_restriction_list_assign(
                account_ids=list(queryset.values_list("pk", flat=True)), restriction_list=restriction_list, user=request.user
            )
        except DomainError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
            return
        self.message_user(request, f"{restriction_list} assigned to {added} account(s).", messages.SUCCESS)

    @property
    def media(self):
        # The allocation filter's autocomplete (select2).
        return super().media + AutocompleteSelect(Configuration._meta.get_field("allocation"), self.admin_site).media

    def sorts_by_drift(self, request) -> bool:
        """The list's first sort key is the drift column (`?o=9` or `?o=-9`)."""
        first = (request.GET.get("o") or "").split(".")[0].lstrip("-")
        if not first.isdigit():
            return False
        columns = list(self.get_list_display(request))
        if self.get_actions(request):
            columns.insert(0, "action_checkbox")  # as the changelist numbers its columns
        index = int(first)
        return index < len(columns) and columns[index] == "drift_shown"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        # Sorted by drift, the list holds the accounts that have one: the join to the
        # drift table is then an inner one and its (-max_drift) index yields the page in
        # order. A left join sorted every account (all 100,000) on each page load. The
        # others (custody accounts, sub-portfolios, not valued) are one filter away, and
        # the page says so (change_list.html).
        if self.sorts_by_drift(request):
            queryset = queryset.filter(drift__max_drift__isnull=False)
        return queryset

    def get_count_queryset(self, request, queryset):
        # Filtered by allocation alone, the accounts listed are that allocation's
        # configurations (one per account): counted from the configuration index, not by
        # joining every account (a hash join over the account table, bench/admin_lists.py).
        allocation = request.GET.get(ALLOCATION_PARAM, "")
        others = set(request.GET) - {ALLOCATION_PARAM, "p", "o"}
        if not others and is_uuid(allocation) and not self.sorts_by_drift(request):
            return Configuration.objects.filter(allocation_id=allocation)
        return queryset

    def get_changelist(self, request, **kwargs):
        return FastRowsChangeList  # rows rendered without the per-cell template loop

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "sorted_by_drift": self.sorts_by_drift(request)}
        return super().changelist_view(request, extra_context)

    def get_ordering(self, request):
        # Looking for drift: the largest first (NULLS LAST: the unvalued at the end).
        # The filtered rows all have a drift, so plain DESC (NULLS FIRST, as the drift
        # indexes are built) gives the same order and lets the index serve it.
        if request.GET.get("outside_band") == "yes" or "drift" in request.GET:
            return (F("drift__max_drift").desc(), "pk")
        return super().get_ordering(request)

    @admin.display(description="value", ordering="drift__total_value")
    def total_value_shown(self, obj):
        drift = getattr(obj, "drift", None)
        return formatting.money(drift.total_value, drift.currency) if drift is not None else "—"

    # Plain DESC (the index's order): sorted by this column, the list holds only accounts
    # with a drift (get_queryset), so there are no NULLs to place.
    @admin.display(description="largest drift", ordering=F("drift__max_drift").desc())
    def drift_shown(self, obj):
        """Stored by the daily evaluation and after each execution (never computed here)."""
        drift = getattr(obj, "drift", None)
        if drift is None:
            return "—"
        if drift.error:
            return format_html('<span class="ballast-alert" title="{}">not valued</span>', drift.error)
        text = formatting.percent(drift.max_drift)
        title = f"{drift.max_drift_line}; band {drift.band}; as of {drift.as_of:%Y-%m-%d}"
        if drift.outside_band:
            return format_html('<strong class="ballast-alert" title="{}">{} ▲ outside band</strong>', title, text)
        return format_html('<span title="{}">{}</span>', title, text)

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        if obj is not None:
            # account_update changes status, lock and parent only.
            fields = ("client_id", "account_type", "base_currency", *fields)
        return fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        field = form.base_fields.get("assigned_lists")
        if field is not None and not RestrictionList.objects.filter(scope=RestrictionScope.ACCOUNT).exists():
            # No ACCOUNT list to tick: say so, with the way to make one (a copy: the
            # declared field is shared by every AccountForm).
            field = form.base_fields["assigned_lists"] = copy.deepcopy(field)
            if request.user.has_perm("portfolios.add_restrictionlist"):
                field.help_text = format_html(
                    'No account lists yet: <a href="{}?scope={}" id="add-account-list">add one</a>. '
                    "FIRM lists apply to every account.",
                    reverse("admin:portfolios_restrictionlist_add"), RestrictionScope.ACCOUNT,
                )
            else:
                field.help_text = "No account lists yet. FIRM lists apply to every account."
        return form

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (None, {"fields": ("client_id", "account_type", "base_currency", "status", "parent", "locked")}),
            ("Restrictions", {"fields": ("assigned_lists",)}),
        ]
        if obj is not None:
            fieldsets.append(("Valuation", {"fields": ("valuation", "allocation_link")}))
            fieldsets.append(("Tax lots (read only: snapshots and settlements change them)", {"fields": ("tax_lots",)}))
            fieldsets.append(("Record", {"fields": ("id", "created_at", "updated_at"), "classes": ("collapse",)}))
        return fieldsets

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        # The account's automation (strategy, next date, drift vs threshold, last automatic
        # execution) lives on the strategy admin's schedule page.
        follows_model = is_uuid(object_id) and Configuration.objects.filter(
            account_id=object_id, account__parent__isnull=True
        ).exists()
        # A custody account or a sub-portfolio follows no model: no schedule, no drift.
        if request.user.has_perm("rebalancing.view_strategy") and follows_model:
            extra_context["schedule_url"] = reverse("admin:rebalancing_strategy_schedule", args=[object_id])
        return super().change_view(request, object_id, form_url, extra_context)

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        # Autocomplete offers only what the field can hold; the services still judge.
        asking_for = request.GET.get("model_name")
        if asking_for == "configuration":
            results = results.filter(account_type=AccountType.PORTFOLIO, parent__isnull=True)
        elif asking_for == "portfolioaccount":  # a parent: sub-portfolios are one level deep
            results = results.filter(parent__isnull=True)
        return results, may_have_duplicates

    def has_delete_permission(self, request, obj=None):
        # No service deletes accounts: operations closes them (status CLOSED).
        return False

    @admin.display(description="allocation", ordering="configuration__allocation__name")
    def allocation(self, obj):
        configuration = getattr(obj, "configuration", None)
        return configuration.allocation if configuration is not None else "—"

    @admin.display(description="allocation")
    def allocation_link(self, obj):
        configuration = getattr(obj, "configuration", None)
        if configuration is None:
            return "— (no configuration)"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:portfolios_allocation_change", args=[configuration.allocation_id]),
            configuration.allocation,
        )

    @admin.display(description="valuation today")
    @admin.display(description="Lots")
    def tax_lots(self, obj):
        """The account's lots, oldest first, with their unrealized gain at the latest
        price (selectors.account_lots: two queries)."""
        rows = selectors.account_lots(account=obj, on_date=timezone.localdate())
        if not rows:
            return "No lots."
        return render_to_string("admin/portfolios/lots_table.html", {"lots": [
            {
                "instrument": lot.instrument_label, "acquired_on": lot.acquired_on,
                "units": formatting.units(lot.units),
                "unit_cost": "unknown" if lot.unit_cost is None else formatting.money(lot.unit_cost, lot.cost_currency),
                "unrealized": "—" if lot.unrealized_gain is None else formatting.money(
                    lot.unrealized_gain, lot.cost_currency
                ),
            }
            for lot in rows
        ]})

    def valuation(self, obj):
        """Total value and each allocation line's target, actual weight and drift, from
        selectors.account_valuations (its own queries, a fixed number)."""
        on_date = timezone.localdate()
        account_valuations = getattr(selectors, "account_valuations", None)
        if account_valuations is None:
            return "The valuation is not available in this version."
        try:
            valuation = account_valuations(accounts=[obj], on_date=on_date).get(obj.pk)
        except DomainError as exc:
            return exc.detail
        if valuation is None:
            return "—"
        follows_model = getattr(obj, "configuration", None) is not None
        context = {"on_date": on_date, "error": valuation.error, "follows_model": follows_model}
        if not valuation.error:
            context.update(
                total_value=formatting.money(valuation.total_value, valuation.currency),
                cash_value=formatting.money(valuation.cash_value, valuation.currency),
                lines=[
                    {
                        "instrument": line.instrument,
                        "value": formatting.money(line.value, valuation.currency, code=False),
                        "target": percent(line.target_weight),
                        "actual": percent(line.actual_weight),
                        "drift": percent(line.drift, sign=True),
                    }
                    for line in valuation.lines
                ],
            )
            if follows_model:
                context["chart"] = charts.paired_bar_chart(
                    [{"label": line.instrument, "values": (line.target_weight, line.actual_weight)}
                     for line in valuation.lines],
                    title="Target and actual weight", series=("target", "actual"), chart_id="chart-account-weights",
                    value_text=formatting.percent,
                )
        return render_to_string("admin/portfolios/portfolioaccount/valuation.html", context)

    @admin.action(description="Lock selected accounts", permissions=["change"])
    def lock_accounts(self, request, queryset):
        self._set_locked(request, queryset, locked=True)

    @admin.action(description="Unlock selected accounts", permissions=["change"])
    def unlock_accounts(self, request, queryset):
        self._set_locked(request, queryset, locked=False)

    def _set_locked(self, request, queryset, *, locked: bool):
        ids = list(queryset.values_list("pk", flat=True))
        changed = services.accounts_set_locked(account_ids=ids, locked=locked)
        verb = "Locked" if locked else "Unlocked"
        message = f"{verb} {changed} account{'s' if changed != 1 else ''}."
        if changed != len(ids):
            message += f" {len(ids) - changed} {'was' if len(ids) - changed == 1 else 'were'} already {verb.lower()}."
        self.message_user(request, message, messages.SUCCESS)

    @admin.action(description="Preview rebalance", permissions=["view"])
    def preview_rebalance(self, request, queryset):
        """What a rebalance of the selected accounts would propose: one rebalance_preview
        call, nothing written. The page's form posts back here with a method and date."""
        accounts = list(queryset.values_list("pk", "client_id", "base_currency")[: MAX_PREVIEW_ACCOUNTS + 1])
        if len(accounts) > MAX_PREVIEW_ACCOUNTS:
            self.message_user(
                request,
                f"A rebalance preview takes at most {MAX_PREVIEW_ACCOUNTS} accounts: select fewer.",
                messages.ERROR,
            )
            return None
        rerun = "rebalance_date" in request.POST
        form = PreviewRebalanceForm(
            request.POST if rerun else None, initial={"method": Method.FULL, "rebalance_date": timezone.localdate()}
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Rebalance preview",
            "form": form,
            "account_ids": [pk for pk, _, _ in accounts],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "error": "",
            "results": None,
        }
        if rerun and not form.is_valid():
            return TemplateResponse(request, "admin/rebalancing/preview.html", context)
        values = form.cleaned_data if rerun else form.initial
        try:
            preview = rebalance_preview(
                account_ids=context["account_ids"], method=values["method"], rebalance_date=values["rebalance_date"]
            )
        except DomainError as exc:
            context["error"] = exc.detail
            return TemplateResponse(request, "admin/rebalancing/preview.html", context)
        context.update(self._preview_rows(preview, {pk: (client_id, currency) for pk, client_id, currency in accounts}))
        context.update(method=values["method"], rebalance_date=values["rebalance_date"])
        return TemplateResponse(request, "admin/rebalancing/preview.html", context)

    def has_execute_rebalance_permission(self, request):
        return request.user.has_perm(EXECUTE_PERMISSION)

    @admin.action(description="Rebalance now", permissions=["execute_rebalance"])
    def rebalance_now(self, request, queryset):
        """One execution of the selected accounts (execution_create), after a page that
        asks for the method and the rebalance date; then the execution's page."""
        return rebalance_accounts_now(self, request, queryset)

    @staticmethod
    def _preview_rows(preview, accounts: dict) -> dict:
        """Rows for the preview page: per account its result and orders, plus totals
        (trade amounts are in each instrument's currency, so gross sums are per currency)."""
        results, statuses = [], Counter()
        gross = defaultdict(lambda: {"BUY": Decimal(0), "SELL": Decimal(0)})
        gains = defaultdict(lambda: {"short": Decimal(0), "long": Decimal(0)})  # base currency → estimate (§12)
        order_count = 0
        for result in preview.results:
            client_id, currency = accounts[result.account_id]
            statuses[result.status] += 1
            orders = []
            outcome = preview.tax_of(result.account_id)
            sells = {(s.account_id, s.instrument_id): s for s in outcome.sells} if outcome is not None else {}
            if outcome is not None:
                gains[currency]["short"] += outcome.short
                gains[currency]["long"] += outcome.long
            for order in result.orders:
                instrument = preview.instruments.get(order.instrument_id)
                sell = sells.get((order.account_id, order.instrument_id)) if order.side == "SELL" else None
                gross[order.currency][order.side] += order.trade_amount
                orders.append({
                    "instrument_id": order.instrument_id,
                    "isin": (instrument.isin if instrument else None) or "—",
                    "name": instrument.name if instrument else str(order.instrument_id),
                    "side": order.side,
                    "transaction_type": order.transaction_type,
                    "units": formatting.units(order.units, instrument.block_size if instrument else None),
                    "unit_price": formatting.price(order.unit_price),
                    "trade_amount": formatting.money(order.trade_amount, order.currency, code=False),
                    "currency": order.currency,
                    "execution_method": order.execution_method,
                    "estimated_gain": "" if sell is None else (
                        "unknown cost" if sell.estimated_gain is None else _money(sell.estimated_gain, currency)
                    ),
                    "lot_count": len(sell.lots) if sell is not None else "",
                })
            order_count += len(orders)
            results.append({
                "account_id": result.account_id,
                "url": reverse("admin:portfolios_portfolioaccount_change", args=[result.account_id]),
                "client_id": client_id,
                "status": result.status,
                "reason": result_reason(result) or "",
                "total_value": _money(result.total_value, currency),
                "cash_before": _money(result.cash_before, currency),
                "cash_after": _money(result.cash_after, currency),
                "orders": orders,
                "adjustments": [adjustment_words(a, preview.instruments) for a in result.adjustments],
                "tax": None if outcome is None else {
                    "short": _money(outcome.short, currency), "long": _money(outcome.long, currency),
                    "unknown_cost_units": formatting.units(outcome.unknown_cost_units),
                },
            })
        return {
            "tax_aware": bool(gains),
            "gains": [
                {"currency": c, "short": _money(g["short"]), "long": _money(g["long"])} for c, g in sorted(gains.items())
            ],
            "results": results,
            "statuses": sorted(statuses.items()),
            "order_count": order_count,
            "gross": [
                {"currency": currency, "buy": _money(sums["BUY"]), "sell": _money(sums["SELL"])}
                for currency, sums in sorted(gross.items())
            ],
        }

    def construct_change_message(self, request, form, formsets, add=False):
        message = super().construct_change_message(request, form, formsets, add)
        if any(formset.has_changed() for formset in formsets):
            message.append({"changed": {"name": "holdings", "object": "positions and cash (replaced)"}})
        return message


@admin.register(Configuration)
class ConfigurationAdmin(ServiceAdmin):
    """configuration_create / configuration_update: only the target changes, nothing trades."""

    form = ConfigurationForm
    list_display = ("account", "allocation", "created_at", "updated_at")
    list_select_related = ("account", "allocation")
    search_fields = ("account__client_id", "allocation__name")
    autocomplete_fields = ("account", "allocation")
    readonly_fields = ("created_at", "updated_at")
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return ("account", *fields) if obj is not None else fields

    def has_delete_permission(self, request, obj=None):
        return False  # no service removes a configuration yet


@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
    """All positions, to search across accounts; they are edited on the account page."""

    list_display = ("account", "instrument", "units", "updated_at")
    list_select_related = ("account", "instrument")
    list_filter = ("instrument__type",)
    search_fields = ("=account__client_id", "=instrument__isin", "instrument__name")
    fields = ("account", "instrument", "units", "updated_at")
    readonly_fields = fields
    show_full_result_count = False


@admin.register(CashAccount)
class CashAccountAdmin(ReadOnlyAdmin):
    """All cash accounts; they are edited on the account page."""

    list_display = ("account", "currency", "kind", "balance", "is_default", "updated_at")
    list_select_related = ("account",)
    list_filter = ("kind", "is_default")
    search_fields = ("=account__client_id", "=currency")
    fields = ("account", "currency", "kind", "balance", "is_default", "updated_at")
    readonly_fields = fields
    show_full_result_count = False


@admin.register(Lot)
class LotAdmin(ReadOnlyAdmin):
    """All lots, to search across accounts; snapshots and settlements write them (§12)."""

    list_display = ("position", "acquired_on", "units", "unit_cost", "cost_currency")
    list_select_related = ("position__account", "position__instrument")
    search_fields = ("=position__account__client_id", "=position__instrument__isin")
    fields = ("position", "acquired_on", "units", "unit_cost", "cost_currency")
    readonly_fields = fields
    show_full_result_count = False


class RealizedYearFilter(admin.SimpleListFilter):
    title = "year realized"
    parameter_name = "year"

    def lookups(self, request, model_admin):
        this_year = timezone.localdate().year
        return [(str(y), str(y)) for y in range(this_year, this_year - 6, -1)]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(realized_on__year=int(value)) if value and value.isdigit() else queryset


@admin.register(RealizedGain)
class RealizedGainAdmin(ReadOnlyAdmin):
    """The realized gains report: filter by account (search its client id) and year,
    then export the rows as CSV (§12, docs/tax.md)."""

    list_display = (
        "account", "instrument", "realized_on", "acquired_on", "term", "units", "proceeds", "cost", "gain",
        "currency", "gain_base", "base_currency", "trade_order_id",
    )
    list_select_related = ("account", "instrument")
    list_filter = (RealizedYearFilter, "term")
    search_fields = ("=account__client_id", "=instrument__isin")
    fields = list_display + ("lot_id", "fx_rate", "proceeds_base", "cost_base")
    readonly_fields = fields
    actions = ["export_csv"]
    show_full_result_count = False

    @admin.action(description="Export the selected realized gains as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        from .reports import realized_gains_csv  # noqa: PLC0415

        return realized_gains_csv(queryset)
