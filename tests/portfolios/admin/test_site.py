"""The staff UI: every page renders, permissions per staff group, pinned query counts.

Allocation and account pages have their own modules (test_allocations.py,
test_accounts.py); `page_data` here turns a rendered admin page into the POST
body it would send, so tests change only what a user would change.
"""

from datetime import date
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.forms import CheckboxInput
from django.urls import reverse

from portfolios import models, services
from tests.factories import (
    AccountFactory,
    CashAccountFactory,
    CashInstrumentFactory,
    FxRateFactory,
    InstrumentFactory,
    PositionFactory,
    PriceFactory,
    UserFactory,
    make_allocation,
    make_configuration,
)

PRICE_DATE = date(2020, 1, 2)  # before "today", whenever the suite runs


def url(model, view, *args) -> str:
    return reverse(f"admin:portfolios_{model._meta.model_name}_{view}", args=args)


def _put(data: dict, bound) -> None:
    value = bound.value()
    if isinstance(bound.field.widget, CheckboxInput):
        if value:
            data[bound.html_name] = "on"
        return
    if value is None:
        data[bound.html_name] = ""
    elif isinstance(value, (list, tuple)):
        data[bound.html_name] = [str(v) for v in value]
    elif isinstance(value, date):
        data[bound.html_name] = value.isoformat()
    else:
        data[bound.html_name] = str(value)


def page_data(response) -> dict:
    """The POST body of a rendered add/change page, as the browser would send it unchanged."""
    assert response.status_code == 200, response.status_code
    data: dict = {}
    for bound in response.context["adminform"].form:
        _put(data, bound)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for bound in formset.management_form:
            _put(data, bound)
        for form in formset.forms:
            for bound in form:
                _put(data, bound)
    return data


def in_group(name: str, username: str):
    user = UserFactory(username=username, is_staff=True)
    user.groups.add(Group.objects.get(name=name))
    return user


@pytest.fixture
def populated(db, superuser):
    """At least one row of every model, related the way production data is."""
    CashInstrumentFactory(currency="EUR")
    etf, equity = InstrumentFactory(), InstrumentFactory(currency="USD", type=models.InstrumentType.EQUITY)
    InstrumentFactory(type=models.InstrumentType.FUTURE, futures_cost=models.FuturesCost.LATER, isin=None)
    PriceFactory(instrument=etf, effective_at=PRICE_DATE, value=Decimal("100"))
    PriceFactory(instrument=equity, effective_at=PRICE_DATE, value=Decimal("50"))
    FxRateFactory(effective_at=PRICE_DATE, rate=Decimal("1.25"))
    allocation = make_allocation({etf: Decimal("0.6"), equity: Decimal("0.4")}, user=superuser, name="Balanced")
    parent = AccountFactory()
    AccountFactory(parent=parent, locked=True)
    PositionFactory(account=parent, instrument=etf, units=Decimal("3"), lots=[(PRICE_DATE, Decimal("3"), Decimal("90"))])
    CashAccountFactory(account=parent)
    # A realized gain: one unit relieved, as a settled sell would (§12).
    from portfolios.services.lots import LotBook  # noqa: PLC0415

    book = LotBook({(parent.pk, etf.pk)}, on_date=PRICE_DATE)
    book.relieve((parent.pk, etf.pk), units=Decimal("1"), proceeds=Decimal("100"), method="FIFO", long_term_days=365)
    book.add((parent.pk, etf.pk), units=Decimal("1"), unit_cost=Decimal("95"), acquired_on=PRICE_DATE)
    book.flush()
    make_configuration(account=parent, allocation=allocation)
    models.IdempotencyRecord.objects.create(
        user=superuser, key="k-1", method="POST", path="/api/v1/allocations/", request_hash="0" * 64,
        status_code=201, response_body=f'{{"id":"{allocation.pk}"}}', content_type="application/json",
    )
    # Restrictions: a list with an entry assigned to the account, a substitute, and an
    # allocation whose unpriced line needs attention.
    restricted = services.restriction_list_create(
        name="ESG", entries=[services.EntryInput(str(equity.pk), "NO_BUY", "tobacco", None, None)], user=superuser
    )
    services.accounts_restriction_list_assign(account_ids=[parent.pk], restriction_list=restricted, user=superuser)
    services.substitutes_replace(instrument=equity, substitutes=[str(etf.pk)], user=superuser)
    make_allocation({InstrumentFactory(): Decimal("1")}, user=superuser, name="Unpriced")
    return {"allocation": allocation, "account": parent, "etf": etf}


def test_every_model_of_the_app_is_registered():
    registered = {model for model in admin.site._registry if model._meta.app_label == "portfolios"}
    assert set(apps.get_app_config("portfolios").get_models()) == registered


PORTFOLIO_MODELS = sorted(
    (model for model in apps.get_app_config("portfolios").get_models()), key=lambda m: m._meta.model_name
)


@pytest.mark.parametrize("model", PORTFOLIO_MODELS, ids=lambda m: m._meta.model_name)
def test_every_page_renders_for_a_superuser(admin_client, populated, model):
    assert model.objects.exists()
    response = admin_client.get(url(model, "changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1

    obj = model.objects.first()
    response = admin_client.get(url(model, "change", obj.pk))
    assert response.status_code == 200

    model_admin = admin.site._registry[model]
    request = response.wsgi_request
    if model_admin.has_add_permission(request):
        assert admin_client.get(url(model, "add")).status_code == 200
    else:
        assert admin_client.get(url(model, "add")).status_code == 403


@pytest.mark.parametrize(
    ("model", "query"),
    [
        (models.Instrument, {"q": "Instrument"}),
        (models.Instrument, {"type__exact": "ETF", "tradable__exact": "1"}),
        (models.Price, {"effective_at__year": "2020"}),
        (models.Price, {"q": "default"}),
        (models.FxRate, {"effective_at__year": "2020", "base": "EUR"}),
        (models.Allocation, {"q": "Balanced"}),
        (models.Allocation, {"current_version__weight_type__exact": "STATIC"}),
        (models.PortfolioAccount, {"status__exact": "ACTIVE", "locked__exact": "0", "base_currency": "EUR"}),
        (models.PortfolioAccount, {"q": "CL-"}),
        (models.AllocationLine, {"q": "Instrument"}),
    ],
)
def test_changelist_filters_and_search_render(admin_client, populated, model, query):
    response = admin_client.get(url(model, "changelist"), query)
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


def test_search_finds_instruments_by_isin_name_and_uuid(admin_client, populated):
    etf = populated["etf"]
    for term in (etf.isin, etf.isin[:6], etf.name, str(etf.pk)):
        response = admin_client.get(url(models.Instrument, "changelist"), {"q": term})
        assert etf in response.context["cl"].result_list, term


def test_search_finds_accounts_by_client_id_and_uuid(admin_client, populated):
    account = populated["account"]
    for term in (account.client_id, str(account.pk)):
        response = admin_client.get(url(models.PortfolioAccount, "changelist"), {"q": term})
        assert list(response.context["cl"].result_list) == [account], term


def test_instrument_autocomplete_on_an_allocation_line_offers_only_tradable(admin_client, populated):
    blocked = InstrumentFactory(name="Blocked ETF", tradable=False)
    params = {"app_label": "portfolios", "model_name": "allocationline", "field_name": "instrument", "term": "ETF"}
    ids = {row["id"] for row in admin_client.get(reverse("admin:autocomplete"), params).json()["results"]}
    assert str(blocked.pk) not in ids
    params = {"app_label": "portfolios", "model_name": "price", "field_name": "instrument", "term": "Blocked"}
    ids = {row["id"] for row in admin_client.get(reverse("admin:autocomplete"), params).json()["results"]}
    assert str(blocked.pk) in ids


def test_instrument_type_and_currency_are_read_only_on_change(admin_client, populated):
    etf = populated["etf"]
    form = admin_client.get(url(models.Instrument, "change", etf.pk)).context["adminform"].form
    assert "type" not in form.fields and "currency" not in form.fields
    assert "isin" in form.fields


def test_instrument_add_goes_through_the_service_rules(admin_client, db):
    response = admin_client.get(url(models.Instrument, "add"))
    data = page_data(response) | {"isin": "DE0000000001", "name": "Bad check digit", "type": "ETF", "currency": "EUR"}
    response = admin_client.post(url(models.Instrument, "add"), data)
    assert response.status_code == 200
    assert "is not a valid ISIN" in str(response.context["adminform"].form.errors["isin"])

    data |= {"isin": "", "name": "", "type": "CASH", "currency": "CHF"}
    response = admin_client.post(url(models.Instrument, "add"), data)
    assert response.status_code == 302
    cash = models.Instrument.objects.get(type="CASH", currency="CHF")
    assert cash.name == "CHF" and cash.isin is None

    data |= {"isin": "US0378331005", "name": "Apple future", "type": "FUTURE", "currency": "USD"}
    assert admin_client.post(url(models.Instrument, "add"), data).status_code == 302
    assert models.Instrument.objects.get(isin="US0378331005").futures_cost == models.FuturesCost.LATER


# --- Permissions --------------------------------------------------------------------


def test_read_only_group_views_but_cannot_change(client, populated):
    client.force_login(in_group("Read-only", "reader"))
    allocation, account = populated["allocation"], populated["account"]
    for model in (models.Allocation, models.PortfolioAccount, models.Instrument, models.Configuration):
        assert client.get(url(model, "changelist")).status_code == 200
        assert client.get(url(model, "add")).status_code == 403

    response = client.get(url(models.Allocation, "change", allocation.pk))
    assert response.status_code == 200
    assert not response.context["has_change_permission"]
    assert b'name="_save"' not in response.content
    response = client.get(url(models.PortfolioAccount, "change", account.pk))
    assert response.status_code == 200
    assert not response.context["has_change_permission"]

    assert client.post(url(models.Allocation, "change", allocation.pk), {"name": "x"}).status_code == 403
    assert client.post(url(models.PortfolioAccount, "change", account.pk), {"status": "CLOSED"}).status_code == 403
    response = client.post(
        url(models.PortfolioAccount, "changelist"), {"action": "lock_accounts", "_selected_action": [str(account.pk)]}
    )
    account.refresh_from_db()
    assert not account.locked
    assert models.AllocationVersion.objects.filter(allocation=allocation).count() == 1


def test_operations_changes_accounts_but_not_allocations(client, admin_client, populated):
    allocation, account = populated["allocation"], populated["account"]
    allocation_data = page_data(admin_client.get(url(models.Allocation, "change", allocation.pk)))
    account_data = page_data(admin_client.get(url(models.PortfolioAccount, "change", account.pk)))

    client.force_login(in_group("Operations", "ops"))
    response = client.get(url(models.Allocation, "change", allocation.pk))
    assert response.status_code == 200 and not response.context["has_change_permission"]
    assert client.post(url(models.Allocation, "change", allocation.pk), allocation_data).status_code == 403
    assert models.AllocationVersion.objects.filter(allocation=allocation).count() == 1

    response = client.get(url(models.PortfolioAccount, "change", account.pk))
    assert response.context["has_change_permission"]
    response = client.post(url(models.PortfolioAccount, "change", account.pk), account_data | {"status": "PENDING"})
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.status == models.AccountStatus.PENDING


def test_portfolio_managers_change_allocations_but_only_view_accounts(client, admin_client, populated):
    allocation, account = populated["allocation"], populated["account"]
    allocation_data = page_data(admin_client.get(url(models.Allocation, "change", allocation.pk)))
    account_data = page_data(admin_client.get(url(models.PortfolioAccount, "change", account.pk)))

    client.force_login(in_group("Portfolio managers", "pm"))
    allocation_data |= {"lines-0-weight": "0.5", "lines-1-weight": "0.5"}
    response = client.post(url(models.Allocation, "change", allocation.pk), allocation_data)
    assert response.status_code == 302
    assert models.AllocationVersion.objects.filter(allocation=allocation).count() == 2
    assert client.post(url(models.PortfolioAccount, "change", account.pk), account_data).status_code == 403


def test_allocation_search_finds_the_isin_of_a_current_line(admin_client, populated):
    response = admin_client.get(url(models.Allocation, "changelist"), {"q": populated["etf"].isin})
    assert list(response.context["cl"].result_list) == [populated["allocation"]]
    response = admin_client.get(url(models.Allocation, "changelist"), {"q": str(populated["allocation"].pk)})
    assert list(response.context["cl"].result_list) == [populated["allocation"]]


# --- Query counts -------------------------------------------------------------------


def _allocations(count: int) -> None:
    a, b = InstrumentFactory(), InstrumentFactory(type=models.InstrumentType.FUTURE, futures_cost="LATER")
    for n in range(count):
        allocation = make_allocation({a: Decimal("1"), b: Decimal("0.5")}, name=f"Model {n}")
        make_configuration(allocation=allocation)


def _accounts(count: int) -> None:
    allocation = make_allocation()
    parent = AccountFactory()
    for n in range(count - 1):
        account = AccountFactory(parent=parent if n % 2 else None, locked=n % 3 == 0)
        if n % 2 == 0:
            make_configuration(account=account, allocation=allocation)


# Session, user, the page's count and rows; the allocation list adds its currency
# filter's distinct values, the account list its currency filter's and the ACCOUNT
# restriction lists of its "assign" action.
ALLOCATION_CHANGELIST_QUERIES = 5
ACCOUNT_CHANGELIST_QUERIES = 6


@pytest.mark.parametrize("rows", [10, 100])
def test_allocation_changelist_queries_do_not_grow_with_rows(admin_client, django_assert_num_queries, rows):
    _allocations(rows)
    with django_assert_num_queries(ALLOCATION_CHANGELIST_QUERIES):
        response = admin_client.get(url(models.Allocation, "changelist"))
    assert len(response.context["cl"].result_list) == rows
    assert b"Model 0" in response.content


@pytest.mark.parametrize("rows", [10, 100])
def test_account_changelist_queries_do_not_grow_with_rows(admin_client, django_assert_num_queries, rows):
    _accounts(rows)
    with django_assert_num_queries(ACCOUNT_CHANGELIST_QUERIES):
        response = admin_client.get(url(models.PortfolioAccount, "changelist"))
    assert len(response.context["cl"].result_list) == rows
