"""Valuation of an account group in its base currency (§3).

position value = units × price × FX; cash = Σ counted cash balances × FX, where
``available_cash`` decides which cash accounts count (all, kind CASH only, or the
default ones only). The total covers the account and all its sub-accounts,
locked ones included. Futures add exposure (units × price × FX) but not value:
their profit and loss lives in the cash accounts. A position in a CASH
instrument counts as cash of its account (units × FX), whatever the scope.

A missing price or FX rate for anything held or targeted raises
``MissingPriceError`` / ``MissingFxRateError``.

What depends only on the market, the target lines and the base currency (prices
× FX, rounders, target weights) is prepared once per (Market, targets tuple,
base currency, default decimals) object and cached: rebalancing thousands of
accounts against one model on one date pays for it once. Lines are iterated in
a canonical order (target lines by id, then other holdings by id) so that sums
never depend on the order of the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, localcontext

from .group import build_group, prepare_model
from .precision import ENGINE_CONTEXT, ONE, Q_MONEY, Q_UNITS, Q_WEIGHT, ZERO
from .types import DEFAULT_DECIMALS, AccountSnapshot, AvailableCash, Drift, LineValuation, Market, TargetLine, Valuation


def value_account(
    account: AccountSnapshot,
    targets: Sequence[TargetLine],
    market: Market,
    available_cash: AvailableCash = AvailableCash.ALL_ACCOUNTS,
) -> Valuation:
    """Value ``account`` with its sub-accounts in its base currency.

    Returns per-instrument units, value, weight, target weight and drift:
    target lines first, then other holdings, each by id. Weights are 0 when the
    total is not positive. Raises a ``DataError`` (``MissingPriceError``,
    ``MissingFxRateError``, ...) on bad data.
    """
    with localcontext(ENGINE_CONTEXT):
        model = prepare_model(market, targets, account.base_currency, DEFAULT_DECIMALS)
        g = build_group(account, model, available_cash)
        total = g.total
        positive = total > ZERO
        out = []
        for ln in g.lines:
            info = ln.info
            weight = (ln.value / total).quantize(Q_WEIGHT) if positive else ZERO
            out.append(
                LineValuation(
                    instrument_id=info.iid,
                    units=ln.units.quantize(Q_UNITS),
                    locked_units=ln.locked_units.quantize(Q_UNITS),
                    price=info.unit_price,
                    value=ln.value.quantize(Q_MONEY),
                    weight=weight,
                    target_weight=info.w,
                    drift=weight - info.w,
                )
            )
        cash_weight = (g.cash_total / total).quantize(Q_WEIGHT) if positive else ZERO
        return Valuation(
            account_id=account.id,
            base_currency=account.base_currency,
            total_value=total.quantize(Q_MONEY),
            cash=g.cash_total.quantize(Q_MONEY),
            investable_cash=g.cash_unlocked.quantize(Q_MONEY),
            cash_weight=cash_weight,
            cash_target_weight=model.w_cash,
            cash_drift=cash_weight - model.w_cash,
            lines=tuple(out),
        )


def account_drift(
    account: AccountSnapshot,
    targets: Sequence[TargetLine],
    market: Market,
    available_cash: AvailableCash = AvailableCash.ALL_ACCOUNTS,
) -> Drift:
    """The drift of ``account`` with its sub-accounts (``value_account``'s weights,
    summed up as ``Drift``). ``rebalance(..., drift=True)`` gives the same figures
    from the group it builds anyway. Raises a ``DataError`` on bad data."""
    with localcontext(ENGINE_CONTEXT):
        model = prepare_model(market, targets, account.base_currency, DEFAULT_DECIMALS)
        return group_drift(build_group(account, model, available_cash), model)


def group_drift(g, model, _new=object.__new__, _cls=Drift) -> Drift:
    """The ``Drift`` of a built group (no outstanding orders counted) against its plain
    model; under ENGINE_CONTEXT. Lines in the group's order, then cash, as
    ``value_account`` lists them.

    Run for every account of an execution, so lean: the lines are compared by their
    drift in value (|value − target × total|, the same order as the drift in weight,
    the total being positive) and relative drifts by cross-multiplication; only the
    winners are divided and quantized as ``value_account`` does. Two lines whose
    drifts differ by less than the 12th decimal of a weight may rank either way.
    """
    total = g.total
    if total <= ZERO:
        return _drift_no_total(g, model)
    best = -ONE
    best_line = None  # the line with the largest drift; None: cash
    rel = -ONE  # the largest |drift in value| / target weight, ranked by 1/target (relative ranks only)
    rel_line = rel_w = None
    untargeted = False
    lines = g.lines
    # The group's first lines are the model's, in its order (group.build_group): their
    # weights and inverse weights come prepared with the model.
    for ln, (w, inverse) in zip(lines, model.drift_weights()):
        x = ln.value - w * total
        if x < ZERO:
            x = -x
        if x > best:
            best, best_line = x, ln
        if inverse is not None:
            r = x * inverse
            if r > rel:
                rel, rel_line, rel_w = r, ln, w
        elif x:
            untargeted = True
    for ln in lines[len(model.lines):]:  # holdings outside the model: no target
        x = ln.value
        if x < ZERO:
            x = -x
        if x > best:
            best, best_line = x, ln
        if x:
            untargeted = True
    outside = False
    if model.limits:
        for ln in lines:
            t = ln.info.target
            if t is not None and (t.min_weight is not None or t.max_weight is not None):
                weight = (ln.value / total).quantize(Q_WEIGHT)
                low, high = t.min_weight, t.max_weight
                if (low is not None and weight < low) or (high is not None and weight > high):
                    outside = True
    cash = g.cash_total
    w = model.w_cash
    x = cash - w * total
    if x < ZERO:
        x = -x
    cash_wins = x > best
    if w:
        if rel_w is None or x > rel * w:  # x / w > rel, without a division
            rel_line, rel_w = None, w
    elif x:
        untargeted = True
    if cash_wins:
        max_drift, max_id = abs((cash / total).quantize(Q_WEIGHT) - w), None
    else:
        info = best_line.info
        max_drift, max_id = abs((best_line.value / total).quantize(Q_WEIGHT) - info.w), info.iid
    relative = None
    if rel_w is not None:
        value = cash if rel_line is None else rel_line.value
        relative = abs((value / total).quantize(Q_WEIGHT) - rel_w) / rel_w
    o = _new(_cls)  # as Drift(...), without the frozen dataclass __init__ (one per account)
    _drift_slots[0](o, total.quantize(Q_MONEY))
    _drift_slots[1](o, max_drift)
    _drift_slots[2](o, max_id)
    _drift_slots[3](o, relative)
    _drift_slots[4](o, untargeted)
    _drift_slots[5](o, outside)
    return o


_drift_slots = [Drift.__dict__[name].__set__ for name in Drift.__slots__]
assert tuple(Drift.__slots__) == (
    "total_value", "max_drift", "max_drift_instrument", "max_relative_drift", "untargeted", "outside_limits"
)


def _drift_no_total(g, model) -> Drift:
    """A group worth nothing (or less): every weight is 0, every drift its target."""
    best, best_id, relative, untargeted, outside = -ONE, None, None, False, False
    rows = [(ln.info.w, ln.info.iid, ln.info.target) for ln in g.lines]
    rows.append((model.w_cash, None, None))
    for n, (w, iid, t) in enumerate(rows):
        size = abs(-w)
        if size > best or (n == len(rows) - 1 and size > best):
            best, best_id = size, iid
        if w > ZERO:
            relative = ONE  # |0 − w| / w
        if t is not None:
            if (t.min_weight is not None and ZERO < t.min_weight) or (t.max_weight is not None and ZERO > t.max_weight):
                outside = True
    return Drift(total_value=g.total.quantize(Q_MONEY), max_drift=best, max_drift_instrument=best_id,
                 max_relative_drift=relative, untargeted=untargeted, outside_limits=outside)


def drift_exceeds(
    valuation: Valuation,
    absolute_drift: Decimal | None = None,
    relative_drift: Decimal | None = None,
) -> bool:
    """Return True when any line, cash included, drifts past a threshold (§7).

    ``absolute_drift`` is in weight points (0.05 = 5 points); ``relative_drift``
    a fraction of the line's target (0.2 = 20 %). A line held with a target of 0
    has an infinite relative drift. A threshold left None is not checked.
    Comparisons are strict: drifting exactly by the threshold does not trigger.
    """
    with localcontext(ENGINE_CONTEXT):
        drifts = [(ln.drift, ln.target_weight) for ln in valuation.lines]
        drifts.append((valuation.cash_drift, valuation.cash_target_weight))
        for drift, target in drifts:
            size = abs(drift)
            if absolute_drift is not None and size > absolute_drift:
                return True
            if relative_drift is not None and size:
                if target == ZERO or size / target > relative_drift:
                    return True
        return False


__all__ = ["account_drift", "drift_exceeds", "group_drift", "value_account"]
