"""The automation admin: strategies (through the strategies service), claims, savings
plans, pause / resume, "run now" and the schedule of one account."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib import messages
from django.contrib.messages import get_messages
from django.urls import reverse

from rebalancing.models import (
    ClaimOutcome,
    Execution,
    SavingsPlan,
    Strategy,
    StrategyRun,
    StrategyType,
)
from rebalancing.services import automation, strategies_evaluate
from tests.portfolios.admin.test_site import page_data

from .conftest import calendar, threshold

pytestmark = pytest.mark.django_db
MODELS = ("strategy", "strategyrun", "savingsplan", "savingsplanrun")


def url(model: str, view: str, *args) -> str:
    return reverse(f"admin:rebalancing_{model}_{view}", args=args)


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def populated(travel, allocation, account_on, strategy_on):
    """Two accounts with strategies (one drifted), an allocation strategy, claims with an
    execution, and two savings plans, one of whose runs failed."""
    travel(date(2026, 3, 2))
    drifted = account_on(allocation, a="70", b="30", cash="50")
    calm = account_on(allocation, cash="1000")
    strategy_on(drifted, **threshold(cooldown_days=5))
    strategy_on(calm, **calendar(period_type="DAILY", anchor_date=date(2026, 3, 2)))
    strategy_on(allocation, **calendar(period_type="WEEKLY", anchor_date=date(2026, 3, 9), method="EXCHANGE"))
    poor = automation.savings_plan_create(account=drifted, cash_amount=Decimal("100"), currency="EUR", day=2)
    rich = automation.savings_plan_create(account=calm, cash_amount=Decimal("100"), currency="EUR", day=2)
    strategies_evaluate()
    automation.savings_plans_run()
    return {"drifted": drifted, "calm": calm, "poor": poor, "rich": rich}


@pytest.mark.parametrize("model", MODELS)
def test_every_page_renders(admin_client, populated, model):
    response = admin_client.get(url(model, "changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 2
    content = response.content.decode()
    assert url(model, "run_now") in content and url("strategy", "schedule_lookup") in content
    obj = response.context["cl"].result_list[0]
    assert admin_client.get(url(model, "change", obj.pk)).status_code == 200
    expected = 200 if model in ("strategy", "savingsplan") else 403
    assert admin_client.get(url(model, "add")).status_code == expected


@pytest.mark.parametrize(("model", "query"), [
    ("strategyrun", {"outcome__exact": "EXECUTED"}),
    ("strategyrun", {"strategy__type__exact": "CALENDAR", "q": "CL-"}),
    ("savingsplanrun", {"outcome__exact": "FAILED"}),
    ("strategy", {"paused__exact": "0", "type__exact": "THRESHOLD"}),
    ("savingsplan", {"active__exact": "1", "interval__exact": "MONTHLY"}),
])
def test_filters(admin_client, populated, model, query):
    response = admin_client.get(url(model, "changelist"), query)
    assert response.status_code == 200 and response.context["cl"].result_count >= 1


def _queries(client, path) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured)


@pytest.mark.parametrize("model", MODELS)
def test_changelists_run_a_fixed_number_of_queries(admin_client, populated, model, travel, allocation, account_on,
                                                   strategy_on):
    before = _queries(admin_client, url(model, "changelist"))
    assert before <= 12
    for _ in range(3):  # more rows of every kind
        account = account_on(allocation, a="70", b="30")
        strategy_on(account, **threshold())
        automation.savings_plan_create(account=account, cash_amount=Decimal("100"), currency="EUR", day=2)
    strategies_evaluate()
    automation.savings_plans_run()
    assert _queries(admin_client, url(model, "changelist")) == before


def test_the_claims_show_their_outcome_and_failure_reason(admin_client, populated):
    content = admin_client.get(url("savingsplanrun", "changelist")).content.decode()
    assert "FAILED" in content and "lacks the cash" in content
    content = admin_client.get(url("strategyrun", "changelist")).content.decode()
    assert "EXECUTED" in content and "2026-03-02" in content.replace("March 2, 2026", "2026-03-02")


def test_run_evaluation_now_calls_the_service_and_reports(admin_client, travel, populated):
    travel(date(2026, 3, 3))
    response = admin_client.post(url("strategyrun", "run_now"))
    assert response.status_code == 302 and response["Location"] == url("strategyrun", "changelist")
    (message,) = messages_of(response)
    assert "Evaluation of 2026-03-03: 1 due date(s) claimed, 1 execution(s) created for 1 account(s)" in message
    assert StrategyRun.objects.filter(due_date=date(2026, 3, 3)).count() == 1
    response = admin_client.post(url("strategy", "run_now"))
    assert "0 due date(s) claimed, 0 execution(s)" in messages_of(response)[-1]


def test_run_savings_plans_now(admin_client, travel, populated):
    travel(date(2026, 4, 2))
    response = admin_client.post(url("savingsplan", "run_now"))
    message = list(get_messages(response.wsgi_request))[0]
    assert "Savings plans of 2026-04-02: 2 due, 1 portfolio order(s) placed, 1 of 2 FAILED" in str(message)
    # A run with failures is a warning (yellow), never a green success banner.
    assert message.level == messages.WARNING
    response = admin_client.post(url("savingsplan", "run_now"), follow=True)
    message = list(response.context["messages"])[-1]
    assert "0 due" in str(message) and "none failed" in str(message) and message.level == messages.SUCCESS


def test_run_now_needs_the_execute_permission_and_a_post(client, populated, user_with_perms):
    viewer = user_with_perms("rebalancing.view_strategyrun", "rebalancing.view_strategy")
    client.force_login(viewer)
    assert 'id="run-now-button"' not in client.get(url("strategyrun", "changelist")).content.decode()
    assert client.post(url("strategyrun", "run_now")).status_code == 403
    assert client.get(url("strategyrun", "run_now")).status_code == 405


def test_pause_and_resume_strategies(admin_client, populated):
    strategy = Strategy.objects.get(configuration=populated["drifted"].configuration)
    response = admin_client.post(url("strategy", "changelist"), {"action": "pause_strategies", "_selected_action": [
        strategy.pk]})
    assert response.status_code == 302
    assert Strategy.objects.get(pk=strategy.pk).paused
    admin_client.post(url("strategy", "changelist"), {"action": "resume_strategies", "_selected_action": [strategy.pk]})
    assert not Strategy.objects.get(pk=strategy.pk).paused


def test_pause_and_resume_savings_plans(admin_client, populated):
    plan = populated["rich"]
    admin_client.post(url("savingsplan", "changelist"), {"action": "pause_plans", "_selected_action": [plan.pk]})
    assert not SavingsPlan.objects.get(pk=plan.pk).active
    content = admin_client.get(url("savingsplan", "changelist")).content.decode()
    assert "paused" in content
    admin_client.post(url("savingsplan", "changelist"), {"action": "resume_plans", "_selected_action": [plan.pk]})
    assert SavingsPlan.objects.get(pk=plan.pk).active


def test_add_a_strategy_through_the_service(admin_client, travel, allocation, account_on):
    travel(date(2026, 3, 2))
    account = account_on(allocation)
    data = {"configuration": str(account.pk), "allocation": "", "type": "CALENDAR", "method": "FULL",
            "cooldown_days": "", "period_type": "MONTHLY", "period_count": "", "anchor_date": "",
            "absolute_drift": "0.1", "relative_drift": ""}
    response = admin_client.post(url("strategy", "add"), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"period_count", "anchor_date", "absolute_drift"}
    assert not Strategy.objects.exists()

    data.update(period_count="1", anchor_date="2026-03-31", absolute_drift="")
    response = admin_client.post(url("strategy", "add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    strategy = Strategy.objects.get()
    assert (strategy.configuration_id, strategy.anchor_date) == (account.pk, date(2026, 3, 31))

    both = {**data, "configuration": "", "allocation": str(allocation.pk)}
    assert admin_client.post(url("strategy", "add"), {**both, "configuration": str(account.pk)}).status_code == 200
    response = admin_client.post(url("strategy", "add"), both)
    assert response.status_code == 302
    assert Strategy.objects.get(allocation=allocation).type == StrategyType.CALENDAR


def test_change_a_strategy(admin_client, travel, populated):
    strategy = Strategy.objects.get(configuration=populated["calm"].configuration)
    data = page_data(admin_client.get(url("strategy", "change", strategy.pk)))
    data.update(type="THRESHOLD", period_type="", period_count="", anchor_date="", relative_drift="0.3")
    response = admin_client.post(url("strategy", "change", strategy.pk), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    strategy.refresh_from_db()
    assert (strategy.type, strategy.relative_drift, strategy.anchor_date) == ("THRESHOLD", Decimal("0.3"), None)


def test_add_a_savings_plan_through_the_service(admin_client, travel, allocation, account_on):
    travel(date(2026, 3, 2))
    account = account_on(allocation, cash="1000")
    data = {"account": str(account.pk), "cash_amount": "50", "currency": "CHF", "interval": "WEEKLY", "day": "9",
            "start_date": "2026-03-02", "end_date": "", "active": "on"}
    response = admin_client.post(url("savingsplan", "add"), data)
    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) == {"currency", "day"}
    data.update(currency="EUR", day="3")
    response = admin_client.post(url("savingsplan", "add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    plan = automation.with_last_run(SavingsPlan.objects.all()).get()
    assert automation.savings_plan_next_run_date(plan, last_run=plan.last_run) == date(2026, 3, 4)


def test_the_schedule_of_an_account(admin_client, travel, populated):
    account = populated["drifted"]
    response = admin_client.get(url("strategy", "schedule", account.pk))
    assert response.status_code == 200
    schedule = response.context["schedule"]
    assert schedule.source == "own" and schedule.strategy.type == StrategyType.THRESHOLD
    assert schedule.drift_crossed is True
    assert schedule.last_execution == Execution.objects.get(trigger="THRESHOLD")
    assert schedule.cooldown_until == date(2026, 3, 6)
    assert [claim.outcome for claim in schedule.last_claims] == [ClaimOutcome.EXECUTED]
    content = response.content.decode()
    # 70 / 30 units at 10 EUR and 50 EUR cash against 50 / 50: +16.67 and −21.43 points.
    assert 'id="schedule-crossed" class="crossed"' in content
    assert "Alpha ETF" in content and "+16.67 %" in content and "-21.43 %" in content
    assert "no automatic rebalance until 2026-03-06" in content

    # An account following the allocation's strategy: its weekly date is next.
    follower = populated["calm"]
    Strategy.objects.filter(configuration=follower.configuration).delete()
    schedule = admin_client.get(url("strategy", "schedule", follower.pk)).context["schedule"]
    assert (schedule.source, schedule.next_date, schedule.drift_crossed) == ("allocation", date(2026, 3, 9), None)
    assert len(schedule.savings_plans) == 1


def test_the_schedule_lookup(admin_client, populated):
    account = populated["calm"]
    response = admin_client.get(url("strategy", "schedule_lookup"), {"q": account.client_id})
    assert response.status_code == 302 and response["Location"] == url("strategy", "schedule", account.pk)
    response = admin_client.get(url("strategy", "schedule_lookup"), {"q": str(account.pk)})
    assert response["Location"] == url("strategy", "schedule", account.pk)
    response = admin_client.get(url("strategy", "schedule_lookup"), {"q": "nobody"})
    assert response.status_code == 200 and "No account with client reference or id nobody" in response.content.decode()


def test_the_schedule_needs_the_view_permission(client, populated, user_with_perms):
    client.force_login(user_with_perms("rebalancing.view_savingsplan"))
    assert client.get(url("strategy", "schedule", populated["calm"].pk)).status_code == 403
