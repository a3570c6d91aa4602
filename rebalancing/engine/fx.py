"""Cash per currency and FX orders (§9): the engine's multi-currency rules.

Each CASH line of a model sets the cash target of its own currency; cash in a
currency without a line has target 0. The rebalance (rebalance.py) plans its
trades on the total of every currency's excess, valued at the latest FX rates,
then:

- with the min/max filter on, a currency whose cash weight lies inside its CASH
  line's band keeps its cash: its own excess (or shortfall) is left out of the
  excess cash (``frozen_excess``);
- ``fx_mode`` EXPLICIT without ``fx_repatriate``: the surplus of a currency other
  than the default cash account's (its cash above target plus its share of the
  sells' proceeds) can fund only buys in that currency; what is left is never
  spent (``stranded``), since no FX order would bring it to the default currency;
- ``fx_mode`` EXPLICIT: ``fx_orders`` adds one FX order per currency whose buys
  exceed its own cash above target plus its own sells' proceeds. It buys the
  missing amount of that currency, rounded UP to the currency's minor unit, and
  pays from the default cash account's currency at the latest rate (paying
  currency per unit bought, ``fx(bought) / fx(paying)``); its trade amount is
  units × rate rounded UP to the paying currency's minor unit. With
  ``fx_repatriate`` a currency's surplus above its target after the orders is
  sold back into the default currency (side SELL, rounded DOWN). FULL and
  FULL_INCLUDING_ORDERS also bring a currency's cash up to its target (a currency
  inside its band excepted); the cash methods only fund buys. An FX order that
  funds buys is never cut by ``min_trade_amount`` (the buys would lack the cash);
  a top-up or a repatriation is.

Everything here is plain Python and Decimal; amounts named ``*_cur`` are in
their own currency, the others in the base currency.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_UP, Decimal

from .precision import DUST, Q_MONEY, Q_PRICE, ZERO
from .types import DataError, ExecutionMethod, OrderProposal, Side, TransactionType

# ISO 4217 minor units that differ from 2 (the rest have 2 decimals).
_MINOR_DIGITS = {
    "BHD": 3, "BIF": 0, "CLF": 4, "CLP": 0, "DJF": 0, "GNF": 0, "IQD": 3, "ISK": 0, "JOD": 3, "JPY": 0,
    "KMF": 0, "KRW": 0, "KWD": 3, "LYD": 3, "OMR": 3, "PYG": 0, "RWF": 0, "TND": 3, "UGX": 0, "UYI": 0,
    "UYW": 4, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
}  # fmt: skip
_QUANTA = {}
_FX = TransactionType.FX.value
_UNITS = ExecutionMethod.UNITS


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of ``currency`` (ISO 4217 minor unit): 0.01 for most."""
    q = _QUANTA.get(currency)
    if q is None:
        q = _QUANTA[currency] = Decimal(1).scaleb(-_MINOR_DIGITS.get(currency, 2))
    return q


class MissingCashInstrumentError(DataError):
    def __init__(self, currency: str):
        self.currency = currency
        super().__init__(f"no CASH instrument for {currency}: an FX order needs one")


def frozen_currencies(model, g, total: Decimal) -> tuple:
    """The currencies whose cash weight lies inside their CASH line's band (§9, §4.4)."""
    bands = model.cash_bands
    if not bands or total <= ZERO:
        return ()
    out = []
    for cur in sorted(bands):
        low, high = bands[cur]
        weight = g.cash_cur.get(cur, ZERO) * model.fx(cur) / total
        if low <= weight <= high:
            out.append(cur)
    return tuple(out)


def frozen_excess(model, g, total: Decimal, frozen) -> Decimal:
    """The frozen currencies' own excess (cash − target, base currency): taken out of E."""
    targets = model.cash_targets()
    out = ZERO
    for cur in frozen:
        out += g.cash_cur.get(cur, ZERO) * model.fx(cur) - targets.get(cur, ZERO) * total
    return out


def stranded(model, g, total: Decimal, buys, proceeds_cur: dict, csp: Decimal, fee: Decimal, frozen) -> Decimal:
    """EXPLICIT without repatriation: the surplus of non-default currencies that no buy
    in that currency uses (base currency). It is taken out of what buys may spend."""
    default = g.default_currency
    currencies = {*g.cash_cur, *proceeds_cur}
    currencies.discard(default)
    if not currencies:
        return ZERO
    targets = model.cash_targets()
    surplus = {}
    for cur in sorted(currencies):
        rate = model.fx(cur)
        own = ZERO if cur in frozen else g.cash_cur.get(cur, ZERO) * rate - targets.get(cur, ZERO) * total
        own += csp * proceeds_cur.get(cur, ZERO) * rate
        if own > DUST:
            surplus[cur] = own
    if not surplus:
        return ZERO
    need: dict = {}
    for ln in buys:
        info = ln.info
        cur = info.currency
        if cur not in surplus:
            continue
        if not info.future:
            need[cur] = need.get(cur, ZERO) + ln.buy
        elif info.immediate and fee:
            need[cur] = need.get(cur, ZERO) + ln.buy * fee
    out = ZERO
    for cur, own in surplus.items():
        left = own - need.get(cur, ZERO)
        if left > DUST:
            out += left
    return out


def fx_orders(
    account_id, model, g, total: Decimal, prefs, proceeds_cur: dict, spent_cur: dict, frozen, full: bool
):
    """The FX orders of one rebalance and their effect on cash (base currency).

    ``full``: FULL or FULL_INCLUDING_ORDERS, which also bring a currency's cash up to
    its target (the cash methods only fund buys). Returns (orders, cash change): an
    FX order trades at the latest rate, so the change is only the rounding of its
    units and trade amount.
    """
    default = g.default_currency
    targets = model.cash_targets()
    currencies = set(spent_cur)
    if full:
        currencies.update(targets)
    if prefs.fx_repatriate:
        currencies.update(g.cash_cur)
        currencies.update(proceeds_cur)
    currencies.discard(default)
    if not currencies:
        return [], ZERO
    pay_rate = model.fx(default)
    pay_q = minor_unit(default)
    orders = []
    change = ZERO
    for cur in sorted(currencies):
        rate = model.fx(cur)
        target = targets.get(cur, ZERO) * total / rate
        spent = spent_cur.get(cur, ZERO)
        balance = g.cash_cur.get(cur, ZERO) + proceeds_cur.get(cur, ZERO) - spent - target
        if balance < ZERO and (spent > ZERO or (full and cur not in frozen)):
            # The cash methods fund the buys only: cash already below its target is not topped up.
            wanted = -balance if full or -balance < spent else spent
            if not spent and prefs.min_trade_amount and wanted * rate < prefs.min_trade_amount:
                continue  # a top-up alone is an order like any other
            side, units_rounding, amount_rounding = Side.BUY, ROUND_UP, ROUND_UP
        elif balance > ZERO and prefs.fx_repatriate and cur not in frozen:
            wanted = balance
            if prefs.min_trade_amount and wanted * rate < prefs.min_trade_amount:
                continue
            side, units_rounding, amount_rounding = Side.SELL, ROUND_DOWN, ROUND_DOWN
        else:
            continue
        # To the money precision first: a 34-digit quotient such as 1099.99999999...9
        # or 1100.00...01 must not round to a whole extra cent.
        units = wanted.quantize(Q_MONEY).quantize(minor_unit(cur), units_rounding)
        if not units:
            continue
        iid = model.cash_instrument(cur)
        if iid is None:
            raise MissingCashInstrumentError(cur)
        price = rate / pay_rate  # paying currency per unit bought
        amount = (units * price).quantize(Q_MONEY).quantize(pay_q, amount_rounding)
        if not amount:
            continue
        orders.append(OrderProposal(
            account_id, iid, side, _FX, units, price.quantize(Q_PRICE), amount, default, _UNITS,
        ))  # fmt: skip
        moved = units * rate - amount * pay_rate
        change += moved if side == Side.BUY else -moved
    return orders, change


__all__ = ["MissingCashInstrumentError", "frozen_currencies", "frozen_excess", "fx_orders", "minor_unit", "stranded"]
