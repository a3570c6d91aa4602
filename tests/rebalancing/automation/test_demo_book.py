"""The demo book's automation: "run now" from the admin rebalances exactly the accounts
that are due, and running it again the same day does nothing."""

from datetime import date

import pytest
from django.urls import reverse

from portfolios.models import AccountStatus, PortfolioAccount
from portfolios.services.demo import demo_book_load
from rebalancing.models import Execution, ExecutionResult, SavingsPlan, Strategy, StrategyRun, StrategyType, TradeOrder
from rebalancing.services.automation import account_schedule
from rebalancing.services.demo import demo_automation_install

from .test_evaluation import accounts_of, run_executions

pytestmark = pytest.mark.django_db

TODAY = date(2026, 11, 23)  # a Monday


def due_by_schedule(today: date) -> dict:
    """Account id → trigger, worked out one account at a time from its schedule page
    (the per-account path), independently of the set-based evaluation."""
    due = {}
    accounts = PortfolioAccount.objects.filter(
        status=AccountStatus.ACTIVE, parent__isnull=True, locked=False, configuration__isnull=False
    )
    for account in accounts:
        schedule = account_schedule(account=account, on_date=today)
        strategy = schedule.strategy
        if strategy is None or strategy.paused or schedule.cooldown_until is not None:
            continue
        if schedule.next_date == today:
            if strategy.type != StrategyType.CALENDAR_AND_THRESHOLD or schedule.drift_crossed:
                due[str(account.pk)] = "SCHEDULED"
        elif strategy.type == StrategyType.THRESHOLD and schedule.drift_crossed:
            due[str(account.pk)] = "THRESHOLD"
    return due


def message_of(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


def test_run_now_on_the_demo_book_rebalances_exactly_the_due_accounts(client, admin_user, travel):
    travel(TODAY)
    client.force_login(admin_user)  # after travelling: staff sessions expire
    demo_book_load(accounts=150, days=30, today=TODAY)
    installed = demo_automation_install(today=TODAY)
    assert (installed.strategies, installed.savings_plans) == (4, 10)
    assert Strategy.objects.filter(allocation__name="Global Champions Equity").count() == 0

    expected = due_by_schedule(TODAY)
    triggers = set(expected.values())
    assert triggers == {"SCHEDULED", "THRESHOLD"}  # the demo exercises both kinds
    configured = PortfolioAccount.objects.filter(configuration__isnull=False, status=AccountStatus.ACTIVE).count()
    assert 0 < len(expected) < configured  # some accounts are within their thresholds

    response = client.post(reverse("admin:rebalancing_strategyrun_run_now"), follow=True)
    assert f"execution(s) created for {len(expected)} account(s)" in message_of(response)
    executions = list(Execution.objects.all())
    by_trigger = {}
    for execution in executions:
        for account_id in accounts_of(execution):
            assert account_id not in by_trigger, "an account is in two executions"
            by_trigger[account_id] = execution.trigger
    assert by_trigger == expected

    run_executions()
    results = ExecutionResult.objects.filter(execution__in=executions)
    assert {str(a) for a in results.values_list("account_id", flat=True)} == set(expected)
    assert not results.filter(status="FAILED").exists()
    orders = TradeOrder.objects.count()
    assert orders > 0
    claims = StrategyRun.objects.count()

    # Again, the same day: every due date is claimed, nothing more happens.
    response = client.post(reverse("admin:rebalancing_strategyrun_run_now"), follow=True)
    assert "0 due date(s) claimed, 0 execution(s) created" in message_of(response)
    assert Execution.objects.count() == len(executions)
    assert (StrategyRun.objects.count(), TradeOrder.objects.count()) == (claims, orders)


def test_installing_the_demo_automation_again_keeps_what_is_there(travel):
    travel(TODAY)
    demo_book_load(accounts=40, days=10, today=TODAY)
    demo_automation_install(today=TODAY)
    strategies = set(Strategy.objects.values_list("pk", "updated_at"))
    again = demo_automation_install(today=TODAY)
    assert (again.strategies, again.savings_plans) == (0, 0)
    assert set(Strategy.objects.values_list("pk", "updated_at")) == strategies
    assert SavingsPlan.objects.filter(day=TODAY.day, start_date=TODAY).count() == 10
