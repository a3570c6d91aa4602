"""Celery tasks of the daily automation jobs (declared in config/schedules.py).

Each is one call into a service that claims every due date under a unique key before
doing any work, so a second beat tick, a redelivery or a concurrent "run now" from
the admin does nothing twice. Imported by rebalancing/tasks.py so that autodiscovery
registers them.
"""

from celery import shared_task

from .services import automation


@shared_task(acks_late=True, reject_on_worker_lost=True)
def strategies_evaluate_task() -> dict:
    """Evaluate every rebalancing strategy for today's UTC date and start the executions."""
    summary = automation.strategies_evaluate()
    return {
        "on_date": summary.on_date.isoformat(), "claimed": summary.claimed, "executions": len(summary.executions),
        "accounts": summary.accounts, "failed": summary.failed,
    }


@shared_task(acks_late=True, reject_on_worker_lost=True)
def savings_plans_run_task() -> dict:
    """Place the portfolio orders of every savings plan due on today's UTC date."""
    summary = automation.savings_plans_run()
    return {
        "on_date": summary.on_date.isoformat(), "due": summary.due, "executed": summary.executed,
        "failed": summary.failed,
    }
