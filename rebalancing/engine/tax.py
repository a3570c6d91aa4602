"""Tax lots in the engine (§12): relief order and the tax-aware step of a rebalance.

Pure Python. A lot is a plain tuple ``(lot_id, acquired_ordinal, units, unit_cost)``
(``acquired_ordinal`` is ``date.toordinal()``; ``unit_cost`` None: unknown), in the
instrument's currency. The tax-aware step runs after the normal rebalance: it takes
its ``RebalanceResult`` and changes the orders, in this order (docs/tax.md):

1. wash sale: a buy of an instrument sold at a loss in the window goes to the first
   eligible substitute, else stays cash;
2. every sell picks its lots by ``lot_method``, skipping short-term gains when
   ``avoid_short_term_gains`` (unless the line must go regardless);
3. loss harvesting: loss lots past both thresholds are sold and their proceeds buy
   the first eligible substitute;
4. the gain budget: sells are cut, most gain per unit of drift fixed first, until
   this year's gains plus the estimate fit ``max_realized_gain``; buys shrink with
   the cash the cut sells no longer raise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_DOWN, ROUND_FLOOR, Decimal, localcontext
from enum import StrEnum
from operator import itemgetter

from .precision import ENGINE_CONTEXT, HUNDRED, Q_MONEY, ZERO
from .rounding import UnitRounder
from .types import (
    ExecutionMethod,
    Id,
    Market,
    OrderProposal,
    RebalanceResult,
    Restrictions,
    ResultStatus,
    Side,
    TransactionType,
)

Lot = tuple  # (lot_id, acquired_ordinal: int, units: Decimal, unit_cost: Decimal | None)
_ACQUIRED = itemgetter(1)  # the selector passes lots sorted by (acquired, id): a stable sort keeps ties
_ONE = Decimal(1)


class AcquiredLots:
    """A position's lots known to be in (acquired, id) order, the order FIFO relieves
    them, which may make each lot only when it is read (a lot source of the caller's,
    e.g. one text per position from the database). Given as a value of
    ``TaxData.lots``, it spares the common case its sort: a FIFO sell without kept
    outstanding sells and without limits reads its lots in the order given and stops at
    its units; every other use reads them all, as a tuple's. A tuple or list may come
    in any order (the step sorts it). Subclasses implement ``__iter__``, ``__len__`` and
    ``__getitem__``; the class is registered as a Sequence rather than derived from the
    ABC, so telling it apart costs the hot path no ``__instancecheck__``."""

    __slots__ = ()


Sequence.register(AcquiredLots)


class LotMethod(StrEnum):
    FIFO = "FIFO"
    LIFO = "LIFO"
    HIFO = "HIFO"
    MIN_TAX = "MIN_TAX"


class Term(StrEnum):
    SHORT = "SHORT"
    LONG = "LONG"


@dataclass(frozen=True, slots=True)
class TaxPreferences:
    """The preferences of §12. Amounts in the base currency; ``_pct``: 5 means 5 %."""

    lot_method: LotMethod = LotMethod.FIFO
    long_term_days: int = 365
    tax_aware: bool = False
    max_realized_gain: Decimal | None = None
    avoid_short_term_gains: bool = False
    sell_removed_lines_regardless: bool = True
    harvest_losses: bool = False
    harvest_min_loss_pct: Decimal = Decimal(5)
    harvest_min_loss_amount: Decimal = Decimal(100)
    wash_sale_days: int = 30


DEFAULT_TAX_PREFERENCES = TaxPreferences()


def term_of(acquired: int, on: int, long_term_days: int) -> Term:
    """LONG when the lot was held more than ``long_term_days`` days on day ``on``."""
    return Term.LONG if on - acquired > long_term_days else Term.SHORT


def relief_order(lots, method: LotMethod, price: Decimal | None = None, on: int = 0, long_term_days: int = 365) -> list:
    """``lots`` in the order a sell relieves them.

    FIFO oldest first, LIFO newest first, HIFO highest unit cost first (ties keep
    the order given: pass lots oldest first, then by id); MIN_TAX (needs ``price``) losses first, largest loss per unit first, then
    long-term gains, then short-term gains, smallest gain per unit first. Lots of
    unknown cost come last under HIFO and MIN_TAX, oldest first.
    """
    if method == LotMethod.FIFO:
        return sorted(lots, key=_ACQUIRED)  # stable: lots of one day keep the order given (by id)
    if method == LotMethod.LIFO:
        return sorted(lots, key=_ACQUIRED, reverse=True)
    if type(lots) is not tuple and type(lots) is not list:
        lots = tuple(lots)  # read twice below
    known = [lot for lot in lots if lot[3] is not None]
    unknown = sorted((lot for lot in lots if lot[3] is None), key=_ACQUIRED)
    if method == LotMethod.HIFO:
        return sorted(known, key=lambda lot: (-lot[3], lot[1])) + unknown
    if price is None:
        raise ValueError("MIN_TAX needs the price")

    def min_tax(lot):
        gain = price - lot[3]
        if gain < ZERO:
            return (0, gain, lot[1])
        return (1 if on - lot[1] > long_term_days else 2, gain, lot[1])

    return sorted(known, key=min_tax) + unknown


def relieve(lots, units: Decimal, method: LotMethod, price: Decimal | None = None, on: int = 0,
            long_term_days: int = 365) -> list[tuple[Lot, Decimal]]:
    """The (lot, units taken) pairs that relieve ``units`` by ``method``; they add up
    to ``units`` exactly. ValueError when the lots hold fewer units."""
    out = []
    left = units
    for lot in relief_order(lots, method, price, on, long_term_days):
        if left <= ZERO:
            break
        take = lot[2] if lot[2] <= left else left
        out.append((lot, take))
        left -= take
    if left > ZERO:
        raise ValueError(f"the lots hold {units - left} units, {units} to relieve")
    return out


@dataclass(frozen=True, slots=True)
class TaxData:
    """What the tax-aware step knows of one account group, as plain data.

    ``lots``: (account id, instrument id) → lots (a tuple or list in any order, or an
    ``AcquiredLots``), for the unlocked accounts.
    ``substitutes``, ``instruments``, ``prices``: the substitutes of the instruments
    held, and the instruments and prices of those the market does not have.
    ``realized_this_year``: the known net realized gain (base currency) of this
    calendar year so far. ``loss_sales``: instrument id → ordinal of the latest sale at
    a loss in the group. ``on``: the rebalance date's ordinal. ``must_sell``:
    instruments whose sells go ahead regardless (NO_HOLD, lines removed from the
    model), when ``sell_removed_lines_regardless``. ``pending_sells``: (account id,
    instrument id) → units kept outstanding sells will relieve first.
    """

    lots: Mapping
    on: int
    realized_this_year: Decimal = ZERO
    loss_sales: Mapping = field(default_factory=dict)
    must_sell: frozenset = frozenset()
    pending_sells: Mapping = field(default_factory=dict)
    substitutes: Mapping = field(default_factory=dict)  # instrument id → substitute ids in order (§11)
    instruments: Mapping = field(default_factory=dict)  # substitutes the market lacks: id → Instrument
    prices: Mapping = field(default_factory=dict)  # and their prices
    base_currency: str = ""


@dataclass(frozen=True, slots=True)
class SellLots:
    """The lots a proposed sell relieves and its estimated gain (base currency; the
    known lots only; None when every lot is of unknown cost)."""

    account_id: Id
    instrument_id: Id
    lots: tuple  # ((lot_id, units), ...)
    estimated_gain: Decimal | None
    unknown_cost_units: Decimal = ZERO  # of lots of unknown cost (named in ``lots``) and of ``unlotted_units``
    unlotted_units: Decimal = ZERO  # sold beyond the lots known (counted as of unknown cost)


@dataclass(frozen=True, slots=True)
class TaxOutcome:
    result: RebalanceResult
    sells: tuple[SellLots, ...] = ()
    short: Decimal = ZERO
    long: Decimal = ZERO
    unknown_cost_units: Decimal = ZERO
    harvested: tuple = ()  # instrument ids sold for a loss harvest


class _Sell:
    """A sell being shaped: its order, the lots it takes and their gains."""

    __slots__ = ("order", "picks", "fx", "price", "must")

    def __init__(self, order, picks, fx, price, must=False):
        self.order, self.picks, self.fx, self.price, self.must = order, picks, fx, price, must

    @property
    def units(self) -> Decimal:
        return sum((take for _, take in self.picks), ZERO)

    def gain(self) -> Decimal:
        return sum(((self.price - lot[3]) * take * self.fx for lot, take in self.picks if lot[3] is not None), ZERO)


def tax_adjust(
    result: RebalanceResult, market: Market, prefs: TaxPreferences, data: TaxData,
    restrictions: Restrictions | None = None, default_decimals=None,
) -> TaxOutcome:
    """Apply the tax-aware rules to ``result`` (its orders come from ``rebalance``
    with the same market). With every limit off (no budget, no short-term avoidance,
    no harvest, a wash-sale window of 0 days) the orders are the result's own."""
    with localcontext(ENGINE_CONTEXT):
        return _tax_adjust(result, market, prefs, data, restrictions, default_decimals)


def _fx(market: Market, currency: str) -> Decimal:
    rate = market.fx_rates.get(currency)
    return rate if rate is not None else Decimal(1)


def _rounder(market: Market, iid, decimals, cache: dict, data=None) -> UnitRounder:
    r = cache.get(iid)
    if r is None:
        instrument = market.instruments.get(iid) or data.instruments[iid]
        r = cache[iid] = UnitRounder(instrument, decimals) if decimals else UnitRounder(instrument)
    return r


def _instrument(iid, market, data):
    found = market.instruments.get(iid)
    return found if found is not None else data.instruments.get(iid)


def _price(iid, market, data):
    found = market.prices.get(iid)
    return found if found is not None else data.prices.get(iid)


def _substitute(iid, market, restrictions, washed, data) -> Id | None:
    """The first substitute of ``iid`` the account may buy, tradable, priced, in a
    currency the market has a rate for, and not in a wash-sale window."""
    for sub in data.substitutes.get(iid, ()):
        instrument = _instrument(sub, market, data)
        if instrument is None or not instrument.tradable or _price(sub, market, data) is None:
            continue
        if instrument.currency != data.base_currency and market.fx_rates.get(instrument.currency) is None:
            continue
        if (restrictions is None or restrictions.may_buy(sub)) and sub not in washed:
            return sub
    return None


def _buy(account_id, iid, amount_base: Decimal, market: Market, rounder: UnitRounder, data) -> OrderProposal | None:
    instrument = _instrument(iid, market, data)
    price = _price(iid, market, data)
    amount = amount_base / _fx(market, instrument.currency)
    units = rounder(amount / price)
    if units <= ZERO:
        return None
    return OrderProposal(
        account_id, iid, Side.BUY, TransactionType.BUY, units, price,
        (units * price).quantize(Q_MONEY, ROUND_DOWN), instrument.currency, ExecutionMethod.UNITS,
    )


def _name_lots(result, fx_rates, prefs, lots_of, on, pending_of) -> TaxOutcome:
    """The common case, kept fast: no limit applies, so the orders stay as they are and
    each sell only names its lots (by lot_method) and its estimated gain."""
    long_days = prefs.long_term_days
    method = prefs.lot_method
    fifo = method == LotMethod.FIFO
    sell_side, fx_type = Side.SELL, TransactionType.FX
    short = long = unknown = ZERO
    out = []
    for o in result.orders:
        if o.side != sell_side or o.transaction_type == fx_type:
            continue
        key = (o.account_id, o.instrument_id)
        lots = lots_of.get(key, ())
        pending = pending_of.get(key) if pending_of else None
        price = o.unit_price
        if pending:
            lots = _without(lots, pending, method, price, on, long_days)  # in relief order already
        elif type(lots) is not tuple and isinstance(lots, AcquiredLots):
            if not fifo:  # (LIFO keeps lots of one day in id order: not simply reversed)
                lots = relief_order(lots, method, price, on, long_days)
            # FIFO: read in the order given, only as far as the units go
        elif len(lots) > 1:
            lots = relief_order(lots, method, price, on, long_days)
        left = o.units
        named = []
        sell_short = sell_long = ZERO
        known = False
        sell_unknown = ZERO
        if left > ZERO:
            for lot in lots:  # stops once the units are covered: a lazy source makes no lot beyond
                units = lot[2]
                take = units if units <= left else left
                left -= take
                named.append((lot[0], take))
                cost = lot[3]
                if cost is None:
                    sell_unknown += take
                elif on - lot[1] > long_days:
                    sell_long += (price - cost) * take
                    known = True
                else:
                    sell_short += (price - cost) * take
                    known = True
                if left <= ZERO:
                    break
        unlotted = left if left > ZERO else ZERO
        sell_unknown += unlotted
        gain = None
        if known:
            rate = fx_rates.get(o.currency)
            if rate is not None and rate != _ONE:
                sell_short *= rate
                sell_long *= rate
            short += sell_short
            long += sell_long
            gain = (sell_short + sell_long).quantize(Q_MONEY, ROUND_FLOOR)
        unknown += sell_unknown
        out.append(SellLots(o.account_id, o.instrument_id, tuple(named), gain, sell_unknown, unlotted))
    return TaxOutcome(result, tuple(out), short.quantize(Q_MONEY, ROUND_FLOOR), long.quantize(Q_MONEY, ROUND_FLOOR), unknown)


def only_names_lots(prefs: TaxPreferences, loss_sales) -> bool:
    """True when no limit applies to an account with these preferences and recent loss
    sales (no gain budget, no short-term avoidance, no harvest, no wash-sale window
    with a loss sale in it to look at): ``tax_adjust`` then only names each sell's
    lots, as ``lots_named`` does."""
    return (prefs.max_realized_gain is None and not prefs.avoid_short_term_gains and not prefs.harvest_losses
            and not (prefs.wash_sale_days and loss_sales))


def lots_named(
    result: RebalanceResult, market: Market, prefs: TaxPreferences, lots: Mapping, on: int,
    pending_sells: Mapping | None = None,
) -> TaxOutcome:
    """``tax_adjust`` of an account to which no limit applies (``only_names_lots``): the
    orders stay as they are and each sell names its lots by ``lot_method`` and its
    estimated gain. Needs only the lots (as ``TaxData.lots``), the day and the units of
    kept outstanding sells (as ``TaxData.pending_sells``)."""
    with localcontext(ENGINE_CONTEXT):
        return _name_lots(result, market.fx_rates, prefs, lots, on, pending_sells)


def _tax_adjust(result, market, prefs, data, restrictions, decimals) -> TaxOutcome:
    if only_names_lots(prefs, data.loss_sales):
        return _name_lots(result, market.fx_rates, prefs, data.lots, data.on, data.pending_sells)
    on = data.on
    long_days = prefs.long_term_days
    method = prefs.lot_method
    rounders: dict = {}
    washed = {iid for iid, day in data.loss_sales.items() if on - day < prefs.wash_sale_days} if prefs.wash_sale_days else set()
    slots = []  # the result's orders in their order, a sell as its _Sell
    sells: list[_Sell] = []
    freed = ZERO  # base-currency cash freed (+) or used (−) by the changes
    for order in result.orders:
        if order.transaction_type == TransactionType.FX:
            slots.append(order)
            continue
        fx = _fx(market, order.currency)
        if order.side == Side.BUY:
            if order.instrument_id in washed:  # 1. wash sale
                amount_base = order.trade_amount * fx
                sub = _substitute(order.instrument_id, market, restrictions, washed, data)
                new = None
                if sub is not None:
                    new = _buy(order.account_id, sub, amount_base, market, _rounder(market, sub, decimals, rounders, data), data)
                if new is not None:
                    slots.append(new)
                    freed += amount_base - new.trade_amount * _fx(market, new.currency)
                else:
                    freed += amount_base
                continue
            slots.append(order)
            continue
        key = (order.account_id, order.instrument_id)
        lots = data.lots.get(key, ())
        pending = data.pending_sells.get(key)
        if pending:
            lots = _without(lots, pending, method, order.unit_price, on, long_days)
        must = order.instrument_id in data.must_sell
        picks = []
        left = order.units
        for lot in relief_order(lots, method, order.unit_price, on, long_days):  # 2. lots of each sell
            if left <= ZERO:
                break
            if (prefs.avoid_short_term_gains and not must and lot[3] is not None and order.unit_price > lot[3]
                    and on - lot[1] <= long_days):
                continue
            take = lot[2] if lot[2] <= left else left
            picks.append((lot, take))
            left -= take
        if left > ZERO and not (prefs.avoid_short_term_gains and not must):
            # More units than lots (an account outside the lot book): sold as proposed,
            # the rest counted as of unknown cost.
            picks.append(((None, on, left, None), left))
        sell = _Sell(order, picks, fx, order.unit_price, must)
        if left > ZERO and prefs.avoid_short_term_gains and not must:
            freed -= _shrink(sell, market, decimals, rounders)
        sells.append(sell)
        slots.append(sell)
    if prefs.harvest_losses:  # 3. loss harvesting
        for sell, buy in _harvest(result, market, prefs, data, restrictions, decimals, rounders, washed):
            sells.append(sell)
            slots.extend((sell, buy))
    if prefs.max_realized_gain is not None:  # 4. the gain budget
        budget = prefs.max_realized_gain - data.realized_this_year
        total = sum((s.gain() for s in sells), ZERO)
        if total > budget:
            ranked = sorted(
                (s for s in sells if not s.must and s.gain() > ZERO),
                key=lambda s: s.gain() / (s.units * s.price * s.fx), reverse=True,
            )
            for sell in ranked:
                if total <= budget:
                    break
                before_gain = sell.gain()
                freed -= _cut(sell, total - budget, market, decimals, rounders)
                total += sell.gain() - before_gain
            if total > budget:  # the rounding left some: drop the cut sells whole
                for sell in ranked:
                    if total <= budget:
                        break
                    if sell.picks:
                        total -= sell.gain()
                        freed -= sell.units * sell.price * sell.fx
                        sell.picks = []
    final = []
    for item in slots:
        if type(item) is _Sell:
            if not item.picks:
                continue
            o = item.order
            units = item.units
            if units != o.units:
                item.order = o = replace(
                    o, units=units, trade_amount=(units * o.unit_price).quantize(Q_MONEY, ROUND_DOWN),
                    execution_method=ExecutionMethod.UNITS,
                )
            final.append(o)
        else:
            final.append(item)
    if freed < ZERO:  # 4b. buys shrink with the cash the cut sells no longer raise
        final = _shrink_buys(final, -freed, market, decimals, rounders)
    return _outcome(result, tuple(final), [s for s in sells if s.picks], on, long_days, market)


def _without(lots, units, method, price, on, long_days):
    """``lots`` once ``units`` (kept outstanding sells) have been relieved by ``method``."""
    left = units
    out = []
    for lot in relief_order(lots, method, price, on, long_days):
        if left <= ZERO:
            out.append(lot)
        elif lot[2] <= left:
            left -= lot[2]
        else:
            out.append((lot[0], lot[1], lot[2] - left, lot[3]))
            left = ZERO
    return out


def _shrink(sell: _Sell, market, decimals, rounders) -> Decimal:
    """Round the sell's units down to the block; returns the base value no longer sold."""
    before = sell.order.units
    units = _rounder(market, sell.order.instrument_id, decimals, rounders)(sell.units)
    _keep_units(sell, units)
    return (before - units) * sell.price * sell.fx


def _keep_units(sell: _Sell, units: Decimal) -> None:
    picks, left = [], units
    for lot, take in sell.picks:
        if left <= ZERO:
            break
        take = take if take <= left else left
        picks.append((lot, take))
        left -= take
    sell.picks = picks


def _cut(sell: _Sell, excess: Decimal, market, decimals, rounders) -> Decimal:
    """Take units off the end of the sell's lots until its gain is ``excess`` lower
    (or the sell is gone); returns the base value no longer sold."""
    before = sell.units
    picks = list(sell.picks)
    while picks and excess > ZERO:
        lot, take = picks[-1]
        per_unit = (sell.price - lot[3]) * sell.fx if lot[3] is not None else ZERO
        if per_unit <= ZERO or take * per_unit <= excess:
            picks.pop()
            excess -= take * per_unit
            continue
        drop = excess / per_unit
        picks[-1] = (lot, take - drop)
        excess = ZERO
    sell.picks = picks
    units = _rounder(market, sell.order.instrument_id, decimals, rounders)(sell.units)
    _keep_units(sell, units)
    return (before - sell.units) * sell.price * sell.fx


def _shrink_buys(orders, amount: Decimal, market, decimals, rounders):
    """Scale the buys down together so they use ``amount`` (base) less cash."""
    buys = [o for o in orders if o.side == Side.BUY and o.transaction_type != TransactionType.FX]
    total = sum((o.trade_amount * _fx(market, o.currency) for o in buys), ZERO)
    if total <= ZERO:
        return orders
    keep = max(ZERO, (total - amount) / total)
    out = []
    for o in orders:
        if o.side != Side.BUY or o.transaction_type == TransactionType.FX:
            out.append(o)
            continue
        units = _rounder(market, o.instrument_id, decimals, rounders)(o.units * keep)
        if units > ZERO:
            out.append(replace(o, units=units, trade_amount=(units * o.unit_price).quantize(Q_MONEY, ROUND_DOWN),
                               execution_method=ExecutionMethod.UNITS))
    return out


def _harvest(result, market, prefs, data, restrictions, decimals, rounders, washed) -> list:
    """(sell, substitute buy) pairs: the loss lots past both thresholds of the positions
    the run does not trade, none bought in the wash-sale window, when a substitute fits."""
    traded = {(o.account_id, o.instrument_id) for o in result.orders}
    out = []
    min_pct = prefs.harvest_min_loss_pct
    min_amount = prefs.harvest_min_loss_amount
    recent = data.on - prefs.wash_sale_days
    for (account_id, iid), lots in data.lots.items():
        if (account_id, iid) in traded or iid in data.must_sell:
            continue
        price = market.prices.get(iid)
        instrument = market.instruments.get(iid)
        if price is None or instrument is None or not instrument.tradable:
            continue
        if restrictions is not None and not restrictions.may_sell(iid):
            continue
        fx = _fx(market, instrument.currency)
        picks = []
        for lot in lots:
            cost = lot[3]
            if cost is None or cost <= price or lot[1] > recent or cost == ZERO:
                continue
            if (cost - price) * HUNDRED < min_pct * cost or (cost - price) * lot[2] * fx < min_amount:
                continue
            picks.append((lot, lot[2]))
        if not picks:
            continue
        sub = _substitute(iid, market, restrictions, washed, data)
        if sub is None:
            continue
        units = _rounder(market, iid, decimals, rounders)(sum((t for _, t in picks), ZERO))
        if units <= ZERO:
            continue
        order = OrderProposal(account_id, iid, Side.SELL, TransactionType.SELL, units, price,
                              (units * price).quantize(Q_MONEY, ROUND_DOWN), instrument.currency, ExecutionMethod.UNITS)
        sell = _Sell(order, picks, fx, price, must=True)  # a harvest is never cut by the budget: it lowers the gain
        _keep_units(sell, units)
        buy = _buy(account_id, sub, order.trade_amount * fx, market, _rounder(market, sub, decimals, rounders, data), data)
        if buy is None:
            continue
        out.append((sell, buy))
    return out


def _outcome(result, orders, sells, on, long_days, market) -> TaxOutcome:
    short = long = unknown = ZERO
    out = []
    for sell in sells:
        gain = None
        unknown_units = unlotted = ZERO
        for lot, take in sell.picks:
            if lot[0] is None:
                unlotted += take
            if lot[3] is None:
                unknown_units += take
                continue
            g = (sell.price - lot[3]) * take * sell.fx
            gain = g if gain is None else gain + g
            if on - lot[1] > long_days:
                long += g
            else:
                short += g
        unknown += unknown_units
        out.append(SellLots(
            sell.order.account_id, sell.order.instrument_id,
            tuple((lot[0], take) for lot, take in sell.picks if lot[0] is not None),
            None if gain is None else gain.quantize(Q_MONEY, ROUND_FLOOR), unknown_units, unlotted,
        ))
    cash_after = result.cash_after
    if cash_after is not None and orders != result.orders:
        cash_after = (cash_after + _net(result.orders, market) - _net(orders, market)).quantize(Q_MONEY)
    if orders != result.orders:
        status = result.status
        if orders and status == ResultStatus.NO_TRADES:
            status = ResultStatus.PROPOSED
        elif not orders and status == ResultStatus.PROPOSED:
            status = ResultStatus.NO_TRADES
        new = replace(result, orders=orders, cash_after=cash_after, status=status)
    else:
        new = result
    return TaxOutcome(new, tuple(out), short.quantize(Q_MONEY, ROUND_FLOOR), long.quantize(Q_MONEY, ROUND_FLOOR), unknown)


def _net(orders, market) -> Decimal:
    """Buys minus sells in the base currency (FX orders move no value)."""
    return sum(((o.trade_amount if o.side == Side.BUY else -o.trade_amount) * _fx(market, o.currency) for o in orders
                if o.transaction_type != TransactionType.FX), ZERO)
