import uuid

from django.conf import settings
from django.contrib.postgres.functions import TransactionNow
from django.db import models
from django.db.models import Q
from django.utils import timezone

from portfolios.models import PeriodType, PortfolioAccount
from portfolios.models.fields import MONEY, PRICE, UNITS, WEIGHT

PCT = {"max_digits": 7, "decimal_places": 4}


class OrderBasis(models.TextChoices):
    TRADE_AMOUNT = "TRADE_AMOUNT", "Trade amount (keep the amount, derive the unit price)"
    UNITS = "UNITS", "Units (keep the market price, derive the amount)"


class AvailableCash(models.TextChoices):
    ALL_ACCOUNTS = "ALL_ACCOUNTS", "All cash accounts"
    CASH_ACCOUNTS_ONLY = "CASH_ACCOUNTS_ONLY", "Cash accounts only (not settlement or margin)"
    DEFAULT_ACCOUNT_ONLY = "DEFAULT_ACCOUNT_ONLY", "The default cash account only"


class Method(models.TextChoices):
    CONSERVATIVE = "CONSERVATIVE"
    EXCHANGE = "EXCHANGE"
    FULL = "FULL"
    FULL_INCLUDING_ORDERS = "FULL_INCLUDING_ORDERS"


class RebalancePreferences(models.Model):
    """The house rules of rebalancing (spec §4.2).

    One global row (`is_global`) plus at most one override row per account. Every
    field is nullable: null inherits (account → global → the built-in default).
    """

    account = models.OneToOneField(
        PortfolioAccount, null=True, blank=True, on_delete=models.CASCADE, related_name="rebalance_preferences"
    )
    is_global = models.BooleanField(default=False, editable=False)
    cash_range_min = models.DecimalField(**MONEY, null=True, blank=True)
    cash_range_max = models.DecimalField(**MONEY, null=True, blank=True)
    negative_cash_buffer_pct = models.DecimalField(**PCT, null=True, blank=True)
    negative_cash_buffer_amount = models.DecimalField(**MONEY, null=True, blank=True)
    positive_cash_buffer_pct = models.DecimalField(**PCT, null=True, blank=True)
    positive_cash_buffer_amount = models.DecimalField(**MONEY, null=True, blank=True)
    order_basis = models.CharField(max_length=12, choices=OrderBasis.choices, null=True, blank=True)
    cash_from_sells_pct = models.DecimalField(**PCT, null=True, blank=True)
    min_trade_amount = models.DecimalField(**MONEY, null=True, blank=True)
    filter_by_min_max = models.BooleanField(null=True, blank=True)
    sell_all_transaction_type = models.CharField(max_length=30, null=True, blank=True)
    available_cash = models.CharField(max_length=20, choices=AvailableCash.choices, null=True, blank=True)
    price_source = models.CharField(max_length=50, null=True, blank=True)
    default_decimals = models.JSONField(
        null=True, blank=True, help_text='Decimals per instrument type when an instrument has no block size, e.g. {"FUND": 3}.'
    )
    futures_fee_pct = models.DecimalField(**PCT, null=True, blank=True)
    # Four-eyes approval of large executions (docs/executions.md): the global row only.
    approval_gross_amount = models.DecimalField(
        **MONEY, null=True, blank=True,
        help_text="An execution whose trade orders add up to more than this (Σ |trade amount| in the approval "
                  "currency) waits for approval; empty: no limit.",
    )
    approval_order_count = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="An execution writing more trade orders than this waits for approval; empty: no limit.",
    )
    approval_currency = models.CharField(
        max_length=3, default="EUR", help_text="The currency of the approval gross amount (ISO 4217)."
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )

    class Meta:
        verbose_name = "rebalance preferences"
        verbose_name_plural = "rebalance preferences"
        constraints = [
            models.UniqueConstraint(fields=["is_global"], condition=Q(is_global=True), name="preferences_one_global_row"),
            models.CheckConstraint(
                condition=(Q(is_global=True) & Q(account__isnull=True)) | (Q(is_global=False) & Q(account__isnull=False)),
                name="preferences_global_xor_account",
            ),
            *[
                models.CheckConstraint(
                    condition=Q(**{f"{name}__isnull": True}) | (Q(**{f"{name}__gte": 0}) & Q(**{f"{name}__lte": 100})),
                    name=f"preferences_{name}_0_to_100",
                )
                for name in ("negative_cash_buffer_pct", "positive_cash_buffer_pct", "cash_from_sells_pct", "futures_fee_pct")
            ],
            *[
                models.CheckConstraint(
                    condition=Q(**{f"{name}__isnull": True}) | Q(**{f"{name}__gte": 0}), name=f"preferences_{name}_not_negative"
                )
                for name in ("negative_cash_buffer_amount", "positive_cash_buffer_amount", "min_trade_amount")
            ],
            models.CheckConstraint(
                condition=Q(approval_gross_amount__isnull=True) | Q(approval_gross_amount__gte=0),
                name="preferences_approval_gross_amount_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(approval_order_count__isnull=True) | Q(approval_order_count__gte=1),
                name="preferences_approval_order_count_positive",
            ),
        ]

    def __str__(self):
        return "Global default preferences" if self.is_global else f"Preferences of {self.account}"


# --- Executions, trade orders, portfolio orders (spec §1, §5, §6) ------------------


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
        return f"chunk {self.number} of {self.execution_id}"


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

    class Meta:
        ordering = ["execution", "account"]
        constraints = [
            # Exactly once in effect: an account has one result per execution, enforced here.
            models.UniqueConstraint(fields=["execution", "account"], name="result_unique_execution_account"),
        ]

    def __str__(self):
        return f"{self.account_id}: {self.status}"


class Side(models.TextChoices):
    BUY = "BUY"
    SELL = "SELL"


class ExecutionMethod(models.TextChoices):
    NET_TRADE_AMOUNT = "NET_TRADE_AMOUNT"
    UNITS = "UNITS"


class TradeOrderStatus(models.TextChoices):
    PENDING_APPROVAL = "PENDING_APPROVAL", "Pending approval (of its execution)"
    OPEN = "OPEN"
    ACCEPTED = "ACCEPTED"
    EXECUTABLE = "EXECUTABLE"
    SENT_TO_EXECUTION = "SENT_TO_EXECUTION"
    IN_EXECUTION = "IN_EXECUTION"
    PARTIALLY_EXECUTED = "PARTIALLY_EXECUTED"
    EXECUTED_IN_MARKET = "EXECUTED_IN_MARKET"
    SETTLED_IN_MARKET = "SETTLED_IN_MARKET"
    SETTLED = "SETTLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    REPLACED = "REPLACED"


class TradeOrder(models.Model):
    """One order for one instrument in one account (spec §5)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The composite (…, status) indexes below serve every lookup by account, instrument
    # and execution, so these foreign keys get no single-column index of their own:
    # each index costs a few microseconds per order of a whole-book COPY.
    # No database constraints on the foreign keys of this table (docs/executions.md,
    # "Trade order table"): checked row by row at commit, they were a quarter to a third
    # of PostgreSQL's work in a whole-book execution. Nothing deletes accounts (they are
    # closed) or portfolio orders; an execution's orders are written by its own chunks
    # while they hold its row lock; an ordered instrument is held or targeted (rows that
    # do protect it in the database); and on_delete=PROTECT guards all four in the ORM.
    account = models.ForeignKey(
        PortfolioAccount, on_delete=models.PROTECT, related_name="trade_orders", db_index=False, db_constraint=False
    )
    instrument = models.ForeignKey(
        "portfolios.Instrument", on_delete=models.PROTECT, related_name="trade_orders", db_index=False,
        db_constraint=False,
    )
    side = models.CharField(max_length=4, choices=Side.choices)
    transaction_type = models.CharField(max_length=30)
    units = models.DecimalField(**UNITS)
    unit_price = models.DecimalField(**PRICE)
    trade_amount = models.DecimalField(**MONEY, help_text="In the instrument's currency.")
    currency = models.CharField(max_length=3)
    execution_method = models.CharField(max_length=20, choices=ExecutionMethod.choices)
    status = models.CharField(max_length=20, choices=TradeOrderStatus.choices, default=TradeOrderStatus.OPEN)
    # Database defaults too (db_default): an execution's COPY leaves these columns out,
    # and PostgreSQL fills them for less than it takes to parse them (docs/executions.md).
    executed_units = models.DecimalField(**UNITS, default=0, db_default=0, help_text="Units executed so far.")
    executed_amount = models.DecimalField(
        **MONEY, default=0, db_default=0, help_text="Cash moved so far, instrument currency."
    )
    settled_units = models.DecimalField(**UNITS, default=0, db_default=0, help_text="Units already booked into the position.")
    settled_amount = models.DecimalField(
        **MONEY, default=0, db_default=0, help_text="Cash already booked into the cash account."
    )
    execution = models.ForeignKey(
        Execution, null=True, blank=True, on_delete=models.PROTECT, related_name="trade_orders", db_index=False,
        db_constraint=False,
    )
    portfolio_order = models.ForeignKey(
        "PortfolioOrder", null=True, blank=True, on_delete=models.PROTECT, related_name="trade_orders", db_index=False,
        db_constraint=False,
    )
    # The database default is the transaction's start (CURRENT_TIMESTAMP), which an
    # execution's COPY relies on (bulk.trade_orders_write).
    created_at = models.DateTimeField(default=timezone.now, db_default=TransactionNow(), db_index=True)
    updated_at = models.DateTimeField(default=timezone.now, db_default=TransactionNow())

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [
            models.Index(fields=["account", "status"]),
            models.Index(fields=["execution", "status"]),
            models.Index(fields=["status", "-created_at"]),
            models.Index(fields=["instrument", "status"]),
            # Most orders come from executions: index only those of portfolio orders.
            models.Index(
                fields=["portfolio_order"], condition=Q(portfolio_order__isnull=False), name="tradeorder_portfolio_order"
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(units__gt=0), name="tradeorder_units_positive"),
            models.CheckConstraint(condition=Q(executed_units__gte=0), name="tradeorder_executed_units_not_negative"),
            models.CheckConstraint(condition=Q(executed_units__lte=models.F("units")), name="tradeorder_executed_within_units"),
        ]

    def __str__(self):
        return f"{self.side} {self.units} {self.instrument_id} ({self.status})"


class PortfolioOrderStatus(models.TextChoices):
    OPEN = "OPEN", "Open (trade orders not yet executing)"
    IN_PROGRESS = "IN_PROGRESS", "In progress"
    COMPLETED = "COMPLETED", "Completed (every trade order settled)"
    CANCELLED = "CANCELLED", "Cancelled"
    FAILED = "FAILED", "Failed"


class Initiation(models.TextChoices):
    API = "API"
    ADMIN = "ADMIN"
    SAVINGS_PLAN = "SAVINGS_PLAN"


class PortfolioOrder(models.Model):
    """A client's cash order against a configured account, split into trade orders (spec §6)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(PortfolioAccount, on_delete=models.PROTECT, related_name="portfolio_orders")
    side = models.CharField(max_length=4, choices=Side.choices)
    cash_amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=12, choices=PortfolioOrderStatus.choices, default=PortfolioOrderStatus.OPEN)
    initiation = models.CharField(max_length=12, choices=Initiation.choices, default=Initiation.API)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "-created_at"])]
        constraints = [models.CheckConstraint(condition=Q(cash_amount__gt=0), name="portfolioorder_amount_positive")]

    def __str__(self):
        return f"{self.side} {self.cash_amount} {self.currency} for {self.account_id}"


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
        return f"{self.account_id} held by {self.execution_id}"


# --- Automation: strategies, due-date claims, savings plans (spec §7) --------------


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
        owner = f"configuration of {self.configuration_id}" if self.configuration_id else f"allocation {self.allocation_id}"
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
        return f"{self.strategy_id} {self.due_date}: {self.outcome}"


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
        return f"{self.interval} {self.cash_amount} {self.currency} for {self.account_id}"


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
        return f"{self.savings_plan_id} {self.due_date}: {self.outcome}"
