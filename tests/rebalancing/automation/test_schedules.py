"""The daily jobs are declared once, installed into beat's database scheduler in UTC, and
registered with Celery; each task is one call into its service."""

from datetime import date

import pytest
from celery import current_app
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from config.schedules import SCHEDULES
from rebalancing.models import SavingsPlanRun, StrategyRun
from rebalancing.services import automation
from rebalancing.tasks import savings_plans_run_task, strategies_evaluate_task

from .conftest import calendar

pytestmark = pytest.mark.django_db
JOBS = {
    "rebalancing.tasks.strategies_evaluate_task": {"minute": "0", "hour": "5"},
    "rebalancing.tasks.savings_plans_run_task": {"minute": "30", "hour": "5"},
}


def test_install_schedules_installs_the_daily_jobs_in_utc():
    call_command("install_schedules")
    for task_name, crontab in JOBS.items():
        task = PeriodicTask.objects.select_related("crontab").get(task=task_name)
        assert task.enabled and task.name in SCHEDULES
        assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == (
            crontab["minute"], crontab["hour"], "*")
        assert str(task.crontab.timezone) == "UTC"


def test_an_operators_new_time_is_kept():
    call_command("install_schedules")
    task = PeriodicTask.objects.get(task=next(iter(JOBS)))
    task.crontab.hour = "22"
    task.crontab.save()
    call_command("install_schedules")
    task.refresh_from_db()
    assert task.crontab.hour == "22"


def test_the_tasks_are_registered_with_celery():
    for task_name in JOBS:
        assert task_name in current_app.tasks


def test_the_tasks_call_their_services(travel, allocation, account_on, strategy_on):
    travel(date(2026, 3, 2))
    account = account_on(allocation, cash="1000")
    strategy_on(account, **calendar(period_type="DAILY", anchor_date=date(2026, 3, 2)))
    automation.savings_plan_create(account=account, cash_amount=100, currency="EUR", interval="MONTHLY", day=2)
    assert strategies_evaluate_task.run() == {
        "on_date": "2026-03-02", "claimed": 1, "executions": 1, "accounts": 1, "failed": 0}
    assert savings_plans_run_task.run() == {"on_date": "2026-03-02", "due": 1, "executed": 1, "failed": 0}
    assert StrategyRun.objects.count() == SavingsPlanRun.objects.count() == 1
