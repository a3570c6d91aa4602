import pytest

from portfolios.models import AccountStatus, AccountType, Configuration
from tests.factories import AccountFactory, make_allocation, make_configuration

from .conftest import error_fields, message_for, problem

URL = "/api/v1/portfolios/configurations/"
UNKNOWN = "0b5f2b8e-8f5e-4c39-9d0e-3f4f0c2d9a11"


def test_create(api_client, db):
    account = AccountFactory()
    allocation = make_allocation()
    response = api_client.post(URL, {"account_id": str(account.pk), "allocation_id": str(allocation.pk)}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {"account_id", "allocation_id", "strategy", "created_at", "updated_at"}
    assert (body["account_id"], body["allocation_id"], body["strategy"]) == (str(account.pk), str(allocation.pk), None)
    assert Configuration.objects.get(account=account).allocation == allocation
    assert api_client.get(f"/api/v1/portfolios/accounts/{account.pk}/").json()["allocation_id"] == str(allocation.pk)


def test_create_with_null_strategy(api_client, db):
    account, allocation = AccountFactory(), make_allocation()
    response = api_client.post(
        URL, {"account_id": str(account.pk), "allocation_id": str(allocation.pk), "strategy": None}, format="json"
    )
    assert response.status_code == 201


def test_an_incomplete_strategy_is_refused(api_client, db):
    # Strategies in full: tests/rebalancing/automation/test_api.py.
    account, allocation = AccountFactory(), make_allocation()
    body = problem(
        api_client.post(
            URL,
            {"account_id": str(account.pk), "allocation_id": str(allocation.pk),
             "strategy": {"type": "CALENDAR", "period_type": "MONTHLY", "period_count": 1}},
            format="json",
        ),
        400,
    )
    assert message_for(body, "strategy.anchor_date") == "is required for a CALENDAR strategy"
    assert not Configuration.objects.exists()


@pytest.mark.parametrize("account_type", [AccountType.CUSTODY, AccountType.CASH])
def test_only_portfolio_accounts_are_configured(api_client, db, account_type):
    account, allocation = AccountFactory(account_type=account_type), make_allocation()
    body = problem(
        api_client.post(URL, {"account_id": str(account.pk), "allocation_id": str(allocation.pk)}, format="json"), 422
    )
    assert "PORTFOLIO" in body["detail"]
    assert not Configuration.objects.exists()


def test_closed_accounts_are_not_configured(api_client, db):
    account, allocation = AccountFactory(status=AccountStatus.CLOSED), make_allocation()
    problem(api_client.post(URL, {"account_id": str(account.pk), "allocation_id": str(allocation.pk)}, format="json"), 422)


def test_one_configuration_per_account(api_client, db):
    configuration = make_configuration()
    other = make_allocation()
    body = problem(
        api_client.post(URL, {"account_id": str(configuration.account_id), "allocation_id": str(other.pk)}, format="json"),
        409,
    )
    assert "already has a configuration" in body["detail"]
    configuration.refresh_from_db()
    assert configuration.allocation_id != other.pk


@pytest.mark.parametrize("field", ["account_id", "allocation_id"])
def test_unknown_account_or_allocation_is_400_naming_the_field(api_client, db, field):
    payload = {"account_id": str(AccountFactory().pk), "allocation_id": str(make_allocation().pk), field: UNKNOWN}
    body = problem(api_client.post(URL, payload, format="json"), 400)
    assert error_fields(body) == {field}
    assert UNKNOWN in message_for(body, field)
    payload[field] = "not-a-uuid"
    assert error_fields(problem(api_client.post(URL, payload, format="json"), 400)) == {field}


def test_missing_fields(api_client, db):
    body = problem(api_client.post(URL, {}, format="json"), 400)
    assert error_fields(body) == {"account_id", "allocation_id"}


def test_list_filtered_by_allocation(api_client, db):
    allocation = make_allocation()
    mine = [make_configuration(allocation=allocation) for _ in range(2)]
    make_configuration()
    body = api_client.get(URL, {"allocation_id": str(allocation.pk)}).json()
    assert body["meta"]["total_count"] == 2
    assert {row["account_id"] for row in body["data"]} == {str(c.account_id) for c in mine}
    assert api_client.get(URL).json()["meta"]["total_count"] == 3
    problem(api_client.get(URL, {"allocation_id": "nope"}), 400)


def test_get_one_by_account_id(api_client, db):
    configuration = make_configuration()
    body = api_client.get(f"{URL}{configuration.account_id}/").json()
    assert body["allocation_id"] == str(configuration.allocation_id)


def test_get_unknown_is_404(api_client, db):
    problem(api_client.get(f"{URL}{UNKNOWN}/"), 404)
    problem(api_client.get(f"{URL}{AccountFactory().pk}/"), 404)  # an account without a configuration


def test_patch_allocation(api_client, db):
    configuration = make_configuration()
    other = make_allocation()
    response = api_client.patch(f"{URL}{configuration.account_id}/", {"allocation_id": str(other.pk)}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["allocation_id"] == str(other.pk)
    configuration.refresh_from_db()
    assert configuration.allocation == other


def test_patch_strategy_null_is_accepted_and_an_incomplete_one_refused(api_client, db):
    configuration = make_configuration()
    url = f"{URL}{configuration.account_id}/"
    assert api_client.patch(url, {"strategy": None}, format="json").status_code == 200
    body = problem(api_client.patch(url, {"strategy": {"type": "THRESHOLD"}}, format="json"), 400)
    assert "absolute_drift and/or relative_drift" in message_for(body, "strategy.absolute_drift")


@pytest.mark.parametrize(("payload", "field"), [
    ({"allocation_id": UNKNOWN}, "allocation_id"),
    ({"account_id": UNKNOWN}, "account_id"),
])
def test_patch_refused(api_client, db, payload, field):
    configuration = make_configuration()
    body = problem(api_client.patch(f"{URL}{configuration.account_id}/", payload, format="json"), 400)
    assert error_fields(body) == {field}


def test_patch_unknown_is_404(api_client, db):
    problem(api_client.patch(f"{URL}{UNKNOWN}/", {"allocation_id": str(make_allocation().pk)}, format="json"), 404)


def test_configured_allocation_cannot_be_deleted_until_moved(api_client, db):
    configuration = make_configuration()
    old = configuration.allocation_id
    problem(api_client.delete(f"/api/v1/portfolios/allocations/{old}/"), 409)
    api_client.patch(f"{URL}{configuration.account_id}/", {"allocation_id": str(make_allocation().pk)}, format="json")
    assert api_client.delete(f"/api/v1/portfolios/allocations/{old}/").status_code == 204


def test_an_allocations_strategy_is_set_read_and_removed_through_the_api(api_client, db):
    allocation = make_allocation()
    url = f"/api/v1/portfolios/allocations/{allocation.pk}/strategy/"
    assert api_client.get(url).json() is None
    strategy = {"type": "THRESHOLD", "absolute_drift": "0.05"}
    response = api_client.post(url, strategy, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["type"], body["absolute_drift"], body["method"]) == ("THRESHOLD", "0.05", "FULL")
    assert api_client.get(url).json() == body
    changed = api_client.patch(url, {"type": "THRESHOLD", "relative_drift": "0.2"}, format="json").json()
    assert (changed["absolute_drift"], changed["relative_drift"]) == (None, "0.2")
    refused = problem(api_client.patch(url, {"type": "CALENDAR"}, format="json"), 400)
    assert any(f.startswith("strategy.") for f in error_fields(refused))
    assert api_client.get(url).json() == changed  # nothing changed on error
    assert api_client.generic("PATCH", url, "null", content_type="application/json").json() is None
    assert api_client.get(url).json() is None
    assert api_client.get(f"/api/v1/portfolios/allocations/{UNKNOWN}/strategy/").status_code == 404
