"""The portfolio-order admin: list, read-only detail with its trade orders, and adding
one through portfolio_order_create."""

from datetime import date
from decimal import Decimal

import pytest

from rebalancing.models import Initiation, PortfolioOrder, PortfolioOrderStatus, Side, TradeOrder
from rebalancing.services import portfolio_order_create
from tests.factories import AccountFactory, CashAccountFactory, PriceFactory, make_allocation, make_configuration

from .conftest import D, url

pytestmark = pytest.mark.django_db
CHANGELIST = url("portfolioorder", "changelist")


@pytest.fixture
def account(instruments):
    """A configured EUR account (50 / 50 of two ETFs at 10 EUR) with 1000 EUR."""
    a, b, _ = instruments
    for instrument in (a, b):
        PriceFactory(instrument=instrument, effective_at=D, value=Decimal("10"))
    account = AccountFactory(client_id="PO-1")
    CashAccountFactory(account=account, balance=Decimal("1000"))
    make_configuration(account, make_allocation({a: "0.5", b: "0.5"}, effective_from=date(2026, 1, 1)))
    return account


@pytest.fixture
def order(account, superuser):
    return portfolio_order_create(account=account, side=Side.BUY, cash_amount=Decimal("500"), currency="EUR", user=superuser)


def test_the_changelist_and_its_filters(admin_client, order, account):
    other = PortfolioOrder.objects.create(
        account=AccountFactory(client_id="PO-2"), side=Side.SELL, cash_amount=Decimal("50"), currency="EUR",
        status=PortfolioOrderStatus.CANCELLED, initiation=Initiation.SAVINGS_PLAN,
    )
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert {o.pk for o in response.context["cl"].result_list} == {order.pk, other.pk}
    content = response.content.decode()
    assert "PO-1" in content and "PO-2" in content and '<td class="field-amount">500.00</td>' in content
    for query, expected in [
        ("?status__exact=CANCELLED", {other.pk}), ("?side__exact=BUY", {order.pk}),
        ("?initiation__exact=API", {order.pk}), (f"?account__id__exact={account.pk}", {order.pk}),
        ("?q=PO-2", {other.pk}), (f"?q={order.pk}", {order.pk}),
    ]:
        assert {o.pk for o in admin_client.get(CHANGELIST + query).context["cl"].result_list} == expected, query


def test_the_detail_page_lists_its_trade_orders(admin_client, order, instruments):
    response = admin_client.get(url("portfolioorder", "change", order.pk))
    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="_save"' not in content
    (inline,) = response.context["inline_admin_formsets"]
    assert {form.original.pk for form in inline} == set(order.trade_orders.values_list("pk", flat=True))
    assert len(inline.forms) == 2
    assert instruments[0].name in content and instruments[1].name in content
    for trade_order in order.trade_orders.all():
        assert url("tradeorder", "change", trade_order.pk) in content


def test_trade_orders_link_to_their_portfolio_order(admin_client, order):
    content = admin_client.get(url("tradeorder", "changelist")).content.decode()
    assert url("portfolioorder", "change", order.pk) in content


def test_add_through_the_service(admin_client, account, superuser):
    assert admin_client.get(url("portfolioorder", "add")).status_code == 200
    response = admin_client.post(
        url("portfolioorder", "add"), {"account": str(account.pk), "side": "BUY", "cash_amount": "200", "currency": "EUR"}
    )
    created = PortfolioOrder.objects.get()
    assert response.status_code == 302 and response.url == url("portfolioorder", "change", created.pk)
    assert (created.initiation, created.requested_by, created.cash_amount) == (Initiation.ADMIN, superuser, Decimal("200"))
    assert TradeOrder.objects.filter(portfolio_order=created).count() == 2


def test_the_service_refusal_shows_on_the_form(admin_client, account):
    response = admin_client.post(
        url("portfolioorder", "add"), {"account": str(account.pk), "side": "BUY", "cash_amount": "5000", "currency": "EUR"}
    )
    assert response.status_code == 200
    assert "lacks the cash" in response.content.decode()
    assert not PortfolioOrder.objects.exists()
