"""Fixtures shared by the rebalancing tests: a 50/50 allocation and configured accounts."""

from datetime import date
from decimal import Decimal

import pytest

# Django-dependent imports live inside the fixtures, so the engine tests below this
# directory run without Django (`-p no:django`, docs/engine.md).

D = date(2026, 3, 2)


@pytest.fixture
def fifty_fifty(db):
    """Two ETFs (block size 1) at 10 EUR on D, and an allocation of 50 / 50 on them."""
    from tests.factories import InstrumentFactory, PriceFactory, make_allocation

    a, b = InstrumentFactory(name="Alpha ETF"), InstrumentFactory(name="Beta ETF")
    for instrument in (a, b):
        PriceFactory(instrument=instrument, effective_at=D, value=Decimal("10"))
    return a, b, make_allocation({a: "0.5", b: "0.5"}, effective_from=date(2026, 1, 1))


@pytest.fixture
def account_with():
    """A configured EUR account with one default cash account (1000 EUR unless told)."""
    from tests.factories import AccountFactory, CashAccountFactory, make_configuration

    def make(allocation, cash="1000", **fields):
        account = AccountFactory(**fields)
        CashAccountFactory(account=account, balance=Decimal(cash))
        make_configuration(account, allocation)
        return account

    return make
