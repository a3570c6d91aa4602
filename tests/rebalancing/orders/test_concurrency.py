"""Row locks under real concurrency (PostgreSQL): settlements racing on one position and
cash account lose no update, and racing BUY portfolio orders never spend the cash twice."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from core.errors import BusinessRuleViolation
from portfolios.models import CashKind
from rebalancing.models import PortfolioOrder, PortfolioOrderStatus, Side, TradeOrder, TradeOrderStatus
from rebalancing.services import portfolio_order_create, trade_order_transition

from .conftest import balances, units_held

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def race(target, arguments):
    """Run target(argument) for each argument in its own thread and connection, all at once."""
    barrier = threading.Barrier(len(arguments))
    outcomes = []

    def run(argument):
        try:
            barrier.wait()
            outcomes.append(target(argument))
        except Exception as exc:  # noqa: BLE001 - the outcome is what is asserted
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(argument,)) for argument in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_settlements_lose_no_update(is_postgres, configured, abc, make_order):
    if not is_postgres:
        pytest.skip("needs PostgreSQL (row locks and concurrent connections)")
    account = configured(units=(100, 0, 0), cash="1000")
    a = abc[0]
    # Four buys of 5 @ 10 and four sells of 3 @ 10: 100 + 20 − 12 = 108 units, 1000 − 200 + 120 = 920.
    orders = [make_order(account, a, units="5", unit_price="10", status=TradeOrderStatus.SETTLED_IN_MARKET)
              for _ in range(4)]
    orders += [make_order(account, a, side=Side.SELL, units="3", unit_price="10",
                          status=TradeOrderStatus.SETTLED_IN_MARKET) for _ in range(4)]
    outcomes = race(lambda order: trade_order_transition(order=order, status=TradeOrderStatus.SETTLED), orders)
    assert all(isinstance(outcome, TradeOrder) for outcome in outcomes), outcomes
    assert units_held(account, a) == Decimal("108")
    assert balances(account) == {("EUR", CashKind.CASH): Decimal("920")}


def test_concurrent_buys_never_spend_the_cash_twice(is_postgres, configured):
    if not is_postgres:
        pytest.skip("needs PostgreSQL (row locks and concurrent connections)")
    account = configured(units=(0, 0, 100), cash="1000")
    outcomes = race(
        lambda _: portfolio_order_create(account=account, side=Side.BUY, cash_amount=Decimal("400"), currency="EUR"),
        range(4),
    )
    made = [o for o in outcomes if isinstance(o, PortfolioOrder)]
    refused = [o for o in outcomes if isinstance(o, BusinessRuleViolation)]
    assert (len(made), len(refused)) == (2, 2), outcomes
    assert PortfolioOrder.objects.filter(status=PortfolioOrderStatus.OPEN).count() == 2


def test_concurrent_transitions_of_one_portfolio_order_complete_it(is_postgres, configured):
    if not is_postgres:
        pytest.skip("needs PostgreSQL (row locks and concurrent connections)")
    account = configured(units=(0, 0, 100), cash="1000")
    order = portfolio_order_create(account=account, side=Side.BUY, cash_amount=Decimal("1000"), currency="EUR")
    TradeOrder.objects.filter(portfolio_order=order).update(status=TradeOrderStatus.SETTLED_IN_MARKET)
    outcomes = race(
        lambda trade_order: trade_order_transition(order=trade_order, status=TradeOrderStatus.SETTLED),
        list(order.trade_orders.all()),
    )
    assert all(isinstance(outcome, TradeOrder) for outcome in outcomes), outcomes
    order.refresh_from_db()
    assert order.status == PortfolioOrderStatus.COMPLETED
    assert balances(account) == {("EUR", CashKind.CASH): Decimal("0")}
