"""savings_plans_run: one BUY portfolio order per due date, across month ends; paused and
ended plans do nothing; a refusal is a FAILED run with its reason, and the plan goes on."""

from datetime import date
from decimal import Decimal

import pytest

from rebalancing.models import ClaimOutcome, Initiation, PortfolioOrder, SavingsPlan, SavingsPlanRun, Side
from rebalancing.services import automation, savings_plans_run
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan_for(travel):
    """plan_for(account, **fields): a plan created at the frozen moment (default 1 Jan 2026)."""

    def make(account, created=date(2026, 1, 1), **fields):
        travel(created)
        values = {"cash_amount": Decimal("100"), "currency": "EUR", "interval": "MONTHLY", "day": 31,
                  "start_date": date(2026, 1, 1), **fields}
        return automation.savings_plan_create(account=account, **values)

    return make


def runs(plan) -> list[tuple]:
    return list(SavingsPlanRun.objects.filter(savings_plan=plan).order_by("due_date").values_list("due_date", "outcome"))


def test_day_31_buys_on_every_months_last_day(travel, allocation, account_on, plan_for):
    account = account_on(allocation, cash="1000")
    plan = plan_for(account)
    for day in (date(2026, 1, 30), date(2026, 1, 31), date(2026, 2, 1), date(2026, 2, 27), date(2026, 2, 28),
                date(2026, 3, 1), date(2026, 3, 30), date(2026, 3, 31)):
        travel(day)
        savings_plans_run()
        savings_plans_run()  # twice a day: once
    assert runs(plan) == [(date(2026, 1, 31), "EXECUTED"), (date(2026, 2, 28), "EXECUTED"), (date(2026, 3, 31), "EXECUTED")]
    orders = PortfolioOrder.objects.filter(account=account)
    assert orders.count() == 3
    assert {(o.side, o.cash_amount, o.initiation) for o in orders} == {(Side.BUY, Decimal("100"), Initiation.SAVINGS_PLAN)}
    run = SavingsPlanRun.objects.get(savings_plan=plan, due_date=date(2026, 2, 28))
    assert run.portfolio_order.trade_orders.exists()


def test_a_missed_date_is_caught_up_once(travel, allocation, account_on, plan_for):
    plan = plan_for(account_on(allocation, cash="1000"), interval="WEEKLY", day=1)  # Mondays
    travel(date(2026, 1, 26))  # down since 1 Jan: 5, 12, 19 Jan missed; 26 Jan is due
    summary = savings_plans_run()
    assert (summary.due, summary.executed) == (1, 1)
    travel(date(2026, 1, 30))
    assert savings_plans_run().due == 0
    travel(date(2026, 2, 4))  # the 2 Feb was missed: caught up on the 4th, once
    assert savings_plans_run().executed == 1
    assert runs(plan) == [(date(2026, 1, 26), "EXECUTED"), (date(2026, 2, 2), "EXECUTED")]


def test_a_refusal_is_recorded_and_the_plan_goes_on(travel, allocation, account_on, plan_for):
    account = account_on(allocation, cash="50")  # not enough for 100
    plan = plan_for(account, day=15)
    travel(date(2026, 1, 15))
    summary = savings_plans_run()
    assert (summary.executed, summary.failed) == (0, 1)
    run = SavingsPlanRun.objects.get()
    assert run.outcome == ClaimOutcome.FAILED and run.portfolio_order is None
    assert "lacks the cash" in run.detail
    travel(date(2026, 1, 16))
    assert savings_plans_run().due == 0  # the failed date is not retried
    account.cash_accounts.update(balance=Decimal("500"))
    travel(date(2026, 2, 15))
    assert savings_plans_run().executed == 1
    assert runs(plan) == [(date(2026, 1, 15), "FAILED"), (date(2026, 2, 15), "EXECUTED")]


@pytest.mark.parametrize(("fields", "reason"), [
    ({"status": "PENDING"}, "only ACTIVE accounts"),
    ({"locked": True}, "is locked"),
])
def test_an_account_that_cannot_invest_fails_with_the_reason(travel, allocation, account_on, plan_for, fields,
                                                             reason):
    plan = plan_for(account_on(allocation, cash="1000", **fields), day=15)
    travel(date(2026, 1, 15))
    savings_plans_run()
    run = SavingsPlanRun.objects.get(savings_plan=plan)
    assert run.outcome == ClaimOutcome.FAILED and reason in run.detail


def test_an_unconfigured_account_fails_with_the_reason(travel, plan_for):
    account = AccountFactory()
    plan = plan_for(account, day=15)
    travel(date(2026, 1, 15))
    savings_plans_run()
    assert "no configuration" in SavingsPlanRun.objects.get(savings_plan=plan).detail


def test_paused_and_ended_plans_do_nothing(travel, allocation, account_on, plan_for):
    account = account_on(allocation, cash="1000")
    paused = plan_for(account, day=15, active=False)
    ended = plan_for(account, day=15, end_date=date(2026, 1, 14))
    future = plan_for(account, day=15, start_date=date(2026, 3, 1))
    travel(date(2026, 1, 15))
    assert savings_plans_run().due == 0
    travel(date(2026, 2, 15))
    assert savings_plans_run().due == 0
    assert not SavingsPlanRun.objects.exists()
    assert automation.savings_plan_next_run_date(paused, today=date(2026, 2, 16)) is None
    assert automation.savings_plan_next_run_date(ended, today=date(2026, 2, 16)) is None
    assert automation.savings_plan_next_run_date(future, today=date(2026, 2, 16)) == date(2026, 3, 15)


def test_resuming_catches_up_no_date_missed_while_paused(travel, allocation, account_on, plan_for):
    plan = plan_for(account_on(allocation, cash="1000"), day=10)
    travel(date(2026, 1, 5))
    automation.savings_plans_pause(plan_ids=[plan.pk], active=False)
    travel(date(2026, 1, 12))
    automation.savings_plans_pause(plan_ids=[plan.pk], active=True)
    assert savings_plans_run().due == 0  # 10 Jan passed while paused
    travel(date(2026, 2, 10))
    assert savings_plans_run().executed == 1


def test_the_last_date_on_the_end_date_still_runs(travel, allocation, account_on, plan_for):
    plan = plan_for(account_on(allocation, cash="1000"), day=15, end_date=date(2026, 2, 15))
    travel(date(2026, 2, 15))
    assert savings_plans_run().executed == 1
    assert runs(plan) == [(date(2026, 2, 15), "EXECUTED")]
    travel(date(2026, 3, 15))
    assert savings_plans_run().due == 0


def test_next_run_date(travel, allocation, account_on, plan_for):
    plan = plan_for(account_on(allocation, cash="1000"), day=31)
    assert automation.savings_plan_next_run_date(plan, today=date(2026, 2, 1)) == date(2026, 2, 28)
    assert automation.savings_plan_next_run_date(plan, today=date(2026, 2, 28)) == date(2026, 2, 28)
    assert automation.savings_plan_next_run_date(plan, last_run=date(2026, 2, 28), today=date(2026, 2, 28)) == date(
        2026, 3, 31)
    travel(date(2026, 2, 28))
    savings_plans_run()
    plan = automation.with_last_run(SavingsPlan.objects.filter(pk=plan.pk)).get()
    assert plan.last_run == date(2026, 2, 28)
    assert automation.savings_plan_next_run_date(plan, last_run=plan.last_run) == date(2026, 3, 31)


def test_an_unexpected_error_is_recorded_and_the_other_plans_run(travel, allocation, account_on, plan_for,
                                                                  monkeypatch):
    first = plan_for(account_on(allocation, cash="1000"), day=15)
    second = plan_for(account_on(allocation, cash="1000"), day=15)
    create = automation.savings.portfolio_order_create

    def fail_first(**kwargs):
        if kwargs["account"] == first.account:
            raise RuntimeError("bug")
        return create(**kwargs)

    monkeypatch.setattr(automation.savings, "portfolio_order_create", fail_first)
    travel(date(2026, 1, 15))
    assert (savings_plans_run().executed, SavingsPlanRun.objects.filter(outcome="FAILED").count()) == (1, 1)
    assert SavingsPlanRun.objects.get(savings_plan=first).detail == "internal error: RuntimeError('bug')"
    assert SavingsPlanRun.objects.get(savings_plan=second).outcome == ClaimOutcome.EXECUTED
