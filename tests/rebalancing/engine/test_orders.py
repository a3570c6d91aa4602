"""§5 trade orders: rounding, order basis, placement, precision, ordering."""

import uuid
from decimal import Decimal

import pytest

from rebalancing.engine import (
    ExecutionMethod,
    Instrument,
    InstrumentType,
    Method,
    OrderBasis,
    Preferences,
    ResultStatus,
    Side,
    rebalance,
    round_units,
)

from .factories import D, account, by_instrument, market, stock, targets

TRADE_AMOUNT = Preferences(order_basis=OrderBasis.TRADE_AMOUNT)
UNITS = Preferences(order_basis=OrderBasis.UNITS)


def buy_250_at_6(prefs):
    m = market([stock("A", block="1")], {"A": 6})
    return rebalance(account(balance=250), targets({"A": 1}), m, prefs, Method.FULL)


def test_trade_amount_basis_keeps_the_difference_worked_example():
    (o,) = buy_250_at_6(TRADE_AMOUNT).orders
    assert (o.units, o.trade_amount) == (D(41), D(250))
    assert o.unit_price == D("6.0975609756")
    assert str(250 / D(41)).startswith("6.097560975")
    assert o.execution_method == ExecutionMethod.NET_TRADE_AMOUNT


def test_units_basis_keeps_the_market_price_worked_example():
    (o,) = buy_250_at_6(UNITS).orders
    assert (o.units, o.unit_price, o.trade_amount) == (D(41), D(6), D(246))
    assert o.execution_method == ExecutionMethod.UNITS


def test_trade_amount_is_the_default_basis():
    assert Preferences().order_basis == OrderBasis.TRADE_AMOUNT


@pytest.mark.parametrize(
    ("block", "raw", "expected"),
    [
        ("1", "41.99", "41"),
        ("0.01", "12.3456", "12.34"),
        ("0.00000001", "0.123456789", "0.12345678"),
        ("5", "24.9", "20"),
        ("0.5", "2.74", "2.5"),
    ],
)
def test_units_rounded_down_to_block_size(block, raw, expected):
    assert round_units(D(raw), stock("A", block=block)) == D(expected)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (InstrumentType.EQUITY, "12"),
        (InstrumentType.ETF, "12"),
        (InstrumentType.BOND, "12"),
        (InstrumentType.FUND, "12.345"),
        (InstrumentType.CRYPTO, "12.34567890"),
    ],
)
def test_units_rounded_down_to_the_types_default_decimals_without_block(kind, expected):
    assert round_units(D("12.345678901"), Instrument("A", kind, "EUR")) == D(expected)


def test_default_decimals_preference_overrides_a_type():
    prefs = Preferences(default_decimals={InstrumentType.EQUITY: 2})
    m = market([stock("A", block=None), stock("B", block=None, type=InstrumentType.FUND)], {"A": 3, "B": 3})
    r = rebalance(account(balance=100), targets({"A": "0.5", "B": "0.5"}), m, prefs)
    units = {o.instrument_id: o.units for o in r.orders}
    assert units == {"A": D("16.66"), "B": D("16.666")}


def test_default_decimals_are_capped_at_the_units_column():
    assert round_units(D("1.123456789012345"), Instrument("A", InstrumentType.CRYPTO, "EUR"),
                       {InstrumentType.CRYPTO: 18}) == D("1.1234567890")  # fmt: skip


def test_block_size_finer_than_the_units_column_is_cut_to_it():
    assert round_units(D("1.123456789012345"), stock("A", block="1e-12")) == D("1.1234567890")


def test_order_rounding_to_zero_units_is_not_created():
    m = market([stock("A"), stock("B")], {"A": 100, "B": 1})
    r = rebalance(account(positions={"B": 950}, balance=50), targets({"A": "0.05", "B": "0.95"}), m)
    assert r.status == ResultStatus.NO_TRADES  # 50 buys 0.5 of a 100 block


def test_min_trade_amount_drops_smaller_orders():
    m = market([stock("A"), stock("B")], {})
    prefs = Preferences(min_trade_amount=D(30))
    r = rebalance(account(positions={"A": 480, "B": 480}, balance=40), targets({"A": "0.5", "B": "0.5"}), m, prefs)
    assert r.status == ResultStatus.NO_TRADES  # two buys of 20
    r = rebalance(account(positions={"A": 470, "B": 490}, balance=40), targets({"A": "0.5", "B": "0.5"}), m, prefs)
    assert by_instrument(r) == {"A": ("BUY", D(30))}


def test_min_trade_amount_is_in_base_currency():
    m = market([stock("A", "USD")], {"A": 1}, fx={"USD": "0.5"})
    prefs = Preferences(min_trade_amount=D(30))
    r = rebalance(account(balance=25), targets({"A": 1}), m, prefs)
    assert r.status == ResultStatus.NO_TRADES  # 50 USD is 25 EUR
    r = rebalance(account(balance=35), targets({"A": 1}), m, prefs)
    assert by_instrument(r) == {"A": ("BUY", D(70))}


def test_trade_amount_and_unit_price_are_in_the_instruments_currency():
    m = market([stock("A", "USD")], {"A": 4}, fx={"USD": "0.5"})
    (o,) = rebalance(account(balance=100), targets({"A": 1}), m, UNITS).orders
    assert (o.currency, o.units, o.unit_price, o.trade_amount) == ("USD", D(50), D(4), D(200))


def test_sells_come_from_the_unlocked_account_holding_the_units():
    m = market([stock("A"), stock("B")], {})
    subs = [account("s1", positions={"A": 100}), account("s2", positions={"A": 100}),
            account("s0", positions={"A": 100}, locked=True)]  # fmt: skip
    r = rebalance(account(positions={"A": 50}, subs=subs), targets({"A": "0.1", "B": "0.9"}), m)
    sells = [(o.account_id, o.units) for o in r.orders if o.side == Side.SELL]
    # 315 to sell: the rebalanced account first, then sub-accounts by id
    assert sells == [("acc", D(50)), ("s1", D(100)), ("s2", D(100))]
    buys = [(o.account_id, o.instrument_id) for o in r.orders if o.side == Side.BUY]
    assert buys == [("acc", "B")]


def test_sell_all_sells_each_unlocked_account_whole():
    m = market([stock("A"), stock("X")], {})
    subs = [account("s1", positions={"X": "2.5"}), account("s2", positions={"X": 3}, locked=True)]
    r = rebalance(account(positions={"A": 10, "X": 1}, subs=subs), targets({"A": 1}), m)
    sells = [(o.account_id, o.units, o.transaction_type) for o in r.orders if o.side == Side.SELL]
    assert sells == [("acc", D(1), "SELL_ALL"), ("s1", D("2.5"), "SELL_ALL")]


def test_buys_go_into_the_rebalanced_account():
    m = market([stock("A")], {})
    r = rebalance(account(subs=[account("s1", balance=100)], balance=0), targets({"A": 1}), m)
    assert [(o.account_id, o.trade_amount) for o in r.orders] == [("acc", D(100))]


def test_outputs_fit_the_database_columns():
    m = market([stock("A", "USD", block="0.00000001"), stock("B", block=None, type=InstrumentType.FUND)],
               {"A": "3.1415926535", "B": "2.7182818284"}, fx={"USD": "0.9213"})  # fmt: skip
    for basis in OrderBasis:
        r = rebalance(account(positions={"B": "1000.123"}, balance="777.77"), targets({"A": "0.7", "B": "0.3"}),
                      m, Preferences(order_basis=basis))  # fmt: skip
        assert r.orders
        for o in r.orders:
            assert -o.units.as_tuple().exponent <= 10
            assert -o.unit_price.as_tuple().exponent <= 10
            assert -o.trade_amount.as_tuple().exponent <= 8
        for amount in (r.total_value, r.cash_before, r.cash_after, r.excess_cash):
            assert -amount.as_tuple().exponent <= 8


def test_orders_come_sells_first_then_buys_by_instrument_id():
    ids = [uuid.UUID(int=n) for n in (5, 1, 3, 2)]
    m = market([stock(i) for i in ids], {})
    positions = {ids[0]: 400, ids[1]: 400, ids[2]: 0, ids[3]: 0}
    r = rebalance(account(positions=positions), targets({i: "0.25" for i in ids}), m)
    assert [(o.side, o.instrument_id.int) for o in r.orders] == [
        (Side.SELL, 1),
        (Side.SELL, 5),
        (Side.BUY, 2),
        (Side.BUY, 3),
    ]


def test_orders_are_decimal_and_positive():
    m = market([stock("A"), stock("B")], {"A": "3.3"})
    r = rebalance(account(positions={"A": 100}, balance=1000), targets({"A": "0.5", "B": "0.5"}), m)
    for o in r.orders:
        assert o.units > 0 and o.trade_amount > 0 and o.unit_price > 0
        assert isinstance(o.units, Decimal)
