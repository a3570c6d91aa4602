"""Automation for the demo book: a strategy on most demo allocations and a few savings
plans, so the daily jobs have work on the day the demo is loaded. Created through the
same services as the API and the admin; safe to run again (what exists is kept)."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db import transaction

from portfolios.models import AccountStatus, AccountType, Allocation, Configuration

from ..models import Method, SavingsPlan, Strategy, StrategyType
from .automation import evaluation_date, savings_plan_create
from .strategies import StrategyInput, strategy_create

SAVINGS_PLAN_ACCOUNTS = 10
SAVINGS_PLAN_AMOUNT = Decimal("250.00")


def demo_strategies(today: date) -> dict[str, StrategyInput]:
    """Allocation name → its strategy. The calendar strategies are anchored on `today`,
    so their first due date is the day the demo is loaded."""
    return {
        # Drift-triggered: any line more than 5 points off its target.
        "Defensive 30/70": StrategyInput(type=StrategyType.THRESHOLD, absolute_drift=Decimal("0.05")),
        # Calendar: every month from the day the demo was loaded.
        "Balanced 60/40": StrategyInput(
            type=StrategyType.CALENDAR, period_type="MONTHLY", period_count=1, anchor_date=today,
        ),
        # PERIODICAL allocation: its quarterly reset dates are due dates too; between
        # them, a line 30 % off its target (relative) triggers, at most once a week.
        "Growth 90/10": StrategyInput(
            type=StrategyType.THRESHOLD, relative_drift=Decimal("0.30"), cooldown_days=7,
        ),
        # Weekly dates, acted on only when a line is more than 3 points off.
        "Dynamic Overlay": StrategyInput(
            type=StrategyType.CALENDAR_AND_THRESHOLD, period_type="WEEKLY", period_count=1, anchor_date=today,
            absolute_drift=Decimal("0.03"), method=Method.EXCHANGE,
        ),
        # "Global Champions Equity" has none: it is rebalanced by hand.
    }


@dataclass(frozen=True)
class DemoAutomation:
    strategies: int  # created by this call
    savings_plans: int  # created by this call


@transaction.atomic
def demo_automation_install(*, today: date | None = None) -> DemoAutomation:
    """Give the demo allocations their strategies and the first few active accounts a
    monthly savings plan due today. Keeps any strategy or plan already there."""
    today = today or evaluation_date()
    created = 0
    wanted = demo_strategies(today)
    for allocation in Allocation.objects.filter(name__in=wanted).order_by("name"):
        if not Strategy.objects.filter(allocation=allocation).exists():
            strategy_create(data=wanted[allocation.name], allocation=allocation)
            created += 1

    plans = 0
    if not SavingsPlan.objects.exists():
        configurations = (
            Configuration.objects.filter(
                account__status=AccountStatus.ACTIVE, account__account_type=AccountType.PORTFOLIO,
                account__parent__isnull=True,
            )
            .select_related("account")
            .order_by("account__client_id")[:SAVINGS_PLAN_ACCOUNTS]
        )
        for configuration in configurations:
            savings_plan_create(
                account=configuration.account, cash_amount=SAVINGS_PLAN_AMOUNT, currency="EUR",
                day=today.day, start_date=today,
            )
            plans += 1
    return DemoAutomation(strategies=created, savings_plans=plans)
