"""The cockpit: stored drift, the dashboard as admin index (fixed queries at two book
sizes), the account list's drift column and filters, numbers people read."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from core import formatting
from portfolios.models import Configuration
from django.db.models import Sum

from rebalancing.models import AccountDrift, DriftSummary
from rebalancing.selectors.dashboard import dashboard
from rebalancing.services.drift import account_drifts_refresh, drift_summary_refresh
from tests.factories import AccountFactory, CashAccountFactory, InstrumentFactory, PositionFactory, PriceFactory, make_allocation

pytestmark = pytest.mark.django_db


@pytest.fixture
def book():
    """Accounts on a 60/40 model: some balanced, some all in the first ETF (40 points off)."""
    today = timezone.localdate()
    a, b = InstrumentFactory(name="Alpha ETF"), InstrumentFactory(name="Beta ETF")
    for instrument in (a, b):
        PriceFactory(instrument=instrument, effective_at=today, value=Decimal("10"))
    allocation = make_allocation({a: Decimal("0.6"), b: Decimal("0.4")}, name="Balanced 60/40")

    def make(n: int, *, drifted: bool):
        accounts = []
        for _ in range(n):
            account = AccountFactory()
            Configuration.objects.create(account=account, allocation=allocation)
            if drifted:
                PositionFactory(account=account, instrument=a, units=Decimal("100"))
            else:
                PositionFactory(account=account, instrument=a, units=Decimal("60"))
                PositionFactory(account=account, instrument=b, units=Decimal("40"))
            CashAccountFactory(account=account, balance=Decimal("0"), is_default=True)
            accounts.append(account)
        return accounts

    return {"allocation": allocation, "make": make, "a": a, "b": b}


def test_the_refresh_stores_each_accounts_largest_drift_and_band(book):
    balanced = book["make"](2, drifted=False)
    drifted = book["make"](1, drifted=True)
    custody = AccountFactory(client_id="CUSTODY-1")  # follows no model: no drift row
    assert account_drifts_refresh() == 3
    row = AccountDrift.objects.get(account=drifted[0])
    assert row.max_drift == Decimal("0.4") and row.outside_band and row.total_value == Decimal("1000")
    assert "default band" in row.band and row.max_drift_line in ("Alpha ETF", "Beta ETF")
    assert not AccountDrift.objects.get(account=balanced[0]).outside_band
    assert not AccountDrift.objects.filter(account=custody).exists()


@pytest.mark.parametrize("size", [3, 30])
def test_the_dashboard_runs_a_fixed_number_of_queries(book, size, django_assert_num_queries, superuser):
    book["make"](size, drifted=True)
    book["make"](size, drifted=False)
    account_drifts_refresh()
    with django_assert_num_queries(9):
        board = dashboard(user=superuser)
    assert dict(board.accounts_by_status)["ACTIVE"] == 2 * size
    assert [(name, n) for _, name, n in board.outside_band] == [("Balanced 60/40", size)]
    assert board.outside_band_total == size
    assert board.aum_by_currency == [("EUR", Decimal(2000 * size), Decimal(2000 * size))]
    # Balanced accounts in the first bucket (< 1 %), the 40-point ones in the last (≥ 10 %).
    assert [n for _, n, _, _ in board.drift_histogram] == [size, 0, 0, 0, size]


def test_the_dashboards_drift_figures_are_those_of_the_last_whole_book_refresh(book, superuser):
    """The summary is rebuilt by the refresh (the daily evaluation), not by a page load:
    drift written since shows on the dashboard only after the next refresh."""
    drifted = book["make"](2, drifted=True)
    book["make"](1, drifted=False)
    account_drifts_refresh()
    board = dashboard(user=superuser)
    assert board.outside_band_total == 2 and board.summary_at is not None
    AccountDrift.objects.filter(account=drifted[0]).update(outside_band=False, max_drift=Decimal("0.001"))
    assert dashboard(user=superuser).outside_band_total == 2
    drift_summary_refresh()
    board = dashboard(user=superuser)
    assert board.outside_band_total == 1
    assert [n for _, n, _, _ in board.drift_histogram] == [2, 0, 0, 0, 1]
    assert DriftSummary.objects.aggregate(n=Sum("accounts"))["n"] == AccountDrift.objects.count() == 3


def test_the_index_is_the_dashboard_with_charts_and_system_last(admin_client, book):
    book["make"](2, drifted=True)
    account_drifts_refresh()
    response = admin_client.get(reverse("admin:index"))
    content = response.content.decode()
    assert response.status_code == 200
    for chart in ("chart-accounts", "chart-aum", "chart-drift", "chart-outside-band", "chart-executions"):
        assert f'id="{chart}"' in content, chart
    assert "2,000.00 EUR" in content  # the value, in the reporting currency
    names = [app["name"] for app in response.context["app_list"]]
    assert names[:2] == ["Portfolios", "Rebalancing"] and names[-1] == "System"
    assert "View site" not in content


def test_the_account_list_sorts_and_filters_by_stored_drift(admin_client, book, django_assert_max_num_queries):
    balanced = book["make"](2, drifted=False)
    drifted = book["make"](1, drifted=True)
    account_drifts_refresh()
    changelist = reverse("admin:portfolios_portfolioaccount_changelist")
    response = admin_client.get(changelist + "?outside_band=yes")
    assert [a.pk for a in response.context["cl"].result_list] == [drifted[0].pk]
    assert "40.00 % ▲ outside band" in response.content.decode()
    response = admin_client.get(changelist + "?drift=0")  # < 1 %
    assert {a.pk for a in response.context["cl"].result_list} == {a.pk for a in balanced}
    response = admin_client.get(changelist + f"?configuration__allocation__id__exact={book['allocation'].pk}")
    assert len(response.context["cl"].result_list) == 3


def test_one_allocations_accounts_are_counted_from_its_configurations(admin_client, book):
    book["make"](3, drifted=False)
    AccountFactory(client_id="NO-MODEL")  # in no allocation
    other = make_allocation({book["a"]: Decimal("1")}, name="All Alpha")
    Configuration.objects.create(account=AccountFactory(client_id="OTHER-1"), allocation=other)
    changelist = reverse("admin:portfolios_portfolioaccount_changelist")
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(changelist + f"?configuration__allocation__id__exact={book['allocation'].pk}")
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"]]
    assert len(counts) == 1 and "portfolioaccount" not in counts[0] and "configuration" in counts[0]
    assert response.context["cl"].paginator.count == 3 and len(response.context["cl"].result_list) == 3
    assert "3 portfolio accounts" in response.content.decode()
    # With another filter as well, the accounts themselves are counted.
    response = admin_client.get(changelist + f"?configuration__allocation__id__exact={other.pk}&status__exact=ACTIVE")
    assert response.context["cl"].paginator.count == 1


def test_sorted_by_drift_the_list_holds_the_valued_accounts_largest_first(admin_client, book):
    balanced = book["make"](2, drifted=False)
    drifted = book["make"](1, drifted=True)
    custody = AccountFactory(client_id="CUSTODY-SORT")  # no drift row
    account_drifts_refresh()
    changelist = reverse("admin:portfolios_portfolioaccount_changelist")
    column = ["action_checkbox", *admin_site_account_columns()].index("drift_shown")
    response = admin_client.get(changelist + f"?o={column}")  # the column's own order: largest first
    listed = [a.pk for a in response.context["cl"].result_list]
    assert listed[0] == drifted[0].pk and set(listed) == {drifted[0].pk, *(a.pk for a in balanced)}
    assert custody.pk not in listed
    assert "only accounts with a stored drift are listed" in response.content.decode()
    response = admin_client.get(changelist + f"?o=-{column}")  # reversed: smallest first
    assert [a.pk for a in response.context["cl"].result_list][-1] == drifted[0].pk
    # Sorted by another column, every account is listed and nothing is said.
    response = admin_client.get(changelist + "?o=1")
    assert custody.pk in [a.pk for a in response.context["cl"].result_list]
    assert "only accounts with a stored drift" not in response.content.decode()


@pytest.mark.parametrize("query", ["", "?outside_band=yes", "?o=1", "?o=9"])
def test_the_account_list_rows_are_djangos_own_cells(admin_client, book, query):
    """FastRowsChangeList renders each row in one piece, cell for cell as Django does."""
    from django.contrib.admin.templatetags.admin_list import items_for_result

    from rebalancing.admin.common import fast_rows

    book["make"](2, drifted=False)
    book["make"](1, drifted=True)
    AccountFactory(client_id="CUSTODY-ROWS", locked=True)
    account_drifts_refresh()
    response = admin_client.get(reverse("admin:portfolios_portfolioaccount_changelist") + query)
    changelist = response.context["cl"]
    assert len(changelist.result_list) > 0
    django_rows = ["".join(items_for_result(changelist, row, None)) for row in changelist.result_list]
    assert list(fast_rows(changelist)) == django_rows
    assert all(row in response.content.decode() for row in django_rows)


def admin_site_account_columns():
    from django.contrib import admin

    from portfolios.models import PortfolioAccount

    return admin.site._registry[PortfolioAccount].list_display


def test_a_custody_account_shows_no_drift_and_no_schedule(admin_client, book):
    custody = AccountFactory(client_id="CUSTODY-2")
    PositionFactory(account=custody, instrument=book["a"], units=Decimal("5"))
    content = admin_client.get(reverse("admin:portfolios_portfolioaccount_change", args=[custody.pk])).content.decode()
    assert "follows no allocation" in content
    assert ">Schedule<" not in content and "+100.00 %" not in content


def test_numbers_people_read():
    assert formatting.money(Decimal("134455.4399992"), "EUR") == "134,455.44 EUR"
    assert formatting.money(Decimal("1234.5"), "JPY") == "1,234 JPY"
    assert formatting.percent(Decimal("0.250000000000")) == "25.00 %"
    assert formatting.units(Decimal("12.500000"), Decimal("0.01")) == "12.50"
    assert formatting.units(Decimal("2.5"), Decimal("1")) == "2.5"
    assert formatting.price(Decimal("56179.6170333420")) == "56,179.617033342"
    ids = ["0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c"]
    assert len({formatting.short_id(i) for i in ids}) == 2  # time-ordered UUIDs: the prefix is the same
