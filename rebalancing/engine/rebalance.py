"""Rebalancing one account group into trade order proposals (§4, §5).

All amounts below are in the base currency of the account being rebalanced.

T      total value of the group (§3), less kept withdrawals.
CT     cash target = cash share of the model × T.
Cu/Cl  counted cash of the unlocked / locked accounts, after the kept orders the
       method counts (§4.6).
W      Cu after the buffer (§4.3); a positive buffer never takes W below 0.
E      excess cash = min(W, W + Cl − CT): locked cash counts toward the cash
       target like any locked holding, but is never spent.
P      proceeds of the new sells (futures excluded), from the final, rounded
       orders; buys may spend at most E + cash_from_sells × P (never below 0).

Raising an amount R by selling (a shortfall, or EXCHANGE funding its buys):
1. holdings to sell whole (not in the model) that fit in what is still to
   raise, largest first;
2. overweight lines in proportion to their excess, never past their target;
3. shortfall only: if still short, the smallest remaining whole position;
4. shortfall only: all lines in proportion to their target weights, each at
   most what its unlocked accounts hold (the min/max filter does not apply).

Orders come out sells first, then buys, each in line order (target lines by
id, then other holdings by id) and account order (the rebalanced account, then
sub-accounts by id).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from decimal import ROUND_DOWN, Context, Decimal, getcontext, setcontext

from . import fx as _fx
from .group import Group, Line, build_group, prepare_model
from .restrictions import restrict
from .valuation import group_drift
from .precision import DUST, ENGINE_CONTEXT, HUNDRED, Q_MONEY, Q_PRICE, ZERO
from .types import (
    DEFAULT_PREFERENCES,
    AccountSnapshot,
    DataError,
    Effect,
    ExecutionMethod,
    FxMode,
    InvalidInputError,
    Market,
    Method,
    OrderBasis,
    OrderProposal,
    OutstandingOrder,
    Preferences,
    RebalanceResult,
    Restrictions,
    ResultStatus,
    Side,
    TargetLine,
    TransactionType,
)

_BUY = Side.BUY
_SELL = Side.SELL
_TT_BUY = TransactionType.BUY.value
_TT_SELL = TransactionType.SELL.value
_UNITS = ExecutionMethod.UNITS
_NET = ExecutionMethod.NET_TRADE_AMOUNT
_FIO = Method.FULL_INCLUDING_ORDERS
_EXCHANGE = Method.EXCHANGE
_CONSERVATIVE = Method.CONSERVATIVE
_EXPLICIT = FxMode.EXPLICIT
_METHODS = frozenset(Method)
_PREFERENCE_AMOUNTS = (
    "negative_cash_buffer_pct",
    "negative_cash_buffer_amount",
    "positive_cash_buffer_pct",
    "positive_cash_buffer_amount",
    "min_trade_amount",
    "futures_fee_pct",
)


def rebalance(
    account: AccountSnapshot,
    targets: Sequence[TargetLine],
    market: Market,
    preferences: Preferences = DEFAULT_PREFERENCES,
    method: Method = Method.FULL,
    outstanding_orders: Iterable[OutstandingOrder] = (),
    restrictions: Restrictions | None = None,
    instrument_ids: frozenset | None = None,
    *,
    drift: bool = False,
) -> RebalanceResult:
    """Propose the trade orders that rebalance ``account`` towards ``targets``.

    ``targets``: the weights on the rebalance date (see ``target_lines_on``);
    pass the same tuple and ``Market`` for every account of a run: what the
    engine derives from them is cached. ``outstanding_orders``: the group's
    orders of earlier runs that are not settled, any status (only the kept
    statuses count; OPEN ones are to be replaced). ``restrictions``: the
    account's effective restrictions and substitutes (§11, restrictions.py); pass
    one object per distinct set of lists. ``instrument_ids`` (§10): only lines
    of these instruments get orders (FX orders that fund them aside); the other
    holdings keep their units and still count in the total. ``drift``: also
    give the group's drift as held (``result.drift``, as ``account_drift`` computes
    it) from the group the rebalance builds anyway; None when the account could not
    be valued. Never raises for bad data: returns status FAILED with the reason.
    """
    saved = getcontext()
    setcontext(_engine_context())
    try:
        return _rebalance(
            account, targets, market, preferences, method, outstanding_orders, restrictions, instrument_ids, drift
        )
    except DataError as exc:
        return RebalanceResult(account.id, ResultStatus.FAILED, reason=str(exc))
    except ArithmeticError as exc:  # a decimal signal: absurd magnitudes
        return RebalanceResult(account.id, ResultStatus.FAILED, reason=f"arithmetic error: {exc!r}")
    finally:
        setcontext(saved)


_thread = threading.local()


def _engine_context() -> Context:
    """Return this thread's copy of ENGINE_CONTEXT (cheaper than ``localcontext`` per call)."""
    try:
        return _thread.context
    except AttributeError:
        _thread.context = ENGINE_CONTEXT.copy()
        return _thread.context


_CHECKED: dict = {}


def _check_preferences(p: Preferences) -> None:
    """Validate ``p``; remembered per object (preferences are frozen)."""
    if _CHECKED.get(id(p)) is p:
        return
    for name in _PREFERENCE_AMOUNTS:
        if getattr(p, name) < ZERO:
            raise InvalidInputError(f"preference {name} is negative")
    if not ZERO <= p.cash_from_sells_pct <= HUNDRED:
        raise InvalidInputError("preference cash_from_sells_pct is outside 0..100")
    if p.order_basis != OrderBasis.TRADE_AMOUNT and p.order_basis != OrderBasis.UNITS:
        raise InvalidInputError(f"unknown order basis {p.order_basis!r}")
    if p.fx_mode != FxMode.AUTO and p.fx_mode != FxMode.EXPLICIT:
        raise InvalidInputError(f"unknown fx_mode {p.fx_mode!r}")
    if len(_CHECKED) >= 64:
        _CHECKED.clear()
    _CHECKED[id(p)] = p  # holding ``p`` keeps its id from being reused


def _result(g: Group, account_id, status, orders=(), cash_after=None, excess=None, reason="", adjustments=()):
    if cash_after is None:
        cash_after = g.cash_unlocked + g.cash_locked
    return _new_result(
        account_id,
        status,
        tuple(orders),
        g.total.quantize(Q_MONEY),
        g.cash_before.quantize(Q_MONEY),
        cash_after.quantize(Q_MONEY),
        excess.quantize(Q_MONEY) if excess is not None else None,
        reason,
        adjustments,
        g.drift,
    )


def _drift_of(g: Group, account, model, scope, outstanding_orders):
    """The group's Drift as held: from ``g`` itself unless outstanding orders changed it."""
    if outstanding_orders:
        g = build_group(account, model, scope)
    return group_drift(g, model)


def _rebalance(
    account, targets, market, prefs, method, outstanding_orders, restrictions, only, want_drift=False
) -> RebalanceResult:
    _check_preferences(prefs)
    if method not in _METHODS:
        raise InvalidInputError(f"unknown method {method!r}")
    fio = method == _FIO
    fee = prefs.futures_fee_pct / HUNDRED if prefs.futures_fee_pct else ZERO
    scope = prefs.available_cash

    if account.locked:
        try:
            model = prepare_model(market, targets, account.base_currency, prefs.default_decimals)
            g = build_group(account, model, scope, outstanding_orders, fio, fee)
            if want_drift:
                g.drift = _drift_of(g, account, model, scope, outstanding_orders)
        except DataError:
            return RebalanceResult(account.id, ResultStatus.SKIPPED_LOCKED, reason="the account is locked")
        return _result(g, account.id, ResultStatus.SKIPPED_LOCKED, reason="the account is locked")
    if not targets:
        raise InvalidInputError("the account has no target lines")

    model = prepare_model(market, targets, account.base_currency, prefs.default_decimals)
    if (restrictions or want_drift) and type(outstanding_orders) is not tuple:
        outstanding_orders = tuple(outstanding_orders)  # may be read twice
    g = build_group(account, model, scope, outstanding_orders, fio, fee)
    total = g.total
    drift = _drift_of(g, account, model, scope, outstanding_orders) if want_drift else None
    g.drift = drift
    if total < ZERO:
        raise InvalidInputError(f"total value {total.quantize(Q_MONEY)} {account.base_currency} is negative")
    adjustments = ()
    if restrictions:
        model, g, adjustments = restrict(
            account, targets, market, prefs, model, g, restrictions, (scope, outstanding_orders, fio, fee)
        )
        g.drift = drift
    if not total:
        if adjustments:  # only futures held: their NO_HOLD sales still go out
            orders = _forced_sales(g, prefs)
            return _result(g, account.id, ResultStatus.PROPOSED if orders else ResultStatus.NO_TRADES, orders,
                           adjustments=adjustments)  # fmt: skip
        return _result(g, account.id, ResultStatus.NO_TRADES)

    # Excess cash (§4.1), after buffers (§4.3).
    cu = g.cash_unlocked
    if cu > ZERO:
        buffer = cu * prefs.positive_cash_buffer_pct / HUNDRED if prefs.positive_cash_buffer_pct else ZERO
        if prefs.positive_cash_buffer_amount > buffer:
            buffer = prefs.positive_cash_buffer_amount
        work = cu - buffer if buffer < cu else ZERO
    elif cu < ZERO:
        buffer = -cu * prefs.negative_cash_buffer_pct / HUNDRED if prefs.negative_cash_buffer_pct else ZERO
        if prefs.negative_cash_buffer_amount > buffer:
            buffer = prefs.negative_cash_buffer_amount
        work = cu - buffer
    else:
        work = ZERO
    excess = work + g.cash_locked - model.w_cash * total
    if excess > work:
        excess = work
    # §9: a currency whose cash lies inside its CASH line's band keeps it.
    frozen = _fx.frozen_currencies(model, g, total) if prefs.filter_by_min_max and model.cash_bands else ()
    if frozen:
        excess -= _fx.frozen_excess(model, g, total, frozen)
    explicit = prefs.fx_mode == _EXPLICIT

    cash_method = method == _CONSERVATIVE or method == _EXCHANGE
    if cash_method and (prefs.cash_range_min is not None or prefs.cash_range_max is not None):
        low = prefs.cash_range_min if prefs.cash_range_min is not None else ZERO
        high = prefs.cash_range_max if prefs.cash_range_max is not None else ZERO
        # A NO_HOLD position is sold whatever the cash: no skip then.
        if low <= excess <= high and not any(a.effect == Effect.SOLD for a in adjustments):
            return _result(g, account.id, ResultStatus.SKIPPED_WITHIN_RANGE, excess=excess, adjustments=adjustments)

    # Classify the lines: buy (below target), sell (above), sell whole (outside the model).
    full = not cash_method
    buys: list[Line] = []
    sells: list[Line] = []
    wholes: list[Line] = []
    filt = prefs.filter_by_min_max
    planned = ZERO  # full methods: value of the sells (futures excluded)
    forced = ZERO  # value of the NO_HOLD positions sold whole whatever the method (futures excluded)
    for ln in g.lines:
        info = ln.info
        if not info.tradable or (only is not None and info.iid not in only):
            continue
        if ln.force_whole:
            ln.whole = True
            if not info.future:
                forced += ln.sellable
            continue
        w = info.w
        if not w:
            if ln.holdings and (full or not info.future):
                wholes.append(ln)
            continue
        if info.future and not full:
            continue  # futures neither use nor raise cash: the full methods only
        d = w * total - ln.value
        if d > DUST:
            if ln.kept_buy:
                d -= ln.kept_buy
                if d <= DUST:
                    continue
        elif d < -DUST:
            if ln.kept_sell:
                d += ln.kept_sell
                if d >= -DUST:
                    continue
        else:
            continue
        if filt:
            t = info.target
            high = t.max_weight
            if high is not None and high > ZERO:
                low = t.min_weight if t.min_weight is not None else ZERO
                if low <= ln.value / total <= high:
                    continue
        if d > ZERO:
            if ln.no_buy:
                continue
            ln.buy = d
            buys.append(ln)
        else:
            x = -d if -d < ln.sellable else ln.sellable
            if x > DUST:
                ln.excess = x
                sells.append(ln)
                if full:  # the full methods sell every overweight line
                    ln.sell = x
                    if not info.future:
                        planned += x

    csp = prefs.cash_from_sells_pct / HUNDRED
    if full:
        planned += forced
        for ln in wholes:
            ln.whole = True
            if not ln.info.future:
                planned += ln.sellable
        if excess + planned < -DUST:
            _sell_by_target_weight(g.lines, -(excess + planned), only)
    elif excess + forced < -DUST or (method == _EXCHANGE and buys and csp):
        # The NO_HOLD sales raise cash whatever happens: count it before raising more.
        shortfall = -(excess + forced) if excess + forced < ZERO else ZERO
        fund = ZERO
        if method == _EXCHANGE and buys and csp:
            need = sum((ln.buy for ln in buys), ZERO)
            if need > excess + forced * csp:
                fund = (need - excess) / csp - forced
        _raise_cash(g.lines, wholes, sells, shortfall, fund, only)

    # Sells first: their rounded proceeds decide what buys may spend.
    orders: list[OrderProposal] = []
    basis_units = prefs.order_basis == OrderBasis.UNITS
    min_trade = prefs.min_trade_amount
    proceeds = ZERO
    proceeds_cur: dict = {}  # EXPLICIT only: proceeds per currency, in that currency
    for ln in g.lines:
        info = ln.info
        if ln.whole:
            price = info.price
            tt = prefs.sell_all_transaction_type
            for aid, units in ln.holdings:
                amount = (units * price).quantize(Q_MONEY, ROUND_DOWN)
                orders.append(
                    _new_order(aid, info.iid, _SELL, tt, units, info.unit_price, amount, info.currency, _UNITS)
                )
                if not info.future:
                    proceeds += amount * info.fx
                    if explicit:
                        proceeds_cur[info.currency] = proceeds_cur.get(info.currency, ZERO) + amount
        elif ln.sell > DUST:
            left = ln.sell / info.pf
            for aid, held in ln.holdings:
                take = left if left < held else held
                o = _order(info, aid, _SELL, _TT_SELL, take, take * info.price, basis_units, min_trade)
                if o is not None:
                    orders.append(o)
                    if not info.future:
                        proceeds += o.trade_amount * info.fx
                        if explicit:
                            proceeds_cur[info.currency] = proceeds_cur.get(info.currency, ZERO) + o.trade_amount
                left -= take
                if left <= ZERO:
                    break

    cash_after = g.cash_unlocked + g.cash_locked + proceeds
    n_sells = len(orders)
    spent_cur: dict = {}  # EXPLICIT only: cash the buys take per currency, in that currency
    if buys and (method != _CONSERVATIVE or excess > DUST):
        # Buys are scaled down together when the cash allowed is short.
        budget = excess if method == _CONSERVATIVE else excess + csp * proceeds
        if explicit and not prefs.fx_repatriate:
            budget -= _fx.stranded(
                model, g, total, buys, proceeds_cur if method != _CONSERVATIVE else {}, csp, fee, frozen
            )
        need = ZERO
        for ln in buys:
            info = ln.info
            if not info.future:
                need += ln.buy
            elif info.immediate and fee:
                need += ln.buy * fee
        scaled = need > budget
        if scaled and budget < ZERO:
            budget = ZERO
        root = account.id
        spent = ZERO
        for ln in buys:
            info = ln.info
            value = ln.buy
            if scaled and (not info.future or (info.immediate and fee)):
                value = value * budget / need  # in this order: exact when it can be
                if value <= DUST:
                    continue
            o = _order(info, root, _BUY, _TT_BUY, value / info.pf, value / info.fx, basis_units, min_trade)
            if o is not None:
                orders.append(o)
                if not info.future:
                    spent += o.trade_amount * info.fx
                    if explicit:
                        spent_cur[info.currency] = spent_cur.get(info.currency, ZERO) + o.trade_amount
                elif info.immediate:
                    spent += o.trade_amount * info.fx * fee
                    if explicit:
                        spent_cur[info.currency] = spent_cur.get(info.currency, ZERO) + o.trade_amount * fee
        cash_after -= spent
    if explicit:
        # FX orders go between the sells and the buys they fund.
        fx_orders, change = _fx.fx_orders(
            account.id, model, g, total, prefs, proceeds_cur, spent_cur, frozen, full
        )
        if fx_orders:
            orders[n_sells:n_sells] = fx_orders
            cash_after += change

    status = ResultStatus.PROPOSED if orders else ResultStatus.NO_TRADES
    return _result(g, account.id, status, orders, cash_after, excess, adjustments=adjustments)


# Building the result objects through their frozen dataclass __init__ costs
# about a third of a 10-line rebalance; setting the slots directly gives the
# same objects twice as fast. The asserts tie these builders to the fields.
_order_slots = [OrderProposal.__dict__[name].__set__ for name in OrderProposal.__slots__]
assert tuple(OrderProposal.__slots__) == (
    "account_id",
    "instrument_id",
    "side",
    "transaction_type",
    "units",
    "unit_price",
    "trade_amount",
    "currency",
    "execution_method",
)
_result_slots = [RebalanceResult.__dict__[name].__set__ for name in RebalanceResult.__slots__]
assert tuple(RebalanceResult.__slots__) == (
    "account_id",
    "status",
    "orders",
    "total_value",
    "cash_before",
    "cash_after",
    "excess_cash",
    "reason",
    "adjustments",
    "drift",
)


def _new_result(
    account_id, status, orders, total_value, cash_before, cash_after, excess_cash, reason, adjustments=(), drift=None,
    _new=object.__new__, _cls=RebalanceResult, _s=_result_slots,
) -> RebalanceResult:  # fmt: skip
    """Build a ``RebalanceResult`` without the frozen dataclass ``__init__``."""
    o = _new(_cls)
    _s[0](o, account_id)
    _s[1](o, status)
    _s[2](o, orders)
    _s[3](o, total_value)
    _s[4](o, cash_before)
    _s[5](o, cash_after)
    _s[6](o, excess_cash)
    _s[7](o, reason)
    _s[8](o, adjustments)
    _s[9](o, drift)
    return o



def _new_order(
    account_id,
    instrument_id,
    side,
    transaction_type,
    units,
    unit_price,
    trade_amount,
    currency,
    execution_method,
    _new=object.__new__,
    _cls=OrderProposal,
    _s=_order_slots,
) -> OrderProposal:
    """Build an ``OrderProposal`` without the frozen dataclass ``__init__``."""
    o = _new(_cls)
    _s[0](o, account_id)
    _s[1](o, instrument_id)
    _s[2](o, side)
    _s[3](o, transaction_type)
    _s[4](o, units)
    _s[5](o, unit_price)
    _s[6](o, trade_amount)
    _s[7](o, currency)
    _s[8](o, execution_method)
    return o


def _order(
    info, account_id, side, transaction_type, raw_units, amount, basis_units, min_trade,
    _new=object.__new__, _cls=OrderProposal, _s=_order_slots,
):  # fmt: skip
    """Return the order for ``raw_units`` rounded down and the trade ``amount``, or None.

    ``amount`` is the difference in the instrument's currency (§5).
    """
    block = info.block
    if block is None:
        units = raw_units.quantize(info.quantum, ROUND_DOWN)
    else:
        units = (raw_units // block) * block
        if info.fix is not None:
            units = units.quantize(info.fix, ROUND_DOWN)
    if not units:  # never negative: raw_units ≥ 0
        return None
    if basis_units:
        amount = (units * info.price).quantize(Q_MONEY, ROUND_DOWN)
        unit_price = info.unit_price
        method = _UNITS
    else:
        amount = amount.quantize(Q_MONEY, ROUND_DOWN)
        unit_price = (amount / units).quantize(Q_PRICE)
        method = _NET
    if not amount:
        return None
    if min_trade and amount * info.fx < min_trade:
        return None
    o = _new(_cls)  # as _new_order(), inlined: this is the hottest path
    _s[0](o, account_id)
    _s[1](o, info.iid)
    _s[2](o, side)
    _s[3](o, transaction_type)
    _s[4](o, units)
    _s[5](o, unit_price)
    _s[6](o, amount)
    _s[7](o, info.currency)
    _s[8](o, method)
    return o


def _forced_sales(g: Group, prefs: Preferences) -> list[OrderProposal]:
    """The sell-all orders of the NO_HOLD positions alone (a group with no value)."""
    orders = []
    for ln in g.lines:
        if ln.force_whole:
            info = ln.info
            for aid, units in ln.holdings:
                amount = (units * info.price).quantize(Q_MONEY, ROUND_DOWN)
                orders.append(_new_order(
                    aid, info.iid, _SELL, prefs.sell_all_transaction_type, units, info.unit_price, amount,
                    info.currency, _UNITS,
                ))  # fmt: skip
    return orders


def _raise_cash(
    lines: list[Line], wholes: list[Line], sells: list[Line], shortfall: Decimal, fund: Decimal, only=None
):
    """Plan the sells of CONSERVATIVE and EXCHANGE (see the module docstring).

    ``shortfall``: cash to raise to bring E back to 0 (steps 1-4). ``fund``:
    sell value wanted to fund buys (EXCHANGE, steps 1-2 only).
    """
    wanted = shortfall if shortfall > fund else fund
    raised = ZERO
    if wholes and wanted > DUST:
        wholes = sorted(wholes, key=lambda ln: (-ln.sellable, ln.info.key))
        for ln in wholes:
            if ln.sellable <= wanted - raised + DUST:
                ln.whole = True
                raised += ln.sellable
        wholes = [ln for ln in wholes if not ln.whole]
    left = wanted - raised
    if left > DUST and sells:
        available = sum((ln.excess for ln in sells), ZERO)
        partial = left < available
        for ln in sells:
            value = ln.excess * left / available if partial else ln.excess
            ln.sell = value
            raised += value
    left = shortfall - raised
    if left > DUST and wholes:
        # Every remaining whole position is worth more than what was left to
        # raise at step 1, so the smallest one covers the shortfall.
        ln = min(wholes, key=lambda ln: (ln.sellable, ln.info.key))
        ln.whole = True
        left -= ln.sellable
    if left > DUST:
        _sell_by_target_weight(lines, left, only)


def _sell_by_target_weight(lines: list[Line], amount: Decimal, only=None) -> None:
    """Sell ``amount`` across the model's lines in proportion to their target weights.

    Each line sells at most what its unlocked accounts still hold; what a line
    cannot give is spread over the others (water-filling).
    """
    active = []
    for ln in lines:
        info = ln.info
        if info.w and not ln.whole and not info.future and info.tradable and (only is None or info.iid in only):
            room = ln.sellable - ln.sell
            if room > DUST:
                active.append((ln, room))
    while active and amount > DUST:
        weights = sum((ln.info.w for ln, _ in active), ZERO)
        capped = []
        free = []
        for item in active:
            (capped if amount * item[0].info.w / weights >= item[1] else free).append(item)
        if not capped:
            for ln, _ in free:
                ln.sell += amount * ln.info.w / weights
            return
        for ln, room in capped:
            ln.sell += room
            amount -= room
        active = free


__all__ = ["rebalance"]
