"""POST /api/v1/portfolios/rebalancings/previews/: every result status, the numbers of
a hand-computed case, per-call preferences, the 400s, and that nothing is written."""

import uuid
from decimal import Decimal

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rebalancing.services import preferences_replace
from tests.factories import AccountFactory, InstrumentFactory, PositionFactory, make_allocation

from .conftest import D, error_fields, message_for, problem

URL = "/api/v1/portfolios/rebalancings/previews/"


def preview(client, accounts, **body):
    body = {"accounts": [str(a.pk) if hasattr(a, "pk") else a for a in accounts], "rebalance_date": D.isoformat(), **body}
    return client.post(URL, body, format="json")


def results_of(response) -> list[dict]:
    assert response.status_code == 200, response.content[:2000]
    return response.json()["results"]


def test_full_invests_cash_towards_the_target(api_client, fifty_fifty, account_with):
    # 1000 EUR of cash, 50 / 50 of A and B at 10 → buy 500 EUR = 50 units of each.
    a, b, allocation = fifty_fifty
    account = account_with(allocation)
    [result] = results_of(preview(api_client, [account], method="FULL"))
    orders = sorted(result.pop("orders"), key=lambda order: order["instrument_id"])
    assert result == {
        "account_id": str(account.pk), "status": "PROPOSED", "error": None,
        "total_value": "1000", "cash_before": "1000", "cash_after": "0", "adjustments": [], "price_fallbacks": [],
    }
    cash_account = account.cash_accounts.get()  # pays for the buys (§10)
    assert orders == [
        {
            "instrument_id": str(instrument.pk), "isin": instrument.isin, "side": "BUY",
            "transaction_type": "BUY", "units": "50", "unit_price": "10", "trade_amount": "500",
            "currency": "EUR", "execution_method": "NET_TRADE_AMOUNT", "cash_account_id": cash_account.pk,
            "counter_cash_account_id": None,
        }
        for instrument in sorted((a, b), key=lambda i: str(i.pk))
    ]


def test_method_defaults_to_full_and_date_to_today(api_client, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    account = account_with(allocation)
    response = api_client.post(URL, {"accounts": [str(account.pk)]}, format="json")
    [result] = results_of(response)
    # The prices of D are the latest at or before today: the same two buys.
    assert result["status"] == "PROPOSED"
    assert [o["units"] for o in result["orders"]] == ["50", "50"]


def test_balanced_account_has_no_trades(api_client, fifty_fifty, account_with):
    a, b, allocation = fifty_fifty
    account = account_with(allocation, cash="0")
    PositionFactory(account=account, instrument=a, units=Decimal("50"))
    PositionFactory(account=account, instrument=b, units=Decimal("50"))
    [result] = results_of(preview(api_client, [account]))
    assert (result["status"], result["orders"], result["error"]) == ("NO_TRADES", [], None)
    assert (result["total_value"], result["cash_before"], result["cash_after"]) == ("1000", "0", "0")


def test_locked_account_is_skipped(api_client, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    account = account_with(allocation, locked=True)
    [result] = results_of(preview(api_client, [account]))
    assert result["status"] == "SKIPPED_LOCKED"
    assert result["orders"] == []
    assert "locked" in result["error"]


def test_conservative_within_the_cash_range_is_skipped(api_client, fifty_fifty, account_with):
    # 100 EUR of excess cash (cash target 0) lies inside the range 0..200.
    a, b, allocation = fifty_fifty
    account = account_with(allocation, cash="100")
    PositionFactory(account=account, instrument=a, units=Decimal("45"))
    PositionFactory(account=account, instrument=b, units=Decimal("45"))
    in_range = {"cash_range_min": "0", "cash_range_max": "200"}
    [result] = results_of(preview(api_client, [account], method="CONSERVATIVE", preferences=in_range))
    assert (result["status"], result["orders"]) == ("SKIPPED_WITHIN_RANGE", [])
    assert "cash range" in result["error"]
    # Outside the range, the same call invests the cash: 5 units of each.
    out_of_range = {"cash_range_min": "0", "cash_range_max": "50"}
    [result] = results_of(preview(api_client, [account], method="CONSERVATIVE", preferences=out_of_range))
    assert result["status"] == "PROPOSED"
    assert sorted((o["side"], o["units"], o["trade_amount"]) for o in result["orders"]) == [("BUY", "5", "50")] * 2


def test_missing_price_fails_naming_the_isin_and_date(api_client, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    unpriced = InstrumentFactory()
    account = account_with(make_allocation({fifty_fifty[0]: "0.5", unpriced: "0.5"}, effective_from=D))
    [result] = results_of(preview(api_client, [account]))
    assert result["status"] == "FAILED"
    assert unpriced.isin in result["error"] and D.isoformat() in result["error"]
    assert result["orders"] == [] and result["total_value"] is None


def test_inactive_and_unconfigured_accounts_fail_with_a_reason(api_client, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    pending = account_with(allocation, status="PENDING")
    closed = account_with(allocation, status="CLOSED")
    unconfigured = AccountFactory()
    results = results_of(preview(api_client, [pending, closed, unconfigured]))
    assert [r["account_id"] for r in results] == [str(a.pk) for a in (pending, closed, unconfigured)]
    assert [r["status"] for r in results] == ["FAILED"] * 3
    assert "is PENDING" in results[0]["error"]
    assert "is CLOSED" in results[1]["error"]
    assert "has no configuration" in results[2]["error"]


def test_one_call_mixes_statuses_in_the_order_asked(api_client, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    accounts = [account_with(allocation), account_with(allocation, locked=True), AccountFactory()]
    results = results_of(preview(api_client, accounts))
    assert [r["status"] for r in results] == ["PROPOSED", "SKIPPED_LOCKED", "FAILED"]


def test_per_call_preferences_change_the_result(api_client, fifty_fifty, account_with):
    # A 45, B 50, cash 50 → total 1000: FULL buys 5 units of A (50 EUR).
    a, b, allocation = fifty_fifty
    account = account_with(allocation, cash="50")
    PositionFactory(account=account, instrument=a, units=Decimal("45"))
    PositionFactory(account=account, instrument=b, units=Decimal("50"))
    [result] = results_of(preview(api_client, [account]))
    assert [(o["isin"], o["units"], o["trade_amount"]) for o in result["orders"]] == [(a.isin, "5", "50")]

    [result] = results_of(preview(api_client, [account], preferences={"min_trade_amount": "100"}))
    assert (result["status"], result["orders"]) == ("NO_TRADES", [])

    # The override was for that call only.
    [result] = results_of(preview(api_client, [account]))
    assert len(result["orders"]) == 1


def test_account_preferences_apply_and_call_overrides_win(api_client, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    account = account_with(allocation)
    preferences_replace(values={"min_trade_amount": Decimal("600")}, account=account)
    [result] = results_of(preview(api_client, [account]))
    assert result["status"] == "NO_TRADES"
    [result] = results_of(preview(api_client, [account], preferences={"min_trade_amount": "0"}))
    assert len(result["orders"]) == 2


def _snapshot() -> dict:
    return {
        model._meta.label: list(model.objects.order_by("pk").values())
        for app in ("portfolios", "rebalancing")
        for model in apps.get_app_config(app).get_models()
    }


def test_nothing_is_written(api_client, fifty_fifty, account_with):
    a, b, allocation = fifty_fifty
    accounts = [account_with(allocation), account_with(allocation, locked=True), AccountFactory()]
    PositionFactory(account=accounts[0], instrument=a, units=Decimal("3"))
    preferences_replace(values={"cash_from_sells_pct": Decimal("80")}, account=accounts[0])
    before = _snapshot()
    assert sum(len(rows) for rows in before.values()) > 10
    for method in ("CONSERVATIVE", "EXCHANGE", "FULL", "FULL_INCLUDING_ORDERS"):
        assert results_of(preview(api_client, accounts, method=method, preferences={"min_trade_amount": "1"}))
    assert _snapshot() == before


# --- Refusals ---------------------------------------------------------------------------

def test_more_than_500_accounts_is_refused(api_client, db):
    body = problem(preview(api_client, [str(uuid.uuid4()) for _ in range(501)]), 400)
    assert "accounts" in error_fields(body)
    assert "at most 500" in message_for(body, "accounts")


def test_unknown_and_malformed_accounts_are_named(api_client, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    account = account_with(allocation)
    unknown = str(uuid.uuid4())
    body = problem(preview(api_client, [account, unknown]), 400)
    assert error_fields(body) == {"accounts[1]"}
    assert message_for(body, "accounts[1]") == f"no account with id {unknown}"
    body = problem(preview(api_client, ["not-a-uuid", account, account]), 400)
    assert error_fields(body) == {"accounts[0]", "accounts[2]"}
    assert error_fields(problem(preview(api_client, []), 400)) == {"accounts"}
    assert error_fields(problem(api_client.post(URL, {}, format="json"), 400)) == {"accounts"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"method": "HALF"}, "method"),
        ({"rebalance_date": "2026-03-02T00:00:00"}, "rebalance_date"),
        ({"preferences": {"cash_from_sells_pct": "150"}}, "preferences.cash_from_sells_pct"),
        ({"preferences": {"min_trade_amount": "-1"}}, "preferences.min_trade_amount"),
        ({"preferences": {"cash_range_min": "10", "cash_range_max": "5"}}, "preferences.cash_range_max"),
        ({"preferences": {"order_basis": "SHARES"}}, "preferences.order_basis"),
        ({"preferences": {"default_decimals": {"FUND": 11}}}, "preferences.default_decimals.FUND"),
        ({"preferences": {"no_such_preference": 1}}, "preferences.no_such_preference"),
        ({"preferences": "FULL"}, "preferences"),
    ],
)
def test_bad_method_date_or_preferences_are_named(api_client, fifty_fifty, account_with, body, field):
    *_, allocation = fifty_fifty
    account = account_with(allocation)
    assert field in error_fields(problem(preview(api_client, [account], **body), 400))


def test_viewing_accounts_is_enough(client_for, user_with_perms, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    account = account_with(allocation)
    viewer = client_for(user_with_perms("portfolios.view_portfolioaccount", username="viewer"))
    assert results_of(preview(viewer, [account]))[0]["status"] == "PROPOSED"
    stranger = client_for(user_with_perms("portfolios.view_allocation", username="stranger"))
    problem(preview(stranger, [account]), 403)


def test_anonymous_is_refused(client, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    problem(client.post(URL, {"accounts": [str(account_with(allocation).pk)]}, content_type="application/json"), 401)


def test_idempotency_key_replays_the_answer(api_client, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    account = account_with(allocation)
    first = api_client.post(URL, {"accounts": [str(account.pk)]}, format="json", HTTP_IDEMPOTENCY_KEY="p-1")
    again = api_client.post(URL, {"accounts": [str(account.pk)]}, format="json", HTTP_IDEMPOTENCY_KEY="p-1")
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


def test_queries_do_not_grow_with_the_number_of_accounts(api_client, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    accounts = [account_with(allocation) for _ in range(20)]
    counts = []
    for selection in (accounts[:1], accounts):
        with CaptureQueriesContext(connection) as queries:
            assert {r["status"] for r in results_of(preview(api_client, selection))} == {"PROPOSED"}
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 14, counts  # 12, + FIRM restriction entries and the accounts' assignments


def test_instrument_ids_limit_the_orders_to_those_lines(api_client, fifty_fifty, account_with):
    # §10: only A gets an order; B's line still counts in the total (A buys 500, not 1000).
    a, b, allocation = fifty_fifty
    account = account_with(allocation)
    [result] = results_of(preview(api_client, [account], instrument_ids=[a.isin]))
    assert [(o["instrument_id"], o["trade_amount"]) for o in result["orders"]] == [(str(a.pk), "500")]
    assert result["total_value"] == "1000"


def test_unknown_instrument_ids_are_400_naming_them(api_client, fifty_fifty, account_with):
    a, b, allocation = fifty_fifty
    account = account_with(allocation)
    response = preview(api_client, [account], instrument_ids=[str(a.pk), "US0000000000"])
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["instrument_ids[1]"]
