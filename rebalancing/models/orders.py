"""Trade orders (spec §5) and portfolio orders (spec §6)."""

import uuid

from django.conf import settings
from django.contrib.postgres.functions import TransactionNow
from django.db import models

from core.formatting import money, related, units
from django.db.models import Q
from django.utils import timezone

from portfolios.models import PortfolioAccount
from portfolios.models.fields import MONEY, PRICE, UNITS

from .executions import Execution


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
    # The cash account that pays for the order or receives its proceeds (§10); for an FX
    # order the paying one, and `counter_cash_account` the one receiving the bought
    # currency (null: created at settlement). Null on orders written before §10.
    cash_account = models.ForeignKey(
        "portfolios.CashAccount", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False,
        db_constraint=False,
    )
    counter_cash_account = models.ForeignKey(
        "portfolios.CashAccount", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False,
        db_constraint=False, help_text="FX orders: the cash account of the bought (SELL: sold) currency.",
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
            # One execution's orders in the admin's order (-created_at, id), for its
            # execution filter: without it PostgreSQL walked the created_at index of the
            # whole table back to the execution (bench/admin_lists.py); with id the page
            # reads 100 entries, not the chunk's thousands of orders sharing one
            # created_at. Its cost to an execution's COPY: docs/admin.md, "Figures".
            models.Index(fields=["execution", "-created_at", "id"], name="tradeorder_execution_created"),
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
        return f"{self.side} {units(self.units)} {related(self, 'instrument', lambda i: i.name)} for {related(self, 'account', lambda a: a.client_id)} ({self.status})"


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
    user_id = models.CharField(
        max_length=255, blank=True, default="",
        help_text="The partner's reference of its end user, kept and returned as sent (api.md).",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "-created_at"])]
        constraints = [models.CheckConstraint(condition=Q(cash_amount__gt=0), name="portfolioorder_amount_positive")]

    def __str__(self):
        return f"{self.side} {money(self.cash_amount, self.currency)} for {related(self, 'account', lambda a: a.client_id)}"
