"""Four-eyes approval over the API: POST .../executions/{id}/approve/ and .../reject/,
the `approval` of an execution, the thresholds on the global preferences, and the
trade-order transitions of PENDING_APPROVAL orders."""

import pytest

from rebalancing.models import AccountLease, Execution, TradeOrder

from .conftest import D, error_fields, message_for, problem, run_chunks

URL = "/api/v1/portfolios/rebalancings/executions/"
PREFERENCES = "/api/v1/rebalancing/preferences/"

pytestmark = pytest.mark.django_db


@pytest.fixture
def approver(client_for, user_with_perms):
    return client_for(user_with_perms(
        "rebalancing.approve_execution", "rebalancing.view_execution", username="approver"
    ))


@pytest.fixture
def awaiting(api_client, fifty_fifty, account_with):
    """An execution started by the superuser "admin" over the API, above a threshold of 1 order."""
    *_, allocation = fifty_fifty
    accounts = [account_with(allocation), account_with(allocation)]
    assert api_client.put(PREFERENCES, {"approval_order_count": 1}, format="json").status_code == 200
    response = api_client.post(URL, {"accounts": [str(a.pk) for a in accounts], "rebalance_date": D.isoformat()},
                               format="json")
    assert response.status_code == 202, response.content
    execution = Execution.objects.get(pk=response.json()["execution_id"])
    run_chunks(execution)
    execution.refresh_from_db()
    assert execution.status == "AWAITING_APPROVAL"
    return execution


def test_the_execution_shows_its_approval(api_client, awaiting):
    body = api_client.get(f"{URL}{awaiting.pk}/").json()
    assert body["status"] == "AWAITING_APPROVAL"
    assert body["approval"] == {
        "currency": "EUR", "gross_amount_limit": None, "order_count_limit": 1, "gross_amount": "2000",
        "order_count": 4, "reason": "4 trade orders are above the limit of 1", "decided_by": None,
        "decided_at": None, "comment": None,
    }
    assert {o["status"] for r in body["results"] for o in r["orders"]} == {"PENDING_APPROVAL"}
    listed = api_client.get(URL, {"status": "AWAITING_APPROVAL"}).json()
    assert [row["execution_id"] for row in listed["data"]] == [str(awaiting.pk)]


def test_approve(approver, awaiting):
    response = approver.post(f"{URL}{awaiting.pk}/approve/", {"comment": "sizes checked"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "COMPLETED" and body["finished_at"]
    assert (body["approval"]["decided_by"], body["approval"]["comment"]) == ("approver", "sizes checked")
    assert body["approval"]["decided_at"]
    assert set(TradeOrder.objects.filter(execution=awaiting).values_list("status", flat=True)) == {"OPEN"}
    assert not AccountLease.objects.exists()

    again = problem(approver.post(f"{URL}{awaiting.pk}/approve/", {}, format="json"), 409)
    assert again["detail"] == (
        f"execution {awaiting.pk} is COMPLETED; only an AWAITING_APPROVAL execution can be approved"
    )
    problem(approver.post(f"{URL}{awaiting.pk}/reject/", {}, format="json"), 409)


def test_reject_without_a_body(approver, awaiting):
    response = approver.post(f"{URL}{awaiting.pk}/reject/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "REJECTED" and response.json()["approval"]["comment"] is None
    assert set(TradeOrder.objects.filter(execution=awaiting).values_list("status", flat=True)) == {"REJECTED"}


@pytest.mark.parametrize("verb", ["approve", "reject"])
def test_the_requester_gets_403_even_as_superuser(api_client, awaiting, verb):
    body = problem(api_client.post(f"{URL}{awaiting.pk}/{verb}/", {}, format="json"), 403)
    assert body["type"] == "urn:ballast:problem:permission-denied"
    assert body["detail"] == (
        f"you requested execution {awaiting.pk}: another user must {verb} it (four eyes), superusers included"
    )
    awaiting.refresh_from_db()
    assert awaiting.status == "AWAITING_APPROVAL"


@pytest.mark.parametrize("verb", ["approve", "reject"])
def test_deciding_needs_the_approve_permission(client_for, user_with_perms, awaiting, verb):
    operator = client_for(user_with_perms(
        "rebalancing.execute_rebalance", "rebalancing.view_execution", "rebalancing.change_execution",
        username="operator",
    ))
    problem(operator.post(f"{URL}{awaiting.pk}/{verb}/", {}, format="json"), 403)
    awaiting.refresh_from_db()
    assert awaiting.status == "AWAITING_APPROVAL"


def test_bad_bodies_are_400_and_change_nothing(approver, awaiting):
    body = problem(approver.post(f"{URL}{awaiting.pk}/approve/", {"comment": "x" * 2001}, format="json"), 400)
    assert error_fields(body) == {"comment"}
    body = problem(approver.post(f"{URL}{awaiting.pk}/approve/", {"note": "ok"}, format="json"), 400)
    assert message_for(body, "note") == "is not a field of an approval decision"
    awaiting.refresh_from_db()
    assert awaiting.status == "AWAITING_APPROVAL"


def test_unknown_execution_is_404(approver):
    problem(approver.post(f"{URL}00000000-0000-0000-0000-000000000000/approve/", {}, format="json"), 404)


def test_the_same_idempotency_key_decides_once(approver, awaiting):
    first = approver.post(f"{URL}{awaiting.pk}/approve/", {}, format="json", HTTP_IDEMPOTENCY_KEY="approve-1")
    second = approver.post(f"{URL}{awaiting.pk}/approve/", {}, format="json", HTTP_IDEMPOTENCY_KEY="approve-1")
    assert first.status_code == second.status_code == 200
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.json() == first.json()


def test_a_pending_approval_order_transition_is_409(api_client, awaiting):
    order = TradeOrder.objects.filter(execution=awaiting).first()
    body = problem(
        api_client.post(f"/api/v1/trade-orders/{order.pk}/transitions/", {"status": "ACCEPTED"}, format="json"), 409
    )
    assert f"waits for the approval of execution {awaiting.pk}" in body["detail"]
    order.refresh_from_db()
    assert order.status == "PENDING_APPROVAL"


# --- Thresholds on the preferences -------------------------------------------------------------


def test_thresholds_on_the_global_preferences(api_client):
    body = api_client.put(
        PREFERENCES, {"approval_gross_amount": "1000000.50", "approval_order_count": 5000, "approval_currency": "USD"},
        format="json",
    ).json()["preferences"]
    assert (body["approval_gross_amount"], body["approval_order_count"], body["approval_currency"]) == (
        "1000000.5", 5000, "USD"
    )
    # Left out: kept (a PUT of the cash rules alone cannot switch four eyes off).
    body = api_client.put(PREFERENCES, {"min_trade_amount": "10"}, format="json").json()["preferences"]
    assert (body["approval_gross_amount"], body["approval_order_count"], body["approval_currency"]) == (
        "1000000.5", 5000, "USD"
    )
    # Null: back to no limit, in EUR.
    body = api_client.put(
        PREFERENCES, {"approval_gross_amount": None, "approval_order_count": None, "approval_currency": None},
        format="json",
    ).json()["preferences"]
    assert (body["approval_gross_amount"], body["approval_order_count"], body["approval_currency"]) == (
        None, None, "EUR"
    )


def test_changing_thresholds_needs_the_approve_permission(api_client, client_for, user_with_perms):
    """Whoever may start executions and change the preferences must not lift their own limits."""
    api_client.put(PREFERENCES, {"approval_order_count": 10}, format="json")
    operator = client_for(user_with_perms(
        "rebalancing.change_rebalancepreferences", "rebalancing.view_rebalancepreferences",
        "rebalancing.execute_rebalance", username="operator",
    ))
    body = problem(operator.put(PREFERENCES, {"approval_order_count": None}, format="json"), 403)
    assert message_for(body, "approval_order_count") == "changing it needs the permission rebalancing.approve_execution"
    assert api_client.get(PREFERENCES).json()["preferences"]["approval_order_count"] == 10
    # The same values sent back, or none at all, change nothing and pass.
    assert operator.put(PREFERENCES, {"approval_order_count": 10, "min_trade_amount": "5"}, format="json").status_code == 200
    assert operator.put(PREFERENCES, {"min_trade_amount": "6"}, format="json").status_code == 200
    assert api_client.get(PREFERENCES).json()["preferences"]["approval_order_count"] == 10


def test_bad_thresholds_are_400_naming_the_field(api_client):
    api_client.put(PREFERENCES, {"approval_order_count": 10}, format="json")
    body = problem(api_client.put(
        PREFERENCES, {"approval_gross_amount": "-1", "approval_order_count": 0, "approval_currency": "XYZ"},
        format="json",
    ), 400)
    assert message_for(body, "approval_gross_amount") == "must not be negative"
    assert message_for(body, "approval_order_count") == "must be a whole number of at least 1"
    assert message_for(body, "approval_currency") == "XYZ is not an ISO 4217 currency code"
    assert api_client.get(PREFERENCES).json()["preferences"]["approval_order_count"] == 10


def test_thresholds_are_refused_on_an_account(api_client, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    account = account_with(allocation)
    body = problem(api_client.put(
        f"/api/v1/portfolios/accounts/{account.pk}/preferences/", {"approval_order_count": 3}, format="json"
    ), 400)
    assert message_for(body, "approval_order_count") == (
        "is a global preference only: approval thresholds apply to a whole execution, not to one account"
    )


def test_the_approvers_group_decides_and_the_operations_group_cannot(client_for, awaiting):
    from django.contrib.auth.models import Group

    from tests.factories import UserFactory

    def member(group: str, username: str):
        user = UserFactory(username=username, is_staff=True)
        user.groups.add(Group.objects.get(name=group))
        return client_for(user)

    operations, approvers = member("Operations", "ops"), member("Approvers", "checker")
    assert operations.post(f"{URL}{awaiting.pk}/approve/", {}, format="json").status_code == 403
    assert approvers.post(URL, {"accounts": [], "rebalance_date": D.isoformat()}, format="json").status_code == 403
    response = approvers.post(f"{URL}{awaiting.pk}/approve/", {"comment": "ok"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["approval"]["decided_by"] == "checker"
