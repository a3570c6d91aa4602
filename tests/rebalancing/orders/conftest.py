from datetime import date
from decimal import Decimal

import pytest

from portfolios.models import CashAccount, Position
from rebalancing.models import ExecutionMethod, Side, TradeOrder
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

D = date(2026, 3, 2)


@pytest.fixture
def abc(db):
    """Three ETFs at 10 EUR on D, tradable in hundredths of a unit (block size 0.01)."""
    instruments = [InstrumentFactory(name=f"{n} ETF", block_size=Decimal("0.01")) for n in ("Alpha", "Beta", "Gamma")]
    for instrument in instruments:
        PriceFactory(instrument=instrument, effective_at=D, value=Decimal("10"))
    return instruments


@pytest.fixture
def configured(abc):
    """A configured, ACTIVE EUR account on a model of A 0.5, B 0.3, C 0.2 (or `weights`;
    None leaves a line out) with the given units held and a default EUR cash account."""

    def make(units=(0, 0, 0), cash="1000", weights=("0.5", "0.3", "0.2"), **fields):
        account = AccountFactory(**fields)
        CashAccountFactory(account=account, balance=Decimal(cash))
        for instrument, held in zip(abc, units):
            if held:
                PositionFactory(account=account, instrument=instrument, units=Decimal(held))
        lines = {instrument: weight for instrument, weight in zip(abc, weights) if weight is not None}
        make_configuration(account, make_allocation(lines, effective_from=date(2026, 1, 1)))
        return account

    return make


@pytest.fixture
def make_order():
    """A trade order as a rebalance would have written it (status OPEN unless told)."""

    def make(account, instrument, side=Side.BUY, units="7", unit_price="12.5", trade_amount=None, **fields):
        units, unit_price = Decimal(units), Decimal(unit_price)
        return TradeOrder.objects.create(
            account=account, instrument=instrument, side=side, transaction_type=side,
            units=units, unit_price=unit_price,
            trade_amount=Decimal(trade_amount) if trade_amount is not None else units * unit_price,
            currency=fields.pop("currency", instrument.currency),
            execution_method=ExecutionMethod.NET_TRADE_AMOUNT, **fields,
        )

    return make


def units_held(account, instrument):
    position = Position.objects.filter(account=account, instrument=instrument).first()
    return position.units if position else None


def balances(account) -> dict:
    return {(c.currency, c.kind): c.balance for c in CashAccount.objects.filter(account=account)}

