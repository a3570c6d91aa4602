"""The API: `strategy` on configurations (POST, PATCH, GET) and savings plans."""

from datetime import date
from decimal import Decimal

import pytest

from portfolios.models import AccountStatus, AccountType, Configuration
from rebalancing.models import SavingsPlan, SavingsPlanRun, Strategy
from tests.factories import AccountFactory, CashAccountFactory, make_allocation, make_configuration

from .conftest import error_fields, message_for, problem

pytestmark = pytest.mark.django_db
CONFIGURATIONS = "/api/v1/portfolios/configurations/"
PLANS = "/api/v1/portfolios/savings-plans/"

CALENDAR = {"type": "CALENDAR", "period_type": "MONTHLY", "period_count": 1, "anchor_date": "2026-01-31",
            "absolute_drift": None, "relative_drift": None, "method": "EXCHANGE"}
BOTH = {"type": "CALENDAR_AND_THRESHOLD", "period_type": "QUARTERLY", "period_count": 1, "anchor_date": "2026-03-31",
        "absolute_drift": "0.05", "relative_drift": "0.2", "method": "FULL", "cooldown_days": 5}


# --- Strategies on configurations ----------------------------------------------------------


def test_create_a_configuration_with_a_strategy(api_client):
    account, allocation = AccountFactory(), make_allocation()
    response = api_client.post(
        CONFIGURATIONS, {"account_id": str(account.pk), "allocation_id": str(allocation.pk), "strategy": CALENDAR},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["strategy"] == {**CALENDAR, "cooldown_days": None, "paused": False}
    strategy = Strategy.objects.get(configuration__account=account)
    assert (strategy.type, strategy.anchor_date, strategy.method) == ("CALENDAR", date(2026, 1, 31), "EXCHANGE")
    assert api_client.get(f"{CONFIGURATIONS}{account.pk}/").json()["strategy"]["period_type"] == "MONTHLY"


def test_method_defaults_to_full_and_decimals_are_strings(api_client):
    account, allocation = AccountFactory(), make_allocation()
    body = api_client.post(
        CONFIGURATIONS,
        {"account_id": str(account.pk), "allocation_id": str(allocation.pk),
         "strategy": {"type": "THRESHOLD", "relative_drift": "0.25"}},
        format="json",
    ).json()
    assert body["strategy"]["method"] == "FULL"
    assert body["strategy"]["relative_drift"] == "0.25" and body["strategy"]["absolute_drift"] is None


@pytest.mark.parametrize(("strategy", "fields"), [
    ({"type": "CALENDAR"}, {"strategy.period_type", "strategy.period_count", "strategy.anchor_date"}),
    ({"type": "THRESHOLD"}, {"strategy.absolute_drift"}),
    ({"type": "CALENDAR_AND_THRESHOLD", "absolute_drift": "0.1"},
     {"strategy.period_type", "strategy.period_count", "strategy.anchor_date"}),
    ({"type": "WEEKLY"}, {"strategy.type"}),
    ({"period_type": "MONTHLY"}, {"strategy.type"}),
    ({**CALENDAR, "period_type": "FORTNIGHTLY"}, {"strategy.period_type"}),
    ({**CALENDAR, "period_count": 0}, {"strategy.period_count"}),
    ({**CALENDAR, "period_count": "two"}, {"strategy.period_count"}),
    ({**CALENDAR, "anchor_date": "31/01/2026"}, {"strategy.anchor_date"}),
    ({**CALENDAR, "method": "AGGRESSIVE"}, {"strategy.method"}),
    ({**CALENDAR, "cooldown_days": -1}, {"strategy.cooldown_days"}),
    ({**CALENDAR, "absolute_drift": "0.05"}, {"strategy.absolute_drift"}),  # not used by CALENDAR
    ({"type": "THRESHOLD", "absolute_drift": "0"}, {"strategy.absolute_drift"}),
    ({"type": "THRESHOLD", "absolute_drift": "1.5"}, {"strategy.absolute_drift"}),
    ({"type": "THRESHOLD", "relative_drift": "-0.1"}, {"strategy.relative_drift"}),
    ({"type": "THRESHOLD", "relative_drift": "lots"}, {"strategy.relative_drift"}),
    ({"type": "THRESHOLD", "absolute_drift": "0.1", "period_type": "DAILY"}, {"strategy.period_type"}),
    ({**CALENDAR, "colour": "blue"}, {"strategy.colour"}),
    ("monthly", {"strategy"}),
])
def test_invalid_strategies_name_every_bad_field(api_client, strategy, fields):
    account, allocation = AccountFactory(), make_allocation()
    body = problem(api_client.post(
        CONFIGURATIONS, {"account_id": str(account.pk), "allocation_id": str(allocation.pk), "strategy": strategy},
        format="json",
    ), 400)
    assert error_fields(body) == fields
    assert not Configuration.objects.exists() and not Strategy.objects.exists()


def test_drift_limits_are_between_0_and_1(api_client):
    account, allocation = AccountFactory(), make_allocation()
    body = problem(api_client.post(
        CONFIGURATIONS,
        {"account_id": str(account.pk), "allocation_id": str(allocation.pk),
         "strategy": {"type": "THRESHOLD", "absolute_drift": "2"}},
        format="json",
    ), 400)
    assert "greater than 0 and at most 1" in message_for(body, "strategy.absolute_drift")


def test_a_strategy_with_a_refused_account_creates_nothing(api_client):
    account, allocation = AccountFactory(account_type=AccountType.CUSTODY), make_allocation()
    problem(api_client.post(
        CONFIGURATIONS, {"account_id": str(account.pk), "allocation_id": str(allocation.pk), "strategy": CALENDAR},
        format="json",
    ), 422)
    assert not Strategy.objects.exists()


def test_patch_sets_replaces_and_removes_the_strategy(api_client):
    configuration = make_configuration()
    url = f"{CONFIGURATIONS}{configuration.account_id}/"
    response = api_client.patch(url, {"strategy": BOTH}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["strategy"] == {**BOTH, "paused": False}
    first = Strategy.objects.get()

    # A complete new state: fields left out are null (and the row is the same).
    response = api_client.patch(url, {"strategy": {"type": "THRESHOLD", "absolute_drift": "0.1"}}, format="json")
    assert response.status_code == 200, response.json()
    strategy = Strategy.objects.get()
    assert strategy.pk == first.pk
    assert (strategy.type, strategy.period_type, strategy.relative_drift, strategy.cooldown_days) == (
        "THRESHOLD", None, None, None)

    # Left out: kept.
    other = make_allocation()
    assert api_client.patch(url, {"allocation_id": str(other.pk)}, format="json").json()["strategy"]["type"] == "THRESHOLD"

    assert api_client.patch(url, {"strategy": None}, format="json").json()["strategy"] is None
    assert not Strategy.objects.exists()


def test_patch_keeps_the_paused_flag_unless_given(api_client):
    configuration = make_configuration()
    url = f"{CONFIGURATIONS}{configuration.account_id}/"
    api_client.patch(url, {"strategy": CALENDAR}, format="json")
    Strategy.objects.update(paused=True)
    assert api_client.patch(url, {"strategy": CALENDAR}, format="json").json()["strategy"]["paused"] is True
    assert api_client.patch(url, {"strategy": {**CALENDAR, "paused": False}}, format="json").json()["strategy"][
        "paused"] is False


def test_patch_with_a_bad_strategy_changes_nothing(api_client):
    configuration = make_configuration()
    url = f"{CONFIGURATIONS}{configuration.account_id}/"
    other = make_allocation()
    body = problem(api_client.patch(
        url, {"allocation_id": str(other.pk), "strategy": {"type": "CALENDAR", "period_type": "MONTHLY"}},
        format="json",
    ), 400)
    assert error_fields(body) == {"strategy.period_count", "strategy.anchor_date"}
    configuration.refresh_from_db()
    assert configuration.allocation != other


def test_the_configuration_list_shows_strategies_in_a_fixed_number_of_queries(api_client, django_assert_max_num_queries):
    for _ in range(5):
        configuration = make_configuration()
        Strategy.objects.create(configuration=configuration, type="THRESHOLD", absolute_drift=Decimal("0.1"))
    with django_assert_max_num_queries(6):
        body = api_client.get(CONFIGURATIONS).json()
    assert [row["strategy"]["absolute_drift"] for row in body["data"]] == ["0.1"] * 5


# --- Savings plans --------------------------------------------------------------------------


@pytest.fixture
def account(db):
    account = AccountFactory()
    CashAccountFactory(account=account, currency="EUR")
    CashAccountFactory(account=account, currency="USD", is_default=False)
    return account


def plan_body(account, **fields):
    return {"account_id": str(account.pk), "cash_amount": "150.50", "currency": "EUR", "interval": "MONTHLY",
            "day": 31, "start_date": "2026-01-01", **fields}


def test_create_get_list_a_savings_plan(api_client, account, travel):
    travel(date(2026, 2, 10))
    response = api_client.post(PLANS, plan_body(account), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) >= {"savings_plan_id", "account_id", "cash_amount", "currency", "interval", "day", "start_date",
                         "end_date", "active", "next_run_date"}
    assert (body["cash_amount"], body["day"], body["end_date"], body["active"], body["next_run_date"]) == (
        "150.5", 31, None, True, "2026-02-28")
    plan_id = body["savings_plan_id"]
    assert api_client.get(f"{PLANS}{plan_id}/").json() == body
    listed = api_client.get(PLANS, {"account_id": str(account.pk)}).json()
    assert listed["meta"]["total_count"] == 1 and listed["data"][0]["savings_plan_id"] == plan_id
    assert api_client.get(PLANS, {"active": "false"}).json()["meta"]["total_count"] == 0


def test_defaults(api_client, account, travel):
    travel(date(2026, 2, 10))
    body = api_client.post(PLANS, {"account_id": str(account.pk), "cash_amount": "10", "currency": "USD", "day": 1},
                           format="json").json()
    assert (body["interval"], body["start_date"], body["active"], body["next_run_date"]) == (
        "MONTHLY", "2026-02-10", True, "2026-03-01")


@pytest.mark.parametrize(("fields", "bad"), [
    ({"cash_amount": "0"}, {"cash_amount"}),
    ({"cash_amount": "-5"}, {"cash_amount"}),
    ({"cash_amount": "1.123456789"}, {"cash_amount"}),
    ({"currency": "XYZ"}, {"currency"}),
    ({"currency": "CHF"}, {"currency"}),  # neither the base currency nor held
    ({"interval": "DAILY"}, {"interval"}),
    ({"interval": "WEEKLY", "day": 8}, {"day"}),
    ({"day": 0}, {"day"}),
    ({"day": 32}, {"day"}),
    ({"start_date": "2026-13-01"}, {"start_date"}),
    ({"end_date": "2025-12-31"}, {"end_date"}),
    ({"day": 32, "currency": "CHF", "cash_amount": "0"}, {"day", "currency", "cash_amount"}),
])
def test_invalid_savings_plans_name_every_bad_field(api_client, account, fields, bad):
    body = problem(api_client.post(PLANS, plan_body(account, **fields), format="json"), 400)
    assert error_fields(body) == bad
    assert not SavingsPlan.objects.exists()


def test_missing_fields_and_unknown_account(api_client):
    body = problem(api_client.post(PLANS, {"account_id": "0b5f2b8e-8f5e-4c39-9d0e-3f4f0c2d9a11"}, format="json"), 400)
    assert error_fields(body) == {"account_id", "cash_amount", "currency", "day"}


@pytest.mark.parametrize("fields", [
    {"account_type": AccountType.CUSTODY}, {"status": AccountStatus.CLOSED},
])
def test_an_account_that_can_never_invest_is_a_422(api_client, fields):
    account = AccountFactory(**fields)
    body = problem(api_client.post(PLANS, plan_body(account), format="json"), 422)
    assert error_fields(body) == {"account_id"}


def test_patch_pause_resume_and_delete(api_client, account, travel):
    travel(date(2026, 2, 10))
    plan_id = api_client.post(PLANS, plan_body(account), format="json").json()["savings_plan_id"]
    url = f"{PLANS}{plan_id}/"
    body = api_client.patch(url, {"active": False}, format="json").json()
    assert (body["active"], body["next_run_date"]) == (False, None)
    body = api_client.patch(url, {"active": True, "interval": "WEEKLY", "day": 5, "cash_amount": "20"},
                            format="json").json()
    assert (body["interval"], body["day"], body["cash_amount"], body["next_run_date"]) == (
        "WEEKLY", 5, "20", "2026-02-13")
    body = problem(api_client.patch(url, {"day": 9}, format="json"), 400)  # WEEKLY: 1 to 7
    assert error_fields(body) == {"day"}
    body = problem(api_client.patch(url, {"account_id": str(account.pk)}, format="json"), 400)
    assert error_fields(body) == {"account_id"}
    SavingsPlanRun.objects.create(savings_plan_id=plan_id, due_date=date(2026, 2, 13))
    assert api_client.delete(url).status_code == 204
    assert not SavingsPlan.objects.exists() and not SavingsPlanRun.objects.exists()
    problem(api_client.get(url), 404)
    problem(api_client.get(f"{PLANS}not-a-uuid/"), 404)


def test_the_list_runs_a_fixed_number_of_queries(api_client, account, django_assert_max_num_queries):
    for day in range(1, 8):
        api_client.post(PLANS, plan_body(account, day=day), format="json")
    with django_assert_max_num_queries(5):
        body = api_client.get(PLANS).json()
    assert len(body["data"]) == 7


def test_permissions(client_for, user_with_perms, account):
    viewer = client_for(user_with_perms("rebalancing.view_savingsplan"))
    assert viewer.get(PLANS).status_code == 200
    problem(viewer.post(PLANS, plan_body(account), format="json"), 403)
    adder = client_for(user_with_perms("rebalancing.add_savingsplan", username="adder"))
    assert adder.post(PLANS, plan_body(account), format="json").status_code == 201
