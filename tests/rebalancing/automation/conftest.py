"""A small book for the automation tests: two ETFs at 10 EUR since 2025, an allocation of
50 / 50 on them, and accounts whose drift is set by the units they hold.

Everything that depends on "today" runs under time-machine: a strategy's dates count
from the day it was created or last changed, so tests create it at a frozen moment and
then travel to the day they evaluate."""

from datetime import date, datetime
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine

from portfolios.models import PortfolioAccount
from rebalancing.models import Strategy, StrategyType
from tests.factories import (
    AccountFactory,
    CashAccountFactory,
    InstrumentFactory,
    PositionFactory,
    PriceFactory,
    make_allocation,
    make_configuration,
)
from tests.portfolios.api.conftest import client_for, error_fields, message_for, problem  # noqa: F401

PRICES_FROM = date(2025, 1, 1)


def utc(year, month, day, hour=6, minute=0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=dt_timezone.utc)


@pytest.fixture
def travel():
    """travel(moment): freeze the clock at `moment` (a date means 06:00 UTC that day) until
    the next call or the end of the test."""
    state = {"traveller": None}

    def go(moment):
        if isinstance(moment, date) and not isinstance(moment, datetime):
            moment = utc(moment.year, moment.month, moment.day)
        if state["traveller"] is not None:
            state["traveller"].stop()
        state["traveller"] = time_machine.travel(moment, tick=False)
        state["traveller"].start()

    yield go
    if state["traveller"] is not None:
        state["traveller"].stop()


@pytest.fixture
def etfs(db):
    """Alpha and Beta ETFs at 10 EUR from 2025-01-01 on (block size 1)."""
    a, b = InstrumentFactory(name="Alpha ETF"), InstrumentFactory(name="Beta ETF")
    for instrument in (a, b):
        PriceFactory(instrument=instrument, effective_at=PRICES_FROM, value=Decimal("10"))
    return a, b


@pytest.fixture
def allocation(etfs):
    a, b = etfs
    return make_allocation({a: "0.5", b: "0.5"}, effective_from=PRICES_FROM)


@pytest.fixture
def account_on(etfs):
    """account_on(allocation, a=50, b=50, cash="0", **fields): a configured EUR account
    holding `a` and `b` units (at 10 EUR: 60/40 drifts 10 points from 50/50)."""

    def make(allocation, a="50", b="50", cash="0", **fields) -> PortfolioAccount:
        account = AccountFactory(**fields)
        CashAccountFactory(account=account, balance=Decimal(cash))
        for instrument, units in zip(etfs, (a, b)):
            if Decimal(units):
                PositionFactory(account=account, instrument=instrument, units=Decimal(units))
        make_configuration(account, allocation)
        return account

    return make


def calendar(**fields) -> dict:
    return {"type": StrategyType.CALENDAR, "period_type": "MONTHLY", "period_count": 1,
            "anchor_date": date(2026, 1, 31), **fields}


def threshold(**fields) -> dict:
    return {"type": StrategyType.THRESHOLD, "absolute_drift": Decimal("0.05"), **fields}


@pytest.fixture
def strategy_on():
    """strategy_on(owner, **fields): a strategy on a configuration (give the account) or
    an allocation, created now (freeze the clock first)."""
    from portfolios.models import Allocation

    def make(owner, **fields) -> Strategy:
        if isinstance(owner, Allocation):
            return Strategy.objects.create(allocation=owner, **fields)
        return Strategy.objects.create(configuration=owner.configuration, **fields)

    return make
