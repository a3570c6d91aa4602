"""§12 over the API, as a black box ("Done when" of issue 16): an account holding X
bought at 10 two years ago and at 30 two months ago, X at 20. A sell settled under FIFO
realizes +10/unit LONG, under HIFO −10/unit SHORT, and `realized-gains` totals match.
A tax-aware preview with `max_realized_gain` 0 proposes no sell that realizes a gain;
with `harvest_losses` and a substitute it sells the loss lot and buys the substitute."""

import re
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from rebalancing.models import Execution
from tests.portfolios.api.conftest import error_fields, problem
from tests.rebalancing.executions.conftest import run_chunks

STEPS = ("ACCEPTED", "EXECUTABLE", "SENT_TO_EXECUTION", "IN_EXECUTION", "EXECUTED_IN_MARKET", "SETTLED_IN_MARKET",
         "SETTLED")  # fmt: skip


def post(client, url, body, status=201):
    response = client.post(url, body, format="json")
    assert response.status_code == status, response.content[:2000]
    return response.json()


def put(client, url, body, status=200):
    response = client.put(url, body, format="json")
    assert response.status_code == status, response.content[:2000]
    return response.json()


@pytest.fixture
def market(api_client):
    """X at 20, Z at 10, Y (X's substitute) at 50, all EUR ETFs in whole units, priced today."""
    c = api_client
    today = timezone.localdate().isoformat()
    ids = {}
    for name, price in (("X", "20"), ("Z", "10"), ("Y", "50")):
        ids[name] = post(c, "/api/v1/instruments/", {"name": f"{name} ETF", "type": "ETF", "currency": "EUR",
                                                     "block_size": "1"})["instrument_id"]  # fmt: skip
        post(c, "/api/v1/prices/", {"prices": [{"instrument_id": ids[name], "effective_at": today, "value": price}]}, 200)
    post(c, "/api/v1/instruments/", {"name": "EUR cash", "type": "CASH", "currency": "EUR"})
    put(c, f"/api/v1/substitutes/{ids['X']}/", {"substitutes": [ids["Y"]]})
    return ids


def account_with_lots(c, ids, weights: dict, lots: list, client_id="C-TAX"):
    today = timezone.localdate()
    allocation = post(c, "/api/v1/portfolios/allocations/", {
        "allocation": [{"instrument_id": ids[n], "instrument_id_type": "UUID", "weight": w} for n, w in weights.items()],
        "effective_from": "2020-01-01",
    })
    account_id = post(c, "/api/v1/portfolios/accounts/", {"client_id": client_id, "base_currency": "EUR"})["account_id"]
    units = sum(Decimal(u) for _, u, _ in lots)
    put(c, f"/api/v1/portfolios/accounts/{account_id}/holdings/", {
        "positions": [{"instrument_id": ids["X"], "units": str(units), "lots": [
            {"acquired_on": (today - timedelta(days=days)).isoformat(), "units": u, "unit_cost": cost}
            for days, u, cost in lots
        ]}],
        "cash": [{"currency": "EUR", "balance": "0", "is_default": True}],
    })
    post(c, "/api/v1/portfolios/configurations/", {"account_id": account_id, "allocation_id": allocation["allocation_id"]})
    return account_id


TWO_LOTS = [(730, "10", "10"), (60, "10", "30")]


def preview(c, account_id, **preferences):
    body = {"accounts": [account_id], "preferences": preferences}
    [result] = post(c, "/api/v1/portfolios/rebalancings/previews/", body, 200)["results"]
    return result


def execute_and_settle_sells(c, account_id):
    started = post(c, "/api/v1/portfolios/rebalancings/executions/", {"accounts": [account_id]}, 202)
    run_chunks(Execution.objects.get(pk=started["execution_id"]))
    [result] = c.get(f"/api/v1/portfolios/rebalancings/executions/{started['execution_id']}/").json()["results"]
    sells = [o for o in result["orders"] if o["side"] == "SELL"]
    for order in sells:
        for status in STEPS:
            post(c, f"/api/v1/trade-orders/{order['order_id']}/transitions/", {"status": status}, 200)
    return sells


@pytest.mark.parametrize(("method", "short", "long"), [("FIFO", "0", "100"), ("HIFO", "-100", "0")])
def test_a_settled_sell_realizes_by_the_lot_method_and_the_totals_match(api_client, market, method, short, long):
    c = api_client
    account_id = account_with_lots(c, market, {"X": "0.5", "Z": "0.5"}, TWO_LOTS)
    put(c, f"/api/v1/portfolios/accounts/{account_id}/preferences/", {"lot_method": method})
    [sell] = execute_and_settle_sells(c, account_id)
    assert (sell["instrument_id"], sell["units"]) == (market["X"], "10")  # 400 of X, target 200
    year = timezone.localdate().year
    body = c.get(f"/api/v1/portfolios/accounts/{account_id}/realized-gains/?year={year}").json()
    [row] = body["data"]
    per_unit = Decimal(row["gain_base"]) / Decimal(row["units"])
    assert (per_unit, row["term"]) == ((Decimal(10), "LONG") if method == "FIFO" else (Decimal(-10), "SHORT"))
    assert body["totals"] == {"short": short, "long": long, "unknown_cost_units": "0"}
    assert c.get(f"/api/v1/portfolios/accounts/{account_id}/realized-gains/?year={year - 1}").json()["totals"] == {
        "short": "0", "long": "0", "unknown_cost_units": "0"
    }
    # The lot left, with its unrealized gain at 20.
    [lot] = c.get(f"/api/v1/portfolios/accounts/{account_id}/lots/").json()["data"]
    expected = ("30", "-100") if method == "FIFO" else ("10", "100")
    assert (lot["unit_cost"], lot["unrealized_gain"]) == expected


def test_holdings_get_lists_lots_on_request_and_a_bad_lot_sum_is_a_400(api_client, market):
    c = api_client
    account_id = account_with_lots(c, market, {"X": "1"}, TWO_LOTS)
    plain = c.get(f"/api/v1/portfolios/accounts/{account_id}/holdings/").json()
    assert "lots" not in plain["positions"][0]
    [position] = c.get(f"/api/v1/portfolios/accounts/{account_id}/holdings/?lots=true").json()["positions"]
    assert [(lot["units"], lot["unit_cost"]) for lot in position["lots"]] == [("10", "10"), ("10", "30")]
    response = c.put(f"/api/v1/portfolios/accounts/{account_id}/holdings/", {
        "positions": [{"instrument_id": market["X"], "units": "21",
                       "lots": [{"acquired_on": "2024-01-02", "units": "20", "unit_cost": "10"}]}],
        "cash": [],
    }, format="json")
    assert error_fields(problem(response, 400)) == {"positions[0].lots"}
    assert c.get(f"/api/v1/portfolios/accounts/{account_id}/holdings/").json()["positions"][0]["units"] == "20"


def test_a_zero_gain_budget_proposes_no_sell_that_realizes_a_gain(api_client, market):
    c = api_client
    account_id = account_with_lots(c, market, {"X": "0.5", "Z": "0.5"}, TWO_LOTS)
    plain = preview(c, account_id)
    assert {o["side"] for o in plain["orders"]} == {"SELL", "BUY"} and "estimated_realized_gain" not in plain
    aware = preview(c, account_id, tax_aware=True)
    [sell] = [o for o in aware["orders"] if o["side"] == "SELL"]
    assert sell["estimated_gain"] == "100" and aware["estimated_realized_gain"]["long"] == "100"
    assert sum(Decimal(lot["units"]) for lot in sell["lots"]) == Decimal(sell["units"])
    capped = preview(c, account_id, tax_aware=True, max_realized_gain="0")
    assert not [o for o in capped["orders"] if o["side"] == "SELL" and Decimal(o["estimated_gain"] or 0) > 0]
    assert Decimal(capped["estimated_realized_gain"]["long"]) + Decimal(capped["estimated_realized_gain"]["short"]) <= 0
    # HIFO relieves the loss lot first: the same sell fits a zero budget.
    hifo = preview(c, account_id, tax_aware=True, max_realized_gain="0", lot_method="HIFO")
    [sell] = [o for o in hifo["orders"] if o["side"] == "SELL"]
    assert sell["estimated_gain"] == "-100"


def test_loss_harvesting_sells_the_loss_lot_and_buys_the_substitute(api_client, market):
    c = api_client
    account_id = account_with_lots(c, market, {"X": "1"}, [(60, "10", "30")])  # in balance: no trades
    assert preview(c, account_id, tax_aware=True)["orders"] == []
    result = preview(c, account_id, tax_aware=True, harvest_losses=True)
    orders = {(o["side"], o["instrument_id"]): o for o in result["orders"]}
    sell, buy = orders[("SELL", market["X"])], orders[("BUY", market["Y"])]
    assert (sell["units"], sell["estimated_gain"]) == ("10", "-100")
    [lot] = sell["lots"]
    assert lot["units"] == "10"
    assert buy["units"] == "4"  # 200 of proceeds at 50
    assert result["status"] == "PROPOSED"


def test_a_tax_aware_execution_stores_the_estimate_and_its_sells_relieve_the_lots_named(api_client, market):
    """The execution keeps each sell's lots and estimated gain on its result; settling
    the sell relieves exactly those lots (here LIFO-named under FIFO settlement would differ)."""
    c = api_client
    account_id = account_with_lots(c, market, {"X": "0.5", "Z": "0.5"}, TWO_LOTS)
    put(c, f"/api/v1/portfolios/accounts/{account_id}/preferences/", {"tax_aware": True, "lot_method": "HIFO"})
    started = post(c, "/api/v1/portfolios/rebalancings/executions/", {"accounts": [account_id]}, 202)
    run_chunks(Execution.objects.get(pk=started["execution_id"]))
    [result] = c.get(f"/api/v1/portfolios/rebalancings/executions/{started['execution_id']}/").json()["results"]
    assert result["estimated_realized_gain"] == {"short": "-100", "long": "0", "unknown_cost_units": "0"}
    [sell] = [o for o in result["orders"] if o["side"] == "SELL"]
    [buy] = [o for o in result["orders"] if o["side"] == "BUY"]
    assert sell["estimated_gain"] == "-100" and "lots" not in buy
    [named] = sell["lots"]
    # The account switches to FIFO before settling: the sell still relieves the lot it named.
    put(c, f"/api/v1/portfolios/accounts/{account_id}/preferences/", {"tax_aware": True, "lot_method": "FIFO"})
    for status in STEPS:
        post(c, f"/api/v1/trade-orders/{sell['order_id']}/transitions/", {"status": status}, 200)
    [row] = c.get(f"/api/v1/portfolios/accounts/{account_id}/realized-gains/").json()["data"]
    assert (row["lot_id"], row["gain"]) == (named["lot_id"], "-100")


def test_the_blotter_shows_the_estimated_gain_per_instrument(api_client, admin_client, market):
    c = api_client
    account_id = account_with_lots(c, market, {"X": "0.5", "Z": "0.5"}, TWO_LOTS)
    put(c, f"/api/v1/portfolios/accounts/{account_id}/preferences/", {"tax_aware": True})
    started = post(c, "/api/v1/portfolios/rebalancings/executions/", {"accounts": [account_id]}, 202)
    run_chunks(Execution.objects.get(pk=started["execution_id"]))
    page = admin_client.get("/admin/rebalancing/tradeorder/blotter/?status__exact=OPEN").content.decode()
    assert re.search(r"data-estimated-gain>100(\.00)? EUR<", page), page


def test_a_harvesting_execution_reads_the_lots_of_positions_it_does_not_trade(api_client, market):
    """A chunk reads only the lots of the positions its plain rebalances sell, except for
    the accounts that harvest losses: this one trades nothing before the harvest."""
    c = api_client
    account_id = account_with_lots(c, market, {"X": "1"}, [(60, "10", "30")])  # in balance: no trades
    put(c, f"/api/v1/portfolios/accounts/{account_id}/preferences/", {"tax_aware": True, "harvest_losses": True})
    started = post(c, "/api/v1/portfolios/rebalancings/executions/", {"accounts": [account_id]}, 202)
    run_chunks(Execution.objects.get(pk=started["execution_id"]))
    [result] = c.get(f"/api/v1/portfolios/rebalancings/executions/{started['execution_id']}/").json()["results"]
    orders = {(o["side"], o["instrument_id"]): o for o in result["orders"]}
    sell, buy = orders[("SELL", market["X"])], orders[("BUY", market["Y"])]
    assert (sell["units"], sell["estimated_gain"], buy["units"]) == ("10", "-100", "4")
    assert result["estimated_realized_gain"] == {"short": "-100", "long": "0", "unknown_cost_units": "0"}


def test_the_tax_book_reads_the_lots_of_the_positions_sold_or_of_whole_accounts(api_client, market):
    from portfolios.models import Lot
    from rebalancing.selectors.book import book_load
    from rebalancing.selectors.tax import tax_book_load

    c = api_client
    account_id = account_with_lots(c, market, {"X": "0.5", "Z": "0.5"}, TWO_LOTS)
    z_account = account_with_lots(c, market, {"Z": "1"}, TWO_LOTS, client_id="C-TAX-2")  # sells X too
    accounts = [uuid.UUID(account_id), uuid.UUID(z_account)]
    x = uuid.UUID(market["X"])
    book = book_load(account_ids=accounts, on_date=timezone.localdate())

    def lots_read(**options):
        tax = tax_book_load(book=book, account_ids=accounts, wash_sale_days=30, **options)
        return {key: [(str(lot[0]), lot[2], lot[3]) for lot in lots[key]] for lots in tax.lots.values() for key in lots}

    every = lots_read()
    stored = sorted((str(lot.pk), lot.units, lot.unit_cost) for lot in Lot.objects.filter(position__account_id=accounts[0]))
    assert sorted(every[(accounts[0], x)]) == stored and set(every) == {(accounts[0], x), (accounts[1], x)}
    assert [cost for _, _, cost in every[(accounts[0], x)]] == [Decimal(10), Decimal(30)]  # oldest first
    assert lots_read(sold={(accounts[1], x)}, whole=[]) == {(accounts[1], x): every[(accounts[1], x)]}
    assert lots_read(sold=set(), whole=[accounts[0]]) == {(accounts[0], x): every[(accounts[0], x)]}
    assert lots_read(sold=set(), whole=[]) == {}


def test_the_tax_book_sums_this_years_gains_and_finds_the_recent_loss_sales(api_client, market):
    from portfolios.models import RealizedGain
    from rebalancing.selectors.book import book_load
    from rebalancing.selectors.tax import tax_book_load

    c = api_client
    account = uuid.UUID(account_with_lots(c, market, {"X": "1"}, TWO_LOTS))
    today = timezone.localdate()
    x, z = uuid.UUID(market["X"]), uuid.UUID(market["Z"])

    def gain(instrument, on, value, base=True):
        RealizedGain.objects.create(
            account_id=account, instrument_id=instrument, lot_id=uuid.uuid4(), acquired_on=on - timedelta(days=9),
            units=1, realized_on=on, term="SHORT", currency="EUR", gain=value, base_currency="EUR",
            gain_base=value if base else None,
        )

    gain(x, today, Decimal("-7"))  # a loss sale today
    gain(z, today - timedelta(days=1), Decimal("12"))
    gain(z, today, Decimal("5"), base=False)  # no base value: not counted
    gain(z, today.replace(year=today.year - 1), Decimal("1000"))  # last year
    gain(z, today + timedelta(days=1), Decimal("1000"))  # after the rebalance date
    book = book_load(account_ids=[account], on_date=today)
    tax = tax_book_load(book=book, account_ids=[account], wash_sale_days=30, sold=set(), whole=[])
    expected = Decimal("-7") + (Decimal("12") if (today - timedelta(days=1)).year == today.year else 0)
    assert tax.realized == {account: expected}
    assert tax.loss_sales == {account: {x: today.toordinal()}}
    assert set(tax.substitutes) == {x}  # X's substitutes, for its wash-sale buys
    assert tax_book_load(book=book, account_ids=[account], wash_sale_days=30, gains=False).realized == {}
    assert tax_book_load(book=book, account_ids=[account], wash_sale_days=0).loss_sales == {}


def test_the_tax_book_finds_a_sub_portfolios_loss_sales_from_a_chunks_own_ids(api_client, market):
    """A chunk passes its own ids (an IdTuple, formatted once) when every account is
    tax-aware: the sub-portfolios are added to them, and their loss sales count for the root."""
    from portfolios.models import RealizedGain
    from core.ids import IdTuple
    from rebalancing.selectors.book import book_load
    from rebalancing.selectors.tax import tax_book_load

    c = api_client
    roots = [uuid.UUID(account_with_lots(c, market, {"X": "1"}, TWO_LOTS, client_id=f"C-TAX-{n}")) for n in (1, 2)]
    sub = uuid.UUID(post(c, "/api/v1/portfolios/accounts/", {
        "client_id": "C-TAX-SUB", "base_currency": "EUR", "parent_id": str(roots[1]),
    })["account_id"])
    today = timezone.localdate()
    x, z = uuid.UUID(market["X"]), uuid.UUID(market["Z"])
    for account, instrument in ((sub, z), (roots[0], x)):
        RealizedGain.objects.create(
            account_id=account, instrument_id=instrument, lot_id=uuid.uuid4(), acquired_on=today - timedelta(days=9),
            units=1, realized_on=today, term="SHORT", currency="EUR", gain=Decimal("-3"), base_currency="EUR",
            gain_base=Decimal("-3"),
        )
    for ids in (IdTuple(roots), list(roots)):
        book = book_load(account_ids=ids, on_date=today)
        tax = tax_book_load(book=book, account_ids=ids, wash_sale_days=30, sold=[], whole=[])
        assert tax.loss_sales == {roots[0]: {x: today.toordinal()}, roots[1]: {z: today.toordinal()}}
        assert tax.realized == {roots[0]: Decimal("-3"), roots[1]: Decimal("-3")}


def test_a_tax_step_that_fails_fails_its_account_only(api_client, market, monkeypatch):
    from rebalancing.services import executions

    c = api_client
    plain = account_with_lots(c, market, {"X": "0.5", "Z": "0.5"}, TWO_LOTS)
    aware = account_with_lots(c, market, {"X": "0.5", "Z": "0.5"}, TWO_LOTS)
    put(c, f"/api/v1/portfolios/accounts/{aware}/preferences/", {"tax_aware": True})

    def broken(**kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(executions, "tax_step", broken)
    started = post(c, "/api/v1/portfolios/rebalancings/executions/", {"accounts": [plain, aware]}, 202)
    run_chunks(Execution.objects.get(pk=started["execution_id"]))
    answer = c.get(f"/api/v1/portfolios/rebalancings/executions/{started['execution_id']}/").json()
    by_account = {r["account_id"]: r for r in answer["results"]}
    assert by_account[aware]["status"] == "FAILED" and "a bug" in by_account[aware]["error"]
    assert by_account[plain]["status"] == "PROPOSED" and by_account[plain]["orders"]
    assert answer["status"] == "PARTIALLY_FAILED"
