"""§9 last point: an account's own preferences (every overridable one) are what previews,
executions, portfolio orders and strategies run with, the price source included (it used
to be read from the global preferences only)."""

from datetime import date
from decimal import Decimal

import pytest

from rebalancing import engine
from rebalancing.models import Execution, Method, RebalancePreferences, StrategyRun, TradeOrder
from rebalancing.services import (
    execution_create,
    portfolio_order_create,
    preferences_replace,
    rebalance_preview,
    strategies_evaluate,
)
from tests.factories import PriceFactory

from .conftest import threshold
from .test_evaluation import run_executions

pytestmark = pytest.mark.django_db
TODAY = date(2026, 3, 31)

# Every overridable preference, set on the account to a value other than the global one.
OVERRIDES = {
    "cash_range_min": Decimal("-1"), "cash_range_max": Decimal("-0.5"),
    "negative_cash_buffer_pct": Decimal("1"), "negative_cash_buffer_amount": Decimal("2"),
    "positive_cash_buffer_pct": Decimal("3"), "positive_cash_buffer_amount": Decimal("4"),
    "order_basis": "UNITS", "cash_from_sells_pct": Decimal("90"), "min_trade_amount": Decimal("1"),
    "filter_by_min_max": True, "sell_all_transaction_type": "CLOSE", "available_cash": "CASH_ACCOUNTS_ONLY",
    "price_source": "custodian", "default_decimals": {"FUND": 2}, "futures_fee_pct": Decimal("0.5"),
    "restricted_weight_to": "PRO_RATA", "fx_mode": "EXPLICIT", "fx_repatriate": True, "use_price_connector": False,
}
# Fields a portfolio order sets itself (it invests or raises its amount whole: docs/orders.md).
PORTFOLIO_ORDER_OWN = {"cash_range_min", "cash_range_max", "negative_cash_buffer_pct", "negative_cash_buffer_amount",
                       "positive_cash_buffer_pct", "positive_cash_buffer_amount", "filter_by_min_max", "fx_repatriate"}
SERVICE_ONLY = {"price_source", "use_price_connector"}  # read by the services, not passed to the engine


@pytest.fixture
def spied(monkeypatch):
    """Every call of engine.rebalance: (account id, preferences, market)."""
    calls = []
    real = engine.rebalance

    def spy(account, targets, market, preferences=engine.DEFAULT_PREFERENCES, *args, **kwargs):
        calls.append((account.id, preferences, market))
        return real(account, targets, market, preferences, *args, **kwargs)

    monkeypatch.setattr(engine, "rebalance", spy)
    return calls


@pytest.fixture
def custom(travel, etfs, allocation, account_on):
    """The global preferences left at their defaults; one account overriding every field,
    whose price source prices Alpha at 20 (the default source: 10)."""
    travel(TODAY)
    a, _ = etfs
    PriceFactory(instrument=a, source="custodian", effective_at=date(2026, 3, 1), value=Decimal("20"))
    PriceFactory(instrument=etfs[1], source="custodian", effective_at=date(2026, 3, 1), value=Decimal("10"))
    account = account_on(allocation, a="50", b="50", cash="1000")
    preferences_replace(values=dict(OVERRIDES), account=account)
    assert not RebalancePreferences.objects.filter(is_global=True).exists()
    return account


def check(preferences: engine.Preferences, skip=frozenset()):
    for name, value in OVERRIDES.items():
        if name in SERVICE_ONLY | skip:
            continue
        got = getattr(preferences, name)
        if name == "default_decimals":
            assert got[engine.InstrumentType.FUND] == 2
        else:
            assert got == value, name


def test_previews_use_every_override_and_the_accounts_price_source(custom, etfs, spied):
    rebalance_preview(account_ids=[custom.pk], rebalance_date=TODAY)
    [(account_id, preferences, market)] = spied
    assert account_id == custom.pk
    check(preferences)
    assert market.prices[etfs[0].pk] == Decimal("20")  # the account's source, not the global one


def test_executions_use_every_override_and_the_accounts_price_source(custom, etfs, spied):
    execution_create(account_ids=[custom.pk], method=Method.FULL, rebalance_date=TODAY)
    run_executions()
    [(account_id, preferences, market)] = spied
    check(preferences)
    assert market.prices[etfs[0].pk] == Decimal("20")
    # The orders are priced at the account's source (Alpha at 20), on the UNITS basis.
    alpha = TradeOrder.objects.get(execution__isnull=False, instrument=etfs[0])
    assert (alpha.side, alpha.execution_method, alpha.unit_price) == ("BUY", "UNITS", Decimal("20"))
    assert alpha.trade_amount == alpha.units * 20


def test_portfolio_orders_use_every_override_they_do_not_set_themselves(custom, etfs, spied):
    portfolio_order_create(account=custom, side="BUY", cash_amount=Decimal("100"), currency="EUR")
    [(account_id, preferences, market)] = spied
    check(preferences, skip=PORTFOLIO_ORDER_OWN)
    assert market.prices[etfs[0].pk] == Decimal("20")


def test_strategies_value_the_account_at_its_own_prices(custom, strategy_on):
    # At the default prices (10 / 10) 50/50 units are on target; at the account's (20 / 10)
    # Alpha weighs 1000 of 2500 (40 %, cash 40 %): far past a 5-point threshold.
    strategy_on(custom, **threshold())
    summary = strategies_evaluate()
    assert summary.claimed == 1, summary
    assert StrategyRun.objects.get().accounts == 1
    assert Execution.objects.count() == 1
