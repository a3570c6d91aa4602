"""Executions: a rebalance of many accounts, its chunks, per-account results and the
leases that keep an account in one running execution at a time."""

import uuid

from django.conf import settings
from django.db import models

from core.formatting import related, short_id
from django.db.models import Q
from django.utils import timezone

from portfolios.models import PortfolioAccount
from portfolios.models.fields import MONEY

from .preferences import Method


class ExecutionStatus(models.TextChoices):
    PENDING = "PENDING"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    PARTIALLY_FAILED = "PARTIALLY_FAILED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"


EXECUTION_ENDED = (
    ExecutionStatus.COMPLETED, ExecutionStatus.PARTIALLY_FAILED, ExecutionStatus.FAILED,
    ExecutionStatus.CANCELLED, ExecutionStatus.REJECTED,
)


class Trigger(models.TextChoices):
    MANUAL = "MANUAL", "Manual (admin or command)"
    SCHEDULED = "SCHEDULED"
    THRESHOLD = "THRESHOLD"
    API = "API"


class Execution(models.Model):
    """One request to rebalance one or more accounts ("rebalance run")."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=20, choices=ExecutionStatus.choices, default=ExecutionStatus.PENDING)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    method = models.CharField(max_length=25, choices=Method.choices, default=Method.FULL)
    rebalance_date = models.DateField()
    allocation = models.ForeignKey(
        "portfolios.Allocation", null=True, blank=True, on_delete=models.SET_NULL, related_name="executions",
        help_text="Set when the execution covers every account following this allocation.",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_accounts = models.JSONField(
        null=True, blank=True, editable=False,
        help_text="The account ids asked for, kept while the execution waits for its planning task "
                  "(so a lost task can be planned again); cleared once planned.",
    )
    instrument_ids = models.JSONField(
        null=True, blank=True, editable=False,
        help_text="Only lines of these instruments get orders (§10); null: every line.",
    )
    total = models.PositiveIntegerField(default=0, help_text="Accounts in the execution.")
    done = models.PositiveIntegerField(default=0, help_text="Accounts with a result.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Four-eyes approval (docs/executions.md, "Approval"). The thresholds are copied from
    # the global preferences when the execution is planned; `held` then means its trade
    # orders are written PENDING_APPROVAL and its leases kept until it is activated.
    held = models.BooleanField(
        default=False, editable=False,
        help_text="Approval thresholds applied: orders wait as PENDING_APPROVAL until the totals are checked.",
    )
    approval_gross_limit = models.DecimalField(**MONEY, null=True, blank=True, editable=False)
    approval_order_limit = models.PositiveIntegerField(null=True, blank=True, editable=False)
    approval_currency = models.CharField(max_length=3, blank=True, editable=False)
    gross_amount = models.DecimalField(
        **MONEY, null=True, blank=True, editable=False,
        help_text="Σ |trade amount| of the execution's orders in the approval currency (held executions).",
    )
    order_count = models.PositiveIntegerField(null=True, blank=True, editable=False)
    approval_reason = models.TextField(blank=True, editable=False, help_text="Why the execution needs approval.")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False,
        verbose_name="decided by", help_text="Who approved or rejected the execution (the status says which).",
    )
    approved_at = models.DateTimeField(null=True, blank=True, editable=False, verbose_name="decided at")
    approval_comment = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "-created_at"])]
        permissions = [
            ("execute_rebalance", "Can start a rebalance execution"),
            ("approve_execution", "Can approve or reject a large rebalance execution"),
        ]
        constraints = [models.CheckConstraint(condition=Q(done__lte=models.F("total")), name="execution_done_within_total")]

    def __str__(self):
        return f"{self.get_trigger_display()} {self.method} {self.rebalance_date} ({self.status})"


class ChunkStatus(models.TextChoices):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    CANCELLED = "CANCELLED"


class ExecutionChunk(models.Model):
    """A slice of an execution's accounts, processed by one Celery task in one
    transaction. Claimed by a conditional update, so a redelivered task or a second
    worker never processes it twice."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    account_ids = models.JSONField(help_text="The accounts of this chunk, as UUID strings.")
    status = models.CharField(max_length=10, choices=ChunkStatus.choices, default=ChunkStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When its task was last handed to the broker; empty: never, or the broker refused it "
        "(the recovery sweep sends it again).",
    )
    # Held executions only: the chunk's part of the approval totals.
    gross_amount = models.DecimalField(
        **MONEY, null=True, blank=True, help_text="Σ |trade amount| of the chunk's orders in the approval currency."
    )
    # Database defaults too: the planner inserts chunks in raw SQL (bulk.plan).
    order_count = models.PositiveIntegerField(default=0, db_default=0)
    approval_note = models.TextField(
        blank=True, default="", db_default="",
        help_text="Why the gross amount is unknown (a missing FX rate): the execution then needs approval.",
    )

    class Meta:
        ordering = ["execution", "number"]
        constraints = [models.UniqueConstraint(fields=["execution", "number"], name="chunk_unique_number")]

    def __str__(self):
        return f"chunk {self.number} of execution {short_id(self.execution_id)}"


class ResultStatus(models.TextChoices):
    PROPOSED = "PROPOSED"
    NO_TRADES = "NO_TRADES"
    SKIPPED_LOCKED = "SKIPPED_LOCKED"
    SKIPPED_WITHIN_RANGE = "SKIPPED_WITHIN_RANGE"
    FAILED = "FAILED"


class ExecutionResult(models.Model):
    # The unique (execution, account) key below is the index for the execution's results.
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="results", db_index=False)
    account = models.ForeignKey(PortfolioAccount, on_delete=models.CASCADE, related_name="execution_results")
    status = models.CharField(max_length=20, choices=ResultStatus.choices)
    error = models.TextField(blank=True)
    total_value = models.DecimalField(**MONEY, null=True, blank=True)
    cash_before = models.DecimalField(**MONEY, null=True, blank=True)
    cash_after = models.DecimalField(**MONEY, null=True, blank=True)
    order_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    # What the restrictions changed (§11): [{"instrument_id", "rule", "effect", "substitute_id"?, "list"}].
    adjustments = models.JSONField(default=list, blank=True)
    price_fallbacks = models.JSONField(
        default=list, blank=True, help_text="Instruments the live price connector did not price (§9)."
    )
    # Tax-aware runs (§12): {"short", "long", "unknown_cost_units"} and, per sell, its lots and estimated gain.
    estimated_realized_gain = models.JSONField(null=True, blank=True)
    tax_orders = models.JSONField(
        null=True, blank=True,
        help_text="Per sell of a tax-aware run: [account_id, instrument_id, estimated_gain, [[lot_id, units], ...]].",
    )

    class Meta:
        ordering = ["execution", "account"]
        constraints = [
            # Exactly once in effect: an account has one result per execution, enforced here.
            models.UniqueConstraint(fields=["execution", "account"], name="result_unique_execution_account"),
        ]

    def __str__(self):
        return f"{related(self, 'account', lambda a: a.client_id)}: {self.status}"


class AccountLease(models.Model):
    """An account taken by an unfinished execution. The primary key makes "at most one
    running execution per account" a database rule: a second execution cannot take
    the account and records it as failed with the holder's id."""

    # No database constraints: a whole-book plan inserts ~100,000 leases in one statement,
    # and checking (and key-share locking) every account and the execution row took half
    # of it. A lease is short-lived coordination, taken from accounts just selected and
    # removed by its own execution; deleting an account or execution still cascades
    # through the ORM.
    account = models.OneToOneField(
        PortfolioAccount, primary_key=True, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    execution = models.ForeignKey(
        Execution, on_delete=models.CASCADE, related_name="leases", db_constraint=False, db_index=False
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["execution"])]

    def __str__(self):
        return f"{related(self, 'account', lambda a: a.client_id)} held by execution {short_id(self.execution_id)}"
