"""Restriction lists, substitutes and model alerts (spec §11, docs/restrictions.md)."""

import uuid

from django.db import models
from django.db.models import F, Q

from .accounts import PortfolioAccount
from .allocations import Allocation
from .instruments import Instrument


class RestrictionScope(models.TextChoices):
    FIRM = "FIRM", "Firm (every portfolio)"
    ACCOUNT = "ACCOUNT", "Account (the portfolios it is assigned to)"


class RestrictionRule(models.TextChoices):
    NO_BUY = "NO_BUY", "No buy (may stay, may be sold)"
    NO_SELL = "NO_SELL", "No sell (held like a locked line)"
    NO_HOLD = "NO_HOLD", "No hold (never bought, sold whole)"


class RestrictedWeightTo(models.TextChoices):
    CASH = "CASH", "Cash (the cash target grows)"
    PRO_RATA = "PRO_RATA", "Pro rata over the model's other buyable lines"


class RestrictionList(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True)
    scope = models.CharField(max_length=10, choices=RestrictionScope.choices, default=RestrictionScope.ACCOUNT)
    accounts = models.ManyToManyField(
        PortfolioAccount, through="AccountRestrictionList", related_name="restriction_lists", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["scope"])]

    def __str__(self):
        return self.name


class RestrictionEntry(models.Model):
    """One instrument under one rule of a list, in effect from/to the dates given (inclusive; empty: open)."""

    restriction_list = models.ForeignKey(RestrictionList, on_delete=models.CASCADE, related_name="entries")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="restriction_entries")
    rule = models.CharField(max_length=10, choices=RestrictionRule.choices)
    reason = models.CharField(max_length=200, blank=True)
    effective_from = models.DateField(null=True, blank=True)
    effective_to = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["restriction_list", "instrument", "rule", "id"]
        verbose_name_plural = "restriction entries"
        constraints = [
            models.CheckConstraint(
                condition=Q(effective_from__isnull=True) | Q(effective_to__isnull=True)
                | Q(effective_to__gte=F("effective_from")),
                name="restrictionentry_dates_in_order",
            ),
        ]

    def __str__(self):
        return f"{self.rule} {self.instrument_id}"


class AccountRestrictionList(models.Model):
    """An ACCOUNT list assigned to a portfolio."""

    account = models.ForeignKey(PortfolioAccount, on_delete=models.CASCADE, related_name="restriction_assignments")
    restriction_list = models.ForeignKey(RestrictionList, on_delete=models.PROTECT, related_name="assignments")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account", "restriction_list"]
        verbose_name = "restriction list assignment"
        constraints = [
            models.UniqueConstraint(fields=["account", "restriction_list"], name="accountrestrictionlist_unique"),
        ]

    def __str__(self):
        return f"{self.restriction_list_id} → {self.account_id}"


class Substitute(models.Model):
    """`substitute` replaces `instrument` when a portfolio may not buy it; lower rank first."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="substitute_rows")
    substitute = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="substitute_for")
    rank = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["instrument", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["instrument", "rank"], name="substitute_unique_rank"),
            models.UniqueConstraint(fields=["instrument", "substitute"], name="substitute_unique_pair"),
            models.CheckConstraint(condition=~Q(instrument=F("substitute")), name="substitute_not_itself"),
        ]

    def __str__(self):
        return f"{self.instrument_id} → {self.substitute_id} ({self.rank})"


class AlertReason(models.TextChoices):
    NOT_TRADABLE = "NOT_TRADABLE", "Instrument not tradable"
    NO_PRICE = "NO_PRICE", "No price at or before today"


class AllocationAlert(models.Model):
    """A reason a model line cannot be traded today: the allocation needs attention.

    Rows are replaced by `allocation_alerts_refresh`; `notified_on` is the day the
    `allocation.needs_attention` event was last sent for it (once per reason and day).
    """

    allocation = models.ForeignKey(Allocation, on_delete=models.CASCADE, related_name="alerts")
    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=20, choices=AlertReason.choices)
    since = models.DateField()
    notified_on = models.DateField()

    class Meta:
        ordering = ["allocation", "instrument", "reason"]
        constraints = [
            models.UniqueConstraint(fields=["allocation", "instrument", "reason"], name="allocationalert_unique"),
        ]

    def __str__(self):
        return f"{self.allocation_id}: {self.instrument_id} {self.reason}"
