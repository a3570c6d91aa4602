"""Portfolio accounts, their holdings and configurations."""

from django.contrib import admin, messages
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from .. import selectors, services
from ..errors import DomainError
from ..forms import AccountForm, CashAccountForm, ConfigurationForm, PositionForm, ServiceInlineFormSet
from ..models import AccountType, CashAccount, Configuration, PortfolioAccount, Position
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


class PositionInline(HoldingsInline):
    model = Position
    form = PositionForm
    fields = ("instrument", "units", "updated_at")
    readonly_fields = ("updated_at",)
    autocomplete_fields = ("instrument",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("instrument")


class CashAccountInline(HoldingsInline):
    model = CashAccount
    form = CashAccountForm
    fields = ("currency", "kind", "balance", "is_default", "updated_at")
    readonly_fields = ("updated_at",)


@admin.register(PortfolioAccount)
class PortfolioAccountAdmin(UUIDSearchMixin, ServiceAdmin):
    form = AccountForm
    inlines = [PositionInline, CashAccountInline]
    list_display = ("client_id", "account_type", "status", "base_currency", "locked", "parent", "allocation", "created_at")
    list_select_related = ("parent", "configuration__allocation")
    list_filter = ("status", "account_type", "locked", "base_currency")
    search_fields = ("client_id",)
    search_help_text = "Client reference (part of it) or the account's full UUID."
    autocomplete_fields = ("parent",)
    readonly_fields = ("id", "valuation", "allocation_link", "created_at", "updated_at")
    actions = ["lock_accounts", "unlock_accounts"]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        if obj is not None:
            # account_update changes status, lock and parent only.
            fields = ("client_id", "account_type", "base_currency", *fields)
        return fields

    def get_fieldsets(self, request, obj=None):
        fieldsets = [(None, {"fields": ("client_id", "account_type", "base_currency", "status", "parent", "locked")})]
        if obj is not None:
            fieldsets.append(("Valuation", {"fields": ("valuation", "allocation_link")}))
            fieldsets.append(("Record", {"fields": ("id", "created_at", "updated_at"), "classes": ("collapse",)}))
        return fieldsets

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
        context = {"on_date": on_date, "error": valuation.error}
        if not valuation.error:
            context.update(
                total_value=f"{valuation.total_value:,.2f} {valuation.currency}",
                cash_value=f"{valuation.cash_value:,.2f} {valuation.currency}",
                lines=[
                    {
                        "instrument": line.instrument,
                        "value": f"{line.value:,.2f}",
                        "target": percent(line.target_weight),
                        "actual": percent(line.actual_weight),
                        "drift": percent(line.drift, sign=True),
                    }
                    for line in valuation.lines
                ],
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
