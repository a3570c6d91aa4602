"""Executions, results and orders written straight with the ORM, as the services would."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from rebalancing.models import (
    Execution,
    ExecutionMethod,
    ExecutionResult,
    ExecutionStatus,
    ResultStatus,
    Side,
    TradeOrder,
    Trigger,
)
from tests.factories import AccountFactory, InstrumentFactory

D = date(2026, 3, 2)


def url(model: str, view: str, *args) -> str:
    return reverse(f"admin:rebalancing_{model}_{view}", args=args)


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def csv_lines(response) -> list[list[str]]:
    import csv
    import io

    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


@pytest.fixture
def instruments(db):
    """Two EUR ETFs and a USD fund without an ISIN."""
    return (
        InstrumentFactory(name="Alpha ETF", currency="EUR"),
        InstrumentFactory(name="Beta ETF", currency="EUR"),
        InstrumentFactory(name="Gamma Fund", currency="USD", isin=None, type="FUND"),
    )


@pytest.fixture
def make_order():
    """A trade order as a rebalance would write it (OPEN unless told)."""

    def make(account, instrument, side=Side.BUY, units="7", unit_price="12.5", trade_amount=None, **fields):
        units, unit_price = Decimal(units), Decimal(unit_price)
        return TradeOrder.objects.create(
            account=account, instrument=instrument, side=side, transaction_type=fields.pop("transaction_type", side),
            units=units, unit_price=unit_price,
            trade_amount=Decimal(trade_amount) if trade_amount is not None else units * unit_price,
            currency=fields.pop("currency", instrument.currency),
            execution_method=fields.pop("execution_method", ExecutionMethod.NET_TRADE_AMOUNT), **fields,
        )

    return make


@pytest.fixture
def make_execution(instruments, make_order):
    """An execution of `accounts` new accounts, each PROPOSED with a buy of A and a sell of B."""
    a, b, _ = instruments

    def make(accounts=2, status=ExecutionStatus.COMPLETED, orders=True, **fields):
        done = accounts if status not in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING) else 0
        execution = Execution.objects.create(
            status=status, trigger=fields.pop("trigger", Trigger.MANUAL), method=fields.pop("method", "FULL"),
            rebalance_date=D, total=accounts, done=done, **fields,
        )
        for _ in range(accounts):
            account = AccountFactory()
            ExecutionResult.objects.create(
                execution=execution, account=account, status=ResultStatus.PROPOSED if orders else ResultStatus.NO_TRADES,
                total_value=Decimal("1000"), cash_before=Decimal("250"), cash_after=Decimal("50.5"),
                order_count=2 if orders else 0,
            )
            if orders:
                make_order(account, a, Side.BUY, units="10", unit_price="10", execution=execution)
                make_order(account, b, Side.SELL, units="5", unit_price="20", execution=execution)
        return execution

    return make
