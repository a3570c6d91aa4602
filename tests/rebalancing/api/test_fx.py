"""§9 FX over the API, as a black box: an account with only EUR cash and a model with a
USD ETF. EXPLICIT proposes one FX order buying exactly the USD its buys need (rounded up
to the cent); AUTO none; settling the FX order and the buy leaves USD units held and EUR
cash down by the FX order's trade amount."""

from decimal import ROUND_UP, Decimal

import pytest

from rebalancing.models import Execution
from tests.rebalancing.executions.conftest import run_chunks

D = "2026-03-02"
STEPS = ("ACCEPTED", "EXECUTABLE", "SENT_TO_EXECUTION", "IN_EXECUTION", "EXECUTED_IN_MARKET", "SETTLED_IN_MARKET",
         "SETTLED")  # fmt: skip


def post(client, url, body, status=201):
    response = client.post(url, body, format="json")
    assert response.status_code == status, response.content[:2000]
    return response.json()


@pytest.fixture
def book(api_client):
    """EUR and USD cash instruments, a USD ETF at 7 USD, 1 EUR = 1.1 USD, a model of the
    ETF alone, and an EUR account holding 1,000 EUR of cash and nothing else."""
    c = api_client
    etf = post(c, "/api/v1/instruments/", {"isin": "IE00B4L5Y983", "name": "World ETF (USD)", "type": "ETF",
                                          "currency": "USD", "block_size": "1"})  # fmt: skip
    for code in ("EUR", "USD"):
        post(c, "/api/v1/instruments/", {"name": f"{code} cash", "type": "CASH", "currency": code})
    post(c, "/api/v1/prices/", {"prices": [{"instrument_id": etf["instrument_id"], "effective_at": D, "value": "7"}]}, 200)
    post(c, "/api/v1/fx-rates/", {"rates": [{"base": "EUR", "quote": "USD", "rate": "1.1", "effective_at": D}]}, 200)
    allocation = post(c, "/api/v1/portfolios/allocations/", {
        "allocation": [{"instrument_id": etf["instrument_id"], "instrument_id_type": "UUID", "weight": "1"}],
        "effective_from": "2026-01-01",
    })
    account = post(c, "/api/v1/portfolios/accounts/", {"client_id": "C-FX-1", "base_currency": "EUR"})
    account_id = account["account_id"]
    response = c.put(f"/api/v1/portfolios/accounts/{account_id}/holdings/",
                     {"positions": [], "cash": [{"currency": "EUR", "balance": "1000", "is_default": True}]},
                     format="json")  # fmt: skip
    assert response.status_code == 200, response.content
    post(c, "/api/v1/portfolios/configurations/", {"account_id": account_id, "allocation_id": allocation["allocation_id"]})
    return account_id, etf["instrument_id"]


def preview(client, account_id, **preferences):
    body = {"accounts": [account_id], "rebalance_date": D, "preferences": preferences}
    [result] = post(client, "/api/v1/portfolios/rebalancings/previews/", body, 200)["results"]
    assert result["status"] == "PROPOSED", result
    return result


def test_explicit_proposes_one_fx_order_for_exactly_the_usd_needed(api_client, book):
    account_id, etf_id = book
    result = preview(api_client, account_id, fx_mode="EXPLICIT")
    fx = [o for o in result["orders"] if o["transaction_type"] == "FX"]
    buys = [o for o in result["orders"] if o["transaction_type"] == "BUY"]
    assert len(fx) == 1 and len(buys) == 1 and buys[0]["instrument_id"] == etf_id
    [fx] = fx
    need = Decimal(buys[0]["trade_amount"])  # in USD
    assert buys[0]["currency"] == "USD"
    assert Decimal(fx["units"]) == need.quantize(Decimal("0.01"), ROUND_UP) == Decimal("1100.00")
    assert (fx["side"], fx["currency"]) == ("BUY", "EUR")
    assert Decimal(fx["trade_amount"]) == Decimal("1000.00")  # 1,100 USD at 1 / 1.1
    assert fx["cash_account_id"] is not None and fx["counter_cash_account_id"] is None  # no USD account yet
    # The FX order comes before the buy it funds.
    assert [o["transaction_type"] for o in result["orders"]] == ["FX", "BUY"]


def test_auto_proposes_no_fx_order(api_client, book):
    account_id, etf_id = book
    result = preview(api_client, account_id)  # AUTO is the default
    assert [o["transaction_type"] for o in result["orders"]] == ["BUY"]
    assert result["orders"][0]["instrument_id"] == etf_id


def test_settling_the_fx_order_and_the_buy_moves_the_cash(api_client, book):
    account_id, etf_id = book
    response = api_client.put(f"/api/v1/portfolios/accounts/{account_id}/preferences/", {"fx_mode": "EXPLICIT"},
                              format="json")  # fmt: skip
    assert response.status_code == 200, response.content
    started = post(api_client, "/api/v1/portfolios/rebalancings/executions/",
                   {"accounts": [account_id], "rebalance_date": D}, 202)  # fmt: skip
    run_chunks(Execution.objects.get(pk=started["execution_id"]))
    detail = api_client.get(f"/api/v1/portfolios/rebalancings/executions/{started['execution_id']}/").json()
    [result] = detail["results"]
    orders = {o["transaction_type"]: o for o in result["orders"]}
    assert set(orders) == {"FX", "BUY"}
    for order in (orders["FX"], orders["BUY"]):
        for status in STEPS:
            post(api_client, f"/api/v1/trade-orders/{order['order_id']}/transitions/", {"status": status}, 200)

    holdings = api_client.get(f"/api/v1/portfolios/accounts/{account_id}/holdings/").json()
    units = {p["instrument_id"]: Decimal(p["units"]) for p in holdings["positions"]}
    cash = {c["currency"]: Decimal(c["balance"]) for c in holdings["cash"]}
    assert units[etf_id] == Decimal(orders["BUY"]["units"]) > 0
    assert cash["EUR"] == Decimal(1000) - Decimal(orders["FX"]["trade_amount"])
    # The USD bought, less the buy's USD cost: what the rounding up left over.
    assert cash["USD"] == Decimal(orders["FX"]["units"]) - Decimal(orders["BUY"]["trade_amount"])
    assert cash["USD"] >= 0
    # A second rebalance proposes no second FX order.
    assert "FX" not in {o["transaction_type"] for o in preview_orders(api_client, account_id)}


def preview_orders(client, account_id):
    body = {"accounts": [account_id], "rebalance_date": D}
    [result] = post(client, "/api/v1/portfolios/rebalancings/previews/", body, 200)["results"]
    return result["orders"]
