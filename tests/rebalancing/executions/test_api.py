"""/api/v1/portfolios/rebalancings/executions/: start (202), list, read with paginated
results, cancel; permissions, problem details, idempotency and query budgets."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rebalancing.models import Execution, ExecutionStatus, TradeOrder
from tests.factories import AccountFactory, UserFactory

from .conftest import D, error_fields, message_for, problem, run_chunks

URL = "/api/v1/portfolios/rebalancings/executions/"
EXECUTION_FIELDS = {
    "execution_id", "status", "trigger", "method", "rebalance_date", "allocation_id", "accounts", "progress",
    "created_at", "started_at", "finished_at", "approval",
}


def start(client, accounts=None, **body):
    if accounts is not None:
        body["accounts"] = [str(a.pk) if hasattr(a, "pk") else a for a in accounts]
    body.setdefault("rebalance_date", D.isoformat())
    return client.post(URL, body, format="json")


def started(response) -> dict:
    assert response.status_code == 202, response.content[:2000]
    return response.json()


def test_start_answers_202_with_the_pending_execution(api_client, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    accounts = [account_with(allocation) for _ in range(2)]
    body = started(start(api_client, accounts, method="FULL"))
    assert set(body) == EXECUTION_FIELDS
    assert body["status"] == "PENDING" and body["trigger"] == "API" and body["method"] == "FULL"
    assert body["accounts"] == 2 and body["progress"] == {"done": 0, "total": 2}
    assert body["rebalance_date"] == D.isoformat() and body["started_at"] is None and body["allocation_id"] is None
    execution = Execution.objects.get(pk=body["execution_id"])
    assert execution.requested_by.username == "admin"


def test_start_by_allocation_or_the_whole_book(api_client, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    account_with(allocation)
    account_with(allocation)
    body = started(start(api_client, allocation_id=str(allocation.pk)))
    assert body["allocation_id"] == str(allocation.pk) and body["accounts"] == 2
    api_client.post(f"{URL}{body['execution_id']}/cancel/")
    assert started(start(api_client, all_accounts=True))["accounts"] == 2


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "accounts", "give one of accounts, allocation_id or all_accounts: true"),
        ({"accounts": [], "all_accounts": True}, "accounts", "at least one account"),
        ({"accounts": "abc"}, "accounts", "must be a list"),
        ({"accounts": [1]}, "accounts[0]", "must be a string"),
        ({"accounts": ["not-a-uuid"]}, "accounts[0]", "is not an account id"),
        ({"accounts": ["0b5f2b8e-8f5e-4c39-9d0e-3f4f0c2d9a11"]}, "accounts[0]", "no account with id"),
        ({"allocation_id": "0b5f2b8e-8f5e-4c39-9d0e-3f4f0c2d9a11"}, "allocation_id", "no allocation with id"),
        ({"all_accounts": True, "allocation_id": "0b5f2b8e-8f5e-4c39-9d0e-3f4f0c2d9a11"}, "accounts", "only one of"),
        ({"all_accounts": True, "method": "SOMETIMES"}, "method", "is not a valid choice"),
        ({"all_accounts": True, "rebalance_date": "2026-03-02T10:00"}, "rebalance_date", "YYYY-MM-DD"),
        ({"all_accounts": True, "preferences": {}}, "preferences", "previews only"),
        ({"all_accounts": True, "colour": "red"}, "colour", "is not a field"),
    ],
)
def test_bad_requests_are_400_naming_the_field(api_client, fifty_fifty, body, field, message):
    body.setdefault("rebalance_date", D.isoformat())
    answer = problem(api_client.post(URL, body, format="json"), 400)
    assert field in error_fields(answer), answer
    assert message in message_for(answer, field)
    assert not Execution.objects.exists()


def test_starting_needs_the_execute_permission(db, client_for, user_with_perms, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    account = account_with(allocation)
    viewer = client_for(user_with_perms("rebalancing.view_execution", username="viewer"))
    problem(start(viewer, [account]), 403)
    assert viewer.get(URL).status_code == 200
    operator = client_for(user_with_perms("rebalancing.execute_rebalance", username="operator"))
    started(start(operator, [account]))
    problem(operator.get(URL), 403)  # starting is not reading


def test_no_anonymous_access(db):
    from rest_framework.test import APIClient

    problem(APIClient().post(URL, {"all_accounts": True}, format="json"), 401)
    problem(APIClient().get(URL), 401)


def test_the_same_idempotency_key_starts_one_execution(api_client, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    account = account_with(allocation)
    first = api_client.post(
        URL, {"accounts": [str(account.pk)], "rebalance_date": D.isoformat()}, format="json",
        HTTP_IDEMPOTENCY_KEY="run-1",
    )
    again = api_client.post(
        URL, {"accounts": [str(account.pk)], "rebalance_date": D.isoformat()}, format="json",
        HTTP_IDEMPOTENCY_KEY="run-1",
    )
    assert first.status_code == again.status_code == 202
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Execution.objects.count() == 1
    other_body = api_client.post(URL, {"all_accounts": True}, format="json", HTTP_IDEMPOTENCY_KEY="run-1")
    problem(other_body, 409)


def test_an_overlapping_execution_reports_the_holder_in_its_results(api_client, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    account = account_with(allocation)
    first = started(start(api_client, [account]))
    second = started(start(api_client, [account]))
    assert second["progress"] == {"done": 1, "total": 1} and second["status"] == "FAILED"
    [result] = api_client.get(f"{URL}{second['execution_id']}/").json()["results"]
    assert result["status"] == "FAILED"
    assert result["error"] == f"account is in running execution {first['execution_id']}"


def test_detail_shows_results_with_their_orders(api_client, fifty_fifty, account_with):
    a, b, allocation = fifty_fifty
    account, unconfigured = account_with(allocation), AccountFactory()
    body = started(start(api_client, [account, unconfigured]))
    run_chunks(Execution.objects.get(pk=body["execution_id"]))

    detail = api_client.get(f"{URL}{body['execution_id']}/")
    assert detail.status_code == 200
    detail = detail.json()
    assert set(detail) == EXECUTION_FIELDS | {"results", "results_meta"}
    assert detail["status"] == "PARTIALLY_FAILED" and detail["progress"] == {"done": 2, "total": 2}
    assert detail["started_at"] and detail["finished_at"]
    assert detail["results_meta"] == {"offset": 0, "limit": 100, "count": 2, "total_count": 2}
    results = {r["account_id"]: r for r in detail["results"]}
    failed = results[str(unconfigured.pk)]
    assert failed["status"] == "FAILED" and "has no configuration" in failed["error"] and failed["orders"] == []
    assert failed["total_value"] is None
    proposed = results[str(account.pk)]
    orders = proposed.pop("orders")
    assert proposed == {
        "account_id": str(account.pk), "status": "PROPOSED", "error": None,
        "total_value": "1000", "cash_before": "1000", "cash_after": "0", "adjustments": [],
    }
    by_instrument = {o["instrument_id"]: o for o in orders}
    for instrument in (a, b):
        order = by_instrument[str(instrument.pk)]
        db_order = TradeOrder.objects.get(pk=order.pop("order_id"))
        assert db_order.execution_id == uuid.UUID(body["execution_id"])
        assert order == {
            "account_id": str(account.pk), "instrument_id": str(instrument.pk), "isin": instrument.isin,
            "side": "BUY", "transaction_type": "BUY", "units": "50", "unit_price": "10", "trade_amount": "500",
            "currency": "EUR", "execution_method": "NET_TRADE_AMOUNT", "status": "OPEN",
        }


def test_orders_of_sub_portfolios_belong_to_the_parent_result(api_client, fifty_fifty, account_with):
    from decimal import Decimal

    from tests.factories import PositionFactory

    a, b, allocation = fifty_fifty
    parent = account_with(allocation, cash="0")
    child = AccountFactory(parent=parent)
    PositionFactory(account=child, instrument=a, units=Decimal(100))  # all in A: sell 50 A from the child, buy 50 B
    body = started(start(api_client, [parent]))
    run_chunks(Execution.objects.get(pk=body["execution_id"]))
    [result] = api_client.get(f"{URL}{body['execution_id']}/").json()["results"]
    assert [(o["side"], o["account_id"], o["units"]) for o in result["orders"]] == [
        ("SELL", str(child.pk), "50"), ("BUY", str(parent.pk), "50")
    ]  # in the engine's order: sells first


def test_results_are_paginated(api_client, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    accounts = sorted((account_with(allocation) for _ in range(5)), key=lambda a: str(a.pk))
    body = started(start(api_client, accounts))
    run_chunks(Execution.objects.get(pk=body["execution_id"]))
    page = api_client.get(f"{URL}{body['execution_id']}/", {"results_offset": 1, "results_limit": 2}).json()
    assert [r["account_id"] for r in page["results"]] == [str(a.pk) for a in accounts[1:3]]
    assert page["results_meta"] == {"offset": 1, "limit": 2, "count": 2, "total_count": 5}
    capped = api_client.get(f"{URL}{body['execution_id']}/", {"results_limit": 5000}).json()
    assert capped["results_meta"]["limit"] == 1000
    bad = problem(api_client.get(f"{URL}{body['execution_id']}/", {"results_offset": -1}), 400)
    assert "results_offset" in error_fields(bad)


@pytest.mark.parametrize("accounts", [2, 8])
def test_detail_runs_a_fixed_number_of_queries(accounts, api_client, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    body = started(start(api_client, [account_with(allocation) for _ in range(accounts)]))
    run_chunks(Execution.objects.get(pk=body["execution_id"]))
    with CaptureQueriesContext(connection) as queries:
        assert api_client.get(f"{URL}{body['execution_id']}/").status_code == 200
    # token, execution, result count, results, sub-portfolios, orders
    assert len(queries) == 6, [q["sql"][:80] for q in queries]


@pytest.mark.parametrize("executions", [1, 4])
def test_the_list_filters_and_runs_a_fixed_number_of_queries(executions, api_client, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    for _ in range(executions):
        started(start(api_client, [account_with(allocation)]))
    Execution.objects.filter(pk=Execution.objects.order_by("created_at").first().pk).update(
        status=ExecutionStatus.COMPLETED
    )
    with CaptureQueriesContext(connection) as queries:
        listed = api_client.get(URL)
    assert listed.status_code == 200
    assert len(queries) == 3  # token, count, page
    body = listed.json()
    assert body["meta"]["total_count"] == executions
    assert all(set(row) == EXECUTION_FIELDS for row in body["data"])
    assert [row["created_at"] for row in body["data"]] == sorted((row["created_at"] for row in body["data"]), reverse=True)
    assert api_client.get(URL, {"status": "COMPLETED"}).json()["meta"]["total_count"] == 1
    assert api_client.get(URL, {"status": "PENDING", "trigger": "API"}).json()["meta"]["total_count"] == executions - 1
    assert api_client.get(URL, {"trigger": "SCHEDULED"}).json()["meta"]["total_count"] == 0
    assert "status" in error_fields(problem(api_client.get(URL, {"status": "SOMETIMES"}), 400))


def test_cancel(api_client, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    body = started(start(api_client, [account_with(allocation)]))
    cancelled = api_client.post(f"{URL}{body['execution_id']}/cancel/")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "CANCELLED" and cancelled.json()["finished_at"]
    again = problem(api_client.post(f"{URL}{body['execution_id']}/cancel/"), 409)
    assert "is CANCELLED" in again["detail"]


def test_cancel_needs_the_execute_permission(db, client_for, user_with_perms, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    execution_id = started(start(client_for(UserFactory(username="boss", is_superuser=True)),
                                 [account_with(allocation)]))["execution_id"]
    viewer = client_for(user_with_perms("rebalancing.view_execution", username="viewer"))
    problem(viewer.post(f"{URL}{execution_id}/cancel/"), 403)


@pytest.mark.parametrize("suffix", ["", "cancel/"])
def test_unknown_executions_are_404(api_client, suffix):
    method = api_client.post if suffix else api_client.get
    for execution_id in ("0b5f2b8e-8f5e-4c39-9d0e-3f4f0c2d9a11", "not-a-uuid"):
        body = problem(method(f"{URL}{execution_id}/{suffix}"), 404)
        assert "no execution with id" in body["detail"]
