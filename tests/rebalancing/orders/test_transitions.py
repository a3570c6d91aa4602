"""trade_order_transition: the status flow, fills, and settlement into positions and cash."""

from decimal import Decimal

import pytest

from core.errors import Conflict, InvalidInput
from portfolios.models import CashKind, FuturesCost, InstrumentType
from rebalancing.models import Side, TradeOrder, TradeOrderStatus
from rebalancing.services import TRANSITIONS, trade_order_transition, trade_orders_transition
from tests.factories import AccountFactory, CashAccountFactory, InstrumentFactory, PositionFactory

from .conftest import balances, units_held

pytestmark = pytest.mark.django_db
S = TradeOrderStatus

# Every allowed (from, to) pair of the flow; REPLACED is for the system only.
ALLOWED = [
    (S.OPEN, S.ACCEPTED), (S.OPEN, S.CANCELLED), (S.OPEN, S.REJECTED),
    (S.ACCEPTED, S.EXECUTABLE), (S.ACCEPTED, S.CANCELLED), (S.ACCEPTED, S.REJECTED),
    (S.EXECUTABLE, S.SENT_TO_EXECUTION), (S.EXECUTABLE, S.CANCELLED), (S.EXECUTABLE, S.REJECTED),
    (S.SENT_TO_EXECUTION, S.IN_EXECUTION), (S.SENT_TO_EXECUTION, S.CANCELLED), (S.SENT_TO_EXECUTION, S.REJECTED),
    (S.IN_EXECUTION, S.PARTIALLY_EXECUTED), (S.IN_EXECUTION, S.EXECUTED_IN_MARKET),
    (S.PARTIALLY_EXECUTED, S.PARTIALLY_EXECUTED), (S.PARTIALLY_EXECUTED, S.EXECUTED_IN_MARKET),
    (S.EXECUTED_IN_MARKET, S.SETTLED_IN_MARKET),
    (S.SETTLED_IN_MARKET, S.SETTLED),
]
DISALLOWED = [
    (S.OPEN, S.EXECUTABLE), (S.OPEN, S.SETTLED), (S.OPEN, S.OPEN), (S.OPEN, S.REPLACED),
    (S.ACCEPTED, S.OPEN), (S.ACCEPTED, S.IN_EXECUTION),
    (S.IN_EXECUTION, S.CANCELLED), (S.IN_EXECUTION, S.REJECTED), (S.IN_EXECUTION, S.SETTLED),
    (S.PARTIALLY_EXECUTED, S.CANCELLED), (S.PARTIALLY_EXECUTED, S.SETTLED_IN_MARKET),
    (S.EXECUTED_IN_MARKET, S.SETTLED), (S.EXECUTED_IN_MARKET, S.CANCELLED),
    (S.SETTLED_IN_MARKET, S.REJECTED),
    (S.SETTLED, S.SETTLED), (S.SETTLED, S.CANCELLED),
    (S.CANCELLED, S.ACCEPTED), (S.REJECTED, S.OPEN), (S.REPLACED, S.ACCEPTED),
    # An execution waiting for approval moves its orders itself (tests/rebalancing/executions/test_approval.py).
    (S.PENDING_APPROVAL, S.OPEN), (S.PENDING_APPROVAL, S.ACCEPTED), (S.PENDING_APPROVAL, S.CANCELLED),
    (S.PENDING_APPROVAL, S.REJECTED), (S.PENDING_APPROVAL, S.SETTLED), (S.OPEN, S.PENDING_APPROVAL),
]
# Made by the system only: a rebalance replaces OPEN orders; approving, rejecting or
# cancelling an execution moves its PENDING_APPROVAL ones.
SYSTEM_ONLY = {
    (S.OPEN, S.REPLACED),
    (S.PENDING_APPROVAL, S.OPEN), (S.PENDING_APPROVAL, S.CANCELLED), (S.PENDING_APPROVAL, S.REJECTED),
}


@pytest.fixture
def held(db):
    """An account holding 10 units of an ETF, with 1000 EUR in its default cash account."""
    account = AccountFactory()
    CashAccountFactory(account=account, balance=Decimal("1000"))
    instrument = InstrumentFactory()
    PositionFactory(account=account, instrument=instrument, units=Decimal("10"))
    return account, instrument


def fill_args(status):
    return {"executed_units": Decimal("1")} if status == S.PARTIALLY_EXECUTED else {}


def test_the_table_is_the_documented_one():
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == set(ALLOWED) | SYSTEM_ONLY


@pytest.mark.parametrize(("source", "target"), ALLOWED)
def test_every_allowed_transition(held, make_order, source, target):
    account, instrument = held
    executed = {S.PARTIALLY_EXECUTED: "1", S.EXECUTED_IN_MARKET: "4", S.SETTLED_IN_MARKET: "4"}.get(source, "0")
    order = make_order(account, instrument, side=Side.SELL, units="4", unit_price="10", status=source,
                       executed_units=Decimal(executed), executed_amount=Decimal(executed) * 10)
    moved = trade_order_transition(order=order, status=target, **fill_args(target))
    assert moved.status == target
    assert TradeOrder.objects.get(pk=order.pk).status == target


@pytest.mark.parametrize(("source", "target"), DISALLOWED)
def test_a_disallowed_transition_is_a_conflict_and_changes_nothing(held, make_order, source, target):
    account, instrument = held
    order = make_order(account, instrument, status=source)
    before = TradeOrder.objects.filter(pk=order.pk).values().get()
    with pytest.raises(Conflict) as caught:
        trade_order_transition(order=order, status=target, **fill_args(target))
    assert f"from {source} to {target}" in caught.value.detail
    assert TradeOrder.objects.filter(pk=order.pk).values().get() == before
    assert units_held(account, instrument) == Decimal("10")
    assert balances(account) == {("EUR", CashKind.CASH): Decimal("1000")}


def test_replaced_only_by_the_system(held, make_order):
    account, instrument = held
    order = make_order(account, instrument)
    assert trade_order_transition(order=order, status=S.REPLACED, system=True).status == S.REPLACED


def test_the_conflict_says_where_the_order_may_go(held, make_order):
    account, instrument = held
    order = make_order(account, instrument, status=S.IN_EXECUTION)
    with pytest.raises(Conflict) as caught:
        trade_order_transition(order=order, status=S.CANCELLED)
    assert caught.value.detail.endswith("from IN_EXECUTION it may go to PARTIALLY_EXECUTED, EXECUTED_IN_MARKET")
    order = make_order(account, instrument, status=S.SETTLED)
    with pytest.raises(Conflict, match="SETTLED is final"):
        trade_order_transition(order=order, status=S.CANCELLED)


def walk(order, *statuses, **fill):
    for status in statuses:
        order = trade_order_transition(order=order, status=status, **(fill if status in (S.PARTIALLY_EXECUTED,) else {}))
    return order


def test_settling_a_buy_with_fills_books_units_and_cash(held, make_order):
    # BUY 7 @ 12.5 (87.5). Fills: 3 @ 12.4 = 37.2, then the last 4 @ 12.6 = 50.4 → 87.6.
    account, instrument = held
    order = make_order(account, instrument, units="7", unit_price="12.5")
    order = walk(order, S.ACCEPTED, S.EXECUTABLE, S.SENT_TO_EXECUTION, S.IN_EXECUTION)
    order = trade_order_transition(
        order=order, status=S.PARTIALLY_EXECUTED, executed_units=Decimal("3"), executed_price=Decimal("12.4")
    )
    assert (order.executed_units, order.executed_amount) == (Decimal("3"), Decimal("37.2"))
    order = trade_order_transition(
        order=order, status=S.EXECUTED_IN_MARKET, executed_units=Decimal("4"), executed_price=Decimal("12.6")
    )
    assert (order.executed_units, order.executed_amount) == (Decimal("7"), Decimal("87.6"))
    order = walk(order, S.SETTLED_IN_MARKET)
    # Nothing is booked before SETTLED.
    assert units_held(account, instrument) == Decimal("10")
    assert balances(account) == {("EUR", CashKind.CASH): Decimal("1000")}
    order = walk(order, S.SETTLED)
    assert units_held(account, instrument) == Decimal("17")
    assert balances(account) == {("EUR", CashKind.CASH): Decimal("912.4")}
    stored = TradeOrder.objects.get(pk=order.pk)
    assert (stored.settled_units, stored.settled_amount) == (Decimal("7"), Decimal("87.6"))


def test_settling_a_sell_without_fills_books_the_order_as_proposed(held, make_order):
    # SELL 8 with a trade amount of 95.50 (unit price 11.9375): no fill reported → 8 units for 95.50.
    account, instrument = held
    order = make_order(account, instrument, side=Side.SELL, units="8", unit_price="11.9375", trade_amount="95.50")
    order = walk(order, S.ACCEPTED, S.EXECUTABLE, S.SENT_TO_EXECUTION, S.IN_EXECUTION, S.EXECUTED_IN_MARKET)
    assert (order.executed_units, order.executed_amount) == (Decimal("8"), Decimal("95.50"))
    walk(order, S.SETTLED_IN_MARKET, S.SETTLED)
    assert units_held(account, instrument) == Decimal("2")
    assert balances(account) == {("EUR", CashKind.CASH): Decimal("1095.50")}


def test_a_sell_of_the_whole_position_deletes_it(held, make_order):
    account, instrument = held
    order = make_order(account, instrument, side=Side.SELL, units="10", unit_price="10", status=S.SETTLED_IN_MARKET,
                       executed_units=Decimal("10"), executed_amount=Decimal("100"))
    trade_order_transition(order=order, status=S.SETTLED)
    assert units_held(account, instrument) is None
    assert balances(account) == {("EUR", CashKind.CASH): Decimal("1100")}


def test_selling_more_than_held_is_refused_and_changes_nothing(held, make_order):
    account, instrument = held
    order = make_order(account, instrument, side=Side.SELL, units="11", unit_price="10", status=S.SETTLED_IN_MARKET,
                       executed_units=Decimal("11"), executed_amount=Decimal("110"))
    with pytest.raises(Conflict, match="holds only 10"):
        trade_order_transition(order=order, status=S.SETTLED)
    stored = TradeOrder.objects.get(pk=order.pk)
    assert (stored.status, stored.settled_units, stored.settled_amount) == (S.SETTLED_IN_MARKET, 0, 0)
    assert units_held(account, instrument) == Decimal("10")
    assert balances(account) == {("EUR", CashKind.CASH): Decimal("1000")}


def test_partial_fills_are_booked_once(held, make_order):
    # BUY 10 @ 10. Fills: 2 at the order price (20), 3 @ 11 (33), and a last fill of 4 @ 9
    # (36): the market is done with 9 of the 10 units, for 89. Settlement books 9 and 89.
    account, instrument = held
    order = make_order(account, instrument, units="10", unit_price="10", status=S.IN_EXECUTION)
    order = trade_order_transition(order=order, status=S.PARTIALLY_EXECUTED, executed_units=Decimal("2"))
    order = trade_order_transition(
        order=order, status=S.PARTIALLY_EXECUTED, executed_units=Decimal("3"), executed_price=Decimal("11")
    )
    order = trade_order_transition(
        order=order, status=S.EXECUTED_IN_MARKET, executed_units=Decimal("4"), executed_price=Decimal("9")
    )
    assert (order.executed_units, order.executed_amount) == (Decimal("9"), Decimal("89"))
    order = walk(order, S.SETTLED_IN_MARKET, S.SETTLED)
    assert units_held(account, instrument) == Decimal("19")
    assert balances(account) == {("EUR", CashKind.CASH): Decimal("911")}
    with pytest.raises(Conflict):
        trade_order_transition(order=order, status=S.SETTLED)
    assert units_held(account, instrument) == Decimal("19")
    assert balances(account) == {("EUR", CashKind.CASH): Decimal("911")}


def test_executed_in_market_without_a_fill_executes_the_rest_at_the_order_price(held, make_order):
    account, instrument = held
    order = make_order(account, instrument, units="10", unit_price="10", status=S.IN_EXECUTION)
    order = trade_order_transition(
        order=order, status=S.PARTIALLY_EXECUTED, executed_units=Decimal("4"), executed_price=Decimal("9.5")
    )
    order = trade_order_transition(order=order, status=S.EXECUTED_IN_MARKET)
    assert (order.executed_units, order.executed_amount) == (Decimal("10"), Decimal("98"))


@pytest.mark.parametrize(
    ("status", "fill", "field", "message"),
    [
        (S.PARTIALLY_EXECUTED, {}, "executed_units", "is required"),
        (S.PARTIALLY_EXECUTED, {"executed_units": Decimal("0")}, "executed_units", "greater than 0"),
        (S.PARTIALLY_EXECUTED, {"executed_units": Decimal("-1")}, "executed_units", "greater than 0"),
        (S.PARTIALLY_EXECUTED, {"executed_units": Decimal("11")}, "executed_units", "11 executed of the order's 10"),
        (S.PARTIALLY_EXECUTED, {"executed_units": Decimal("1"), "executed_price": Decimal("0")},
         "executed_price", "greater than 0"),
        (S.PARTIALLY_EXECUTED, {"executed_units": Decimal("0.00000000001")}, "executed_units", "decimal places"),
        (S.EXECUTED_IN_MARKET, {"executed_price": Decimal("10")}, "executed_price", "needs executed_units"),
        (S.PARTIALLY_EXECUTED, {"executed_units": Decimal("1"), "executed_price": Decimal("-3")},
         "executed_price", "greater than 0"),
    ],
)
def test_bad_fills_are_invalid_input_naming_the_field(held, make_order, status, fill, field, message):
    account, instrument = held
    order = make_order(account, instrument, units="10", unit_price="10", status=S.IN_EXECUTION)
    with pytest.raises(InvalidInput) as caught:
        trade_order_transition(order=order, status=status, **fill)
    assert [e.field for e in caught.value.errors] == [field]
    assert message in caught.value.errors[0].message
    stored = TradeOrder.objects.get(pk=order.pk)
    assert (stored.status, stored.executed_units) == (S.IN_EXECUTION, 0)


def test_a_fill_with_another_status_is_refused(held, make_order):
    account, instrument = held
    order = make_order(account, instrument)
    with pytest.raises(InvalidInput) as caught:
        trade_order_transition(order=order, status=S.ACCEPTED, executed_units=Decimal("1"))
    assert caught.value.errors[0].field == "executed_units"


def test_settlement_books_into_a_cash_account_of_the_order_currency(db, make_order):
    # The default account is in EUR: a USD buy goes to the USD CASH account, not the
    # USD SETTLEMENT one; with no USD CASH account, one is created.
    account = AccountFactory()
    CashAccountFactory(account=account, balance=Decimal("1000"))
    CashAccountFactory(account=account, currency="USD", kind=CashKind.SETTLEMENT, is_default=False, balance=Decimal("5"))
    usd = InstrumentFactory(currency="USD")
    order = make_order(account, usd, units="2", unit_price="30", status=S.SETTLED_IN_MARKET,
                       executed_units=Decimal("2"), executed_amount=Decimal("60"))
    trade_order_transition(order=order, status=S.SETTLED)
    assert balances(account) == {
        ("EUR", CashKind.CASH): Decimal("1000"),
        ("USD", CashKind.SETTLEMENT): Decimal("5"),
        ("USD", CashKind.CASH): Decimal("-60"),
    }
    second = make_order(account, usd, units="1", unit_price="30", status=S.SETTLED_IN_MARKET,
                        executed_units=Decimal("1"), executed_amount=Decimal("30"))
    trade_order_transition(order=second, status=S.SETTLED)
    assert balances(account)[("USD", CashKind.CASH)] == Decimal("-90")
    assert units_held(account, usd) == Decimal("3")


def test_the_default_account_in_the_order_currency_comes_first(db, make_order):
    account = AccountFactory()
    CashAccountFactory(account=account, kind=CashKind.SETTLEMENT, balance=Decimal("100"), is_default=True)
    CashAccountFactory(account=account, kind=CashKind.CASH, balance=Decimal("100"), is_default=False)
    order = make_order(account, InstrumentFactory(), units="1", unit_price="40", status=S.SETTLED_IN_MARKET,
                       executed_units=Decimal("1"), executed_amount=Decimal("40"))
    trade_order_transition(order=order, status=S.SETTLED)
    assert balances(account) == {("EUR", CashKind.SETTLEMENT): Decimal("60"), ("EUR", CashKind.CASH): Decimal("100")}


def test_a_future_moves_units_not_cash(db, make_order):
    account = AccountFactory()
    CashAccountFactory(account=account, balance=Decimal("100"))
    future = InstrumentFactory(type=InstrumentType.FUTURE, futures_cost=FuturesCost.LATER)
    order = make_order(account, future, units="2", unit_price="500", status=S.SETTLED_IN_MARKET,
                       executed_units=Decimal("2"), executed_amount=Decimal("1000"))
    trade_order_transition(order=order, status=S.SETTLED)
    assert units_held(account, future) == Decimal("2")
    assert balances(account) == {("EUR", CashKind.CASH): Decimal("100")}


def test_bulk_transitions_each_order_on_its_own(held, make_order):
    account, instrument = held
    good = [make_order(account, instrument) for _ in range(2)]
    bad = make_order(account, instrument, status=S.SETTLED)
    missing = "00000000-0000-0000-0000-000000000000"
    done, errors = trade_orders_transition(order_ids=[o.pk for o in good] + [bad.pk, missing], status=S.ACCEPTED)
    assert done == 2
    assert len(errors) == 2
    assert any(str(bad.pk) in e and "from SETTLED to ACCEPTED" in e for e in errors)
    assert any(missing in e for e in errors)
    assert set(TradeOrder.objects.filter(pk__in=[o.pk for o in good]).values_list("status", flat=True)) == {S.ACCEPTED}
    assert TradeOrder.objects.get(pk=bad.pk).status == S.SETTLED


def test_bulk_settlement_that_fails_rolls_back_only_that_order(held, make_order):
    account, instrument = held
    fine = make_order(account, instrument, side=Side.SELL, units="4", unit_price="10", status=S.SETTLED_IN_MARKET)
    too_big = make_order(account, instrument, side=Side.SELL, units="11", unit_price="10", status=S.SETTLED_IN_MARKET)
    done, errors = trade_orders_transition(order_ids=[fine.pk, too_big.pk], status=S.SETTLED)
    assert done == 1 and len(errors) == 1 and str(too_big.pk) in errors[0] and "holds only" in errors[0]
    assert TradeOrder.objects.get(pk=fine.pk).status == S.SETTLED
    assert TradeOrder.objects.get(pk=too_big.pk).status == S.SETTLED_IN_MARKET
    assert units_held(account, instrument) == Decimal("6")
    assert balances(account) == {("EUR", CashKind.CASH): Decimal("1040")}


def test_an_account_or_instrument_with_trade_orders_cannot_be_deleted(held, make_order):
    """The trade-order table has no database foreign keys (migration 0012): the ORM's
    PROTECT is what refuses these deletes, and nothing is deleted."""
    from django.db.models import ProtectedError

    account, instrument = held
    order = make_order(account, instrument)
    for row in (account, instrument):
        with pytest.raises(ProtectedError) as refused:
            row.delete()
        assert order in refused.value.protected_objects
    assert TradeOrder.objects.filter(pk=order.pk, account=account, instrument=instrument).exists()
