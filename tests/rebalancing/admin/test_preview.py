"""The "Preview rebalance" action of the account changelist: one rebalance_preview call
for the selection, a page with every result and its orders, the same as the API's."""

import re
import uuid
from datetime import date
from decimal import Decimal
from unittest import mock

import pytest
from django.apps import apps
from django.contrib.messages import get_messages
from django.urls import reverse

from portfolios.admin import accounts as account_admin
from portfolios.models import PortfolioAccount
from rebalancing.services import preferences_replace
from tests.factories import (
    AccountFactory,
    CashAccountFactory,
    InstrumentFactory,
    PositionFactory,
    PriceFactory,
    make_allocation,
    make_configuration,
)

pytestmark = pytest.mark.django_db
D = date(2026, 3, 2)
CHANGELIST = reverse("admin:portfolios_portfolioaccount_changelist")
ORDER_ROW = re.compile(r'<tr class="order" data-account="(?P<account>[^"]+)" data-instrument="(?P<instrument>[^"]+)">(?P<cells>.*?)</tr>', re.S)
CELL = re.compile(r"<td[^>]*data-(?P<name>[a-z-]+)[^>]*>(?P<value>[^<]*)</td>")


@pytest.fixture
def book():
    """Accounts of every status against 50 / 50 of two ETFs at 10 EUR."""
    a, b = InstrumentFactory(name="Alpha ETF"), InstrumentFactory(name="Beta ETF")
    for instrument in (a, b):
        PriceFactory(instrument=instrument, effective_at=D, value=Decimal("10"))
    allocation = make_allocation({a: "0.5", b: "0.5"}, effective_from=date(2026, 1, 1))

    def account(cash="1000", configured=True, **fields):
        account = AccountFactory(**fields)
        CashAccountFactory(account=account, balance=Decimal(cash))
        if configured:
            make_configuration(account, allocation)
        return account

    proposed = account(client_id="A-PROPOSED")
    rebalancing = account(client_id="A-SELLS", cash="0")  # all in A: sell 50 A, buy 50 B
    PositionFactory(account=rebalancing, instrument=a, units=Decimal("100"))
    balanced = account(client_id="A-BALANCED", cash="0")
    PositionFactory(account=balanced, instrument=a, units=Decimal("50"))
    PositionFactory(account=balanced, instrument=b, units=Decimal("50"))
    locked = account(client_id="A-LOCKED", locked=True)
    unconfigured = account(client_id="A-UNCONFIGURED", configured=False)
    in_range = account(client_id="A-IN-RANGE", cash="100")  # CONSERVATIVE leaves its 100 EUR alone
    PositionFactory(account=in_range, instrument=a, units=Decimal("45"))
    PositionFactory(account=in_range, instrument=b, units=Decimal("45"))
    preferences_replace(values={"cash_range_min": Decimal("0"), "cash_range_max": Decimal("200")}, account=in_range)
    return {
        "instruments": (a, b),
        "accounts": [proposed, rebalancing, balanced, locked, unconfigured, in_range],
    }


def run_action(client, accounts, **form):
    data = {"action": "preview_rebalance", "_selected_action": [str(a.pk) for a in accounts], **form}
    if not form:
        data["index"] = "0"  # as the changelist's action bar sends it
    return client.post(CHANGELIST, data)


def number(text: str) -> Decimal:
    """A number as the page shows it ("1,234.50") as its exact value."""
    return Decimal(text.replace(",", ""))


def orders_on_page(content: str) -> set[tuple]:
    rows = set()
    for match in ORDER_ROW.finditer(content):
        cells = {m["name"]: m["value"] for m in CELL.finditer(match["cells"])}
        rows.add((
            match["account"], match["instrument"], cells["side"], cells["transaction-type"], number(cells["units"]),
            number(cells["unit-price"]), number(cells["trade-amount"]), cells["currency"], cells["execution-method"],
        ))
    return rows


def test_the_page_lists_every_status_and_the_orders(admin_client, book):
    a, b = book["instruments"]
    response = run_action(admin_client, book["accounts"], method="FULL", rebalance_date=D.isoformat())
    assert response.status_code == 200
    assert response.templates[0].name == "admin/rebalancing/preview.html"
    content = response.content.decode()
    for client_id, status in [
        ("A-PROPOSED", "PROPOSED"), ("A-SELLS", "PROPOSED"), ("A-BALANCED", "NO_TRADES"),
        ("A-LOCKED", "SKIPPED_LOCKED"), ("A-UNCONFIGURED", "FAILED"), ("A-IN-RANGE", "PROPOSED"),
    ]:
        account = PortfolioAccount.objects.get(client_id=client_id)
        assert f'data-account="{account.pk}" data-status="{status}"' in content, client_id
        assert f">{client_id}</a>" in content
    assert "has no configuration" in content and "locked" in content
    assert "1,000.00 EUR" in content  # total value, cash before
    assert a.isin in content and "Alpha ETF" in content
    proposed, sells, *_, in_range = book["accounts"]
    assert orders_on_page(content) == {
        (str(in_range.pk), str(a.pk), "BUY", "BUY", Decimal("5"), Decimal("10"), Decimal("50"), "EUR", "NET_TRADE_AMOUNT"),
        (str(in_range.pk), str(b.pk), "BUY", "BUY", Decimal("5"), Decimal("10"), Decimal("50"), "EUR", "NET_TRADE_AMOUNT"),
        (str(proposed.pk), str(a.pk), "BUY", "BUY", Decimal("50"), Decimal("10"), Decimal("500"), "EUR", "NET_TRADE_AMOUNT"),
        (str(proposed.pk), str(b.pk), "BUY", "BUY", Decimal("50"), Decimal("10"), Decimal("500"), "EUR", "NET_TRADE_AMOUNT"),
        (str(sells.pk), str(a.pk), "SELL", "SELL", Decimal("50"), Decimal("10"), Decimal("500"), "EUR", "NET_TRADE_AMOUNT"),
        (str(sells.pk), str(b.pk), "BUY", "BUY", Decimal("50"), Decimal("10"), Decimal("500"), "EUR", "NET_TRADE_AMOUNT"),
    }
    assert "<strong data-order-count>6</strong>" in content
    assert '<strong data-gross-buy="EUR">1,600.00 EUR</strong>' in content
    assert '<strong data-gross-sell="EUR">500.00 EUR</strong>' in content
    assert '<strong data-status-count="PROPOSED">3</strong>' in content

    content = run_action(admin_client, book["accounts"], method="CONSERVATIVE", rebalance_date=D.isoformat()).content.decode()
    row = content.split(f'data-account="{in_range.pk}" data-status="SKIPPED_WITHIN_RANGE"')[1].split("</tr>")[0]
    assert "cash range" in row  # the reason


def test_the_page_and_the_api_propose_the_same_orders(admin_client, api_client, book):
    accounts = book["accounts"]
    for method in ("FULL", "CONSERVATIVE", "EXCHANGE"):
        content = run_action(admin_client, accounts, method=method, rebalance_date=D.isoformat()).content.decode()
        response = api_client.post(
            "/api/v1/portfolios/rebalancings/previews/",
            {"accounts": [str(a.pk) for a in accounts], "method": method, "rebalance_date": D.isoformat()},
            format="json",
        )
        assert response.status_code == 200
        from_api = {
            (result["account_id"], o["instrument_id"], o["side"], o["transaction_type"], Decimal(o["units"]),
             Decimal(o["unit_price"]), Decimal(o["trade_amount"]), o["currency"], o["execution_method"])
            for result in response.json()["results"] for o in result["orders"]
        }
        assert from_api and orders_on_page(content) == from_api, method
        for result in response.json()["results"]:
            assert f'data-account="{result["account_id"]}" data-status="{result["status"]}"' in content


def test_first_run_uses_full_and_today_and_calls_the_service_once(admin_client, book):
    with mock.patch.object(account_admin, "rebalance_preview", wraps=account_admin.rebalance_preview) as service:
        response = run_action(admin_client, book["accounts"])
    assert response.status_code == 200
    service.assert_called_once()
    kwargs = service.call_args.kwargs
    assert kwargs["method"] == "FULL" and kwargs["rebalance_date"] == date.today()
    assert sorted(kwargs["account_ids"]) == sorted(a.pk for a in book["accounts"])
    content = response.content.decode()
    # The form re-runs the preview for the same selection.
    for account in book["accounts"]:
        assert f'name="_selected_action" value="{account.pk}"' in content
    assert 'name="action" value="preview_rebalance"' in content


def test_the_form_picks_method_and_date(admin_client, book):
    a, _ = book["instruments"]
    proposed = book["accounts"][0]
    content = run_action(admin_client, [proposed], method="CONSERVATIVE", rebalance_date="2026-03-01").content.decode()
    # No price on or before 1 March: the account fails, naming the instrument and the date.
    assert f'data-account="{proposed.pk}" data-status="FAILED"' in content
    assert a.isin in content and "2026-03-01" in content
    assert "CONSERVATIVE on 2026-03-01" in content

    response = run_action(admin_client, [proposed], method="HALF", rebalance_date="1 March")
    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.errors) == {"method", "rebalance_date"}
    assert response.context["results"] is None


def test_more_than_500_accounts_are_refused(admin_client):
    accounts = PortfolioAccount.objects.bulk_create(
        [PortfolioAccount(id=uuid.uuid4(), client_id=f"BULK-{i:04d}", base_currency="EUR") for i in range(501)]
    )
    # "Select all 501": the browser sends the page's checked boxes and select_across.
    with mock.patch.object(account_admin, "rebalance_preview") as service:
        response = admin_client.post(
            CHANGELIST,
            {"action": "preview_rebalance", "select_across": "1", "index": "0", "_selected_action": [str(accounts[0].pk)]},
            follow=True,
        )
    service.assert_not_called()
    assert "A rebalance preview takes at most 500 accounts: select fewer." in [
        str(m) for m in get_messages(response.wsgi_request)
    ]


def test_nothing_is_written(admin_client, book):
    def snapshot():
        return {
            model._meta.label: list(model.objects.order_by("pk").values())
            for app in ("portfolios", "rebalancing") for model in apps.get_app_config(app).get_models()
        }

    before = snapshot()
    run_action(admin_client, book["accounts"], method="FULL_INCLUDING_ORDERS", rebalance_date=D.isoformat())
    assert snapshot() == before


def test_viewers_may_preview(client, user_with_perms, book):
    client.force_login(user_with_perms("portfolios.view_portfolioaccount", username="viewer"))
    response = run_action(client, book["accounts"][:1], method="FULL", rebalance_date=D.isoformat())
    assert response.status_code == 200
    assert 'data-status="PROPOSED"' in response.content.decode()


def test_the_page_explains_each_restriction_in_words(admin_client, book, superuser):
    """An account under an ESG list that bans Beta, with a substitute for it, sees why
    it buys Gamma instead, and one without a substitute why its weight went to cash."""
    from portfolios import services

    a, b = book["instruments"]
    gamma = InstrumentFactory(name="Gamma ETF")
    PriceFactory(instrument=gamma, effective_at=D, value=Decimal("10"))
    proposed = book["accounts"][0]
    esg = services.restriction_list_create(
        name="ESG", entries=[services.EntryInput(str(b.pk), "NO_BUY", "tobacco")], user=superuser
    )
    services.accounts_restriction_list_assign(account_ids=[proposed.pk], restriction_list=esg, user=superuser)

    page = run_action(admin_client, [proposed], method="FULL", rebalance_date=D.isoformat())
    assert "Beta ETF: NO_BUY (ESG list) → weight to cash" in page.content.decode()

    services.substitutes_replace(instrument=b, substitutes=[str(gamma.pk)], user=superuser)
    page = run_action(admin_client, [proposed], method="FULL", rebalance_date=D.isoformat())
    content = page.content.decode()
    assert "Beta ETF: NO_BUY (ESG list) → weight to Gamma ETF" in content
    bought = {instrument for account, instrument, *_ in orders_on_page(content)}
    assert bought == {str(a.pk), str(gamma.pk)}


def test_a_tax_aware_account_shows_its_estimated_gains_per_sell_and_in_the_totals(admin_client, book):
    """§12: the A-SELLS account sells 50 A: FIFO takes 50 of the 60 bought at 4 (2 years
    ago) → +300 long-term; the page shows it on the order, the account and the totals."""
    a, _ = book["instruments"]
    account = book["accounts"][1]
    from portfolios.models import Lot, Position  # noqa: PLC0415

    position = Position.objects.get(account=account, instrument=a)
    Lot.objects.filter(position=position).delete()
    Lot.objects.create(position=position, acquired_on=date(2024, 1, 2), units=Decimal("60"), unit_cost=Decimal("4"),
                       cost_currency="EUR")
    Lot.objects.create(position=position, acquired_on=date(2026, 2, 1), units=Decimal("40"), unit_cost=Decimal("12"),
                       cost_currency="EUR")
    preferences_replace(values={"tax_aware": True}, account=account)
    content = run_action(admin_client, [account], method="FULL", rebalance_date=D.isoformat()).content.decode()
    assert re.search(r"data-estimated-gain>300(\.00)?( EUR)?<", content), content
    assert re.search(r'data-gain-long="EUR">300(\.00)? EUR<', content)
    plain = run_action(admin_client, [book["accounts"][2]], method="FULL", rebalance_date=D.isoformat()).content.decode()
    assert "data-estimated-gain" not in plain and 'id="preview-tax"' not in plain
