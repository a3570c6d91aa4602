"""Automation (spec §7): the daily evaluation of rebalancing strategies, the daily run
of savings plans, and the reads behind the admin's schedule page.

Both daily jobs follow one pattern: find what is due with set-based queries, insert
the claim of each (owner, due date) first, under a unique key, and only then do the
work, recording its outcome on the claim. A claim that is already there (a second
beat tick, a redelivered task, a concurrent "run now") means someone else has it:
skip. Dates are UTC dates; docs/automation.md gives every rule and its reason.
"""

from .common import (
    AUTOMATIC_TRIGGERS,
    Period,
    evaluation_date,
    in_cooldown,
    latest_due_date,
    next_due_date,
    strategy_periods,
)
from .evaluation import EvaluationSummary, drift_crossed, strategies_evaluate
from .savings import (
    SAVINGS_PLAN_FIELDS,
    SavingsPlanSummary,
    savings_plan_create,
    savings_plan_date_after,
    savings_plan_date_on_or_before,
    savings_plan_delete,
    savings_plan_execute,
    savings_plan_next_run_date,
    savings_plan_update,
    savings_plans_pause,
    savings_plans_run,
    with_last_run,
)
from .schedules import AccountSchedule, account_schedule, last_automatic_execution

__all__ = [
    "SAVINGS_PLAN_FIELDS",
    "AUTOMATIC_TRIGGERS",
    "AccountSchedule",
    "EvaluationSummary",
    "Period",
    "SavingsPlanSummary",
    "account_schedule",
    "drift_crossed",
    "evaluation_date",
    "in_cooldown",
    "last_automatic_execution",
    "latest_due_date",
    "next_due_date",
    "savings_plan_create",
    "savings_plan_date_after",
    "savings_plan_date_on_or_before",
    "savings_plan_delete",
    "savings_plan_execute",
    "savings_plan_next_run_date",
    "savings_plan_update",
    "savings_plans_pause",
    "savings_plans_run",
    "strategies_evaluate",
    "strategy_periods",
    "with_last_run",
]
