"""The stored drift of each configured account: what the account list sorts and
filters on and the dashboard counts, refreshed by the daily evaluation and after each
execution chunk (rebalancing.services.drift), never computed on a page load."""

from django.db import models

from portfolios.models import PortfolioAccount
from portfolios.models.fields import MONEY

# Drift in weight points and relative to the target: a held line with a small target
# drifts by many times its target, so more digits before the point than a weight.
DRIFT = {"max_digits": 20, "decimal_places": 12}


class AccountDrift(models.Model):
    """One row per top-level account with a configuration (custody accounts and
    sub-portfolios have none). `max_drift` is the largest |weight − target| over the
    lines and cash, in weight points (0.05 = 5 points); `max_relative_drift` the largest
    |drift| / target over lines with a target (empty: only untargeted lines drift)."""

    account = models.OneToOneField(
        PortfolioAccount, primary_key=True, on_delete=models.CASCADE, related_name="drift"
    )
    as_of = models.DateField(help_text="Prices and targets as of this date.")
    computed_at = models.DateTimeField()
    currency = models.CharField(max_length=3)
    total_value = models.DecimalField(**MONEY, null=True, blank=True)
    max_drift = models.DecimalField(**DRIFT, null=True, blank=True, help_text="Largest absolute drift (weight points).")
    max_drift_line = models.CharField(max_length=250, blank=True, help_text="The line with the largest drift.")
    max_relative_drift = models.DecimalField(**DRIFT, null=True, blank=True)
    outside_band = models.BooleanField(default=False)
    band = models.CharField(max_length=250, blank=True, help_text="The band the drift was judged against, in words.")
    error = models.TextField(blank=True, help_text="Why the account could not be valued.")

    class Meta:
        verbose_name = "account drift"
        indexes = [
            models.Index(fields=["outside_band", "-max_drift"], name="drift_outside_band"),
            models.Index(fields=["-max_drift"], name="drift_max_drift"),
        ]

    def __str__(self):
        return f"drift of {self.account_id} on {self.as_of}"


class DriftSummary(models.Model):
    """The stored drift of the whole book, aggregated: one row per (currency, histogram
    bucket, outside band, allocation, valued or not) with its accounts and their value.
    Rebuilt in one statement whenever the whole book's drift is refreshed (the daily
    evaluation, rebalancing.services.drift), so the dashboard reads a few hundred rows
    instead of aggregating every account's drift on each page load."""

    currency = models.CharField(max_length=3)
    bucket = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Index into selectors.dashboard.DRIFT_BUCKETS; empty: not valued."
    )
    outside_band = models.BooleanField()
    allocation = models.ForeignKey(
        "portfolios.Allocation", null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        db_constraint=False,
    )
    errors = models.PositiveIntegerField(help_text="Accounts of the row that could not be valued.")
    accounts = models.PositiveIntegerField()
    total_value = models.DecimalField(**MONEY, null=True, blank=True)
    as_of = models.DateField(null=True, blank=True, help_text="The latest as-of date of the row's drifts.")
    computed_at = models.DateTimeField(help_text="When the summary was rebuilt.")

    class Meta:
        verbose_name = "drift summary"
        verbose_name_plural = "drift summary"

    def __str__(self):
        return f"{self.accounts} accounts, {self.currency}, bucket {self.bucket}"
