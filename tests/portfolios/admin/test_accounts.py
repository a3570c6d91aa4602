"""The account page (valuation, holdings through holdings_replace), lock/unlock
actions and the configuration page (configuration_create / _update)."""

from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from portfolios import models
from tests.factories import (
    AccountFactory,
    CashAccountFactory,
    CashInstrumentFactory,
    FxRateFactory,
    InstrumentFactory,
    PositionFactory,
    PriceFactory,
    make_allocation,
    make_configuration,
)
from tests.portfolios.admin.test_site import PRICE_DATE, in_group, page_data, url


@pytest.fixture
def valued_account(db):
    """An EUR account worth 1,000 EUR: 6 × 100 EUR of A, 4 × 50 USD of B at 1.25 USD per
    EUR (160 EUR) and 240 EUR of cash, following an allocation of A 0.5 / B 0.5."""
    a = InstrumentFactory(name="Alpha ETF")
    b = InstrumentFactory(name="Beta Corp", currency="USD", type=models.InstrumentType.EQUITY)
    PriceFactory(instrument=a, effective_at=PRICE_DATE, value=Decimal("100"))
    PriceFactory(instrument=b, effective_at=PRICE_DATE, value=Decimal("50"))
    FxRateFactory(base="EUR", quote="USD", effective_at=PRICE_DATE, rate=Decimal("1.25"))
    account = AccountFactory(base_currency="EUR")
    PositionFactory(account=account, instrument=a, units=Decimal("6"))
    PositionFactory(account=account, instrument=b, units=Decimal("4"))
    CashAccountFactory(account=account, currency="EUR", balance=Decimal("240"))
    make_configuration(account=account, allocation=make_allocation({a: Decimal("0.5"), b: Decimal("0.5")}))
    return account


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_account_page_shows_total_value_and_drift(admin_client, valued_account):
    response = admin_client.get(url(models.PortfolioAccount, "change", valued_account.pk))
    assert response.status_code == 200
    content = response.content.decode()
    # 600 + 4 × 50 / 1.25 + 240 = 1,000 EUR
    assert "total value <strong data-total-value>1,000.00 EUR</strong>" in content
    assert "of which cash 240.00 EUR" in content
    # A: 600 / 1000 = 60 % against 50 % → +10; B: 160 / 1000 = 16 % against 50 % → −34;
    # cash: 24 % against no cash line (0 %) → +24.
    assert "<td>Alpha ETF" in content
    assert "<td>600.00</td><td>50.00 %</td><td>60.00 %</td><td>+10.00 %</td>" in content
    assert "<td>160.00</td><td>50.00 %</td><td>16.00 %</td><td>-34.00 %</td>" in content
    assert "<td>240.00</td><td>0.00 %</td><td>24.00 %</td><td>+24.00 %</td>" in content


def test_account_page_counts_sub_portfolios(admin_client, valued_account):
    child = AccountFactory(parent=valued_account, locked=True)
    CashAccountFactory(account=child, balance=Decimal("1000"))
    content = admin_client.get(url(models.PortfolioAccount, "change", valued_account.pk)).content.decode()
    assert "2,000.00 EUR" in content
    assert "<td>600.00</td><td>50.00 %</td><td>30.00 %</td><td>-20.00 %</td>" in content


def test_account_page_shows_a_missing_price_instead_of_numbers(admin_client, valued_account):
    unpriced = InstrumentFactory(isin="US0378331005")
    PositionFactory(account=valued_account, instrument=unpriced)
    content = admin_client.get(url(models.PortfolioAccount, "change", valued_account.pk)).content.decode()
    assert f"no price for US0378331005 at or before {timezone.localdate()}" in content
    assert "data-total-value" not in content


def test_lock_and_unlock_actions(admin_client, db):
    accounts = [AccountFactory(), AccountFactory(), AccountFactory(locked=True)]
    ids = [str(account.pk) for account in accounts]
    changelist = url(models.PortfolioAccount, "changelist")

    response = admin_client.post(changelist, {"action": "lock_accounts", "_selected_action": ids}, follow=True)
    assert "Locked 2 accounts. 1 was already locked." in messages_of(response)
    assert models.PortfolioAccount.objects.filter(locked=True).count() == 3

    response = admin_client.post(changelist, {"action": "unlock_accounts", "_selected_action": ids[:1]}, follow=True)
    assert "Unlocked 1 account." in messages_of(response)
    assert list(models.PortfolioAccount.objects.filter(locked=False)) == [accounts[0]]


def test_operations_may_lock_accounts(client, db):
    account = AccountFactory()
    client.force_login(in_group("Operations", "ops"))
    client.post(url(models.PortfolioAccount, "changelist"), {"action": "lock_accounts", "_selected_action": [str(account.pk)]})
    account.refresh_from_db()
    assert account.locked


def test_holdings_are_replaced_as_one_snapshot(admin_client, valued_account):
    extra = InstrumentFactory(name="Gamma ETF")
    data = page_data(admin_client.get(url(models.PortfolioAccount, "change", valued_account.pk)))
    # Positions are ordered by instrument; find the row of Alpha and Beta.
    position_rows = {data[f"positions-{i}-instrument"]: i for i in range(int(data["positions-INITIAL_FORMS"]))}
    alpha = models.Instrument.objects.get(name="Alpha ETF")
    beta = models.Instrument.objects.get(name="Beta Corp")
    data |= {
        f"positions-{position_rows[str(alpha.pk)]}-units": "7",
        f"positions-{position_rows[str(beta.pk)]}-DELETE": "on",
        "positions-2-instrument": str(extra.pk),
        "positions-2-units": "1.5",
        "cash_accounts-0-balance": "99.5",
        "locked": "on",
    }
    response = admin_client.post(url(models.PortfolioAccount, "change", valued_account.pk), data)
    assert response.status_code == 302, response.context and response.context["errors"]
    valued_account.refresh_from_db()
    assert valued_account.locked
    assert {p.instrument_id: p.units for p in valued_account.positions.all()} == {alpha.pk: 7, extra.pk: Decimal("1.5")}
    assert [c.balance for c in valued_account.cash_accounts.all()] == [Decimal("99.5")]
    # The lots follow (§12): the service is their one writer, the admin included.
    for position in valued_account.positions.all():
        assert sum(lot.units for lot in position.lots.all()) == position.units
    page = admin_client.get(url(models.PortfolioAccount, "change", valued_account.pk)).content.decode()
    assert "Tax lots" in page and "unknown" in page


NEW_CASH = {"cash_accounts-1-balance": "5", "cash_accounts-1-kind": "CASH"}


@pytest.mark.parametrize(
    ("change", "formset", "index", "field", "message"),
    [
        ({"positions-0-units": "-1"}, "positions", 0, "units", "must not be negative"),
        (
            {"positions-2-instrument": "{first}", "positions-2-units": "1"},
            "positions", 2, "instrument", "is already in positions[0]",
        ),
        (
            {"positions-2-instrument": "{cash}", "positions-2-units": "1"},
            "positions", 2, "instrument", "cash is reported under",
        ),
        (
            NEW_CASH | {"cash_accounts-1-currency": "EUR"},
            "cash_accounts", 1, "currency", "is already in cash[0]",
        ),
        (
            NEW_CASH | {"cash_accounts-1-currency": "USD", "cash_accounts-1-is_default": "on"},
            "cash_accounts", 1, "is_default", "only one cash account can be the default",
        ),
    ],
)
def test_invalid_holdings_are_refused_on_the_line(admin_client, valued_account, change, formset, index, field, message):
    data = page_data(admin_client.get(url(models.PortfolioAccount, "change", valued_account.pk)))
    ids = {"first": data["positions-0-instrument"], "cash": str(CashInstrumentFactory(currency="EUR").pk)}
    data |= {key: value.format(**ids) for key, value in change.items()}
    before = sorted((p.instrument_id, p.units) for p in valued_account.positions.all())
    response = admin_client.post(url(models.PortfolioAccount, "change", valued_account.pk), data)
    assert response.status_code == 200
    (bad,) = [inline.formset for inline in response.context["inline_admin_formsets"] if inline.formset.prefix == formset]
    assert message in " ".join(bad.forms[index].errors.get(field, [])), [f.errors for f in bad.forms]
    assert sorted((p.instrument_id, p.units) for p in valued_account.positions.all()) == before


def test_closed_account_cannot_be_reopened(admin_client, db):
    account = AccountFactory(status=models.AccountStatus.CLOSED)
    data = page_data(admin_client.get(url(models.PortfolioAccount, "change", account.pk))) | {"status": "ACTIVE"}
    response = admin_client.post(url(models.PortfolioAccount, "change", account.pk), data)
    assert response.status_code == 200
    assert "cannot be reopened" in " ".join(response.context["adminform"].form.errors["status"])
    account.refresh_from_db()
    assert account.status == models.AccountStatus.CLOSED


def test_parent_must_not_be_a_sub_portfolio(admin_client, db):
    parent = AccountFactory()
    child = AccountFactory(parent=parent)
    account = AccountFactory()
    data = page_data(admin_client.get(url(models.PortfolioAccount, "change", account.pk))) | {"parent": str(child.pk)}
    response = admin_client.post(url(models.PortfolioAccount, "change", account.pk), data)
    assert response.status_code == 200
    assert "is itself a sub-portfolio" in " ".join(response.context["adminform"].form.errors["parent"])


def test_add_account_with_holdings(admin_client, db):
    instrument = InstrumentFactory()
    data = page_data(admin_client.get(url(models.PortfolioAccount, "add"))) | {
        "client_id": "CL-NEW",
        "base_currency": "CHF",
        "positions-0-instrument": str(instrument.pk),
        "positions-0-units": "3",
        "cash_accounts-0-currency": "CHF",
        "cash_accounts-0-kind": "CASH",
        "cash_accounts-0-balance": "10",
        "cash_accounts-0-is_default": "on",
    }
    response = admin_client.post(url(models.PortfolioAccount, "add"), data)
    assert response.status_code == 302, response.context and response.context["errors"]
    account = models.PortfolioAccount.objects.get(client_id="CL-NEW")
    assert account.base_currency == "CHF"
    assert account.positions.get().units == 3
    assert account.cash_accounts.get().is_default


def test_add_account_with_bad_currency_creates_nothing(admin_client, db):
    data = page_data(admin_client.get(url(models.PortfolioAccount, "add"))) | {"client_id": "CL-X", "base_currency": "ABC"}
    response = admin_client.post(url(models.PortfolioAccount, "add"), data)
    assert response.status_code == 200
    assert "not an ISO 4217 currency code" in " ".join(response.context["adminform"].form.errors["base_currency"])
    assert not models.PortfolioAccount.objects.exists()


def test_account_client_id_and_currency_are_read_only_on_change(admin_client, valued_account):
    form = admin_client.get(url(models.PortfolioAccount, "change", valued_account.pk)).context["adminform"].form
    assert set(form.fields) == {"status", "parent", "locked", "assigned_lists"}


# --- Configurations ---------------------------------------------------------------


def test_configuration_add_and_change_go_through_the_services(admin_client, db):
    account, first, second = AccountFactory(), make_allocation(name="First"), make_allocation(name="Second")
    data = page_data(admin_client.get(url(models.Configuration, "add"))) | {
        "account": str(account.pk), "allocation": str(first.pk),
    }
    assert admin_client.post(url(models.Configuration, "add"), data).status_code == 302
    configuration = models.Configuration.objects.get(account=account)
    assert configuration.allocation == first

    data = page_data(admin_client.get(url(models.Configuration, "change", account.pk))) | {"allocation": str(second.pk)}
    assert admin_client.post(url(models.Configuration, "change", account.pk), data).status_code == 302
    configuration.refresh_from_db()
    assert configuration.allocation == second


@pytest.mark.parametrize(
    ("account_kwargs", "message"),
    [
        ({"account_type": models.AccountType.CUSTODY}, "only PORTFOLIO accounts follow an allocation"),
        ({"status": models.AccountStatus.CLOSED}, "is CLOSED"),
        ({"parent": "sub"}, "is a sub-portfolio"),
    ],
)
def test_configuration_rule_violation_is_a_form_error(admin_client, db, account_kwargs, message):
    if account_kwargs.get("parent") == "sub":
        account_kwargs = {"parent": AccountFactory()}
    account = AccountFactory(**account_kwargs)
    data = page_data(admin_client.get(url(models.Configuration, "add"))) | {
        "account": str(account.pk), "allocation": str(make_allocation().pk),
    }
    response = admin_client.post(url(models.Configuration, "add"), data)
    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.non_field_errors())
    assert not models.Configuration.objects.exists()


def test_second_configuration_for_an_account_is_a_conflict_shown_on_the_form(admin_client, db):
    configuration = make_configuration()
    data = page_data(admin_client.get(url(models.Configuration, "add"))) | {
        "account": str(configuration.account_id), "allocation": str(make_allocation().pk),
    }
    response = admin_client.post(url(models.Configuration, "add"), data)
    assert response.status_code == 200
    assert "already has a configuration" in " ".join(response.context["adminform"].form.non_field_errors())
    assert models.Configuration.objects.count() == 1


def test_account_autocomplete_offers_only_possible_parents_and_configurable_accounts(admin_client, db):
    parent = AccountFactory(client_id="AC-parent")
    child = AccountFactory(client_id="AC-child", parent=parent)
    custody = AccountFactory(client_id="AC-custody", account_type=models.AccountType.CUSTODY)

    def offered(model_name, field_name):
        params = {"app_label": "portfolios", "model_name": model_name, "field_name": field_name, "term": "AC-"}
        return {row["id"] for row in admin_client.get(reverse("admin:autocomplete"), params).json()["results"]}

    assert offered("portfolioaccount", "parent") == {str(parent.pk), str(custody.pk)}
    assert offered("configuration", "account") == {str(parent.pk)}
    assert str(child.pk) not in offered("configuration", "account")


def test_account_page_links_to_its_schedule(admin_client, client, user_with_perms, valued_account):
    schedule = reverse("admin:rebalancing_strategy_schedule", args=[valued_account.pk])
    page = admin_client.get(url(models.PortfolioAccount, "change", valued_account.pk)).content.decode()
    assert f'href="{schedule}"' in page
    assert admin_client.get(schedule).status_code == 200

    # Without the permission to view strategies, no link to a page that would refuse it.
    client.force_login(user_with_perms("portfolios.view_portfolioaccount"))
    page = client.get(url(models.PortfolioAccount, "change", valued_account.pk)).content.decode()
    assert schedule not in page
    assert client.get(schedule).status_code == 403


def test_restriction_lists_are_assigned_from_the_account_page(admin_client, valued_account, superuser):
    from auditlog.models import LogEntry

    from portfolios import services

    esg = services.restriction_list_create(name="ESG", entries=[], user=superuser)
    insider = services.restriction_list_create(name="Insider", entries=[], user=superuser)
    firm = services.restriction_list_create(name="Sanctions", scope="FIRM", entries=[], user=superuser)
    page = admin_client.get(url(models.PortfolioAccount, "change", valued_account.pk))
    offered = {str(choice[0].value) for choice in page.context["adminform"].form.fields["assigned_lists"].choices}
    assert offered == {str(esg.pk), str(insider.pk)}  # FIRM lists apply to everyone: not offered
    positions_before = sorted((p.instrument_id, p.units) for p in valued_account.positions.all())

    data = page_data(page) | {"assigned_lists": [str(esg.pk), str(insider.pk)]}
    response = admin_client.post(url(models.PortfolioAccount, "change", valued_account.pk), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert set(valued_account.restriction_assignments.values_list("restriction_list_id", flat=True)) == {esg.pk, insider.pk}
    assert sorted((p.instrument_id, p.units) for p in valued_account.positions.all()) == positions_before

    data = page_data(admin_client.get(url(models.PortfolioAccount, "change", valued_account.pk))) | {
        "assigned_lists": [str(insider.pk)]
    }
    admin_client.post(url(models.PortfolioAccount, "change", valued_account.pk), data)
    assert list(valued_account.restriction_assignments.values_list("restriction_list_id", flat=True)) == [insider.pk]
    changes = [
        entry.changes_dict["restriction_lists"]
        for entry in LogEntry.objects.get_for_object(valued_account).order_by("timestamp")
        if "restriction_lists" in (entry.changes_dict or {})
    ]
    assert changes == [["", "ESG, Insider"], ["ESG, Insider", "Insider"]]
    assert firm.assignments.count() == 0
