"""Input serializers check the shape of a request; output serializers render what the
services and selectors return. The rules themselves live in the services
(`preferences_validate`, `rebalance_preview`), which name bad fields in the same
`preferences.min_trade_amount` / `accounts[3]` form as these serializers.
"""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import SkipField

from config.api.schema import states
from config.api.strict import UnknownFieldsRefused
from portfolios.api.fields import CurrencyCodeField, DecimalString, IsoDateField
from portfolios.models import InstrumentType, LotMethod, RestrictedWeightTo, RestrictionRule
from portfolios.models.fields import MONEY
from rebalancing import engine

from ..models import AvailableCash, FxMode, Method, OrderBasis
from ..models.preferences import PCT
from ..services import MAX_PREVIEW_ACCOUNTS, PREFERENCE_FIELDS, adjustments_json
from ..services.tax import estimated_gain_json
from ..services.preferences import AMOUNT_FIELDS, APPROVAL_FIELDS, GLOBAL_ONLY, PCT_FIELDS

_DEFAULT_DECIMALS_HELP = (
    "Decimals per instrument type used when an instrument has no block size, e.g. {\"FUND\": 3}; "
    "types left out use the built-in default."
)
NOT_A_PREFERENCE = "is not a preference field"


# --- Preferences -------------------------------------------------------------------------

def _preference_fields(*, for_input: bool) -> dict:
    """One field per preference. Input: every field optional, null = inherit, sizes as
    the columns. Output: every field present; only the cash range may be null (no range)."""
    inherit = {"required": False, "allow_null": True} if for_input else {}
    size = (lambda bounds: bounds) if for_input else (lambda bounds: {})
    fields = {}
    for name in ("cash_range_min", "cash_range_max"):
        fields[name] = DecimalString(
            **size(MONEY), **(inherit or {"allow_null": True}),
            help_text="Excess cash, in the account's base currency; null: no range.",
        )
    for name in AMOUNT_FIELDS:
        fields[name] = states(DecimalString(
            **size(MONEY), **(inherit or ({"allow_null": True} if name == "max_realized_gain" else {})),
            help_text="In the account's base currency." + (
                " Per calendar year; null: no limit (§12)." if name == "max_realized_gain" else ""
            ),
        ), sign="not_negative")
    for name in PCT_FIELDS:
        fields[name] = states(DecimalString(**size(PCT), **inherit, help_text="A percentage: 5 means 5 %."),
                              percentage=True)
    fields["order_basis"] = serializers.ChoiceField(OrderBasis.choices, **inherit)
    fields["filter_by_min_max"] = serializers.BooleanField(**inherit)
    fields["sell_all_transaction_type"] = serializers.CharField(
        **inherit, **size({"max_length": 30}), help_text="Transaction type of an order that sells a whole position."
    )
    fields["available_cash"] = serializers.ChoiceField(AvailableCash.choices, **inherit)
    fields["price_source"] = serializers.CharField(
        **inherit, **size({"max_length": 50}), help_text="The source of the stored prices used."
    )
    fields["default_decimals"] = states(
        serializers.DictField(child=serializers.IntegerField(), **inherit, help_text=_DEFAULT_DECIMALS_HELP),
        properties={kind: {"type": "integer", "minimum": 0, "maximum": 10} for kind in InstrumentType.values},
        additionalProperties=False,
    )
    fields["restricted_weight_to"] = serializers.ChoiceField(
        RestrictedWeightTo.choices, **inherit,
        help_text="Where a model line's weight goes when the account may not buy it and no substitute fits.",
    )
    fields["fx_mode"] = serializers.ChoiceField(
        FxMode.choices, **inherit,
        help_text="AUTO: the custodian converts, no FX order; EXPLICIT: the rebalance proposes FX orders (§9).",
    )
    fields["fx_repatriate"] = serializers.BooleanField(
        **inherit, help_text="EXPLICIT only: sell cash above a currency's target back into the default currency."
    )
    fields["use_price_connector"] = serializers.BooleanField(
        **inherit,
        help_text="Ask the live price connector first; unpriced instruments fall back to the latest stored price.",
    )
    fields["lot_method"] = serializers.ChoiceField(
        LotMethod.choices, **inherit, help_text="Which lots a settled sell relieves first (§12)."
    )
    for name, text in (
        ("long_term_days", "A lot held more than this many days realizes a LONG-term gain."),
        ("wash_sale_days", "An instrument sold at a loss is not bought back for this many days."),
    ):
        fields[name] = serializers.IntegerField(min_value=0, max_value=36_500, **inherit, help_text=text)
    for name, text in (
        ("tax_aware", "Propose orders with the lots' gains in mind: sells name their lots and estimated gain."),
        ("avoid_short_term_gains", "Tax-aware: sell no lot with a short-term gain."),
        ("sell_removed_lines_regardless", "With avoid_short_term_gains: NO_HOLD and removed lines are sold anyway."),
        ("harvest_losses", "Tax-aware: sell loss lots past both thresholds into the line's first substitute."),
    ):
        fields[name] = serializers.BooleanField(**inherit, help_text=text)
    assert set(fields) == set(PREFERENCE_FIELDS)
    return {name: fields[name] for name in PREFERENCE_FIELDS}


def _approval_fields(*, for_input: bool) -> dict:
    """The approval thresholds of the global preferences (null: no limit). The rules
    (not negative, at least 1, an ISO code) are the service's, which names the field."""
    optional = {"required": False, "allow_null": True} if for_input else {"allow_null": True}
    return {
        "approval_gross_amount": states(DecimalString(
            **(MONEY if for_input else {}), **optional,
            help_text="An execution whose trade orders add up to more than this (Σ |trade amount|, in "
            "approval_currency) waits for approval; null: no limit.",
        ), sign="not_negative"),
        "approval_order_count": states(serializers.IntegerField(
            **optional, help_text="An execution writing more trade orders than this waits for approval; null: no limit."
        ), minimum=1),
        "approval_currency": (CurrencyCodeField if for_input else serializers.CharField)(
            **({"required": False, "allow_null": True} if for_input else {}),
            help_text="ISO 4217 code of approval_gross_amount; default EUR.",
        ),
    }


class PreferencesInputSerializer(UnknownFieldsRefused, serializers.Serializer):
    """Any subset of the preference fields. A field left out or null inherits
    (account → global default → built-in default); an unknown field is refused, and an
    approval threshold is refused as a global preference only."""

    allowed = PREFERENCE_FIELDS

    def get_fields(self):
        return _preference_fields(for_input=True)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.allowed))
            if unknown:
                raise serializers.ValidationError(
                    {name: [GLOBAL_ONLY if name in APPROVAL_FIELDS else NOT_A_PREFERENCE] for name in unknown}
                )
        return super().to_internal_value(data)


class GlobalPreferencesInputSerializer(PreferencesInputSerializer):
    """Any subset of the preference fields and the approval thresholds (global only)."""

    allowed = (*PREFERENCE_FIELDS, *APPROVAL_FIELDS)

    def get_fields(self):
        return {**_preference_fields(for_input=True), **_approval_fields(for_input=True)}


class PreferenceValuesSerializer(serializers.Serializer):
    """Every preference with the value the engine runs with."""

    def get_fields(self):
        return _preference_fields(for_input=False)

    def to_representation(self, instance):
        values = dict(instance)
        # A stored map replaces the inherited one; types it leaves out use the engine's built-in.
        values["default_decimals"] = {
            **{str(k): v for k, v in engine.DEFAULT_DECIMALS.items()}, **(values.get("default_decimals") or {})
        }
        return super().to_representation(values)


class GlobalPreferenceValuesSerializer(PreferenceValuesSerializer):
    """Every preference with the value the engine runs with, and the approval thresholds."""

    def get_fields(self):
        return {**_preference_fields(for_input=False), **_approval_fields(for_input=False)}


class GlobalPreferencesSerializer(serializers.Serializer):
    """The global default preferences, every field resolved (a field the global row
    leaves empty shows the built-in default), with the approval thresholds of
    executions (null: no limit)."""

    preferences = GlobalPreferenceValuesSerializer(source="values")


class AccountPreferencesSerializer(serializers.Serializer):
    """An account's effective preferences; `overridden` lists the fields it sets itself."""

    account_id = serializers.UUIDField()
    preferences = PreferenceValuesSerializer()
    overridden = serializers.ListField(
        child=serializers.ChoiceField([(name, name) for name in PREFERENCE_FIELDS]),
        help_text="Fields the account overrides; the others inherit the global default.",
    )


# --- Previews (and, later, executions) ---------------------------------------------------


def result_reason(result: engine.RebalanceResult) -> str | None:
    """Why an account was skipped or failed, in words; None for PROPOSED and NO_TRADES."""
    if result.reason:
        return result.reason
    if result.status == engine.ResultStatus.SKIPPED_WITHIN_RANGE:
        excess = "" if result.excess_cash is None else f" {DecimalString().to_representation(result.excess_cash)}"
        return f"the excess cash{excess} lies within the cash range of the preferences"
    return None


class _AddedDecimal(DecimalString):
    """A decimal the serializer adds itself (in to_representation) when it applies."""

    def get_attribute(self, instance):
        raise SkipField()


class OptionalDecimal(DecimalString):
    """A decimal that may be null, left out of the answer when the row (a dict) lacks it."""

    def get_attribute(self, instance):
        if isinstance(instance, dict) and self.field_name not in instance:
            raise SkipField()
        return super().get_attribute(instance)


class OrderLotSerializer(serializers.Serializer):
    lot_id = serializers.UUIDField()
    units = DecimalString()


class EstimatedGainSerializer(serializers.Serializer):
    short = DecimalString(help_text="Base currency.")
    long = DecimalString(help_text="Base currency.")
    unknown_cost_units = DecimalString(help_text="Units sold from lots of unknown cost (in no total).")


class OrderProposalSerializer(serializers.Serializer):
    """An engine OrderProposal. Context `instruments`: instrument id → portfolios Instrument (for the ISIN)."""

    instrument_id = serializers.UUIDField()
    isin = serializers.SerializerMethodField()
    side = serializers.ChoiceField([s.value for s in engine.Side])
    transaction_type = serializers.CharField(
        help_text="BUY, SELL, the sell-all type of the preferences, or FX (a currency bought or sold, §9)."
    )
    units = DecimalString(help_text="FX: the amount of the bought (SELL: sold) currency.")
    unit_price = DecimalString(help_text="In `currency`; FX: the rate, `currency` per unit of the instrument's currency.")
    trade_amount = DecimalString(help_text="In `currency`.")
    currency = serializers.CharField(help_text="The instrument's currency; FX: the paying (SELL: receiving) currency.")
    execution_method = serializers.ChoiceField([m.value for m in engine.ExecutionMethod])
    cash_account_id = serializers.SerializerMethodField(
        help_text="The cash account paying for the order or receiving its proceeds (§10); FX: the default account."
    )
    counter_cash_account_id = serializers.SerializerMethodField(
        help_text="FX only: the cash account of the bought (SELL: sold) currency; null when it is created at settlement."
    )
    # Filled by to_representation for the sells of tax-aware accounts only (§12); absent otherwise.
    lots = OrderLotSerializer(
        many=True, required=False,
        help_text="Sells of a tax-aware account only: the lots it relieves (settlement relieves these first).",
    )
    estimated_gain = _AddedDecimal(
        required=False, allow_null=True,
        help_text="Sells of a tax-aware account only: the gain it realizes, base currency, lots of known cost only "
                  "(null: all of unknown cost).",
    )

    def get_isin(self, order) -> str | None:
        instrument = self.context["instruments"].get(order.instrument_id)
        return instrument.isin if instrument is not None else None

    def _cash(self, order) -> tuple:
        preview = self.context.get("preview")
        return preview.cash_accounts(order) if preview is not None else (None, None)

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_cash_account_id(self, order) -> int | None:
        return self._cash(order)[0]

    def _sell_tax(self, order):
        taxes = self.context.get("tax_sells")
        if taxes is None or order.side != engine.Side.SELL:
            return None
        return taxes.get((order.account_id, order.instrument_id))

    def to_representation(self, order):
        data = super().to_representation(order)
        sell = self._sell_tax(order)
        if sell is not None:
            text = DecimalString().to_representation
            data["lots"] = [{"lot_id": str(lot_id), "units": text(units)} for lot_id, units in sell.lots]
            data["estimated_gain"] = None if sell.estimated_gain is None else text(sell.estimated_gain)
        return data

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_counter_cash_account_id(self, order) -> int | None:
        return self._cash(order)[1]


class AdjustmentSerializer(serializers.Serializer):
    """What a restriction changed (§11)."""

    instrument_id = serializers.UUIDField()
    rule = serializers.ChoiceField(RestrictionRule.choices)
    effect = serializers.ChoiceField(
        [e.value for e in engine.Effect],
        help_text="SUBSTITUTED, TO_CASH or PRO_RATA: where the line's weight went; HELD: a position kept "
        "(NO_SELL); SOLD: a position sold whole (NO_HOLD).",
    )
    substitute_id = serializers.UUIDField(required=False, help_text="SUBSTITUTED only: the instrument bought instead.")
    list = serializers.CharField(help_text="The restriction list the rule comes from.")


class RebalanceResultSerializer(serializers.Serializer):
    """An engine RebalanceResult. Amounts are in the account's base currency; they are
    null when the account could not be valued. Pass `instruments` in the context."""

    account_id = serializers.UUIDField()
    status = serializers.ChoiceField([s.value for s in engine.ResultStatus])
    error = serializers.SerializerMethodField(help_text="Why the account was skipped or failed; null otherwise.")
    total_value = DecimalString(allow_null=True)
    cash_before = DecimalString(allow_null=True)
    cash_after = DecimalString(allow_null=True, help_text="Once the proposed orders have executed at the prices used.")
    orders = OrderProposalSerializer(many=True)
    adjustments = serializers.SerializerMethodField(help_text="What the account's restrictions changed (§11).")
    price_fallbacks = serializers.SerializerMethodField(
        help_text="With use_price_connector: the instruments the connector did not price, valued at the latest "
        "stored price instead (§9)."
    )
    estimated_realized_gain = EstimatedGainSerializer(
        required=False, help_text="Tax-aware accounts only (§12): the gain the proposed sells realize, by term."
    )

    def get_error(self, result) -> str | None:
        return result_reason(result)

    def to_representation(self, result):
        preview = self.context.get("preview")
        outcome = preview.tax_of(result.account_id) if preview is not None else None
        tax_sells = {(s.account_id, s.instrument_id): s for s in outcome.sells} if outcome is not None else None
        self.fields["orders"].child.context["tax_sells"] = tax_sells
        data = super().to_representation(result)
        if outcome is not None:
            data["estimated_realized_gain"] = estimated_gain_json(outcome)
        return data

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_price_fallbacks(self, result) -> list:
        preview = self.context.get("preview")
        return preview.price_fallbacks(result.account_id) if preview is not None else []

    @extend_schema_field(AdjustmentSerializer(many=True))
    def get_adjustments(self, result) -> list:
        return adjustments_json(result.adjustments)


class PreviewInputSerializer(UnknownFieldsRefused, serializers.Serializer):
    accounts = states(serializers.ListField(
        child=states(serializers.CharField(), format="uuid"), allow_empty=True,
        help_text=f"Account UUIDs, at most {MAX_PREVIEW_ACCOUNTS}, none twice.",
    ), minItems=1, maxItems=MAX_PREVIEW_ACCOUNTS, uniqueItems=True)
    method = serializers.ChoiceField(Method.choices, required=False, default=Method.FULL)
    rebalance_date = IsoDateField(
        required=False, allow_null=True, default=None, help_text="Prices and targets as of this date; default today."
    )
    preferences = PreferencesInputSerializer(
        required=False, default=dict, help_text="Overrides for this call only, on top of each account's own."
    )
    instrument_ids = serializers.ListField(
        child=serializers.CharField(), required=False, allow_empty=False,
        help_text="ISINs or UUIDs: only lines of these instruments get orders; the other holdings keep their units "
        "and still count in the total and the weights (§10).",
    )


class PreviewSerializer(serializers.Serializer):
    results = RebalanceResultSerializer(many=True, help_text="One per account, in the order asked.")


# --- Constituents ------------------------------------------------------------------------

class ConstituentsQuerySerializer(serializers.Serializer):
    effective_at = IsoDateField(required=False, help_text="Default: today.")


class ConstituentSerializer(serializers.Serializer):
    instrument_id = serializers.UUIDField(source="instrument.id")
    isin = serializers.CharField(source="instrument.isin", allow_null=True)
    weight = DecimalString(help_text="The version's weight.")
    floating_weight = DecimalString(help_text="Drifted by prices since reset_date (= weight for STATIC).")


class ConstituentsSerializer(serializers.Serializer):
    effective_at = serializers.DateField()
    reset_date = serializers.DateField(
        allow_null=True,
        help_text="Start of the drift (the last reset, or effective_from); null for STATIC or no version in effect.",
    )
    constituents = ConstituentSerializer(many=True)
