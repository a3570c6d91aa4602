"""Rebalance preferences: the global default row and per-account overrides.

Every save goes through `preferences_replace`, so the service judges every value;
its refusals come back as errors on the form's fields. A field left empty inherits
(account → global default → built-in default).
"""

from decimal import Decimal

from django.contrib import admin, messages
from django.shortcuts import redirect
from django.urls import path, reverse

from core.errors import DomainError
from portfolios.admin.base import ServiceAdmin, plain
from portfolios.forms import ServiceModelForm

from .. import services
from ..models import RebalancePreferences
from ..services.preferences import APPROVAL_FIELDS, APPROVE_PERMISSION, BOOL_FIELDS, BUILT_IN

FIELDSETS = (
    ("Cash range (CONSERVATIVE and EXCHANGE leave an account alone while its excess cash is inside)",
     ("cash_range_min", "cash_range_max")),
    ("Cash buffers (the larger of pct × |cash| and amount)",
     ("negative_cash_buffer_pct", "negative_cash_buffer_amount", "positive_cash_buffer_pct", "positive_cash_buffer_amount")),
    ("Orders", ("order_basis", "cash_from_sells_pct", "min_trade_amount", "filter_by_min_max", "sell_all_transaction_type")),
    ("Cash, prices and units", ("available_cash", "price_source", "default_decimals", "futures_fee_pct")),
    ("Currencies and live prices (§9: FX orders under EXPLICIT, the live price connector)",
     ("fx_mode", "fx_repatriate", "use_price_connector")),
    ("Restrictions (a model line the portfolio may not buy, with no substitute that fits)", ("restricted_weight_to",)),
    ("Tax lots and tax-aware rebalancing (§12, docs/tax.md)",
     ("lot_method", "long_term_days", "tax_aware", "max_realized_gain", "avoid_short_term_gains",
      "sell_removed_lines_regardless", "harvest_losses", "harvest_min_loss_pct", "harvest_min_loss_amount",
      "wash_sale_days")),
)
assert {name for _, names in FIELDSETS for name in names} == set(services.PREFERENCE_FIELDS)
# The global row only: thresholds of a whole execution mean nothing for one account.
APPROVAL_FIELDSET = (
    "Approval of large executions (four eyes; empty: no limit; at the limit needs no approval)", APPROVAL_FIELDS
)


def _shown(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return plain(value)
    return str(value)


def _json_or_blank(field):
    """The JSON field's prepare_value, showing nothing (not "null") for an empty value."""
    prepare = field.prepare_value

    def prepare_value(value):
        return "" if value is None or value == "null" else prepare(value)

    return prepare_value


class PreferencesForm(ServiceModelForm):
    """The global row (no account field) or one account's overrides."""

    class Meta:
        model = RebalancePreferences
        fields = ["account", *services.PREFERENCE_FIELDS, *APPROVAL_FIELDS]

    approval_locked = False  # set by the admin for a user without APPROVE_PERMISSION

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.approval_locked:
            for name in APPROVAL_FIELDS:
                if name in self.fields:
                    self.fields[name].disabled = True
                    self.fields[name].help_text += f" Changing it needs the permission {APPROVE_PERMISSION}."
        if "account" in self.fields:
            self.fields["account"].required = True
            self.fields["account"].help_text = "The account these overrides apply to (and to no other)."
        # No "null" in an empty JSON box, no "Unknown" in a yes/no that inherits.
        if "default_decimals" in self.fields:
            self.fields["default_decimals"].prepare_value = _json_or_blank(self.fields["default_decimals"])
        for yes_no in BOOL_FIELDS:
            if yes_no not in self.fields:
                continue
            self.fields[yes_no].widget.choices = (
                ("unknown", "— inherited —"), ("true", "Yes"), ("false", "No"),
            )
        # Say what an empty field stands for: the value it inherits.
        if self.instance.is_global:
            inherited, source = BUILT_IN, "built-in default"
        else:
            inherited, source = services.global_preferences().values, "global default"
        for name in services.PREFERENCE_FIELDS:
            if name in self.fields:
                own = self.fields[name].help_text
                note = f"Empty: the {source}, {_shown(inherited[name])}."
                self.fields[name].help_text = f"{own} {note}" if own else note

    def clean(self):
        account = self.cleaned_data.get("account")
        if (
            self.is_adding and account is not None
            and RebalancePreferences.objects.filter(account=account).exists()
        ):
            self.add_error("account", "This account already has preference overrides: change those instead.")
        return super().clean()

    def values(self) -> dict:
        values = {
            name: self.cleaned_data[name]
            for name in services.PREFERENCE_FIELDS
            if name in self.cleaned_data and self.cleaned_data[name] is not None
        }
        # Approval fields (the global row's form only): always sent, an empty one resets
        # its limit (the service keeps a field that is left out).
        values.update({name: self.cleaned_data[name] for name in APPROVAL_FIELDS if name in self.cleaned_data})
        return values

    def apply(self, *, user=None) -> RebalancePreferences:
        if self.instance.is_global:
            account = None
        else:
            account = self.cleaned_data.get("account") or self.instance.account
        return services.preferences_replace(values=self.values(), account=account, user=user)

    def add_domain_error(self, error: DomainError) -> None:
        # "default_decimals.FUND" belongs to the default_decimals field.
        placed = False
        for field_error in error.errors:
            name, _, rest = field_error.field.partition(".")
            message = f"{rest}: {field_error.message}" if rest else field_error.message
            if name in self.fields:
                self.add_error(name, message)
            else:
                self.add_error(None, f"{field_error.field}: {message}" if field_error.field else message)
            placed = True
        if not placed:
            self.add_error(None, error.detail)


@admin.register(RebalancePreferences)
class RebalancePreferencesAdmin(ServiceAdmin):
    form = PreferencesForm
    list_display = ("scope", "overrides", "updated_at", "updated_by")
    list_select_related = ("account", "updated_by")
    list_filter = ("is_global",)
    search_fields = ("account__client_id",)
    search_help_text = "Client reference of the account (part of it)."
    autocomplete_fields = ("account",)
    readonly_fields = ("updated_at", "updated_by")
    ordering = ("-is_global", "account__client_id", "id")
    show_full_result_count = False

    def get_urls(self):
        return [
            path(
                "global/", self.admin_site.admin_view(self.global_view),
                name="rebalancing_rebalancepreferences_global",
            ),
            *super().get_urls(),
        ]

    def global_view(self, request):
        """The page of the global default preferences; the row is created (empty: every
        field the built-in default) on the first visit of someone who may change it."""
        row = RebalancePreferences.objects.filter(is_global=True).first()
        if row is None:
            if not self.has_change_permission(request):
                self.message_user(
                    request, "No global default preferences have been saved yet: the built-in defaults apply.",
                    messages.INFO,
                )
                return redirect("admin:rebalancing_rebalancepreferences_changelist")
            row = services.preferences_replace(values={}, user=request.user)
        return redirect("admin:rebalancing_rebalancepreferences_change", row.pk)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.is_global:  # a single row: nothing to "add another" of
            context = {**context, "show_save_and_add_another": False}
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None and obj.is_global and not request.user.has_perm(APPROVE_PERMISSION):
            form = type(form.__name__, (form,), {"approval_locked": True})
        return form

    def get_fieldsets(self, request, obj=None):
        fieldsets = []
        if obj is None or not obj.is_global:
            fieldsets.append((None, {"fields": ("account",)}))
        fieldsets.extend((title, {"fields": names}) for title, names in FIELDSETS)
        if obj is not None and obj.is_global:
            title, names = APPROVAL_FIELDSET
            fieldsets.append((title, {"fields": names}))
        if obj is not None:
            fieldsets.append(("Record", {"fields": ("updated_at", "updated_by"), "classes": ("collapse",)}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return ("account", *fields) if obj is not None else fields

    def has_delete_permission(self, request, obj=None):
        # preferences_replace is the only writer: clear the fields (inherit) instead.
        return False

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "global_url": reverse("admin:rebalancing_rebalancepreferences_global")}
        return super().changelist_view(request, extra_context)

    @admin.display(description="preferences of", ordering="account__client_id")
    def scope(self, obj):
        return "Global default preferences" if obj.is_global else f"Account {obj.account}"

    @admin.display(description="fields set")
    def overrides(self, obj):
        names = [name for name in services.PREFERENCE_FIELDS if getattr(obj, name) is not None]
        return ", ".join(names) or "— (all inherited)"
