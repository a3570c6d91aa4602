"""Admin forms whose writes go through portfolios.services.

A `ServiceModelForm` never lets Django save or model-validate the rows: its
`apply(user=...)` makes the service calls, and its `clean()` asks the same services
first (the allocation rules through `allocation_validate`, the others by running
`apply` in a savepoint that is always rolled back), so every rule is judged by the
service alone and a refusal comes back as errors on the form, on the offending
inline line, or above the inline.

The inline formsets of the page (`ServiceInlineFormSet`) are created by the admin
before the main form is validated and share its instance; they register on it so
the main form can read their lines and put errors on them.
"""

import copy
import re

from django import forms
from django.contrib.admin.widgets import AdminDateWidget
from django.db import IntegrityError, transaction
from django.forms.models import BaseInlineFormSet, construct_instance
from django.utils import timezone

from core.errors import Conflict, DomainError, InvalidInput

from . import services
from .models import (
    Allocation,
    AllocationLine,
    CashAccount,
    Configuration,
    Instrument,
    InstrumentIdType,
    PeriodType,
    PortfolioAccount,
    Position,
    RestrictionList,
    RestrictionScope,
    WeightType,
)

# "allocation[2].weight" → ("allocation", 2, "weight"); "cash[0]" → ("cash", 0, None)
_LIST_PATH = re.compile(r"^(?P<list>\w+)\[(?P<index>\d+)\](?:\.(?P<field>\w+))?$")
_FORMSETS_ATTR = "_admin_service_formsets"


def dry_run(call) -> DomainError | None:
    """Run `call` in a savepoint that is always rolled back; return the DomainError it raised."""
    try:
        with transaction.atomic():
            call()
            transaction.set_rollback(True)
    except DomainError as exc:
        return exc
    except IntegrityError as exc:  # a concurrent write got there first
        return Conflict(f"refused by the database: {exc}")
    return None


def kept_forms(formset) -> list:
    """The formset's forms that make up the new state, in page order: not marked for
    deletion and not left empty. Call on a valid formset."""
    return [form for form in formset.forms if form.cleaned_data and not form.cleaned_data.get("DELETE")]


class ServiceInlineFormSet(BaseInlineFormSet):
    """An inline formset the main ServiceModelForm reads and validates; Django never saves it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.__dict__.setdefault(_FORMSETS_ATTR, {})[self.model] = self

    def validate_unique(self):
        """The service refuses duplicates, naming the line it already has."""


class ServiceFormMixin:
    """Skip Django's model validation: the service judges the rows (see module docstring)."""

    def _post_clean(self):
        self.instance = construct_instance(self, self.instance, self._meta.fields, self._meta.exclude)


class ServiceInlineForm(ServiceFormMixin, forms.ModelForm):
    pass


class ServiceModelForm(ServiceFormMixin, forms.ModelForm):
    # service field name → form field name, for names that differ
    error_aliases: dict[str, str] = {}
    # list name in error paths ("allocation", "positions") → (inline model, {service field → form field})
    error_lists: dict[str, tuple[type, dict[str, str]]] = {}

    def apply(self, *, user=None):
        """Make the service call(s) that write this form's state; return the saved object."""
        raise NotImplementedError

    @property
    def is_adding(self) -> bool:
        return self.instance._state.adding

    def inline_formset(self, model):
        """The page's inline formset of `model`, or None when the page has none (no permission)."""
        return self.instance.__dict__.get(_FORMSETS_ATTR, {}).get(model)

    def clean(self):
        cleaned_data = super().clean()
        formsets = self.instance.__dict__.get(_FORMSETS_ATTR, {}).values()
        # Field errors first: the service would only repeat them in other words.
        if not self.errors and all(formset.is_valid() for formset in formsets):
            self.validate_with_service()
        return cleaned_data

    def validate_with_service(self):
        error = dry_run(lambda: self.apply(user=None))
        if error is not None:
            self.add_domain_error(error)

    def add_domain_error(self, error: DomainError) -> None:
        """Put each FieldError where the user typed the value: a field of this form, a
        field of the i-th kept inline form, or above the inline."""
        placed = False
        # The service numbers the lines it was given: the kept forms, in page order.
        kept = {
            name: (formset, kept_forms(formset))
            for name, (model, _) in self.error_lists.items()
            if (formset := self.inline_formset(model)) is not None
        }
        for field_error in error.errors:
            path, message = field_error.field, field_error.message
            match = _LIST_PATH.match(path)
            list_name = match["list"] if match else path
            if list_name in kept:
                aliases = self.error_lists[list_name][1]
                formset, forms_in_order = kept[list_name]
                index = int(match["index"]) if match else None
                if index is not None and index < len(forms_in_order):
                    form = forms_in_order[index]
                    field = aliases.get(match["field"], match["field"])
                    form.add_error(field if field in form.fields else None, message)
                else:
                    formset.non_form_errors().append(message)
                placed = True
                continue
            field = self.error_aliases.get(path, path)
            if field in self.fields:
                self.add_error(field, message)
                placed = True
            elif isinstance(error, InvalidInput):
                self.add_error(None, f"{path}: {message}" if path else message)
                placed = True
        if not placed or not isinstance(error, InvalidInput):
            # A business rule or conflict explains itself best in the service's own sentence.
            self.add_error(None, error.detail)


# --- Allocations -------------------------------------------------------------------


class AllocationLineForm(ServiceInlineForm):
    # Wider than the column: with "normalize" the weights may be given on any scale
    # (50 / 50), and the service names a weight with too many decimals itself. The
    # bound keeps every number within what the service's Decimal arithmetic handles.
    weight = forms.DecimalField(max_digits=28, decimal_places=14)
    min_weight = forms.DecimalField(max_digits=28, decimal_places=14, required=False)
    max_weight = forms.DecimalField(max_digits=28, decimal_places=14, required=False)

    class Meta:
        model = AllocationLine
        fields = ["instrument", "weight", "min_weight", "max_weight"]

    def line_input(self) -> services.LineInput:
        instrument = self.cleaned_data["instrument"]
        if self.instance.pk and self.instance.instrument_id == instrument.pk:
            id_type = self.instance.instrument_id_type  # an unchanged line keeps how it was referenced
        else:
            id_type = InstrumentIdType.ISIN if instrument.isin else InstrumentIdType.UUID
        return services.LineInput(
            instrument_id=instrument.isin if id_type == InstrumentIdType.ISIN else str(instrument.pk),
            instrument_id_type=id_type,
            weight=self.cleaned_data["weight"],
            min_weight=self.cleaned_data.get("min_weight"),
            max_weight=self.cleaned_data.get("max_weight"),
        )


class AllocationLineFormSet(ServiceInlineFormSet):
    """The current version's lines: the starting point of the next version."""

    def __init__(self, *args, instance=None, queryset=None, **kwargs):
        if queryset is None:
            queryset = AllocationLine.objects.all()
        version_id = instance.current_version_id if instance is not None else None
        queryset = queryset.filter(version_id=version_id).select_related("instrument")
        super().__init__(*args, instance=instance, queryset=queryset, **kwargs)


class AllocationForm(ServiceModelForm):
    """Name and currency of the allocation, and the settings of the version a save creates."""

    weight_type = forms.ChoiceField(choices=WeightType.choices, initial=WeightType.STATIC)
    period_type = forms.ChoiceField(
        choices=[("", "---------"), *PeriodType.choices], required=False,
        help_text="PERIODICAL only: the drift restarts every period count × period type.",
    )
    period_count = forms.IntegerField(required=False, help_text="PERIODICAL only.")
    effective_from = forms.DateField(
        required=False, widget=AdminDateWidget,
        help_text="When the new version takes effect. Empty: today. Not before the current version's date.",
    )
    normalize = forms.BooleanField(
        required=False,
        help_text="Weights are given on any positive scale (e.g. 50 / 50) and divided by their sum.",
    )

    error_lists = {"allocation": (AllocationLine, {"instrument_id": "instrument", "instrument_id_type": "instrument"})}

    class Meta:
        model = Allocation
        fields = ["name", "base_currency"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        version = None if self.is_adding else self.instance.current_version
        today = timezone.localdate()
        if version is not None:
            self.initial.setdefault("weight_type", version.weight_type)
            self.initial.setdefault("period_type", version.period_type or "")
            self.initial.setdefault("period_count", version.period_count)
            # A new version starts today: back-dating it would rewrite what the
            # target was on past dates.
            self.initial.setdefault("effective_from", max(today, version.effective_from))
        else:
            self.initial.setdefault("effective_from", today)

    def allocation_input(self) -> services.AllocationInput:
        data = self.cleaned_data
        formset = self.inline_formset(AllocationLine)
        if formset is not None:
            lines = [form.line_input() for form in kept_forms(formset)]
        elif not self.is_adding:
            lines = services.allocation_input_from_version(self.instance).lines
        else:
            lines = []
        return services.AllocationInput(
            lines=lines,
            name=data.get("name") or "",
            base_currency=data.get("base_currency") or "",
            weight_type=data.get("weight_type") or WeightType.STATIC,
            period_type=data.get("period_type") or None,
            period_count=data.get("period_count"),
            effective_from=data.get("effective_from"),
            normalize=bool(data.get("normalize")),
        )

    def validate_with_service(self):
        try:
            services.allocation_validate(
                data=self.allocation_input(), current=None if self.is_adding else self.instance
            )
        except InvalidInput as error:
            self.add_domain_error(error)

    def apply(self, *, user=None) -> Allocation:
        if self.is_adding:
            return services.allocation_create(data=self.allocation_input(), user=user)
        return services.allocation_update(allocation=self.instance, data=self.allocation_input(), user=user)


# --- Accounts and holdings --------------------------------------------------------------


class PositionForm(ServiceInlineForm):
    class Meta:
        model = Position
        fields = ["instrument", "units"]


class CashAccountForm(ServiceInlineForm):
    class Meta:
        model = CashAccount
        fields = ["currency", "kind", "balance", "is_default"]


class AccountForm(ServiceModelForm):
    """Create with account_create, change with account_update; the positions and
    cash inlines replace the holdings as one snapshot (holdings_replace)."""

    error_aliases = {"parent_id": "parent"}
    error_lists = {
        "positions": (Position, {"instrument_id": "instrument"}),
        "cash": (CashAccount, {}),
    }

    assigned_lists = forms.ModelMultipleChoiceField(
        RestrictionList.objects.filter(scope=RestrictionScope.ACCOUNT), required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="ACCOUNT restriction lists this account follows; FIRM lists apply to every account.",
    )

    class Meta:
        model = PortfolioAccount
        fields = ["client_id", "account_type", "base_currency", "status", "parent", "locked"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assigned_lists"].label = "Restriction lists"
        self.fields["assigned_lists"].initial = [] if self.is_adding else list(
            self.instance.restriction_assignments.values_list("restriction_list_id", flat=True)
        )

    def _holdings(self):
        positions, cash = self.inline_formset(Position), self.inline_formset(CashAccount)
        if positions is None or cash is None or not (positions.has_changed() or cash.has_changed()):
            return None
        return (
            [
                services.PositionInput(
                    instrument_id=str(form.cleaned_data["instrument"].pk), units=form.cleaned_data["units"]
                )
                for form in kept_forms(positions)
            ],
            [
                services.CashInput(
                    currency=form.cleaned_data["currency"], balance=form.cleaned_data["balance"],
                    is_default=form.cleaned_data.get("is_default", False), kind=form.cleaned_data["kind"],
                )
                for form in kept_forms(cash)
            ],
        )

    def apply(self, *, user=None) -> PortfolioAccount:
        data = self.cleaned_data
        if self.is_adding:
            account = services.account_create(
                client_id=data["client_id"], base_currency=data["base_currency"],
                account_type=data["account_type"], status=data["status"],
                parent=data.get("parent"), locked=data.get("locked", False),
            )
        elif set(self.changed_data) - {"assigned_lists"}:
            account = services.account_update(
                account=self.instance, status=data.get("status"), locked=data.get("locked"),
                parent=data.get("parent"), set_parent="parent" in self.fields,
            )
        else:
            account = self.instance
        holdings = self._holdings()
        if holdings is not None:
            services.holdings_replace(account=account, positions=holdings[0], cash=holdings[1])
        if "assigned_lists" in self.changed_data:
            services.account_restriction_lists_set(
                account=account, list_ids=[str(row.pk) for row in data["assigned_lists"]], user=user,
                field="assigned_lists",
            )
        return account


class ConfigurationForm(ServiceModelForm):
    error_aliases = {"account_id": "account", "allocation_id": "allocation"}

    class Meta:
        model = Configuration
        fields = ["account", "allocation"]

    def apply(self, *, user=None) -> Configuration:
        allocation = self.cleaned_data.get("allocation")
        if self.is_adding:
            return services.configuration_create(account=self.cleaned_data["account"], allocation=allocation)
        return services.configuration_update(configuration=self.instance, allocation=allocation)


# --- Instruments ------------------------------------------------------------------------


class InstrumentForm(ServiceModelForm):
    """instrument_create / instrument_update; type and currency are fixed after creation."""

    class Meta:
        model = Instrument
        fields = ["isin", "name", "type", "currency", "tradable", "block_size", "futures_cost"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "name" in self.fields:
            self.fields["name"].required = False
            self.fields["name"].help_text = "Empty for a CASH instrument: its currency code."

    def apply(self, *, user=None) -> Instrument:
        data = {field: self.cleaned_data[field] for field in self.fields if field in self.cleaned_data}
        if self.is_adding:
            return services.instrument_create(**data)
        # A copy: instrument_update sets the values on the object it is given, and a dry
        # run must leave the form's instance as it was.
        return services.instrument_update(instrument=copy.copy(self.instance), **data)

