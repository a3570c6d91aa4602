"""§4.6 outstanding orders."""

import pytest

from rebalancing.engine import (
    KEPT_STATUSES,
    Method,
    OrderStatus,
    OutstandingOrder,
    Preferences,
    ResultStatus,
    Side,
    TransactionType,
    rebalance,
)

from .factories import D, account, by_instrument, currency, future, kept_order, market, stock, targets

M = market([stock("A"), stock("B"), stock("X"), currency("EUR"), future("F")], {"F": 10})
FULL, FIO = Method.FULL, Method.FULL_INCLUDING_ORDERS


def run(positions, balance, weights, orders, method=FULL, prefs=None, subs=()):
    return rebalance(account(positions=positions, balance=balance, subs=subs), targets(weights), M,
                     prefs or Preferences(), method, orders)  # fmt: skip


def test_kept_statuses_are_the_in_flight_ones():
    assert KEPT_STATUSES == {
        OrderStatus.ACCEPTED,
        OrderStatus.EXECUTABLE,
        OrderStatus.SENT_TO_EXECUTION,
        OrderStatus.IN_EXECUTION,
        OrderStatus.PARTIALLY_EXECUTED,
        OrderStatus.EXECUTED_IN_MARKET,
        OrderStatus.SETTLED_IN_MARKET,
    }


@pytest.mark.parametrize(
    "status",
    [OrderStatus.OPEN, OrderStatus.SETTLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.REPLACED],
)
def test_open_and_finished_orders_are_ignored(status):
    orders = [kept_order("A", "BUY", 40, status=status)]
    for method in Method:
        r = run({"A": 0}, 100, {"A": 1}, orders, method)
        assert by_instrument(r) == {"A": ("BUY", D(100))}


@pytest.mark.parametrize("status", sorted(KEPT_STATUSES))
def test_kept_buy_reduces_available_cash_and_is_netted(status):
    # need to buy 100 of A, a kept buy of 40 exists → a new buy of 60
    r = run({"A": 0}, 100, {"A": 1}, [kept_order("A", "BUY", 40, status=status)])
    assert by_instrument(r) == {"A": ("BUY", D(60))}
    assert r.cash_before == 100 and r.cash_after == 0


def test_kept_buy_of_another_instrument_reduces_available_cash():
    r = run({"A": 0, "B": 0}, 100, {"A": "0.5", "B": "0.5"}, [kept_order("X", "BUY", 40)])
    assert by_instrument(r) == {"A": ("BUY", D(30)), "B": ("BUY", D(30))}


def test_kept_withdrawal_reduces_available_cash_and_the_total():
    withdrawal = OutstandingOrder("acc", None, Side.SELL, TransactionType.WITHDRAWAL, None, D(50),
                                  OrderStatus.ACCEPTED, currency="EUR")  # fmt: skip
    r = run({"A": 450}, 100, {"A": "0.9", "EUR": "0.1"}, [withdrawal])
    # T 550 - 50 = 500: cash target 50, A 450 = target
    assert r.total_value == 500 and r.status == ResultStatus.NO_TRADES


def test_kept_deposit_counts_only_when_orders_are_applied():
    deposit = OutstandingOrder("acc", "EUR", Side.BUY, TransactionType.DEPOSIT, None, D(100), OrderStatus.ACCEPTED)
    assert run({"A": 0}, 0, {"A": 1}, [deposit], FULL).status == ResultStatus.NO_TRADES
    r = run({"A": 0}, 0, {"A": 1}, [deposit], FIO)
    assert by_instrument(r) == {"A": ("BUY", D(100))}


def test_kept_sell_of_the_same_side_is_netted():
    # A is 100 over target; a kept sell of 40 exists → a new sell of 60
    r = run({"A": 600, "B": 400}, 0, {"A": "0.5", "B": "0.5"}, [kept_order("A", "SELL", 40, units=40)])
    assert by_instrument(r) == {"A": ("SELL", D(60)), "B": ("BUY", D(60))}


def test_kept_sell_does_not_add_cash_before_it_executes():
    r = run({"A": 600, "B": 400}, 0, {"A": "0.5", "B": "0.5"}, [kept_order("A", "SELL", 100, units=100)])
    assert r.status == ResultStatus.NO_TRADES


def test_kept_order_of_the_other_side_is_not_netted():
    r = run({"A": 0}, 100, {"A": 1}, [kept_order("A", "SELL", 40, units=0)])
    assert by_instrument(r) == {"A": ("BUY", D(100))}


def test_kept_buy_larger_than_the_need_yields_no_sell():
    r = run({"A": 0, "B": 0}, 100, {"A": "0.5", "B": "0.5"}, [kept_order("A", "BUY", 80)])
    assert by_instrument(r) == {"B": ("BUY", D(20))}


def test_kept_sell_units_cannot_be_sold_again():
    # X (not in the model) has 10 units, 4 already being sold: sell the other 6 whole
    r = run({"A": 0, "X": 10}, 0, {"A": 1}, [kept_order("X", "SELL", 4, units=4)])
    (sell,) = [o for o in r.orders if o.side == Side.SELL]
    assert (sell.instrument_id, sell.units, sell.transaction_type) == ("X", D(6), "SELL_ALL")


def test_full_including_orders_applies_kept_orders_to_holdings_and_cash_first():
    # as if the kept buy of 40 A had executed: A 40, cash 60 → buy 60 more
    r = run({"A": 0}, 100, {"A": 1}, [kept_order("A", "BUY", 40, units=40)], FIO)
    assert by_instrument(r) == {"A": ("BUY", D(60))}
    assert r.total_value == 100 and r.cash_before == 100 and r.cash_after == 0


def test_full_including_orders_kept_buy_outside_the_model_yields_a_sell_of_the_coming_position():
    r = run({"A": 100}, 0, {"A": 1}, [kept_order("X", "BUY", 30, units=30)], FIO)
    # X 30 and cash -30 once applied: the coming X is sold whole, which restores the cash
    assert [(o.instrument_id, str(o.side), o.units, o.transaction_type) for o in r.orders] == [
        ("X", "SELL", D(30), "SELL_ALL"),
    ]
    assert r.cash_after == 0


def test_full_including_orders_kept_sell_adds_cash():
    # as if executed: A 50 and cash 50, which buys B
    r = run({"A": 100, "B": 0}, 0, {"A": "0.5", "B": "0.5"}, [kept_order("A", "SELL", 50, units=50)], FIO)
    assert by_instrument(r) == {"B": ("BUY", D(50))} and r.cash_after == 0
    # without applying the orders, the kept sell is netted and its cash not counted
    r = run({"A": 100, "B": 0}, 0, {"A": "0.5", "B": "0.5"}, [kept_order("A", "SELL", 50, units=50)], FULL)
    assert r.status == ResultStatus.NO_TRADES
    r = run({"A": 100, "B": 0}, 0, {"A": "0.5", "B": "0.5"}, [kept_order("A", "SELL", 30, units=30)], FIO)
    assert by_instrument(r) == {"A": ("SELL", D(20)), "B": ("BUY", D(50))}


def test_full_including_orders_kept_future_buy_costs_no_cash():
    r = run({"A": 100}, 0, {"A": 1, "F": "0.5"}, [kept_order("F", "BUY", 500, units=5)], FIO)
    assert r.status == ResultStatus.NO_TRADES


def test_kept_future_buy_does_not_reduce_cash():
    r = run({"A": 0}, 100, {"A": 1}, [kept_order("F", "BUY", 500, units=50)])
    assert by_instrument(r) == {"A": ("BUY", D(100))}


def test_kept_order_outside_the_group_fails():
    r = run({"A": 0}, 100, {"A": 1}, [kept_order("A", "BUY", 40, account_id="other")])
    assert r.status == ResultStatus.FAILED and "outside the group" in r.reason


def test_kept_order_in_a_sub_account_counts():
    sub = account("sub", positions={"A": 0}, balance=0)
    r = run({"A": 0}, 100, {"A": 1}, [kept_order("A", "BUY", 40, account_id="sub")], subs=[sub])
    assert by_instrument(r) == {"A": ("BUY", D(60))}


def test_kept_order_without_trade_amount_is_valued_at_its_units():
    r = run({"A": 0}, 100, {"A": 1}, [kept_order("A", "BUY", None, units=40)])
    assert by_instrument(r) == {"A": ("BUY", D(60))}
