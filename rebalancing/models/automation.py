"""Automation: strategies, due-date claims and savings plans (spec §7)."""

import uuid

from django.db import models

from core.formatting import money, related
from django.db.models import Q
from django.utils import timezone

from portfolios.models import PeriodType, PortfolioAccount
from portfolios.models.fields import MONEY, WEIGHT

from .executions import Execution
from .orders import PortfolioOrder
from .preferences import Method


class StrategyType(models.TextChoices):
    CALENDAR = "CALENDAR"
    THRESHOLD = "THRESHOLD"
    CALENDAR_AND_THRESHOLD = "CALENDAR_AND_THRESHOLD"


class Strategy(models.Model):
    """When accounts rebalance by themselves. Belongs to one configuration, or to an
    allocation for every account following it without a strategy of its own."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    configuration = models.OneToOneField(
        "portfolios.Configuration", null=True, blank=True, on_delete=models.CASCADE, related_name="strategy"
    )
    allocation = models.OneToOneField(
        "portfolios.Allocation", null=True, blank=True, on_delete=models.CASCADE, related_name="strategy"
    )
    type = models.CharField(max_length=25, choices=StrategyType.choices)
    period_type = models.CharField(max_length=10, choices=PeriodType.choices, null=True, blank=True)
    period_count = models.PositiveIntegerField(null=True, blank=True)
    anchor_date = models.DateField(null=True, blank=True)
    absolute_drift = models.DecimalField(**WEIGHT, null=True, blank=True, help_text="Weight points, e.g. 0.05.")
    relative_drift = models.DecimalField(**WEIGHT, null=True, blank=True, help_text="Fraction of the target, e.g. 0.2.")
    method = models.CharField(max_length=25, choices=Method.choices, default=Method.FULL)
    cooldown_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="No automatic rebalance within this many days of the last one."
    )
    paused = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "strategies"
        constraints = [
            models.CheckConstraint(
                condition=(Q(configuration__isnull=False) & Q(allocation__isnull=True))
                | (Q(configuration__isnull=True) & Q(allocation__isnull=False)),
                name="strategy_configuration_xor_allocation",
            ),
            models.CheckConstraint(
                condition=Q(type=StrategyType.THRESHOLD)
                | (Q(period_type__isnull=False) & Q(period_count__gte=1) & Q(anchor_date__isnull=False)),
                name="strategy_calendar_has_period",
            ),
            models.CheckConstraint(
                condition=Q(type=StrategyType.CALENDAR) | Q(absolute_drift__isnull=False) | Q(relative_drift__isnull=False),
                name="strategy_threshold_has_drift",
            ),
        ]

    def __str__(self):
        owner = (
            f"account {related(self, 'configuration', lambda c: related(c, 'account', lambda a: a.client_id))}"
            if self.configuration_id else f"allocation {related(self, 'allocation')}"
        )
        return f"{self.type} strategy ({owner})"


class ClaimOutcome(models.TextChoices):
    CLAIMED = "CLAIMED", "Claimed (work in progress)"
    EXECUTED = "EXECUTED", "Execution or order created"
    NOT_DUE = "NOT_DUE", "Nothing to do (threshold not crossed, cooldown, no accounts)"
    FAILED = "FAILED"


class StrategyRun(models.Model):
    """The claim of one (strategy, due date): the unique key makes each due date run at
    most once, whatever beat or the workers do."""

    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="runs")
    due_date = models.DateField()
    outcome = models.CharField(max_length=10, choices=ClaimOutcome.choices, default=ClaimOutcome.CLAIMED)
    execution = models.ForeignKey(Execution, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    accounts = models.PositiveIntegerField(default=0, help_text="Accounts found due.")
    detail = models.TextField(blank=True)
    claimed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-due_date", "strategy"]
        constraints = [models.UniqueConstraint(fields=["strategy", "due_date"], name="strategyrun_once_per_due_date")]

    def __str__(self):
        return f"{related(self, 'strategy')} {self.due_date}: {self.outcome}"


class SavingsInterval(models.TextChoices):
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    QUARTERLY = "QUARTERLY"


class SavingsPlan(models.Model):
    """A recurring BUY portfolio order: `day` is the weekday (1 = Monday … 7) for WEEKLY,
    the day of the month (1–31, clamped to the month's end) otherwise."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(PortfolioAccount, on_delete=models.CASCADE, related_name="savings_plans")
    cash_amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    interval = models.CharField(max_length=10, choices=SavingsInterval.choices, default=SavingsInterval.MONTHLY)
    day = models.PositiveSmallIntegerField()
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["active", "start_date"])]
        constraints = [
            models.CheckConstraint(condition=Q(cash_amount__gt=0), name="savingsplan_amount_positive"),
            models.CheckConstraint(condition=Q(day__gte=1) & Q(day__lte=31), name="savingsplan_day_1_to_31"),
            models.CheckConstraint(
                condition=~Q(interval=SavingsInterval.WEEKLY) | Q(day__lte=7), name="savingsplan_weekly_day_1_to_7"
            ),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=models.F("start_date")),
                name="savingsplan_ends_after_start",
            ),
        ]

    def __str__(self):
        return f"{self.interval} {money(self.cash_amount, self.currency)} for {related(self, 'account', lambda a: a.client_id)}"


class SavingsPlanRun(models.Model):
    """The claim of one (plan, due date), with its outcome: the portfolio order, or why not."""

    savings_plan = models.ForeignKey(SavingsPlan, on_delete=models.CASCADE, related_name="runs")
    due_date = models.DateField()
    outcome = models.CharField(max_length=10, choices=ClaimOutcome.choices, default=ClaimOutcome.CLAIMED)
    portfolio_order = models.ForeignKey(
        PortfolioOrder, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    detail = models.TextField(blank=True)
    claimed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-due_date", "savings_plan"]
        constraints = [models.UniqueConstraint(fields=["savings_plan", "due_date"], name="savingsplanrun_once_per_due_date")]

    def __str__(self):
        return f"{related(self, 'savings_plan')} {self.due_date}: {self.outcome}"
