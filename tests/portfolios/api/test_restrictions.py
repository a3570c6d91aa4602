"""Restrictions, substitutes and model alerts, driven through the API only (§11).

The "Done when" check of issue #15: a model of A 50 % / B 50 %, an account with a
NO_BUY list on B and a substitute C; then without the substitute and with PRO_RATA;
a NO_HOLD on a held instrument; a NO_SELL on an overweight holding; and
`needs_attention` as soon as a model line becomes untradable.
"""

from datetime import date

import pytest

from tests.portfolios.api.conftest import error_fields, problem

pytestmark = pytest.mark.django_db
DAY = date(2026, 3, 2)


def ok(response, status=200) -> dict:
    assert response.status_code == status, response.content[:2000]
    return response.json() if response.content else {}


@pytest.fixture
def book(api_client):
    """Instruments A, B, C at 10, a model A 50 % / B 50 %, and a function making a configured account."""
    c = api_client
    ids = {}
    for name in ("A", "B", "C"):
        ids[name] = ok(c.post("/api/v1/instruments/", {"name": name, "type": "ETF", "currency": "EUR"}, format="json"), 201)[
            "instrument_id"
        ]
    ok(c.post("/api/v1/prices/", {"prices": [
        {"instrument_id": i, "effective_at": DAY.isoformat(), "value": "10"} for i in ids.values()
    ]}, format="json"))  # fmt: skip
    allocation = ok(c.post("/api/v1/portfolios/allocations/", {
        "name": "Fifty-fifty", "effective_from": DAY.isoformat(),
        "allocation": [{"instrument_id": ids["A"], "weight": "0.5"}, {"instrument_id": ids["B"], "weight": "0.5"}],
    }, format="json"), 201)  # fmt: skip

    def account(positions=(), cash="1000"):
        account_id = ok(c.post("/api/v1/portfolios/accounts/", {"client_id": "c1", "base_currency": "EUR"}, format="json"),
                        201)["account_id"]  # fmt: skip
        ok(c.put(f"/api/v1/portfolios/accounts/{account_id}/holdings/", {
            "positions": [{"instrument_id": ids[n], "units": u} for n, u in positions],
            "cash": [{"currency": "EUR", "balance": cash, "is_default": True}],
        }, format="json"))  # fmt: skip
        ok(c.post("/api/v1/portfolios/configurations/", {"account_id": account_id,
                                                         "allocation_id": allocation["allocation_id"]}, format="json"), 201)  # fmt: skip
        return account_id

    return c, ids, allocation, account


def restrict(c, account_id, ids, *entries, name="ESG"):
    body = {"name": name, "scope": "ACCOUNT",
            "entries": [{"instrument_id": ids[n], "rule": rule, "reason": "test"} for n, rule in entries]}  # fmt: skip
    list_id = ok(c.post("/api/v1/restriction-lists/", body, format="json"), 201)["list_id"]
    answer = ok(c.patch(f"/api/v1/portfolios/accounts/{account_id}/", {"restriction_list_ids": [list_id]}, format="json"))
    assert answer["restriction_list_ids"] == [list_id]
    return list_id


def preview(c, account_id, **preferences) -> dict:
    body = {"accounts": [account_id], "rebalance_date": DAY.isoformat()}
    if preferences:
        body["preferences"] = preferences
    [result] = ok(c.post("/api/v1/portfolios/rebalancings/previews/", body, format="json"))["results"]
    return result


def trades(result) -> dict:
    return {(o["instrument_id"], o["side"]): o["units"] for o in result["orders"]}


def test_no_buy_with_a_substitute_buys_a_and_c_only(book):
    c, ids, _, account = book
    account_id = account()
    restrict(c, account_id, ids, ("B", "NO_BUY"))
    ok(c.put(f"/api/v1/substitutes/{ids['B']}/", {"substitutes": [ids["C"]]}, format="json"))
    result = preview(c, account_id)
    assert trades(result) == {(ids["A"], "BUY"): "50", (ids["C"], "BUY"): "50"}
    assert result["adjustments"] == [
        {"instrument_id": ids["B"], "rule": "NO_BUY", "effect": "SUBSTITUTED", "substitute_id": ids["C"], "list": "ESG"}
    ]


def test_no_buy_without_a_substitute_and_pro_rata_buys_a_only(book):
    c, ids, _, account = book
    account_id = account()
    restrict(c, account_id, ids, ("B", "NO_BUY"))
    ok(c.put(f"/api/v1/portfolios/accounts/{account_id}/preferences/", {"restricted_weight_to": "PRO_RATA"}, format="json"))
    result = preview(c, account_id)
    assert trades(result) == {(ids["A"], "BUY"): "100"}
    assert [a["effect"] for a in result["adjustments"]] == ["PRO_RATA"]
    # The default (CASH) keeps B's half in cash.
    result = preview(c, account_id, restricted_weight_to="CASH")
    assert trades(result) == {(ids["A"], "BUY"): "50"} and result["cash_after"] == "500"


def test_no_hold_sells_a_held_instrument_whole(book):
    c, ids, _, account = book
    account_id = account(positions=[("B", "30")], cash="700")
    restrict(c, account_id, ids, ("B", "NO_HOLD"))
    result = preview(c, account_id)
    sells = [o for o in result["orders"] if o["side"] == "SELL"]
    assert [(o["instrument_id"], o["units"], o["transaction_type"]) for o in sells] == [(ids["B"], "30", "SELL_ALL")]
    assert (ids["B"], "BUY") not in trades(result)
    assert {a["effect"] for a in result["adjustments"]} == {"SOLD", "TO_CASH"}


def test_no_sell_leaves_an_overweight_holding_untouched(book):
    c, ids, _, account = book
    account_id = account(positions=[("B", "80")], cash="200")
    assert (ids["B"], "SELL") in trades(preview(c, account_id))  # without the list it would be sold
    restrict(c, account_id, ids, ("B", "NO_SELL"))
    result = preview(c, account_id)
    assert trades(result) == {(ids["A"], "BUY"): "20"}
    assert result["adjustments"] == [{"instrument_id": ids["B"], "rule": "NO_SELL", "effect": "HELD", "list": "ESG"}]


def test_an_entry_not_yet_in_effect_changes_nothing(book):
    c, ids, _, account = book
    account_id = account()
    body = {"name": "Later", "entries": [{"instrument_id": ids["B"], "rule": "NO_BUY", "effective_from": "2026-04-01"}]}
    list_id = ok(c.post("/api/v1/restriction-lists/", body, format="json"), 201)["list_id"]
    ok(c.patch(f"/api/v1/portfolios/accounts/{account_id}/", {"restriction_list_ids": [list_id]}, format="json"))
    result = preview(c, account_id)
    assert trades(result) == {(ids["A"], "BUY"): "50", (ids["B"], "BUY"): "50"} and result["adjustments"] == []


def test_a_firm_list_applies_to_every_account_without_assignment(book):
    c, ids, _, account = book
    account_id = account()
    body = {"name": "Sanctions", "scope": "FIRM", "entries": [{"instrument_id": ids["B"], "rule": "NO_BUY"}]}
    ok(c.post("/api/v1/restriction-lists/", body, format="json"), 201)
    assert trades(preview(c, account_id)) == {(ids["A"], "BUY"): "50"}


def test_making_a_model_line_untradable_shows_needs_attention_at_once(book):
    c, ids, allocation, _ = book
    url = f"/api/v1/portfolios/allocations/{allocation['allocation_id']}/"
    assert ok(c.get(url))["needs_attention"] == []
    ok(c.patch(f"/api/v1/instruments/{ids['B']}/", {"tradable": False}, format="json"))
    assert ok(c.get(url))["needs_attention"] == [{"instrument_id": ids["B"], "reason": "NOT_TRADABLE"}]
    ok(c.patch(f"/api/v1/instruments/{ids['B']}/", {"tradable": True}, format="json"))
    assert ok(c.get(url))["needs_attention"] == []


def test_restriction_list_put_replaces_entries_and_delete_of_an_assigned_list_is_409(book):
    c, ids, _, account = book
    account_id = account()
    list_id = restrict(c, account_id, ids, ("B", "NO_BUY"))
    body = {"name": "ESG", "scope": "ACCOUNT", "entries": [{"instrument_id": ids["A"], "rule": "NO_HOLD"}]}
    answer = ok(c.put(f"/api/v1/restriction-lists/{list_id}/", body, format="json"))
    assert [(e["instrument_id"], e["rule"]) for e in answer["entries"]] == [(ids["A"], "NO_HOLD")]
    problem(c.delete(f"/api/v1/restriction-lists/{list_id}/"), 409)
    ok(c.patch(f"/api/v1/portfolios/accounts/{account_id}/", {"restriction_list_ids": []}, format="json"))
    assert c.delete(f"/api/v1/restriction-lists/{list_id}/").status_code == 204


def test_bad_input_names_the_field(book):
    c, ids, _, account = book
    body = {"name": "Bad", "entries": [
        {"instrument_id": ids["A"], "rule": "NO_BUY"},
        {"instrument_id": "XX0000000000", "rule": "NO_BUY"},
        {"instrument_id": ids["B"], "rule": "NO_BUY", "effective_from": "2026-05-01", "effective_to": "2026-04-01"},
    ]}  # fmt: skip
    assert error_fields(problem(c.post("/api/v1/restriction-lists/", body, format="json"), 400)) == {
        "entries[1].instrument_id", "entries[2].effective_to",
    }
    assert error_fields(problem(c.put(f"/api/v1/substitutes/{ids['B']}/", {"substitutes": [ids["B"]]}, format="json"),
                                400)) == {"substitutes[0]"}  # fmt: skip
    account_id = account()
    firm = ok(c.post("/api/v1/restriction-lists/", {"name": "Firm", "scope": "FIRM"}, format="json"), 201)["list_id"]
    response = c.patch(f"/api/v1/portfolios/accounts/{account_id}/", {"restriction_list_ids": [firm, "nope"]}, format="json")
    assert error_fields(problem(response, 400)) == {"restriction_list_ids[0]", "restriction_list_ids[1]"}


def test_substitutes_list_and_get(book):
    c, ids, _, _ = book
    ok(c.put(f"/api/v1/substitutes/{ids['B']}/", {"substitutes": [ids["C"], ids["A"]]}, format="json"))
    assert ok(c.get(f"/api/v1/substitutes/{ids['B']}/")) == {"instrument_id": ids["B"], "substitutes": [ids["C"], ids["A"]]}
    assert ok(c.get("/api/v1/substitutes/"))["data"] == [{"instrument_id": ids["B"], "substitutes": [ids["C"], ids["A"]]}]
