import uuid

from django.db import models

from core.formatting import money, related, units
from django.db.models import Q

from .allocations import Allocation
from .fields import MONEY, UNITS, validate_currency
from .instruments import Instrument


class AccountType(models.TextChoices):
    PORTFOLIO = "PORTFOLIO", "Portfolio (managed against a model)"
    CUSTODY = "CUSTODY", "Custody (held, not managed)"
    CASH = "CASH", "Cash only"


class AccountStatus(models.TextChoices):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    CLOSED = "CLOSED"


class CashKind(models.TextChoices):
    CASH = "CASH", "Cash account"
    SETTLEMENT = "SETTLEMENT", "Settlement account"
    MARGIN = "MARGIN", "Margin account"


class PortfolioAccount(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client_id = models.CharField(max_length=100, db_index=True, help_text="The client's reference.")
    account_type = models.CharField(max_length=10, choices=AccountType.choices, default=AccountType.PORTFOLIO)
    base_currency = models.CharField(max_length=3, validators=[validate_currency], help_text="Reporting currency.")
    status = models.CharField(max_length=10, choices=AccountStatus.choices, default=AccountStatus.ACTIVE)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children",
        help_text="Set for a sub-portfolio: its holdings count toward the parent's totals.",
    )
    locked = models.BooleanField(default=False, help_text="Locked accounts never receive trade orders.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "portfolio account"
        indexes = [models.Index(fields=["status", "locked"])]
        constraints = [
            models.CheckConstraint(condition=~Q(parent=models.F("id")), name="account_not_own_parent"),
        ]

    def __str__(self):
        return f"{self.client_id} ({str(self.id)[:8]})"


class Position(models.Model):
    account = models.ForeignKey(PortfolioAccount, on_delete=models.CASCADE, related_name="positions")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="positions")
    units = models.DecimalField(**UNITS)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "instrument"]
        constraints = [
            models.UniqueConstraint(fields=["account", "instrument"], name="position_unique_instrument"),
            models.CheckConstraint(condition=Q(units__gte=0), name="position_units_not_negative"),
        ]

    def __str__(self):
        return f"{units(self.units)} × {related(self, 'instrument', lambda i: i.name)}"


class CashAccount(models.Model):
    account = models.ForeignKey(PortfolioAccount, on_delete=models.CASCADE, related_name="cash_accounts")
    currency = models.CharField(max_length=3, validators=[validate_currency])
    kind = models.CharField(max_length=10, choices=CashKind.choices, default=CashKind.CASH)
    balance = models.DecimalField(**MONEY, help_text="May be negative (an overdraft to cover).")
    is_default = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "-is_default", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["account", "currency", "kind"], name="cashaccount_unique_currency_kind"),
            models.UniqueConstraint(
                fields=["account"], condition=Q(is_default=True), name="cashaccount_one_default_per_account"
            ),
        ]

    def __str__(self):
        return f"{money(self.balance, self.currency)} ({self.kind})"


class Configuration(models.Model):
    """Links a PORTFOLIO account to the allocation it follows."""

    account = models.OneToOneField(
        PortfolioAccount, primary_key=True, on_delete=models.CASCADE, related_name="configuration"
    )
    allocation = models.ForeignKey(Allocation, on_delete=models.PROTECT, related_name="configurations")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.account} → {self.allocation}"
