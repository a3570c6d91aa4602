"""§9 live prices: the HTTP JSON connector against a real local HTTP server (slow,
failing, partial and wrong-currency answers), the fallback to stored prices and
`price_fallbacks` in previews."""

import json
import threading
import time
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from core.price_connector import HttpJsonPriceConnector, PriceRequest
from portfolios.models import Price
from tests.factories import InstrumentFactory, PriceFactory, make_allocation

BEHAVIOUR = {"mode": "ok", "prices": {}, "requests": []}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        BEHAVIOUR["requests"].append((body, self.headers.get("Authorization")))
        mode = BEHAVIOUR["mode"]
        if mode == "slow":
            time.sleep(1.5)
        if mode == "fail":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"boom")
            return
        rows = []
        for item in body["instruments"]:
            known = BEHAVIOUR["prices"].get(item["instrument_id"])
            if known is not None:
                price, currency = known
                rows.append({"instrument_id": item["instrument_id"], "price": price, "currency": currency,
                             "quoted_at": "2026-03-31T14:30:00Z"})  # fmt: skip
        data = json.dumps({"prices": rows}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    BEHAVIOUR.update(mode="ok", prices={}, requests=[])
    yield f"http://127.0.0.1:{httpd.server_address[1]}/prices"
    httpd.shutdown()
    httpd.server_close()


def requests_for(*ids):
    return [PriceRequest(i, None, "EUR") for i in ids]


# --- The connector alone --------------------------------------------------------------


def test_partial_answers_price_what_they_price_in_batches(server):
    BEHAVIOUR["prices"] = {"a": ("10.5", "EUR"), "c": (12, "EUR")}
    connector = HttpJsonPriceConnector(url=server, batch_size=2, time_budget=5, auth_header="Bearer s3cret")
    got = {p.instrument_id: p for p in connector.prices(requests_for("a", "b", "c"))}
    assert {k: v.price for k, v in got.items()} == {"a": Decimal("10.5"), "c": Decimal("12")}
    assert got["a"].quoted_at.isoformat() == "2026-03-31T14:30:00+00:00"
    assert [len(body["instruments"]) for body, _ in BEHAVIOUR["requests"]] == [2, 1]
    assert {auth for _, auth in BEHAVIOUR["requests"]} == {"Bearer s3cret"}


def test_a_failing_provider_prices_nothing_and_raises_nothing(server):
    BEHAVIOUR.update(mode="fail", prices={"a": ("10", "EUR")})
    assert HttpJsonPriceConnector(url=server, time_budget=5).prices(requests_for("a")) == []


def test_a_slow_provider_costs_at_most_its_time_budget(server):
    BEHAVIOUR.update(mode="slow", prices={"a": ("10", "EUR"), "b": ("11", "EUR")})
    connector = HttpJsonPriceConnector(url=server, batch_size=1, time_budget=0.5)
    started = time.monotonic()
    assert connector.prices(requests_for("a", "b")) == []
    assert time.monotonic() - started < 1.2  # the 1.5 s answer is not waited for, nor the second batch


def test_an_unreachable_provider_prices_nothing():
    connector = HttpJsonPriceConnector(url="http://127.0.0.1:9/prices", time_budget=1)
    assert connector.prices(requests_for("a")) == []


# --- In a preview ---------------------------------------------------------------------


@pytest.fixture
def three(db, settings, server):
    """Three ETFs at 10 EUR stored, a model of 40/30/30, the connector pointed at `server`."""
    settings.PRICE_CONNECTOR = {"URL": server, "BATCH_SIZE": 2, "TIME_BUDGET": 2}
    today = timezone.localdate()
    etfs = [InstrumentFactory(name=f"ETF {n}") for n in range(3)]
    for etf in etfs:
        PriceFactory(instrument=etf, effective_at=date(2026, 1, 2), value=Decimal("10"))
    allocation = make_allocation({etfs[0]: "0.4", etfs[1]: "0.3", etfs[2]: "0.3"}, effective_from=date(2026, 1, 1))
    return etfs, allocation, today


def test_a_preview_uses_the_two_prices_given_and_lists_the_third_as_fallback(api_client, three, account_with):
    etfs, allocation, today = three
    account = account_with(allocation, cash="3000")
    BEHAVIOUR["prices"] = {str(etfs[0].pk): ("20", "EUR"), str(etfs[1].pk): ("12.5", "EUR")}
    response = api_client.post(
        "/api/v1/portfolios/rebalancings/previews/",
        {"accounts": [str(account.pk)], "preferences": {"use_price_connector": True}}, format="json",
    )
    assert response.status_code == 200, response.content
    [result] = response.json()["results"]
    assert result["price_fallbacks"] == [str(etfs[2].pk)]
    prices = {o["instrument_id"]: Decimal(o["unit_price"]) for o in result["orders"]}
    # 1,200 / 900 / 900 EUR; units at the live prices (20 → 60, 12.5 → 72), the third at its stored 10.
    units = {o["instrument_id"]: Decimal(o["units"]) for o in result["orders"]}
    assert units == {str(etfs[0].pk): 60, str(etfs[1].pk): 72, str(etfs[2].pk): 90}, prices
    # The prices it returned are stored as quotes of source "connector" with their time.
    stored = Price.objects.get(instrument=etfs[0], source="connector")
    assert (stored.value, stored.effective_at, stored.quoted_at.isoformat()) == (
        Decimal("20"), date(2026, 3, 31), "2026-03-31T14:30:00+00:00")


def test_a_price_in_another_currency_is_refused(api_client, three, account_with):
    etfs, allocation, _ = three
    account = account_with(allocation, cash="3000")
    BEHAVIOUR["prices"] = {str(e.pk): ("20", "USD") for e in etfs}  # the ETFs are EUR
    response = api_client.post(
        "/api/v1/portfolios/rebalancings/previews/",
        {"accounts": [str(account.pk)], "preferences": {"use_price_connector": True}}, format="json",
    )
    [result] = response.json()["results"]
    assert sorted(result["price_fallbacks"]) == sorted(str(e.pk) for e in etfs)
    assert sorted(o["units"] for o in result["orders"]) == ["120", "90", "90"]  # every ETF at its stored 10
    assert not Price.objects.filter(source="connector").exists()


def test_a_failing_connector_never_fails_a_preview(api_client, three, account_with):
    etfs, allocation, _ = three
    account = account_with(allocation, cash="3000")
    BEHAVIOUR["mode"] = "fail"
    response = api_client.post(
        "/api/v1/portfolios/rebalancings/previews/",
        {"accounts": [str(account.pk)], "preferences": {"use_price_connector": True}}, format="json",
    )
    [result] = response.json()["results"]
    assert result["status"] == "PROPOSED" and len(result["price_fallbacks"]) == 3


def test_without_the_preference_the_connector_is_not_asked(api_client, three, account_with):
    etfs, allocation, _ = three
    account = account_with(allocation, cash="3000")
    response = api_client.post("/api/v1/portfolios/rebalancings/previews/", {"accounts": [str(account.pk)]},
                               format="json")  # fmt: skip
    assert response.json()["results"][0]["price_fallbacks"] == []
    assert BEHAVIOUR["requests"] == []
