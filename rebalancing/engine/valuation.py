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
from .precision import ENGINE_CONTEXT, Q_MONEY, Q_UNITS, Q_WEIGHT, ZERO
from .types import DEFAULT_DECIMALS, AccountSnapshot, AvailableCash, LineValuation, Market, TargetLine, Valuation


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


__all__ = ["drift_exceeds", "value_account"]
