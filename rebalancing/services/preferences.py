"""Rebalance preferences: the global default, per-account overrides, and the
effective values the engine runs with (override → global → built-in default)."""

from dataclasses import dataclass, fields, replace
from decimal import Decimal

from django.db import transaction

from audit.services import audit_save
from core.errors import FieldError, Forbidden, raise_if_errors
from portfolios.models import InstrumentType, PortfolioAccount, RestrictedWeightTo
from portfolios.models.fields import MONEY, is_currency_code
from rebalancing import engine
from rebalancing.engine.tax import DEFAULT_TAX_PREFERENCES, LotMethod, TaxPreferences

from ..models import AvailableCash, FxMode, OrderBasis, RebalancePreferences
from ..selectors.book import with_ids

# §12: read by the lots service and the tax-aware step (engine/tax.py), not by rebalance().
TAX_FIELDS = tuple(f.name for f in fields(TaxPreferences))
PREFERENCE_FIELDS = (
    "cash_range_min", "cash_range_max",
    "negative_cash_buffer_pct", "negative_cash_buffer_amount",
    "positive_cash_buffer_pct", "positive_cash_buffer_amount",
    "order_basis", "cash_from_sells_pct", "min_trade_amount", "filter_by_min_max",
    "sell_all_transaction_type", "available_cash", "price_source", "default_decimals", "futures_fee_pct",
    "restricted_weight_to", "fx_mode", "fx_repatriate", "use_price_connector",
    *TAX_FIELDS,
)
# Read by the services (which prices to load), not by the engine.
SERVICE_ONLY_FIELDS = ("price_source", "use_price_connector", *TAX_FIELDS)
PCT_FIELDS = (
    "negative_cash_buffer_pct", "positive_cash_buffer_pct", "cash_from_sells_pct", "futures_fee_pct",
    "harvest_min_loss_pct",
)
AMOUNT_FIELDS = (
    "negative_cash_buffer_amount", "positive_cash_buffer_amount", "min_trade_amount", "max_realized_gain",
    "harvest_min_loss_amount",
)
BOOL_FIELDS = (
    "fx_repatriate", "use_price_connector", "filter_by_min_max", "tax_aware", "avoid_short_term_gains",
    "sell_removed_lines_regardless", "harvest_losses",
)
DAY_FIELDS = ("long_term_days", "wash_sale_days")
BUILT_IN = {
    **{f.name: getattr(engine.DEFAULT_PREFERENCES, f.name) for f in fields(engine.Preferences)},
    "price_source": "default",
    "use_price_connector": False,
    "default_decimals": {str(k): v for k, v in engine.DEFAULT_PREFERENCES.default_decimals.items()},
    **{name: getattr(DEFAULT_TAX_PREFERENCES, name) for name in TAX_FIELDS},
    "lot_method": str(DEFAULT_TAX_PREFERENCES.lot_method),
}
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY["decimal_places"])
# Four-eyes approval of large executions: rules of a whole execution, so they live on
# the global row only (an account override would have no meaning). Null: no limit.
APPROVE_PERMISSION = "rebalancing.approve_execution"  # decides executions, sets their thresholds
APPROVAL_FIELDS = ("approval_gross_amount", "approval_order_count", "approval_currency")
APPROVAL_DEFAULTS = {"approval_gross_amount": None, "approval_order_count": None, "approval_currency": "EUR"}
GLOBAL_ONLY = "is a global preference only: approval thresholds apply to a whole execution, not to one account"


_TAX_PREFERENCES: dict = {}  # tax preference values → TaxPreferences


@dataclass(frozen=True)
class EffectivePreferences:
    values: dict  # every field of PREFERENCE_FIELDS, resolved
    overridden: frozenset  # the fields the account (or the call) overrides

    def engine_key(self) -> tuple:
        """A hashable form of the values: equal for two accounts with the same effective
        preferences, so they can share one engine.Preferences (and the engine's caches)."""
        return tuple(
            (name, tuple(sorted(value.items())) if isinstance(value, dict) else value)
            for name, value in sorted(self.values.items())
        )

    def for_engine(self) -> engine.Preferences:
        values = {name: self.values[name] for name in PREFERENCE_FIELDS if name not in SERVICE_ONLY_FIELDS}
        values["fx_mode"] = engine.FxMode(values["fx_mode"])
        values["order_basis"] = engine.OrderBasis(values["order_basis"])
        values["available_cash"] = engine.AvailableCash(values["available_cash"])
        values["restricted_weight_to"] = engine.RestrictedWeightTo(values["restricted_weight_to"])
        values["default_decimals"] = {
            **engine.DEFAULT_PREFERENCES.default_decimals,
            **{engine.InstrumentType(k): int(v) for k, v in values["default_decimals"].items()},
        }
        return engine.Preferences(**values)

    def for_tax(self) -> TaxPreferences:
        """The tax preferences (§12); equal values share one object (a small cache)."""
        key = tuple(self.values[name] for name in TAX_FIELDS)
        found = _TAX_PREFERENCES.get(key)
        if found is None:
            values = dict(zip(TAX_FIELDS, key))
            values["lot_method"] = LotMethod(values["lot_method"])
            if len(_TAX_PREFERENCES) > 256:
                _TAX_PREFERENCES.clear()
            found = _TAX_PREFERENCES[key] = TaxPreferences(**values)
        return found


def _approval_errors(values: dict, prefix: str) -> list[FieldError]:
    errors = []
    amount = values.get("approval_gross_amount")
    if amount is not None:
        if not isinstance(amount, Decimal) or not amount.is_finite():
            errors.append(FieldError(f"{prefix}approval_gross_amount", "must be a number"))
        elif amount < 0:
            errors.append(FieldError(f"{prefix}approval_gross_amount", "must not be negative"))
        elif amount != amount.quantize(MONEY_QUANTUM):
            errors.append(FieldError(f"{prefix}approval_gross_amount", f"at most {MONEY['decimal_places']} decimal places"))
        elif amount.adjusted() >= MONEY["max_digits"] - MONEY["decimal_places"]:
            errors.append(FieldError(
                f"{prefix}approval_gross_amount", f"at most {MONEY['max_digits'] - MONEY['decimal_places']} integer digits"
            ))
    count = values.get("approval_order_count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 2_147_483_647):
        errors.append(FieldError(f"{prefix}approval_order_count", "must be a whole number of at least 1"))
    if "approval_currency" in values and values["approval_currency"] is not None:
        currency = values["approval_currency"]
        if not isinstance(currency, str) or not is_currency_code(currency):
            errors.append(FieldError(f"{prefix}approval_currency", f"{currency} is not an ISO 4217 currency code"))
    return errors


def preferences_validate(values: dict, prefix: str = "", *, global_row: bool = False) -> dict:
    """Check a (partial) set of preference values; returns them with nulls kept.
    `global_row`: the approval fields (APPROVAL_FIELDS) are allowed too; elsewhere each
    one is refused as a global preference only.

    Raises InvalidInput naming each bad field and its rule.
    """
    errors = [
        FieldError(f"{prefix}{name}", GLOBAL_ONLY if name in APPROVAL_FIELDS else "is not a preference field")
        for name in values
        if name not in PREFERENCE_FIELDS and not (global_row and name in APPROVAL_FIELDS)
    ]
    if global_row:
        errors.extend(_approval_errors(values, prefix))
    for name in PCT_FIELDS:
        value = values.get(name)
        if value is not None and not (0 <= value <= 100):
            errors.append(FieldError(f"{prefix}{name}", "must be a percentage between 0 and 100"))
    for name in AMOUNT_FIELDS:
        value = values.get(name)
        if value is not None and value < 0:
            errors.append(FieldError(f"{prefix}{name}", "must not be negative"))
    for name in (*AMOUNT_FIELDS, "cash_range_min", "cash_range_max"):
        value = values.get(name)
        if value is not None and value != value.quantize(MONEY_QUANTUM):
            errors.append(FieldError(f"{prefix}{name}", f"at most {MONEY['decimal_places']} decimal places"))
    low, high = values.get("cash_range_min"), values.get("cash_range_max")
    if low is not None and high is not None and low > high:
        errors.append(FieldError(f"{prefix}cash_range_max", "must not be below cash_range_min"))
    if values.get("order_basis") not in (None, *OrderBasis.values):
        errors.append(FieldError(f"{prefix}order_basis", f"must be one of {', '.join(OrderBasis.values)}"))
    if values.get("available_cash") not in (None, *AvailableCash.values):
        errors.append(FieldError(f"{prefix}available_cash", f"must be one of {', '.join(AvailableCash.values)}"))
    if values.get("fx_mode") not in (None, *FxMode.values):
        errors.append(FieldError(f"{prefix}fx_mode", f"must be one of {', '.join(FxMode.values)}"))
    for name in BOOL_FIELDS:
        if values.get(name) is not None and not isinstance(values[name], bool):
            errors.append(FieldError(f"{prefix}{name}", "must be true or false"))
    for name in DAY_FIELDS:
        value = values.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 36_500):
            errors.append(FieldError(f"{prefix}{name}", "must be a whole number of days from 0 to 36500"))
    if values.get("lot_method") not in (None, *LotMethod):
        errors.append(FieldError(f"{prefix}lot_method", f"must be one of {', '.join(LotMethod)}"))
    if values.get("restricted_weight_to") not in (None, *RestrictedWeightTo.values):
        errors.append(
            FieldError(f"{prefix}restricted_weight_to", f"must be one of {', '.join(RestrictedWeightTo.values)}")
        )
    for name in ("sell_all_transaction_type", "price_source"):
        if name in values and values[name] is not None and not str(values[name]).strip():
            errors.append(FieldError(f"{prefix}{name}", "must not be blank"))
    decimals = values.get("default_decimals")
    if decimals is not None:
        if not isinstance(decimals, dict):
            errors.append(FieldError(f"{prefix}default_decimals", "must be an object of instrument type → decimals"))
        else:
            for key, value in decimals.items():
                if key not in InstrumentType.values:
                    errors.append(FieldError(f"{prefix}default_decimals.{key}", "is not an instrument type"))
                elif not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10:
                    errors.append(FieldError(f"{prefix}default_decimals.{key}", "must be a whole number from 0 to 10"))
    raise_if_errors(errors)
    return values


def _set_values(row: RebalancePreferences) -> dict:
    return {name: getattr(row, name) for name in PREFERENCE_FIELDS if getattr(row, name) is not None}


def preferences_effective(
    *, account_ids, call_overrides: dict | None = None
) -> tuple[EffectivePreferences, dict]:
    """The global effective preferences and, per account id with overrides, its own.

    Two queries whatever the number of accounts. `call_overrides` (already
    validated) apply on top of everything, for one preview call only. Accounts
    absent from the returned dict use the global preferences.
    """
    global_row = RebalancePreferences.objects.filter(is_global=True).first()
    global_values = {**BUILT_IN, **(_set_values(global_row) if global_row else {})}
    call_overrides = {k: v for k, v in (call_overrides or {}).items() if v is not None}
    default = EffectivePreferences({**global_values, **call_overrides}, frozenset(call_overrides))
    per_account = {}
    for row in with_ids(RebalancePreferences.objects, account_ids, "account_id"):  # one array parameter
        own = _set_values(row)
        per_account[row.account_id] = EffectivePreferences(
            {**global_values, **own, **call_overrides}, frozenset(own) | frozenset(call_overrides)
        )
    return default, per_account


def book_options(default: EffectivePreferences, per_account: dict) -> dict:
    """The keyword arguments of `book_load` that make each account's own preferences
    apply (§9 last point): its `price_source`, its `available_cash` scope for the
    outstanding orders (§10), and the live price connector for the sources of accounts
    with `use_price_connector` on (services/live_prices.py)."""
    from .live_prices import live_prices_merge  # noqa: PLC0415 (imports the connector settings lazily)

    source = default.values["price_source"]
    sources = {a: p.values["price_source"] for a, p in per_account.items() if p.values["price_source"] != source}
    scopes = {
        a: p.values["available_cash"] for a, p in per_account.items()
        if p.values["available_cash"] != engine.AvailableCash.ALL_ACCOUNTS
    }
    if default.values["available_cash"] != engine.AvailableCash.ALL_ACCOUNTS:
        scopes = _DefaultDict(default.values["available_cash"], scopes)
    connector = {p.values["price_source"] for p in per_account.values() if p.values["use_price_connector"]}
    if default.values["use_price_connector"]:
        connector.add(source)
    return {
        "price_source": source, "price_sources": sources, "available_cash": scopes,
        "connector_sources": frozenset(connector), "live_prices": live_prices_merge if connector else None,
    }


class _DefaultDict(dict):
    """A dict whose missing keys give `default` (accounts without an override of their own)."""

    def __init__(self, default, values):
        super().__init__(values)
        self.default = default

    def get(self, key, fallback=None):
        return super().get(key, self.default)

    def __missing__(self, key):
        return self.default


def lot_rules(account_ids) -> dict:
    """account id → (lot_method, long_term_days) in effect for it (two queries)."""
    account_ids = list(account_ids)
    default, per_account = preferences_effective(account_ids=account_ids)
    return {
        a: (per_account.get(a, default).values["lot_method"], per_account.get(a, default).values["long_term_days"])
        for a in account_ids
    }


def account_preferences(account: PortfolioAccount) -> EffectivePreferences:
    default, per_account = preferences_effective(account_ids=[account.pk])
    return per_account.get(account.pk, replace(default, overridden=frozenset()))


def global_preferences() -> EffectivePreferences:
    return preferences_effective(account_ids=[])[0]


@dataclass(frozen=True)
class ApprovalThresholds:
    """The approval rule of the global preferences; both limits None: never needed."""

    gross_amount: Decimal | None = None
    order_count: int | None = None
    currency: str = "EUR"

    @property
    def active(self) -> bool:
        return self.gross_amount is not None or self.order_count is not None


def approval_thresholds() -> ApprovalThresholds:
    """The global row's approval thresholds (one query)."""
    row = (
        RebalancePreferences.objects.filter(is_global=True)
        .values_list("approval_gross_amount", "approval_order_count", "approval_currency").first()
    )
    return ApprovalThresholds(*row) if row else ApprovalThresholds()


def approval_values() -> dict:
    """The approval fields of the global row as the API shows them (defaults when unsaved)."""
    thresholds = approval_thresholds()
    return {
        "approval_gross_amount": thresholds.gross_amount,
        "approval_order_count": thresholds.order_count,
        "approval_currency": thresholds.currency,
    }


@transaction.atomic
def preferences_replace(*, values: dict, account: PortfolioAccount | None = None, user=None) -> RebalancePreferences:
    """Replace the global preferences (account None) or an account's overrides with
    `values`; fields left out go back to inheriting. `{}` clears every override.

    The approval fields (APPROVAL_FIELDS) belong to the global row only (given for an
    account: InvalidInput). Left out they keep their value, so a script that replaces
    the cash rules cannot switch four eyes off unnoticed; null sets the default (no
    limit, EUR). Changing them takes `rebalancing.approve_execution` (Forbidden, 403,
    naming the field): whoever may start executions must not lift their own limits.
    `user` None is the system (commands, migrations), which may."""
    preferences_validate(values, global_row=account is None)
    if account is None:
        row, _ = RebalancePreferences.objects.select_for_update().get_or_create(is_global=True)
        changed = []
        for name in APPROVAL_FIELDS:
            if name not in values:
                continue
            value = APPROVAL_DEFAULTS[name] if values[name] is None else values[name]
            if getattr(row, name) != value:
                changed.append(name)
            setattr(row, name, value)
        if changed and user is not None and not user.has_perm(APPROVE_PERMISSION):
            raise Forbidden(
                f"changing the approval thresholds needs the permission {APPROVE_PERMISSION}",
                [FieldError(name, f"changing it needs the permission {APPROVE_PERMISSION}") for name in changed],
            )
    else:
        row, _ = RebalancePreferences.objects.select_for_update().get_or_create(account=account)
    for name in PREFERENCE_FIELDS:
        setattr(row, name, values.get(name))
    row.updated_by = user if user and user.is_authenticated else None
    # Saved with its audit entry: the fields before → after (an account's first
    # overrides show as changed from None, i.e. from inheriting).
    audit_save(row, actor=user)
    return row
