"""core.counting's paginator: pages past the first are read ids first, then rows."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.counting import CappedPaginator
from portfolios.models import PortfolioAccount
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db


def test_later_pages_hold_the_same_rows_in_the_same_order_as_a_slice():
    parent = AccountFactory(client_id="PARENT")
    for n in range(7):
        AccountFactory(client_id=f"P-{n}", parent=parent if n % 2 else None)
    queryset = PortfolioAccount.objects.select_related("parent").order_by("-client_id", "pk")
    paginator = CappedPaginator(queryset, 3, cap=100)
    assert paginator.count == 8
    for number in (1, 2, 3):
        expected = [a.pk for a in queryset[(number - 1) * 3:number * 3]]
        with CaptureQueriesContext(connection) as queries:
            rows = list(paginator.page(number).object_list)
            [row.parent for row in rows]  # select_related kept: no query of its own
        assert [a.pk for a in rows] == expected, number
        # Page 1: one query; later pages: the ids, then the rows with their joins.
        assert len(queries) == (1 if number == 1 else 2), number
