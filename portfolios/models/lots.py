"""Tax lots under positions and the realized gains of their relief (spec §12, docs/tax.md).

The rule "a position's units equal the sum of its lots' units" has one writer:
portfolios/services/lots.py. Every path that changes a position's units (holdings
snapshots, settlement, the admin) goes through it.
"""

import uuid

from django.db import models
from django.db.models import Q

from core.formatting import units as units_text

from .accounts import PortfolioAccount, Position
from .fields import MONEY, PRICE, RATE, UNITS, validate_currency
from .instruments import Instrument


class LotMethod(models.TextChoices):
    FIFO = "FIFO", "FIFO (oldest lot first)"
    LIFO = "LIFO", "LIFO (newest lot first)"
    HIFO = "HIFO", "HIFO (highest unit cost first)"
    MIN_TAX = "MIN_TAX", "Minimum tax (losses first, then long-term gains, smallest gain first)"


class Term(models.TextChoices):
    SHORT = "SHORT", "Short-term"
    LONG = "LONG", "Long-term"


class Lot(models.Model):
    """Units of a position bought on one date at one unit cost (null: unknown cost)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    position = models.ForeignKey(Position, on_delete=models.CASCADE, related_name="lots")
    acquired_on = models.DateField()
    units = models.DecimalField(**UNITS)
    unit_cost = models.DecimalField(
        **PRICE, null=True, blank=True, help_text="Per unit, fees included; empty: unknown (no gain is computed)."
    )
    cost_currency = models.CharField(max_length=3, validators=[validate_currency])

    class Meta:
        ordering = ["position", "acquired_on", "id"]
        indexes = [models.Index(fields=["position", "acquired_on"])]
        constraints = [
            models.CheckConstraint(condition=Q(units__gt=0), name="lot_units_positive"),
            models.CheckConstraint(
                condition=Q(unit_cost__isnull=True) | Q(unit_cost__gte=0), name="lot_unit_cost_not_negative"
            ),
        ]

    def __str__(self):
        cost = "unknown cost" if self.unit_cost is None else f"at {self.unit_cost} {self.cost_currency}"
        return f"{units_text(self.units)} on {self.acquired_on} {cost}"


class RealizedGain(models.Model):
    """One relief of (part of) a lot: by a settled sell (`trade_order_id`) or by a
    holdings snapshot that removed units (no trade order). Amounts in the
    instrument's currency (`currency`) and in the account's base currency at the FX
    of `realized_on`; all null for a lot of unknown cost (counted in no total)."""

    id = models.BigAutoField(primary_key=True)
    account = models.ForeignKey(PortfolioAccount, on_delete=models.CASCADE, related_name="realized_gains")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    lot_id = models.UUIDField(help_text="The lot relieved (it is gone once fully relieved).")
    acquired_on = models.DateField()
    units = models.DecimalField(**UNITS)
    realized_on = models.DateField()
    term = models.CharField(max_length=5, choices=Term.choices)
    currency = models.CharField(max_length=3)
    proceeds = models.DecimalField(**MONEY, null=True, blank=True)
    cost = models.DecimalField(**MONEY, null=True, blank=True)
    gain = models.DecimalField(**MONEY, null=True, blank=True)
    base_currency = models.CharField(max_length=3)
    fx_rate = models.DecimalField(**RATE, null=True, blank=True, help_text="Base currency per 1 unit of `currency`.")
    proceeds_base = models.DecimalField(**MONEY, null=True, blank=True)
    cost_base = models.DecimalField(**MONEY, null=True, blank=True)
    gain_base = models.DecimalField(**MONEY, null=True, blank=True)
    trade_order_id = models.UUIDField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account", "realized_on", "id"]
        indexes = [models.Index(fields=["account", "realized_on"])]
        constraints = [models.CheckConstraint(condition=Q(units__gt=0), name="realizedgain_units_positive")]

    def __str__(self):
        return f"{units_text(self.units)} realized on {self.realized_on} ({self.term})"
