"""Loading restrictions for a chunk is a fixed number of queries (issue #15)."""

from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portfolios.models import AccountRestrictionList, RestrictionEntry, RestrictionList, Substitute
from rebalancing.selectors.book import book_load
from tests.factories import AccountFactory, InstrumentFactory, PriceFactory, make_allocation, make_configuration

pytestmark = pytest.mark.django_db
DAY = date(2026, 3, 2)


def restricted_book(n: int) -> list:
    a, b, c = (InstrumentFactory() for _ in range(3))
    for instrument in (a, b, c):
        PriceFactory(instrument=instrument, effective_at=DAY)
    allocation = make_allocation({a: "0.5", b: "0.5"})
    own = RestrictionList.objects.create(name=f"ESG {n}", scope="ACCOUNT")
    RestrictionEntry.objects.create(restriction_list=own, instrument=b, rule="NO_BUY")
    firm = RestrictionList.objects.create(name=f"Firm {n}", scope="FIRM")
    RestrictionEntry.objects.create(restriction_list=firm, instrument=a, rule="NO_SELL")
    Substitute.objects.create(instrument=b, substitute=c, rank=1)
    accounts = []
    for _ in range(n):
        account = AccountFactory()
        make_configuration(account, allocation)
        AccountRestrictionList.objects.create(account=account, restriction_list=own)
        accounts.append(account.pk)
    return accounts


def test_restrictions_load_in_a_fixed_number_of_queries_and_reach_the_engine():
    counts = []
    for n in (2, 8):
        ids = restricted_book(n)
        with CaptureQueriesContext(connection) as queries:
            book = book_load(account_ids=ids, on_date=DAY)
        counts.append(len(queries))
        assert set(book.restrictions) == set(ids)
        restrictions = book.restrictions[ids[0]]
        assert all(book.restrictions[i] is restrictions for i in ids)  # one object per set of lists
        assert {str(e.rule) for e in restrictions.entries} >= {"NO_BUY", "NO_SELL"}
        assert set(restrictions.substitutes) and all(s in book.instruments for v in restrictions.substitutes.values() for s in v)
    assert counts[0] == counts[1], counts
