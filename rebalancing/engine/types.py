"""Inputs and outputs of the engine: enums, frozen dataclasses and errors.

Identifiers (accounts, instruments) are opaque hashables: the Django side passes
UUIDs or strings; within one call use one kind. Currencies are ISO 4217 codes.
Every number is a ``Decimal``. Enum members are ``StrEnum`` so they compare equal
to the strings stored by Django's ``TextChoices``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from .precision import ZERO

Id = Hashable


def id_key(x: Hashable):
    """Sort key giving ids a deterministic order (pass ids of one kind per call)."""
    t = type(x)
    if t is str:
        return (1, x)
    if t is int:
        return (0, x)
    i = getattr(x, "int", None)  # uuid.UUID, without importing uuid
    if type(i) is int:
        return (2, i)
    return (3, t.__name__, str(x))

_HUNDRED = Decimal(100)


class InstrumentType(StrEnum):
    EQUITY = "EQUITY"
    ETF = "ETF"
    FUND = "FUND"
    BOND = "BOND"
    CRYPTO = "CRYPTO"
    FUTURE = "FUTURE"
    CASH = "CASH"


class FuturesCost(StrEnum):
    LATER = "LATER"  # buying costs no cash now
    IMMEDIATE = "IMMEDIATE"  # buying costs only its fees now


class CashAccountKind(StrEnum):
    CASH = "CASH"
    SETTLEMENT = "SETTLEMENT"
    MARGIN = "MARGIN"


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class TransactionType(StrEnum):
    """Transaction types the engine writes and recognises.

    ``DEPOSIT`` and ``WITHDRAWAL`` are cash movements (outstanding orders only);
    ``FX`` buys (or sells) a currency's CASH instrument against the order's
    currency (fx.py); the sell-all type is whatever ``Preferences.sell_all_transaction_type`` says.
    """

    BUY = "BUY"
    SELL = "SELL"
    SELL_ALL = "SELL_ALL"
    DEPOSIT = "DEPOSIT"
    WITHDRAWAL = "WITHDRAWAL"
    FX = "FX"  # a currency exchange between two cash accounts of the account (§9)


class ExecutionMethod(StrEnum):
    NET_TRADE_AMOUNT = "NET_TRADE_AMOUNT"
    UNITS = "UNITS"


class OrderStatus(StrEnum):
    PENDING_APPROVAL = "PENDING_APPROVAL"  # written by an execution waiting for approval; never kept nor replaced
    OPEN = "OPEN"
    ACCEPTED = "ACCEPTED"
    EXECUTABLE = "EXECUTABLE"
    SENT_TO_EXECUTION = "SENT_TO_EXECUTION"
    IN_EXECUTION = "IN_EXECUTION"
    PARTIALLY_EXECUTED = "PARTIALLY_EXECUTED"
    EXECUTED_IN_MARKET = "EXECUTED_IN_MARKET"
    SETTLED_IN_MARKET = "SETTLED_IN_MARKET"
    SETTLED = "SETTLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    REPLACED = "REPLACED"


# §4.6: orders in these statuses are kept and counted by a new rebalance.
KEPT_STATUSES = frozenset(
    {
        OrderStatus.ACCEPTED,
        OrderStatus.EXECUTABLE,
        OrderStatus.SENT_TO_EXECUTION,
        OrderStatus.IN_EXECUTION,
        OrderStatus.PARTIALLY_EXECUTED,
        OrderStatus.EXECUTED_IN_MARKET,
        OrderStatus.SETTLED_IN_MARKET,
    }
)


class OrderBasis(StrEnum):
    TRADE_AMOUNT = "TRADE_AMOUNT"
    UNITS = "UNITS"


class AvailableCash(StrEnum):
    ALL_ACCOUNTS = "ALL_ACCOUNTS"
    CASH_ACCOUNTS_ONLY = "CASH_ACCOUNTS_ONLY"
    DEFAULT_ACCOUNT_ONLY = "DEFAULT_ACCOUNT_ONLY"


class FxMode(StrEnum):
    """How buys in a currency the account lacks are paid (§9)."""

    AUTO = "AUTO"  # the custodian converts from the default cash account: no FX order
    EXPLICIT = "EXPLICIT"  # the rebalance proposes FX orders


class Method(StrEnum):
    CONSERVATIVE = "CONSERVATIVE"
    EXCHANGE = "EXCHANGE"
    FULL = "FULL"
    FULL_INCLUDING_ORDERS = "FULL_INCLUDING_ORDERS"


class ResultStatus(StrEnum):
    PROPOSED = "PROPOSED"
    NO_TRADES = "NO_TRADES"
    SKIPPED_LOCKED = "SKIPPED_LOCKED"
    SKIPPED_WITHIN_RANGE = "SKIPPED_WITHIN_RANGE"
    FAILED = "FAILED"


class Rule(StrEnum):
    """A restriction rule (§11)."""

    NO_BUY = "NO_BUY"  # never bought; a held position may stay and may be sold
    NO_SELL = "NO_SELL"  # never sold: held like a locked line
    NO_HOLD = "NO_HOLD"  # never bought; a held position is sold whole


class RestrictedWeightTo(StrEnum):
    """Where a model line's weight goes when the line may not be bought and no substitute fits."""

    CASH = "CASH"
    PRO_RATA = "PRO_RATA"


class Effect(StrEnum):
    """What a restriction changed in a result (``Adjustment.effect``)."""

    SUBSTITUTED = "SUBSTITUTED"  # the line's weight went to a substitute
    TO_CASH = "TO_CASH"  # ... to the cash target
    PRO_RATA = "PRO_RATA"  # ... to the model's other buyable lines
    HELD = "HELD"  # a position the rebalance would have sold was kept (NO_SELL)
    SOLD = "SOLD"  # a position was sold whole (NO_HOLD)


class WeightType(StrEnum):
    STATIC = "STATIC"
    FLOATING = "FLOATING"
    PERIODICAL = "PERIODICAL"


class PeriodType(StrEnum):
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    QUARTERLY = "QUARTERLY"
    ANNUALLY = "ANNUALLY"


# ---------------------------------------------------------------- errors


class EngineError(Exception):
    """Base class of the engine's errors."""


class DataError(EngineError):
    """The input data cannot be rebalanced (``rebalance`` returns FAILED)."""


class MissingPriceError(DataError):
    def __init__(self, label: str, on: date | None = None):
        self.label = label
        self.on = on
        when = f" at or before {on.isoformat()}" if on is not None else ""
        super().__init__(f"no price for {label}{when}")


class MissingFxRateError(DataError):
    def __init__(self, currency: str, base_currency: str, on: date | None = None):
        self.currency = currency
        self.base_currency = base_currency
        self.on = on
        when = f" at or before {on.isoformat()}" if on is not None else ""
        super().__init__(f"no FX rate for {currency}/{base_currency}{when}")


class UnknownInstrumentError(DataError):
    def __init__(self, instrument_id: Id):
        self.instrument_id = instrument_id
        super().__init__(f"unknown instrument {instrument_id}")


class InvalidInputError(DataError):
    """Inconsistent input: negative units, duplicate target lines, bad preferences..."""


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable thing. ``block_size`` None → the type's default decimals apply.

    ``futures_cost`` matters for FUTURE only (None counts as LATER).
    """

    id: Id
    type: InstrumentType
    currency: str
    isin: str | None = None
    block_size: Decimal | None = None
    futures_cost: FuturesCost | None = None
    tradable: bool = True

    @property
    def label(self) -> str:
        """The name used in error messages: the ISIN, else the id."""
        return self.isin or str(self.id)


@dataclass(frozen=True, slots=True)
class Position:
    instrument_id: Id
    units: Decimal


@dataclass(frozen=True, slots=True)
class CashAccount:
    currency: str
    balance: Decimal
    is_default: bool = False
    kind: CashAccountKind = CashAccountKind.CASH


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """An account and its sub-accounts (nested to any depth).

    A sub-account of a locked account is locked too. ``base_currency`` is used
    on the account being rebalanced (or valued) only.
    """

    id: Id
    base_currency: str
    locked: bool = False
    positions: tuple[Position, ...] = ()
    cash_accounts: tuple[CashAccount, ...] = ()
    sub_accounts: tuple[AccountSnapshot, ...] = ()


@dataclass(frozen=True, slots=True)
class TargetLine:
    """One line of the model. A CASH instrument line is the target cash share."""

    instrument_id: Id
    weight: Decimal
    min_weight: Decimal | None = None
    max_weight: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Market:
    """Instruments, prices and FX rates as of one date.

    ``prices``: instrument id → latest price at or before ``as_of`` in the
    instrument's currency (missing or None = no price).
    ``fx_rates``: currency → units of the account's BASE currency per 1 unit of
    that currency (value_in_base = amount × rate); the base currency itself is
    always 1. Invert the database's "quote per 1 base" rates before passing them.
    ``as_of`` is used in error messages only.

    Build one per (date, base currency) and pass it, with one targets tuple per
    model version, for every account of a run: the engine caches what it
    derives from them by identity. The mappings are copied into read-only
    proxies here, so a Market never changes after it is built.
    """

    instruments: Mapping[Id, Instrument]
    prices: Mapping[Id, Decimal | None]
    fx_rates: Mapping[str, Decimal | None] = field(default_factory=dict)
    as_of: date | None = None

    def __post_init__(self):
        # Snapshot the mappings: the engine caches what it derives from a
        # Market object, so it must not change after it is built.
        for name in ("instruments", "prices", "fx_rates"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))


@dataclass(frozen=True, slots=True)
class OutstandingOrder:
    """A trade order from an earlier run, not yet settled.

    ``trade_amount`` is in ``currency`` (None → the instrument's currency).
    DEPOSIT/WITHDRAWAL transaction types are cash movements: their instrument is
    ignored except for its currency, and ``currency`` may carry it instead
    (``instrument_id`` may then be None). ``counted`` False: the order's cash
    account is not counted by ``available_cash`` (§10), so it changes no cash
    (it still nets and holds its units).
    """

    account_id: Id
    instrument_id: Id | None
    side: Side
    transaction_type: str
    units: Decimal | None
    trade_amount: Decimal | None
    status: OrderStatus
    currency: str | None = None
    counted: bool = True  # False: paid from a cash account the available_cash scope leaves out (§10)


DEFAULT_DECIMALS: Mapping[InstrumentType, int] = MappingProxyType(
    {
        InstrumentType.EQUITY: 0,
        InstrumentType.ETF: 0,
        InstrumentType.FUND: 3,
        InstrumentType.BOND: 0,
        InstrumentType.CRYPTO: 8,
        InstrumentType.FUTURE: 0,
        InstrumentType.CASH: 2,
    }
)


@dataclass(frozen=True, slots=True)
class Preferences:
    """House rules of rebalancing (§4.2). ``_pct`` fields: 5 means 5 %.

    Amounts are in the account's base currency. ``default_decimals`` maps an
    instrument type to the decimals used when the instrument has no block size
    (missing types fall back to ``DEFAULT_DECIMALS``; values are capped at 10).
    ``futures_fee_pct``: the fee, as % of the notional, that buying an
    IMMEDIATE future costs now.
    """

    cash_range_min: Decimal | None = None
    cash_range_max: Decimal | None = None
    negative_cash_buffer_pct: Decimal = ZERO
    negative_cash_buffer_amount: Decimal = ZERO
    positive_cash_buffer_pct: Decimal = ZERO
    positive_cash_buffer_amount: Decimal = ZERO
    order_basis: OrderBasis = OrderBasis.TRADE_AMOUNT
    cash_from_sells_pct: Decimal = _HUNDRED
    min_trade_amount: Decimal = ZERO
    filter_by_min_max: bool = False
    sell_all_transaction_type: str = TransactionType.SELL_ALL
    available_cash: AvailableCash = AvailableCash.ALL_ACCOUNTS
    default_decimals: Mapping[InstrumentType, int] = field(default_factory=lambda: DEFAULT_DECIMALS)
    futures_fee_pct: Decimal = ZERO
    restricted_weight_to: RestrictedWeightTo = RestrictedWeightTo.CASH
    fx_mode: FxMode = FxMode.AUTO
    fx_repatriate: bool = False

    def __post_init__(self):
        if self.default_decimals is not DEFAULT_DECIMALS:
            merged = {**DEFAULT_DECIMALS, **self.default_decimals}
            object.__setattr__(self, "default_decimals", MappingProxyType(merged))


DEFAULT_PREFERENCES = Preferences()


@dataclass(frozen=True, slots=True)
class Restriction:
    """One restriction entry in effect for an account on the rebalance date.

    ``list_name`` names the restriction list it comes from (shown in adjustments).
    The caller passes only the entries in effect on the date.
    """

    instrument_id: Id
    rule: Rule
    list_name: str = ""


class Restrictions:
    """The effective restrictions of an account and the substitutes (§11), as plain data.

    ``entries``: the restriction entries of every list that applies to the account
    (FIRM lists and the account's own), in effect on the rebalance date; when several
    apply to one instrument the strictest wins (NO_HOLD > NO_BUY; NO_SELL with
    NO_BUY or NO_HOLD = frozen). ``substitutes``: instrument id → replacement ids in
    order of preference. Immutable once built. Build one object per distinct set of
    lists and pass the same object for every account it applies to: the engine
    caches what it derives from it by identity, as it does for a Market.
    """

    __slots__ = ("entries", "substitutes", "rules")

    def __init__(self, entries=(), substitutes: Mapping | None = None):
        entries = tuple(entries)
        object.__setattr__(self, "entries", entries)
        object.__setattr__(
            self, "substitutes", MappingProxyType({k: tuple(v) for k, v in (substitutes or {}).items()})
        )
        # instrument id → {rule: list name}; the first list by name gives the name shown.
        rules: dict = {}
        for e in sorted(entries, key=lambda e: (e.list_name, str(e.rule))):
            per = rules.setdefault(e.instrument_id, {})
            per.setdefault(Rule(e.rule), e.list_name)
        object.__setattr__(self, "rules", MappingProxyType({k: MappingProxyType(v) for k, v in rules.items()}))

    def __setattr__(self, name, value):
        raise AttributeError("Restrictions is immutable")

    def __repr__(self):
        return f"Restrictions(entries={self.entries!r}, substitutes={dict(self.substitutes)!r})"

    def __bool__(self):
        return bool(self.rules)

    def may_buy(self, instrument_id: Id) -> bool:
        """False when NO_BUY or NO_HOLD applies to the instrument."""
        per = self.rules.get(instrument_id)
        return per is None or (Rule.NO_BUY not in per and Rule.NO_HOLD not in per)

    def may_sell(self, instrument_id: Id) -> bool:
        per = self.rules.get(instrument_id)
        return per is None or Rule.NO_SELL not in per


NO_RESTRICTIONS = Restrictions()


# ---------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class OrderProposal:
    """One proposed trade order.

    ``trade_amount`` and ``unit_price`` are in ``currency`` (the instrument's).
    Sells come from the unlocked account holding the units; buys go into the
    account being rebalanced.
    """

    account_id: Id
    instrument_id: Id
    side: Side
    transaction_type: str
    units: Decimal
    unit_price: Decimal
    trade_amount: Decimal
    currency: str
    execution_method: ExecutionMethod


@dataclass(frozen=True, slots=True)
class RebalanceResult:
    """The outcome for one account. Amounts are in the base currency, 8 dp.

    ``cash_before``: counted cash of the whole group as held.
    ``cash_after``: the same once the counted outstanding orders and the new
    orders have executed at the prices used. ``excess_cash``: the cash the run
    worked with (§4.1, after outstanding orders and buffers). Amounts are None
    when the account could not be valued (FAILED, or SKIPPED_LOCKED with bad
    data).
    """

    account_id: Id
    status: ResultStatus
    orders: tuple[OrderProposal, ...] = ()
    total_value: Decimal | None = None
    cash_before: Decimal | None = None
    cash_after: Decimal | None = None
    excess_cash: Decimal | None = None
    reason: str = ""
    adjustments: tuple[Adjustment, ...] = ()
    # Asked for with ``rebalance(..., drift=True)``: the drift of the group as held (§7).
    drift: Drift | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Drift:
    """How far an account group as held drifts from its model (§7): what the stored
    drift of the cockpit keeps. Weights are quantized as in ``Valuation``; the group is
    valued without outstanding orders and against the model before restrictions.

    ``max_drift``: the largest |weight − target| over the lines and cash, on the line
    ``max_drift_instrument`` (None: cash; the first in line order on a tie).
    ``max_relative_drift``: the largest |drift| / target over the lines with a target
    (cash included), unrounded; None when no line has one. ``untargeted``: a line
    without a target has a weight (an infinite relative drift). ``outside_limits``: a
    model line's weight lies outside its min/max weight.
    """

    total_value: Decimal
    max_drift: Decimal
    max_drift_instrument: Id | None
    max_relative_drift: Decimal | None
    untargeted: bool
    outside_limits: bool

    def exceeds(self, absolute_drift: Decimal | None = None, relative_drift: Decimal | None = None) -> bool:
        """True when the drift passes a threshold, as ``drift_exceeds`` judges a valuation."""
        if absolute_drift is not None and self.max_drift > absolute_drift:
            return True
        if relative_drift is not None:
            if self.untargeted:
                return True
            if self.max_relative_drift is not None and self.max_relative_drift > relative_drift:
                return True
        return False


@dataclass(frozen=True, slots=True)
class Adjustment:
    """One change the restrictions made to a result (§11).

    ``rule`` caused ``effect`` on ``instrument_id``; ``list_name`` is the list the
    rule comes from; ``substitute_id`` is set for SUBSTITUTED only.
    """

    instrument_id: Id
    rule: Rule
    effect: Effect
    list_name: str = ""
    substitute_id: Id | None = None


@dataclass(frozen=True, slots=True)
class LineValuation:
    """One instrument in a valuation. ``value`` is in base currency.

    For a future, ``value`` is its exposure (units × price × FX), which is not
    part of the total value. ``locked_units`` are the units held in locked
    accounts (they count, but are never traded).
    """

    instrument_id: Id
    units: Decimal
    locked_units: Decimal
    price: Decimal
    value: Decimal
    weight: Decimal
    target_weight: Decimal
    drift: Decimal


@dataclass(frozen=True, slots=True)
class Valuation:
    """An account group valued in the base currency (§3).

    ``cash``: counted cash of every account of the group; ``investable_cash``:
    the part held in unlocked accounts. Weights are on ``total_value``;
    ``drift`` = weight − target weight.
    """

    account_id: Id
    base_currency: str
    total_value: Decimal
    cash: Decimal
    investable_cash: Decimal
    cash_weight: Decimal
    cash_target_weight: Decimal
    cash_drift: Decimal
    lines: tuple[LineValuation, ...]
