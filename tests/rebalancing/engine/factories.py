"""Small builders for engine inputs (plain Python: no database, no Django)."""

from __future__ import annotations

from decimal import Decimal

from rebalancing.engine import (
    AccountSnapshot,
    CashAccount,
    CashAccountKind,
    FuturesCost,
    Instrument,
    InstrumentType,
    Market,
    OrderStatus,
    OutstandingOrder,
    Position,
    Side,
    TargetLine,
)


def D(x) -> Decimal:
    return x if isinstance(x, Decimal) else Decimal(str(x))


def stock(iid, currency="EUR", block="1", isin=None, type=InstrumentType.EQUITY, tradable=True) -> Instrument:
    return Instrument(
        iid, type, currency, isin=isin, block_size=D(block) if block is not None else None, tradable=tradable
    )


def future(iid, cost=FuturesCost.LATER, currency="EUR", block="1") -> Instrument:
    return Instrument(iid, InstrumentType.FUTURE, currency, block_size=D(block), futures_cost=cost)


def currency(code) -> Instrument:
    return Instrument(code, InstrumentType.CASH, code)


def market(instruments, prices, fx=None, as_of=None) -> Market:
    """``prices``: id → price (numbers or strings); every price defaults to 1."""
    by_id = {i.id: i for i in instruments}
    all_prices = {i.id: D(1) for i in instruments if i.type != InstrumentType.CASH}
    all_prices.update({k: (D(v) if v is not None else None) for k, v in prices.items()})
    return Market(by_id, all_prices, {k: D(v) for k, v in (fx or {}).items()}, as_of)


def cash(balance, currency="EUR", default=True, kind=CashAccountKind.CASH) -> CashAccount:
    return CashAccount(currency, D(balance), default, kind)


def account(id="acc", positions=None, cash_accounts=(), locked=False, subs=(), base="EUR", balance=None):
    """``positions``: id → units. ``balance``: shortcut for one default EUR cash account."""
    if balance is not None:
        cash_accounts = (cash(balance, base),)
    return AccountSnapshot(
        id,
        base,
        locked,
        tuple(Position(k, D(v)) for k, v in (positions or {}).items()),
        tuple(cash_accounts),
        tuple(subs),
    )


def targets(weights: dict, bands: dict | None = None) -> tuple[TargetLine, ...]:
    """``weights``: id → weight; ``bands``: id → (min, max)."""
    bands = bands or {}
    out = []
    for k, w in weights.items():
        lo, hi = bands.get(k, (None, None))
        out.append(TargetLine(k, D(w), D(lo) if lo is not None else None, D(hi) if hi is not None else None))
    return tuple(out)


def kept_order(instrument_id, side, amount, units="0", account_id="acc", status=OrderStatus.ACCEPTED, tt=None):
    return OutstandingOrder(
        account_id, instrument_id, Side(side), tt or str(side), D(units), D(amount) if amount is not None else None,
        status,
    )


def by_instrument(result) -> dict:
    """Map instrument id → (side, trade amount) of the result's orders (one order per instrument)."""
    out = {}
    for o in result.orders:
        assert o.instrument_id not in out, "several orders for one instrument"
        out[o.instrument_id] = (str(o.side), o.trade_amount)
    return out
