"""Input serializers check the shape of a request; output serializers render models.

The rules themselves (spec §2 and the account rules) live in the services, which
name the bad field in the same `allocation[1].weight` form as these serializers.
"""

from datetime import date
from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.schema import states
from config.api.strict import UnknownFieldsRefused, with_json_types
from core.errors import InvalidInput
from rebalancing.services.strategies import MAX_COOLDOWN_DAYS, MAX_PERIOD_COUNT, strategy_validate

from ..models import (
    AlertReason,
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
from .fields import DATE_SCHEMA, CurrencyCodeField, DecimalString, IsoDateField, QuoteTimeField

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
        return with_json_types(self, data, super().to_internal_value)


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


# An ISIN's shape (the check digit is the service's: python-stdnum); blank for none.
ISIN_PATTERN = r"^[A-Za-z]{2}[A-Za-z0-9]{9}[0-9]$"


class InstrumentCreateSerializer(UnknownFieldsRefused, serializers.Serializer):
    isin = states(serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=12),
                  pattern=ISIN_PATTERN)
    name = serializers.CharField(required=False, allow_blank=True, max_length=200, default="",
                                 help_text="Required, except for CASH (defaults to the currency code).")
    type = _choice(InstrumentType.choices)
    currency = CurrencyCodeField(help_text="ISO 4217; for CASH, the currency it stands for.")
    tradable = serializers.BooleanField(required=False, default=True)
    block_size = states(DecimalString(required=False, allow_null=True, default=None, **UNITS), sign="positive")
    futures_cost = _choice(FuturesCost.choices, required=False, allow_null=True, default=None,
                           help_text="FUTURE only; defaults to LATER.")

    def validate_isin(self, value):
        return value or None


class InstrumentUpdateSerializer(StrictFieldsMixin, serializers.Serializer):
    isin = states(serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=12),
                  pattern=ISIN_PATTERN)
    name = serializers.CharField(required=False, max_length=200)
    type = _choice(InstrumentType.choices, required=False, help_text="Fixed at creation.")
    currency = CurrencyCodeField(required=False, help_text="Fixed at creation.")
    tradable = serializers.BooleanField(required=False)
    block_size = states(DecimalString(required=False, allow_null=True, **UNITS), sign="positive")
    futures_cost = _choice(FuturesCost.choices, required=False, allow_null=True)

    def validate_isin(self, value):
        return value or None


# --- Prices and FX rates ------------------------------------------------------------

class PriceRowSerializer(UnknownFieldsRefused, serializers.Serializer):
    instrument_id = serializers.CharField(help_text="ISIN or UUID.")
    effective_at = QuoteTimeField(
        help_text="A date, or an RFC 3339 date-time counting for its UTC date: of several quotes of one day and "
        "source, the one with the latest time is kept."
    )
    value = states(DecimalString(**PRICE, help_text="In the instrument's currency."), sign="positive")
    source = serializers.CharField(required=False, default="default", max_length=50)


class PricesUpsertSerializer(UnknownFieldsRefused, serializers.Serializer):
    prices = PriceRowSerializer(many=True, max_length=MAX_PRICE_ROWS)


class PriceSerializer(serializers.Serializer):
    instrument_id = serializers.UUIDField()
    isin = serializers.CharField(source="instrument.isin", allow_null=True)
    effective_at = serializers.DateField()
    quoted_at = serializers.DateTimeField(allow_null=True, help_text="The quote's time, when it came with one.")
    value = DecimalString()
    source = serializers.CharField()
    updated_at = serializers.DateTimeField()


class FxRateRowSerializer(UnknownFieldsRefused, serializers.Serializer):
    base = CurrencyCodeField()
    quote = CurrencyCodeField()
    rate = states(DecimalString(**RATE, help_text="Units of quote per 1 base."), sign="positive")
    effective_at = QuoteTimeField(
        help_text="A date, or an RFC 3339 date-time counting for its UTC date: of several rates of one day, "
        "the one with the latest time is kept."
    )


class FxRatesUpsertSerializer(UnknownFieldsRefused, serializers.Serializer):
    rates = FxRateRowSerializer(many=True, max_length=MAX_PRICE_ROWS)


class FxRateSerializer(serializers.Serializer):
    base = serializers.CharField()
    quote = serializers.CharField()
    rate = DecimalString()
    effective_at = serializers.DateField()
    quoted_at = serializers.DateTimeField(allow_null=True, help_text="The rate's time, when it came with one.")
    updated_at = serializers.DateTimeField()


class UpsertedSerializer(serializers.Serializer):
    upserted = serializers.IntegerField()


# --- Allocations ---------------------------------------------------------------------

# Whole digits are bounded so weights in any scale (normalize: true) still fit the
# 28-digit arithmetic of the checks; the places are those the weights are stored with.
WEIGHT_INPUT = {"max_digits": 28, "decimal_places": WEIGHT["decimal_places"]}


class AllocationLineInputSerializer(UnknownFieldsRefused, serializers.Serializer):
    instrument_id = serializers.CharField(help_text="ISIN or UUID, as instrument_id_type says.")
    instrument_id_type = _choice(InstrumentIdType.choices, required=False, allow_null=True, default=None,
                                 help_text="Taken from the shape of instrument_id when omitted.")
    weight = states(DecimalString(**WEIGHT_INPUT), sign="positive")
    min_weight = states(DecimalString(required=False, allow_null=True, default=None, **WEIGHT_INPUT), sign="not_negative")
    max_weight = states(DecimalString(required=False, allow_null=True, default=None, **WEIGHT_INPUT), sign="not_negative")


class AllocationInputSerializer(UnknownFieldsRefused, serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    base_currency = CurrencyCodeField(required=False, default="EUR")
    allocation = states(AllocationLineInputSerializer(many=True), minItems=1)
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


class NeedsAttentionSerializer(serializers.Serializer):
    instrument_id = serializers.UUIDField()
    reason = serializers.ChoiceField(AlertReason.choices)


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
    needs_attention = serializers.SerializerMethodField(
        help_text="Why a line of the model cannot be traded today: NOT_TRADABLE, NO_PRICE (none at or before "
        "today); empty when all is well. Recomputed on every save, when an instrument's tradable flag or "
        "prices change, and daily."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field(NeedsAttentionSerializer(many=True))
    def get_needs_attention(self, allocation) -> list:
        # Expects `alerts` prefetched.
        return [
            {"instrument_id": str(alert.instrument_id), "reason": alert.reason}
            for alert in sorted(allocation.alerts.all(), key=lambda a: (str(a.instrument_id), a.reason))
        ]


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
    restriction_list_ids = serializers.SerializerMethodField(
        help_text="The ACCOUNT restriction lists assigned to the account (FIRM lists apply to every account)."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_restriction_list_ids(self, account) -> list:
        # Expects `restriction_assignments` prefetched.
        return sorted(str(a.restriction_list_id) for a in account.restriction_assignments.all())

    @extend_schema_field(serializers.UUIDField(allow_null=True))
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


class AccountCreateSerializer(UnknownFieldsRefused, serializers.Serializer):
    client_id = serializers.CharField(max_length=100)
    account_type = _choice(AccountType.choices, required=False, default=AccountType.PORTFOLIO)
    base_currency = CurrencyCodeField()
    status = _choice(AccountStatus.choices, required=False, default=AccountStatus.ACTIVE)
    parent_id = _account_field(required=False, allow_null=True, default=None)
    locked = serializers.BooleanField(required=False, default=False)


class AccountUpdateSerializer(StrictFieldsMixin, serializers.Serializer):
    status = _choice(AccountStatus.choices, required=False)
    locked = serializers.BooleanField(required=False)
    parent_id = _account_field(required=False, allow_null=True)
    restriction_list_ids = states(serializers.ListField(
        child=states(serializers.CharField(), format="uuid"), required=False,
        help_text="Replaces the account's ACCOUNT restriction lists; [] removes them all.",
    ), uniqueItems=True)


class LotInputSerializer(UnknownFieldsRefused, serializers.Serializer):
    acquired_on = IsoDateField()
    units = DecimalString(**UNITS)
    unit_cost = DecimalString(**PRICE, allow_null=True, help_text="Per unit, fees included; null: unknown (§12).")
    cost_currency = CurrencyCodeField(
        required=False, allow_null=True, help_text="The instrument's currency (the default; no other is accepted)."
    )


class PositionInputSerializer(UnknownFieldsRefused, serializers.Serializer):
    instrument_id = serializers.CharField(help_text="ISIN or UUID.")
    units = states(DecimalString(**UNITS), sign="not_negative")
    lots = LotInputSerializer(
        many=True, required=False,
        help_text="The position's tax lots, whose units must add up to `units`; left out, units added become one "
                  "lot of unknown cost dated today and units removed are relieved by the lot_method (§12).",
    )


class CashInputSerializer(UnknownFieldsRefused, serializers.Serializer):
    currency = CurrencyCodeField()
    balance = DecimalString(**MONEY)
    is_default = serializers.BooleanField(required=False, default=False)
    kind = _choice(CashKind.choices, required=False, default=CashKind.CASH)


class HoldingsInputSerializer(UnknownFieldsRefused, serializers.Serializer):
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
    lots = serializers.BooleanField(required=False, default=False, help_text="true: each position lists its lots.")


class LotSerializer(serializers.Serializer):
    """A lot as `GET .../lots/` lists it: unrealized gain in the cost currency at the latest price."""

    lot_id = serializers.UUIDField()
    instrument_id = serializers.UUIDField()
    isin = serializers.CharField(allow_null=True)
    acquired_on = serializers.DateField()
    units = DecimalString()
    unit_cost = DecimalString(allow_null=True, help_text="null: unknown.")
    cost_currency = serializers.CharField()
    unrealized_gain = DecimalString(
        allow_null=True, help_text="(latest price − unit cost) × units in cost_currency; null: unknown cost or no price."
    )


class PositionLotSerializer(serializers.Serializer):
    lot_id = serializers.UUIDField()
    acquired_on = serializers.DateField()
    units = DecimalString()
    unit_cost = DecimalString(allow_null=True)
    cost_currency = serializers.CharField()


class LotQuerySerializer(serializers.Serializer):
    instrument_id = serializers.CharField(required=False, help_text="ISIN or UUID: this instrument's lots only.")


class RealizedGainQuerySerializer(serializers.Serializer):
    year = serializers.IntegerField(required=False, min_value=1900, max_value=2199, help_text="Realized in this calendar year.")
    instrument_id = serializers.CharField(required=False, help_text="ISIN or UUID.")


class RealizedGainSerializer(serializers.Serializer):
    """One relief of a lot; amounts null for a lot of unknown cost (`*_base` also null without an FX rate)."""

    lot_id = serializers.UUIDField()
    instrument_id = serializers.UUIDField()
    isin = serializers.CharField(source="instrument.isin", allow_null=True)
    acquired_on = serializers.DateField()
    realized_on = serializers.DateField()
    term = _choice((("SHORT", "Short-term"), ("LONG", "Long-term")))
    units = DecimalString()
    currency = serializers.CharField(help_text="The instrument's currency.")
    proceeds = DecimalString(allow_null=True)
    cost = DecimalString(allow_null=True)
    gain = DecimalString(allow_null=True)
    base_currency = serializers.CharField()
    fx_rate = DecimalString(allow_null=True, help_text="Base currency per 1 unit of currency, on realized_on.")
    proceeds_base = DecimalString(allow_null=True)
    cost_base = DecimalString(allow_null=True)
    gain_base = DecimalString(allow_null=True)
    trade_order_id = serializers.UUIDField(allow_null=True, help_text="null: relieved by a holdings snapshot.")


class RealizedTotalsSerializer(serializers.Serializer):
    short = DecimalString(help_text="Net short-term gain, base currency.")
    long = DecimalString(help_text="Net long-term gain, base currency.")
    unknown_cost_units = DecimalString(help_text="Units relieved from lots of unknown cost (in no total).")


class _PageMetaSerializer(serializers.Serializer):
    offset = serializers.IntegerField(min_value=0)
    limit = serializers.IntegerField(min_value=0)
    count = serializers.IntegerField(min_value=0)
    total_count = serializers.IntegerField(min_value=0)


class RealizedGainsPageSerializer(serializers.Serializer):
    meta = _PageMetaSerializer()
    data = RealizedGainSerializer(many=True)
    totals = RealizedTotalsSerializer()


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
    lots = PositionLotSerializer(many=True, required=False, help_text="With ?lots=true only: the lots, oldest first.")

    def to_representation(self, instance):
        data = super().to_representation(instance)
        lots = self.context.get("lots")
        if lots is not None:
            data["lots"] = PositionLotSerializer(lots.get((instance.account_id, instance.instrument.id), []), many=True).data
        return data


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


# A drift: a decimal string greater than 0 and at most 1, with at most WEIGHT's places.
_PLACES = WEIGHT["decimal_places"]
DRIFT_PATTERN = rf"^0*(?:1(?:\.0{{0,{_PLACES}}})?|\.(?=[0-9]{{0,{_PLACES - 1}}}[1-9])[0-9]{{1,{_PLACES}}})$"

# The strategy object of api.md (the rules: rebalancing.services.strategies). Described
# by hand: a nested serializer's `type` and `method` enums would collide in the schema
# with the instruments' `type` and the executions' `method`.
STRATEGY_SCHEMA = {
    "type": "object",
    "nullable": True,
    "description": "When the account rebalances by itself (docs/automation.md); null for never. The rules: "
    "CALENDAR needs period_type, period_count and anchor_date; THRESHOLD needs absolute_drift and/or "
    "relative_drift (each 0 < x <= 1); CALENDAR_AND_THRESHOLD needs both; a field the type does not use is null.",
    "properties": {
        "type": {"type": "string", "enum": ["CALENDAR", "THRESHOLD", "CALENDAR_AND_THRESHOLD"]},
        "period_type": {"type": "string", "nullable": True,
                        "enum": ["DAILY", "WEEKLY", "MONTHLY", "QUARTERLY", "ANNUALLY", None]},
        "period_count": {"type": "integer", "nullable": True, "minimum": 1, "maximum": MAX_PERIOD_COUNT},
        "anchor_date": {**DATE_SCHEMA, "nullable": True,
                        "description": "The first calendar date; the k-th is anchor + k x count x period."},
        "absolute_drift": {"type": "string", "format": "decimal", "nullable": True, "pattern": DRIFT_PATTERN,
                           "description": "Weight points, e.g. \"0.05\"."},
        "relative_drift": {"type": "string", "format": "decimal", "nullable": True, "pattern": DRIFT_PATTERN,
                           "description": "Fraction of the line's target, e.g. \"0.2\"."},
        "method": {"type": "string", "enum": ["CONSERVATIVE", "EXCHANGE", "FULL", "FULL_INCLUDING_ORDERS"],
                   "description": "FULL when left out."},
        "cooldown_days": {"type": "integer", "nullable": True, "minimum": 0, "maximum": MAX_COOLDOWN_DAYS,
                          "description": "No automatic rebalance within this many days of the last one."},
        "paused": {"type": "boolean", "description": "Set in the admin; left out, a change keeps it."},
    },
    "required": ["type"],
    "additionalProperties": False,
}


STRATEGY_TYPE_WORDS = {"integer": "a whole number", "string": "a string", "boolean": "true or false"}


@extend_schema_field(STRATEGY_SCHEMA)
class StrategyField(serializers.JSONField):
    """A strategy object or null, judged by rebalancing.services.strategies; its errors
    come back under `strategy.<field>`. The validated value is a StrategyInput or None."""

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        if data is None:
            return None
        if not isinstance(data, dict):
            raise serializers.ValidationError("must be an object with a type, or null")
        # The JSON types of STRATEGY_SCHEMA (the service, shared with the admin's form,
        # also takes "5" for 5 and "" for the default method).
        kinds = {"integer": int, "string": str, "boolean": bool}
        wrong = {}
        for name, spec in STRATEGY_SCHEMA["properties"].items():
            value = data.get(name)
            if value is None:
                continue
            if not isinstance(value, kinds[spec["type"]]) or (spec["type"] == "integer" and isinstance(value, bool)):
                wrong[name] = [f"must be {STRATEGY_TYPE_WORDS[spec['type']]}"]
            elif value == "" and "enum" in spec:
                wrong[name] = [f"must be one of {', '.join(v for v in spec['enum'] if v)}"]
        if wrong:
            raise serializers.ValidationError(wrong)
        try:
            return strategy_validate(data, prefix="")
        except InvalidInput as exc:
            errors: dict = {}
            for error in exc.errors:
                errors.setdefault(error.field, []).append(error.message)
            raise serializers.ValidationError(errors) from exc


class ConfigurationCreateSerializer(UnknownFieldsRefused, serializers.Serializer):
    account_id = _account_field()
    allocation_id = _allocation_field()
    strategy = StrategyField(required=False, allow_null=True, default=None)


class ConfigurationUpdateSerializer(StrictFieldsMixin, serializers.Serializer):
    allocation_id = _allocation_field(required=False)
    strategy = StrategyField(required=False, allow_null=True,
                             help_text="The complete new strategy, or null to remove it; left out, it is kept.")


def _json_value(value):
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, date):
        return value.isoformat()
    return value


STRATEGY_FIELDS = (
    "type", "period_type", "period_count", "anchor_date", "absolute_drift", "relative_drift", "method",
    "cooldown_days", "paused",
)


class ConfigurationSerializer(serializers.Serializer):
    account_id = serializers.UUIDField()
    allocation_id = serializers.UUIDField()
    strategy = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field(STRATEGY_SCHEMA)
    def get_strategy(self, configuration):
        """The configuration's own strategy (select_related("strategy") to avoid a query per row)."""
        return strategy_representation(getattr(configuration, "strategy", None))


def strategy_representation(strategy) -> dict | None:
    """A Strategy row as the API shows it (STRATEGY_SCHEMA); None for none."""
    if strategy is None:
        return None
    return {name: _json_value(getattr(strategy, name)) for name in STRATEGY_FIELDS}


class AllocationStrategyInputSerializer(serializers.Serializer):
    """The body of POST/PATCH …/allocations/{id}/strategy/: the strategy object, or null."""

    strategy = StrategyField(allow_null=True)
