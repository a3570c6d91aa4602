"""Settlement writes lots (§12): a settled BUY adds a lot at its executed price, fees
included; a settled SELL relieves lots by the account's lot_method and records realized
gains; a bulk settlement relieves from one book of lots and undoes a failed order's."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from portfolios.models import Lot, Position, RealizedGain
from rebalancing.models import Side, TradeOrderStatus as S
from rebalancing.services import preferences_replace, trade_order_transition, trade_orders_transition
from tests.factories import AccountFactory, CashAccountFactory, InstrumentFactory, PositionFactory


def assert_units_equal_lots():
    for position in Position.objects.all():
        assert Lot.objects.filter(position=position).aggregate(t=Sum("units"))["t"] == position.units


@pytest.fixture
def held(db):
    """20 units of X: 10 bought at 10 two years ago, 10 at 30 two months ago."""
    today = timezone.localdate()
    account = AccountFactory(base_currency="EUR")
    CashAccountFactory(account=account, balance=Decimal("1000"))
    x = InstrumentFactory(currency="EUR")
    PositionFactory(account=account, instrument=x, units=Decimal("20"), lots=[
        (today - timedelta(days=730), Decimal("10"), Decimal("10")),
        (today - timedelta(days=60), Decimal("10"), Decimal("30")),
    ])
    return account, x


def executed(make_order, account, instrument, side, units, amount):
    return make_order(
        account, instrument, side=side, units=units, unit_price=str(Decimal(amount) / Decimal(units)),
        trade_amount=amount, status=S.SETTLED_IN_MARKET, executed_units=Decimal(units), executed_amount=Decimal(amount),
    )


def test_a_settled_buy_adds_a_lot_at_the_executed_price_fees_included(held, make_order):
    account, x = held
    order = executed(make_order, account, x, Side.BUY, "4", "41")  # 40 + 1 of fees
    trade_order_transition(order=order, status=S.SETTLED)
    lot = Lot.objects.get(position__account=account, acquired_on=timezone.localdate())
    assert (lot.units, lot.unit_cost) == (Decimal("4"), Decimal("10.25"))
    assert Position.objects.get().units == Decimal("24")
    assert_units_equal_lots()


@pytest.mark.parametrize(("method", "gain", "term"), [
    ("FIFO", Decimal("50"), "LONG"),  # 5 of the lot at 10, sold at 20
    ("HIFO", Decimal("-50"), "SHORT"),  # 5 of the lot at 30
    ("MIN_TAX", Decimal("-50"), "SHORT"),  # the loss first
    ("LIFO", Decimal("-50"), "SHORT"),
])
def test_a_settled_sell_relieves_by_the_lot_method(held, make_order, method, gain, term):
    account, x = held
    preferences_replace(account=account, values={"lot_method": method})
    order = executed(make_order, account, x, Side.SELL, "5", "100")
    trade_order_transition(order=order, status=S.SETTLED)
    row = RealizedGain.objects.get()
    assert (row.units, row.proceeds, row.gain, row.term, row.trade_order_id) == (Decimal("5"), Decimal("100"), gain, term, order.pk)
    assert (row.gain_base, row.base_currency) == (gain, "EUR")
    assert_units_equal_lots()


def test_selling_across_lots_spreads_the_proceeds(held, make_order):
    account, x = held
    order = executed(make_order, account, x, Side.SELL, "15", "300")
    trade_order_transition(order=order, status=S.SETTLED)
    rows = list(RealizedGain.objects.order_by("acquired_on").values_list("units", "proceeds", "gain"))
    assert rows == [(Decimal("10"), Decimal("200"), Decimal("100")), (Decimal("5"), Decimal("100"), Decimal("-50"))]
    assert sum(r[1] for r in rows) == Decimal("300")
    assert list(Lot.objects.values_list("units", flat=True)) == [Decimal("5")]


def test_a_bulk_settlement_relieves_once_and_undoes_the_order_that_failed(held, make_order):
    account, x = held
    other = AccountFactory(base_currency="EUR")
    CashAccountFactory(account=other, balance=Decimal("0"))
    PositionFactory(account=other, instrument=x, units=Decimal("3"))  # one lot of unknown cost
    orders = [
        executed(make_order, account, x, Side.SELL, "12", "240"),
        executed(make_order, other, x, Side.SELL, "3", "60"),
        executed(make_order, other, x, Side.SELL, "3", "60"),  # whichever settles second finds nothing left
        executed(make_order, account, x, Side.BUY, "2", "40"),
    ]
    done, errors = trade_orders_transition(order_ids=[o.pk for o in orders], status=S.SETTLED)
    assert done == 3 and len(errors) == 1 and "holds only 0" in errors[0]
    assert Position.objects.get(account=account).units == Decimal("10")
    assert not Position.objects.filter(account=other).exists()
    by_account = dict(RealizedGain.objects.values("account").annotate(u=Sum("units")).values_list("account", "u"))
    assert by_account == {account.pk: Decimal("12"), other.pk: Decimal("3")}
    unknown = RealizedGain.objects.get(account=other)
    assert unknown.gain is None and unknown.gain_base is None
    assert_units_equal_lots()
