import uuid

from django.db import models
from django.db.models import Q

from .fields import PRICE, RATE, UNITS, validate_currency, validate_isin


class InstrumentType(models.TextChoices):
    EQUITY = "EQUITY"
    ETF = "ETF"
    FUND = "FUND"
    BOND = "BOND"
    CRYPTO = "CRYPTO"
    FUTURE = "FUTURE"
    CASH = "CASH"


class FuturesCost(models.TextChoices):
    LATER = "LATER", "Later (buying costs no cash now)"
    IMMEDIATE = "IMMEDIATE", "Immediate (buying costs its fees now)"


class Instrument(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    isin = models.CharField(
        "ISIN", max_length=12, unique=True, null=True, blank=True, validators=[validate_isin]
    )
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=10, choices=InstrumentType.choices)
    currency = models.CharField(
        max_length=3,
        validators=[validate_currency],
        help_text="Trading currency; for a CASH instrument, the currency it stands for.",
    )
    tradable = models.BooleanField(default=True)
    block_size = models.DecimalField(
        **UNITS,
        null=True,
        blank=True,
        help_text="Smallest tradable unit (1, 0.01, 0.00000001). Empty: the type's default decimals.",
    )
    futures_cost = models.CharField(
        max_length=10, choices=FuturesCost.choices, null=True, blank=True,
        help_text="Futures only: what buying costs in cash now.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["name"]), models.Index(fields=["type", "tradable"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(block_size__isnull=True) | Q(block_size__gt=0),
                name="instrument_block_size_positive",
            ),
            models.CheckConstraint(
                condition=Q(futures_cost__isnull=True) | Q(type=InstrumentType.FUTURE),
                name="instrument_futures_cost_only_for_futures",
            ),
            models.CheckConstraint(
                condition=~Q(type=InstrumentType.FUTURE) | Q(futures_cost__isnull=False),
                name="instrument_future_has_futures_cost",
            ),
            models.UniqueConstraint(
                fields=["currency"],
                condition=Q(type=InstrumentType.CASH),
                name="instrument_one_cash_instrument_per_currency",
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.isin})" if self.isin else self.name

    @property
    def label(self) -> str:
        """How the instrument is named in messages: its ISIN, else its name."""
        return self.isin or self.name


class Price(models.Model):
    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="prices")
    source = models.CharField(max_length=50, default="default")
    effective_at = models.DateField()
    value = models.DecimalField(**PRICE, help_text="In the instrument's currency.")
    quoted_at = models.DateTimeField(
        null=True, blank=True, help_text="The quote's time when it came with one (§9); it counts for its UTC date."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["instrument", "source", "-effective_at"]
        constraints = [
            # Also the index behind "latest price at or before a date".
            models.UniqueConstraint(
                fields=["instrument", "source", "effective_at"], name="price_unique_instrument_source_date"
            ),
            models.CheckConstraint(condition=Q(value__gt=0), name="price_value_positive"),
        ]

    def __str__(self):
        return f"{self.instrument_id} {self.effective_at} {self.value}"


class FxRate(models.Model):
    """Units of `quote` per 1 unit of `base` at `effective_at`."""

    base = models.CharField(max_length=3, validators=[validate_currency])
    quote = models.CharField(max_length=3, validators=[validate_currency])
    effective_at = models.DateField()
    rate = models.DecimalField(**RATE)
    quoted_at = models.DateTimeField(
        null=True, blank=True, help_text="The rate's time when it came with one (§9); it counts for its UTC date."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["base", "quote", "-effective_at"]
        verbose_name = "FX rate"
        constraints = [
            models.UniqueConstraint(fields=["base", "quote", "effective_at"], name="fxrate_unique_pair_date"),
            models.CheckConstraint(condition=Q(rate__gt=0), name="fxrate_rate_positive"),
            models.CheckConstraint(condition=~Q(base=models.F("quote")), name="fxrate_distinct_currencies"),
        ]

    def __str__(self):
        return f"{self.base}/{self.quote} {self.effective_at} {self.rate}"
