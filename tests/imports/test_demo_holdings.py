"""The demo book's holdings go through the holdings import (issue #19 item 6)."""

from datetime import date

import pytest

from imports.models import ImportJob
from portfolios.models import CashAccount, CashKind, PortfolioAccount, Position
from portfolios.services.demo import demo_book_load

pytestmark = pytest.mark.django_db


def test_the_demo_loads_its_holdings_as_one_recorded_holdings_import():
    summary = demo_book_load(accounts=40, days=5, seed=3, today=date(2026, 3, 31))
    job = ImportJob.objects.get()
    assert (job.kind, job.mode, job.status, job.file_name) == ("HOLDINGS", "APPLY", "DONE", "demo book: 40 accounts, seed 3")
    cash = CashAccount.objects.count()
    assert summary.positions == Position.objects.count() > 100
    assert job.rows == job.rows_changed == summary.positions + cash
    assert job.accounts_changed == summary.accounts == PortfolioAccount.objects.count() == cash
    # Every account has exactly one default cash account: CASH EUR, or MARGIN for collateral.
    defaults = CashAccount.objects.filter(is_default=True)
    assert defaults.count() == cash
    assert set(defaults.filter(account__parent__isnull=False).values_list("kind", flat=True)) == {CashKind.MARGIN}
