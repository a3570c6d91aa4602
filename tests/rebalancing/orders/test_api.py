"""The order endpoints of api.md through their URLs: shapes, filters, errors, permissions,
idempotency and query budgets."""

import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from portfolios.models import AccountStatus, CashKind
from rebalancing.models import Execution, PortfolioOrder, Side, TradeOrder, TradeOrderStatus
from tests.factories import AccountFactory

from .conftest import D, balances, error_fields, message_for, problem, units_held

pytestmark = pytest.mark.django_db
S = TradeOrderStatus
ORDERS = "/api/v1/portfolios/orders/"
TRADE_ORDERS = "/api/v1/trade-orders/"
ORDER_FIELDS = {
    "order_id", "account_id", "instrument_id", "isin", "side", "transaction_type", "units", "unit_price",
    "trade_amount", "currency", "execution_method", "status", "executed_units", "execution_id",
    "portfolio_order_id", "created_at", "updated_at",
}


def post_order(client, account, amount="1000", side="BUY", currency="EUR", **headers):
    body = {"account_id": str(account.pk), "cash_amount": amount, "currency": currency, "side": side}
    return client.post(ORDERS, body, format="json", **headers)


def transition(client, order, **body):
    return client.post(f"{TRADE_ORDERS}{order.pk}/transitions/", body, format="json")


# --- Portfolio orders ---------------------------------------------------------------------


def test_post_a_buy(api_client, configured, abc):
    account = configured(units=(0, 0, 100), cash="1000")
    response = post_order(api_client, account)
    assert response.status_code == 201, response.content
    body = response.json()
    trade_orders = body.pop("trade_orders")
    order = PortfolioOrder.objects.get()
    assert body == {
        "portfolio_order_id": str(order.pk), "account_id": str(account.pk), "side": "BUY", "cash_amount": "1000",
        "currency": "EUR", "status": "OPEN", "initiation": "API", "user_id": "",
        "created_at": body["created_at"], "updated_at": body["updated_at"],
    }
    assert body["created_at"].endswith("Z") or "+" in body["created_at"]
    a, b, _ = abc
    assert [set(t) for t in trade_orders] == [ORDER_FIELDS, ORDER_FIELDS]
    by_isin = {t["isin"]: t for t in trade_orders}
    assert {isin: (t["side"], t["units"], t["unit_price"], t["trade_amount"]) for isin, t in by_isin.items()} == {
        a.isin: ("BUY", "62.5", "10", "625"),
        b.isin: ("BUY", "37.5", "10", "375"),
    }
    sample = by_isin[a.isin]
    assert sample["instrument_id"] == str(a.pk)
    assert (sample["status"], sample["executed_units"], sample["execution_id"], sample["portfolio_order_id"]) == (
        "OPEN", "0", None, str(order.pk)
    )
    assert (sample["transaction_type"], sample["currency"], sample["execution_method"]) == ("BUY", "EUR", "NET_TRADE_AMOUNT")
    assert order.requested_by.username == "admin"


def test_the_end_users_reference_is_kept_and_returned(api_client, configured):
    account = configured(units=(0, 0, 100), cash="1000")
    body = {"account_id": str(account.pk), "cash_amount": "500", "currency": "EUR", "side": "BUY",
            "user_id": "partner-user-42"}
    response = api_client.post(ORDERS, body, format="json")
    assert response.status_code == 201, response.content
    order_id = response.json()["portfolio_order_id"]
    assert response.json()["user_id"] == "partner-user-42"
    assert api_client.get(f"{ORDERS}{order_id}/").json()["user_id"] == "partner-user-42"
    assert PortfolioOrder.objects.get(pk=order_id).user_id == "partner-user-42"


def test_a_placed_order_is_a_portfolio_order_created_event(api_client, configured):
    from webhooks.models import Event, Subscription

    Subscription.objects.create(url="https://example.com/hook", event_types=["portfolio_order.created"], secret="s")
    account = configured(units=(0, 0, 100), cash="1000")
    response = post_order(api_client, account, amount="400")
    assert response.status_code == 201, response.content
    [event] = Event.objects.filter(type="portfolio_order.created")
    placed = response.json()
    payload = dict(event.payload)
    assert sorted(payload.pop("trade_order_ids")) == sorted(t["order_id"] for t in placed["trade_orders"])
    assert payload.pop("created_at") == placed["created_at"].replace("Z", "+00:00") or placed["created_at"]
    assert payload == {
        "portfolio_order_id": placed["portfolio_order_id"], "account_id": str(account.pk), "side": "BUY",
        "cash_amount": "400", "currency": "EUR", "status": "OPEN", "initiation": "API", "user_id": "",
    }


def test_post_a_sell(api_client, configured):
    account = configured(units=(60, 32, 8), cash="0")
    response = post_order(api_client, account, amount="100", side="SELL")
    assert response.status_code == 201, response.content
    orders = response.json()["trade_orders"]
    assert sorted(t["trade_amount"] for t in orders if t["transaction_type"] == "SELL") == ["25", "75"]
    # §10: the cash leaves by one WITHDRAWAL of the amount.
    [withdrawal] = [t for t in orders if t["transaction_type"] == "WITHDRAWAL"]
    assert (withdrawal["side"], withdrawal["units"], withdrawal["currency"]) == ("SELL", "100", "EUR")


@pytest.mark.parametrize(
    ("change", "amount", "message"),
    [
        ({"status": AccountStatus.PENDING}, "10", "only ACTIVE accounts"),
        ({}, "1000.01", "lacks the cash"),
    ],
)
def test_post_422(api_client, configured, change, amount, message):
    account = configured(units=(0, 0, 100), cash="1000", **change)
    body = problem(post_order(api_client, account, amount=amount), 422)
    assert message in body["detail"]
    assert error_fields(body) == {"account_id"}
    assert not PortfolioOrder.objects.exists()


def test_post_422_when_not_configured(api_client, db):
    body = problem(post_order(api_client, AccountFactory()), 422)
    assert "no configuration" in body["detail"]


def test_post_400_names_every_bad_field(api_client, configured):
    account = configured()
    response = api_client.post(ORDERS, {"account_id": "nope", "cash_amount": "x", "side": "HOLD"}, format="json")
    body = problem(response, 400)
    assert error_fields(body) == {"account_id", "cash_amount", "currency", "side"}
    body = problem(post_order(api_client, account, amount="-1"), 400)
    assert error_fields(body) == {"cash_amount"}
    assert message_for(body, "cash_amount") == "must be greater than 0"
    body = problem(post_order(api_client, account, currency="USD"), 400)
    assert "base currency or one it holds cash in: EUR" in message_for(body, "currency")
    body = problem(post_order(api_client, account, amount="1.123456789"), 400)
    assert error_fields(body) == {"cash_amount"}
    body = problem(api_client.post(ORDERS, {**_body(uuid.uuid4())}, format="json"), 400)
    assert message_for(body, "account_id").startswith("no account with id")


def _body(account_id):
    return {"account_id": str(account_id), "cash_amount": "10", "currency": "EUR", "side": "BUY"}


def test_post_is_idempotent(api_client, configured):
    account = configured(units=(0, 0, 100), cash="1000")
    first = post_order(api_client, account, amount="100", HTTP_IDEMPOTENCY_KEY="k-1")
    again = post_order(api_client, account, amount="100", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert PortfolioOrder.objects.count() == 1
    problem(post_order(api_client, account, amount="200", HTTP_IDEMPOTENCY_KEY="k-1"), 409)


def test_get_one_and_list_with_filters(api_client, configured):
    first = configured(units=(0, 0, 100), cash="1000")
    second = configured(units=(0, 0, 100), cash="1000")
    mine = post_order(api_client, first, amount="100").json()
    post_order(api_client, second, amount="100")
    response = api_client.get(f"{ORDERS}{mine['portfolio_order_id']}/")
    assert response.status_code == 200 and response.json() == mine
    listed = api_client.get(ORDERS, {"account_id": str(first.pk)}).json()
    assert listed["meta"] == {"offset": 0, "limit": 100, "count": 1, "total_count": 1}
    assert listed["data"] == [mine]
    assert api_client.get(ORDERS, {"status": "COMPLETED"}).json()["meta"]["total_count"] == 0
    assert api_client.get(ORDERS, {"status": "OPEN"}).json()["meta"]["total_count"] == 2
    assert error_fields(problem(api_client.get(ORDERS, {"status": "DONE"}), 400)) == {"status"}
    problem(api_client.get(f"{ORDERS}{uuid.uuid4()}/"), 404)
    problem(api_client.get(f"{ORDERS}not-a-uuid/"), 404)


def test_portfolio_order_permissions(client_for, user_with_perms, configured):
    account = configured(units=(0, 0, 100), cash="1000")
    viewer = client_for(user_with_perms("rebalancing.view_portfolioorder", username="viewer"))
    assert viewer.get(ORDERS).status_code == 200
    problem(post_order(viewer, account), 403)
    adder = client_for(user_with_perms("rebalancing.add_portfolioorder", username="adder"))
    assert post_order(adder, account).status_code == 201
    problem(adder.get(ORDERS), 403)


# --- Trade orders -------------------------------------------------------------------------


@pytest.fixture
def orders(configured, abc, make_order):
    """Two accounts' orders: A bought OPEN and B sold ACCEPTED in the first (by an
    execution), C bought OPEN in the second."""
    first, second = configured(units=(10, 10, 10)), configured(units=(10, 10, 10))
    execution = Execution.objects.create(rebalance_date=D)
    a, b, c = abc
    return {
        "first": first, "second": second, "execution": execution,
        "buy_a": make_order(first, a, units="2", unit_price="10", execution=execution),
        "sell_b": make_order(first, b, side=Side.SELL, units="3", unit_price="10", status=S.ACCEPTED),
        "buy_c": make_order(second, c, units="4", unit_price="10"),
    }


def ids(response) -> set:
    assert response.status_code == 200, response.content
    return {row["order_id"] for row in response.json()["data"]}


def test_trade_order_filters(api_client, orders):
    buy_a, sell_b, buy_c = (str(orders[k].pk) for k in ("buy_a", "sell_b", "buy_c"))
    assert ids(api_client.get(TRADE_ORDERS)) == {buy_a, sell_b, buy_c}
    assert ids(api_client.get(TRADE_ORDERS, {"account_id": str(orders["first"].pk)})) == {buy_a, sell_b}
    assert ids(api_client.get(TRADE_ORDERS, {"status": "ACCEPTED"})) == {sell_b}
    assert ids(api_client.get(TRADE_ORDERS, {"execution_id": str(orders["execution"].pk)})) == {buy_a}
    instrument = orders["buy_c"].instrument
    assert ids(api_client.get(TRADE_ORDERS, {"instrument_id": instrument.isin})) == {buy_c}
    assert ids(api_client.get(TRADE_ORDERS, {"instrument_id": str(instrument.pk)})) == {buy_c}
    assert ids(api_client.get(TRADE_ORDERS, {"instrument_id": str(instrument.pk), "status": "ACCEPTED"})) == set()
    body = problem(api_client.get(TRADE_ORDERS, {"instrument_id": "DE0000000000", "status": "NOPE"}), 400)
    assert error_fields(body) == {"instrument_id", "status"}
    assert error_fields(problem(api_client.get(TRADE_ORDERS, {"account_id": "x"}), 400)) == {"account_id"}


def test_get_one_trade_order(api_client, orders):
    order = orders["sell_b"]
    body = api_client.get(f"{TRADE_ORDERS}{order.pk}/").json()
    assert set(body) == ORDER_FIELDS
    assert (body["order_id"], body["account_id"], body["isin"], body["side"], body["units"], body["status"]) == (
        str(order.pk), str(orders["first"].pk), order.instrument.isin, "SELL", "3", "ACCEPTED"
    )
    assert body["execution_id"] is None and body["portfolio_order_id"] is None
    assert api_client.get(f"{TRADE_ORDERS}{orders['buy_a'].pk}/").json()["execution_id"] == str(orders["execution"].pk)
    assert "no trade order with id" in problem(api_client.get(f"{TRADE_ORDERS}{uuid.uuid4()}/"), 404)["detail"]


def test_transitions_to_settlement(api_client, orders):
    order, account = orders["buy_a"], orders["first"]
    for status in ("ACCEPTED", "EXECUTABLE", "SENT_TO_EXECUTION", "IN_EXECUTION"):
        response = transition(api_client, order, status=status)
        assert response.status_code == 200, response.content
        assert response.json()["status"] == status
    body = transition(api_client, order, status="PARTIALLY_EXECUTED", executed_units="0.5", executed_price="9.8").json()
    assert (body["status"], body["executed_units"]) == ("PARTIALLY_EXECUTED", "0.5")
    body = transition(api_client, order, status="EXECUTED_IN_MARKET", executed_units="1.5", executed_price="10.2").json()
    assert body["executed_units"] == "2"
    transition(api_client, order, status="SETTLED_IN_MARKET")
    body = transition(api_client, order, status="SETTLED").json()
    assert body["status"] == "SETTLED"
    # 0.5 × 9.8 + 1.5 × 10.2 = 4.9 + 15.3 = 20.2 out of 1000; 10 + 2 units.
    assert balances(account) == {("EUR", CashKind.CASH): Decimal("979.8")}
    assert units_held(account, order.instrument) == Decimal("12")


def test_a_disallowed_transition_is_409(api_client, orders):
    order = orders["buy_a"]
    body = problem(transition(api_client, order, status="SETTLED"), 409)
    assert "cannot go from OPEN to SETTLED" in body["detail"]
    body = problem(transition(api_client, order, status="REPLACED"), 409)
    assert "from OPEN to REPLACED" in body["detail"] and "REPLACED" not in body["detail"].split("may go to")[1]
    assert TradeOrder.objects.get(pk=order.pk).status == S.OPEN


def test_a_sell_of_more_than_held_is_409(api_client, orders):
    order = orders["sell_b"]
    TradeOrder.objects.filter(pk=order.pk).update(status=S.SETTLED_IN_MARKET, units=Decimal("11"))
    body = problem(transition(api_client, order, status="SETTLED"), 409)
    assert "holds only 10" in body["detail"]
    assert units_held(orders["first"], order.instrument) == Decimal("10")


def test_transition_400s(api_client, orders):
    order = orders["buy_a"]
    TradeOrder.objects.filter(pk=order.pk).update(status=S.IN_EXECUTION)
    assert error_fields(problem(transition(api_client, order, status="DONE"), 400)) == {"status"}
    assert error_fields(problem(transition(api_client, order), 400)) == {"status"}
    body = problem(transition(api_client, order, status="PARTIALLY_EXECUTED", executed_units="-1"), 400)
    assert message_for(body, "executed_units") == "must be greater than 0"
    body = problem(transition(api_client, order, status="PARTIALLY_EXECUTED", executed_units="3"), 400)
    assert "3 executed of the order's 2 units" in message_for(body, "executed_units")
    body = problem(transition(api_client, order, status="PARTIALLY_EXECUTED"), 400)
    assert error_fields(body) == {"executed_units"}
    body = problem(
        transition(api_client, order, status="PARTIALLY_EXECUTED", executed_units="1", executed_price="0"), 400
    )
    assert error_fields(body) == {"executed_price"}
    problem(api_client.post(f"{TRADE_ORDERS}{uuid.uuid4()}/transitions/", {"status": "ACCEPTED"}, format="json"), 404)
    assert TradeOrder.objects.get(pk=order.pk).executed_units == 0


def test_transition_moves_the_portfolio_order(api_client, configured):
    account = configured(units=(0, 0, 100), cash="1000")
    order = post_order(api_client, account).json()
    trade_order = TradeOrder.objects.get(pk=order["trade_orders"][0]["order_id"])
    transition(api_client, trade_order, status="ACCEPTED")
    assert api_client.get(f"{ORDERS}{order['portfolio_order_id']}/").json()["status"] == "IN_PROGRESS"


def test_trade_order_permissions(client_for, user_with_perms, orders):
    order = orders["buy_a"]
    viewer = client_for(user_with_perms("rebalancing.view_tradeorder", username="viewer"))
    assert viewer.get(TRADE_ORDERS).status_code == 200
    assert viewer.get(f"{TRADE_ORDERS}{order.pk}/").status_code == 200
    problem(transition(viewer, order, status="ACCEPTED"), 403)
    changer = client_for(user_with_perms("rebalancing.change_tradeorder", username="changer"))
    assert transition(changer, order, status="ACCEPTED").status_code == 200
    problem(changer.get(TRADE_ORDERS), 403)
    problem(APIClient().get(TRADE_ORDERS), 401)


def test_transitions_are_idempotent_with_a_key(api_client, orders):
    order = orders["buy_a"]
    url = f"{TRADE_ORDERS}{order.pk}/transitions/"
    first = api_client.post(url, {"status": "ACCEPTED"}, format="json", HTTP_IDEMPOTENCY_KEY="t-1")
    again = api_client.post(url, {"status": "ACCEPTED"}, format="json", HTTP_IDEMPOTENCY_KEY="t-1")
    assert first.status_code == again.status_code == 200 and again.json() == first.json()
    problem(api_client.post(url, {"status": "ACCEPTED"}, format="json"), 409)


# --- Query budgets ------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [10, 100])
def test_trade_order_list_query_count_is_fixed(api_client, configured, abc, make_order, django_assert_num_queries, rows):
    account = configured()
    for n in range(rows):
        make_order(account, abc[n % 3], units="1", unit_price="10")
    # Token, count, page (instruments joined).
    with django_assert_num_queries(3):
        response = api_client.get(TRADE_ORDERS)
    assert response.json()["meta"]["count"] == rows
    # … plus the instrument reference.
    with django_assert_num_queries(4):
        response = api_client.get(TRADE_ORDERS, {"instrument_id": abc[0].isin, "account_id": str(account.pk)})
    assert response.json()["meta"]["total_count"] == len(range(0, rows, 3))


def test_the_trade_order_list_counts_only_up_to_a_cap(api_client, orders, monkeypatch, django_assert_num_queries):
    """No COUNT(*) of the whole table: rows are counted up to the page's end plus
    COUNT_AHEAD (0 here), and the answer says when the count stopped there."""
    monkeypatch.setattr("core.counting.COUNT_AHEAD", 0)
    meta = api_client.get(TRADE_ORDERS, {"limit": 1}).json()["meta"]
    assert meta == {"offset": 0, "limit": 1, "count": 1, "total_count": 2, "total_count_exact": False}
    meta = api_client.get(TRADE_ORDERS, {"limit": 1, "offset": 1}).json()["meta"]
    assert meta == {"offset": 1, "limit": 1, "count": 1, "total_count": 3, "total_count_exact": False}
    meta = api_client.get(TRADE_ORDERS, {"limit": 2, "offset": 1}).json()["meta"]
    assert meta == {"offset": 1, "limit": 2, "count": 2, "total_count": 3, "total_count_exact": True}
    with CaptureQueriesContext(connection) as captured:
        api_client.get(TRADE_ORDERS, {"limit": 1})
    [count] = [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]
    assert "LIMIT 2" in count.upper()


@pytest.mark.parametrize("rows", [10, 100])
def test_portfolio_order_list_query_count_is_fixed(api_client, configured, abc, make_order, django_assert_num_queries, rows):
    account = configured()
    for _ in range(rows):
        order = PortfolioOrder.objects.create(account=account, side=Side.BUY, cash_amount=Decimal("20"), currency="EUR")
        make_order(account, abc[0], units="1", unit_price="10", portfolio_order=order)
        make_order(account, abc[1], units="1", unit_price="10", portfolio_order=order)
    # Token, count, page, trade orders with their instruments.
    with django_assert_num_queries(4):
        response = api_client.get(ORDERS, {"limit": 1000})
    body = response.json()
    assert body["meta"]["count"] == rows
    assert {len(row["trade_orders"]) for row in body["data"]} == {2}
