"""Input serializers check the shape of a request; output serializers render models.

The rules themselves (spec §2 and the account rules) live in the services, which
name the bad field in the same `allocation[1].weight` form as these serializers.
"""

from datetime import date
from decimal import Decimal

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import (
    AccountStatus,
    AccountType,
    Allocation,
    CashKind,
    FuturesCost,
    InstrumentIdType,
    InstrumentType,
    PeriodType,
    PortfolioAccount,
    WeightType,
)
from ..models.fields import MONEY, PRICE, RATE, UNITS, WEIGHT
from .fields import DecimalString, IsoDateField

MAX_PRICE_ROWS = 10_000


class StrictFieldsMixin:
    """Refuse fields the serializer does not accept, instead of silently ignoring them.

    Used for PATCH bodies, where a field sent in vain would look like a change made.
    """

    def to_internal_value(self, data):
        if isinstance(data, dict):
            accepted = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - accepted)
            if unknown:
                allowed = ", ".join(sorted(accepted))
                raise serializers.ValidationError(
                    {name: [f"cannot be changed here; only {allowed} can"] for name in unknown}
                )
        return super().to_internal_value(data)


def _choice(choices, **kwargs):
    return serializers.ChoiceField(choices=choices, **kwargs)


# --- Instruments ----------------------------------------------------------------------

class InstrumentSerializer(serializers.Serializer):
    instrument_id = serializers.UUIDField(source="id", read_only=True)
    isin = serializers.CharField(allow_null=True)
    name = serializers.CharField()
    type = _choice(InstrumentType.choices)
    currency = serializers.CharField(help_text="Trading currency; for a CASH instrument, the currency it stands for.")
    tradable = serializers.BooleanField()
    block_size = DecimalString(allow_null=True)
    futures_cost = _choice(FuturesCost.choices, allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class InstrumentCreateSerializer(serializers.Serializer):
    isin = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=12)
    name = serializers.CharField(required=False, allow_blank=True, max_length=200, default="",
                                 help_text="Required, except for CASH (defaults to the currency code).")
    type = _choice(InstrumentType.choices)
    currency = serializers.CharField(max_length=3, help_text="ISO 4217; for CASH, the currency it stands for.")
    tradable = serializers.BooleanField(required=False, default=True)
    block_size = DecimalString(required=False, allow_null=True, default=None, **UNITS)
    futures_cost = _choice(FuturesCost.choices, required=False, allow_null=True, default=None,
                           help_text="FUTURE only; defaults to LATER.")

    def validate_isin(self, value):
        return value or None


class InstrumentUpdateSerializer(StrictFieldsMixin, serializers.Serializer):
    isin = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=12)
    name = serializers.CharField(required=False, max_length=200)
    type = _choice(InstrumentType.choices, required=False, help_text="Fixed at creation.")
    currency = serializers.CharField(required=False, max_length=3, help_text="Fixed at creation.")
    tradable = serializers.BooleanField(required=False)
    block_size = DecimalString(required=False, allow_null=True, **UNITS)
    futures_cost = _choice(FuturesCost.choices, required=False, allow_null=True)

    def validate_isin(self, value):
        return value or None


# --- Prices and FX rates ------------------------------------------------------------

class PriceRowSerializer(serializers.Serializer):
    instrument_id = serializers.CharField(help_text="ISIN or UUID.")
    effective_at = IsoDateField()
    value = DecimalString(**PRICE, help_text="In the instrument's currency.")
    source = serializers.CharField(required=False, default="default", max_length=50)


class PricesUpsertSerializer(serializers.Serializer):
    prices = PriceRowSerializer(many=True, max_length=MAX_PRICE_ROWS)


class PriceSerializer(serializers.Serializer):
    instrument_id = serializers.UUIDField()
    isin = serializers.CharField(source="instrument.isin", allow_null=True)
    effective_at = serializers.DateField()
    value = DecimalString()
    source = serializers.CharField()
    updated_at = serializers.DateTimeField()


class FxRateRowSerializer(serializers.Serializer):
    base = serializers.CharField(max_length=3)
    quote = serializers.CharField(max_length=3)
    rate = DecimalString(**RATE, help_text="Units of quote per 1 base.")
    effective_at = IsoDateField()


class FxRatesUpsertSerializer(serializers.Serializer):
    rates = FxRateRowSerializer(many=True, max_length=MAX_PRICE_ROWS)


class FxRateSerializer(serializers.Serializer):
    base = serializers.CharField()
    quote = serializers.CharField()
    rate = DecimalString()
    effective_at = serializers.DateField()
    updated_at = serializers.DateTimeField()


class UpsertedSerializer(serializers.Serializer):
    upserted = serializers.IntegerField()


# --- Allocations ---------------------------------------------------------------------

# Whole digits are bounded so weights in any scale (normalize: true) still fit the
# 28-digit arithmetic of the checks; the places are those the weights are stored with.
WEIGHT_INPUT = {"max_digits": 28, "decimal_places": WEIGHT["decimal_places"]}


class AllocationLineInputSerializer(serializers.Serializer):
    instrument_id = serializers.CharField(help_text="ISIN or UUID, as instrument_id_type says.")
    instrument_id_type = _choice(InstrumentIdType.choices, required=False, allow_null=True, default=None,
                                 help_text="Taken from the shape of instrument_id when omitted.")
    weight = DecimalString(**WEIGHT_INPUT)
    min_weight = DecimalString(required=False, allow_null=True, default=None, **WEIGHT_INPUT)
    max_weight = DecimalString(required=False, allow_null=True, default=None, **WEIGHT_INPUT)


class AllocationInputSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    base_currency = serializers.CharField(required=False, max_length=3, default="EUR")
    allocation = AllocationLineInputSerializer(many=True)
    weight_type = _choice(WeightType.choices, required=False, default=WeightType.STATIC)
    period_type = _choice(PeriodType.choices, required=False, allow_null=True, default=None)
    period_count = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)
    effective_from = IsoDateField(required=False, allow_null=True, default=None,
                                  help_text="Defaults to today.")
    normalize = serializers.BooleanField(required=False, default=False,
                                         help_text="Divide the non-future weights by their sum before storing them.")


class AllocationLineSerializer(serializers.Serializer):
    instrument_id = serializers.SerializerMethodField(help_text="As sent: the ISIN or the UUID.")
    instrument_id_type = _choice(InstrumentIdType.choices)
    isin = serializers.CharField(source="instrument.isin", allow_null=True)
    weight = DecimalString()
    min_weight = DecimalString(allow_null=True)
    max_weight = DecimalString(allow_null=True)

    def get_instrument_id(self, line) -> str:
        if line.instrument_id_type == InstrumentIdType.ISIN and line.instrument.isin:
            return line.instrument.isin
        return str(line.instrument_id)


class AllocationSerializer(serializers.Serializer):
    """A model portfolio in its current version."""

    # Expects `current_version` selected and its lines prefetched with their instruments.

    allocation_id = serializers.UUIDField(source="id")
    name = serializers.CharField()
    base_currency = serializers.CharField()
    weight_type = _choice(WeightType.choices, source="current_version.weight_type")
    period_type = _choice(PeriodType.choices, source="current_version.period_type", allow_null=True)
    period_count = serializers.IntegerField(source="current_version.period_count", allow_null=True)
    effective_from = serializers.DateField(source="current_version.effective_from")
    version = serializers.IntegerField(source="current_version.version")
    allocation = AllocationLineSerializer(source="current_version.lines.all", many=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class AllocationVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    name = serializers.CharField()
    effective_from = serializers.DateField()
    weight_type = _choice(WeightType.choices)
    period_type = _choice(PeriodType.choices, allow_null=True)
    period_count = serializers.IntegerField(allow_null=True)
    allocation = AllocationLineSerializer(source="lines.all", many=True)
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    change_summary = serializers.CharField()


# --- Accounts and holdings ----------------------------------------------------------

class AccountSerializer(serializers.Serializer):
    """A client's portfolio account; `allocation_id` is the allocation its configuration follows."""

    # Expects `configuration` selected.

    account_id = serializers.UUIDField(source="id")
    client_id = serializers.CharField()
    account_type = _choice(AccountType.choices)
    base_currency = serializers.CharField()
    status = _choice(AccountStatus.choices)
    parent_id = serializers.UUIDField(allow_null=True)
    locked = serializers.BooleanField()
    allocation_id = serializers.SerializerMethodField(help_text="Null while the account has no configuration.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field(OpenApiTypes.UUID)
    def get_allocation_id(self, account) -> str | None:
        try:
            return str(account.configuration.allocation_id)
        except PortfolioAccount.configuration.RelatedObjectDoesNotExist:
            return None


def _account_field(**kwargs):
    return serializers.PrimaryKeyRelatedField(
        queryset=PortfolioAccount.objects.all(),
        error_messages={
            "does_not_exist": "no account with id {pk_value}",
            "incorrect_type": "must be an account UUID",
        },
        pk_field=serializers.UUIDField(),
        **kwargs,
    )


class AccountCreateSerializer(serializers.Serializer):
    client_id = serializers.CharField(max_length=100)
    account_type = _choice(AccountType.choices, required=False, default=AccountType.PORTFOLIO)
    base_currency = serializers.CharField(max_length=3)
    status = _choice(AccountStatus.choices, required=False, default=AccountStatus.ACTIVE)
    parent_id = _account_field(required=False, allow_null=True, default=None)
    locked = serializers.BooleanField(required=False, default=False)


class AccountUpdateSerializer(StrictFieldsMixin, serializers.Serializer):
    status = _choice(AccountStatus.choices, required=False)
    locked = serializers.BooleanField(required=False)
    parent_id = _account_field(required=False, allow_null=True)


class PositionInputSerializer(serializers.Serializer):
    instrument_id = serializers.CharField(help_text="ISIN or UUID.")
    units = DecimalString(**UNITS)


class CashInputSerializer(serializers.Serializer):
    currency = serializers.CharField(max_length=3)
    balance = DecimalString(**MONEY)
    is_default = serializers.BooleanField(required=False, default=False)
    kind = _choice(CashKind.choices, required=False, default=CashKind.CASH)


class HoldingsInputSerializer(serializers.Serializer):
    positions = PositionInputSerializer(many=True)
    cash = CashInputSerializer(many=True)


class PositionSerializer(serializers.Serializer):
    instrument_id = serializers.UUIDField()
    isin = serializers.CharField(source="instrument.isin", allow_null=True)
    units = DecimalString()


class CashAccountSerializer(serializers.Serializer):
    currency = serializers.CharField()
    balance = DecimalString()
    is_default = serializers.BooleanField()
    kind = _choice(CashKind.choices)


class HoldingsSerializer(serializers.Serializer):
    """The stored snapshot (what PUT answers): positions and cash, not valued."""

    account_id = serializers.UUIDField(source="id")
    positions = PositionSerializer(many=True)
    cash = CashAccountSerializer(source="cash_accounts", many=True)


class HoldingsQuerySerializer(serializers.Serializer):
    as_of = IsoDateField(required=False, help_text="Value at the latest prices at or before this date; default today.")


class PositionValuationSerializer(serializers.Serializer):
    account_id = serializers.UUIDField(help_text="The account holding it: this one or a sub-portfolio.")
    instrument_id = serializers.UUIDField(source="instrument.id")
    isin = serializers.CharField(source="instrument.isin", allow_null=True)
    name = serializers.CharField(source="instrument.name")
    instrument_currency = serializers.CharField(source="instrument.currency")
    units = DecimalString()
    price = DecimalString(help_text="Latest at or before as_of, in the instrument's currency.")
    price_date = serializers.DateField()
    fx_rate = DecimalString(help_text="Account currency per 1 unit of the instrument's currency.")
    value = DecimalString(help_text="In the account's base currency.")
    weight = DecimalString(help_text="Share of total_value.")


class CashValuationSerializer(serializers.Serializer):
    account_id = serializers.UUIDField()
    currency = serializers.CharField()
    balance = DecimalString()
    is_default = serializers.BooleanField()
    kind = _choice(CashKind.choices)
    counted = serializers.BooleanField(help_text="Inside the available-cash scope, so part of total_value.")
    value = DecimalString(help_text="In the account's base currency.")


class HoldingsValuationSerializer(serializers.Serializer):
    """Holdings valued in the account's base currency, sub-portfolios included."""

    account_id = serializers.UUIDField()
    positions = PositionValuationSerializer(many=True)
    cash = CashValuationSerializer(many=True)
    cash_value = DecimalString()
    total_value = DecimalString()
    currency = serializers.CharField()
    as_of = serializers.DateField(source="on_date")


# --- Configurations ------------------------------------------------------------------

STRATEGY_NOT_SUPPORTED = "strategies are not supported yet"


def _allocation_field(**kwargs):
    return serializers.PrimaryKeyRelatedField(
        queryset=Allocation.objects.all(),
        error_messages={
            "does_not_exist": "no allocation with id {pk_value}",
            "incorrect_type": "must be an allocation UUID",
        },
        pk_field=serializers.UUIDField(),
        **kwargs,
    )


class _StrategyMixin:
    def validate_strategy(self, value):
        if value is not None:
            raise serializers.ValidationError(STRATEGY_NOT_SUPPORTED)
        return value


class ConfigurationCreateSerializer(_StrategyMixin, serializers.Serializer):
    account_id = _account_field()
    allocation_id = _allocation_field()
    strategy = serializers.JSONField(required=False, allow_null=True, default=None,
                                     help_text="Must be null for now: strategies are not supported yet.")


class ConfigurationUpdateSerializer(_StrategyMixin, StrictFieldsMixin, serializers.Serializer):
    allocation_id = _allocation_field(required=False)
    strategy = serializers.JSONField(required=False, allow_null=True,
                                     help_text="Must be null for now: strategies are not supported yet.")


def _json_value(value):
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, date):
        return value.isoformat()
    return value


STRATEGY_FIELDS = ("type", "period_type", "period_count", "anchor_date", "absolute_drift", "relative_drift", "method")


class ConfigurationSerializer(serializers.Serializer):
    account_id = serializers.UUIDField()
    allocation_id = serializers.UUIDField()
    strategy = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_strategy(self, configuration):
        """The configuration's own strategy (select_related("strategy") to avoid a query per row)."""
        strategy = getattr(configuration, "strategy", None)
        if strategy is None:
            return None
        return {name: _json_value(getattr(strategy, name)) for name in STRATEGY_FIELDS}
