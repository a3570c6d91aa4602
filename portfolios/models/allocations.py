import uuid

from django.conf import settings
from django.db import models

from core.formatting import percent, related
from django.db.models import F, Q

from .fields import WEIGHT, validate_currency
from .instruments import Instrument


class WeightType(models.TextChoices):
    STATIC = "STATIC"
    FLOATING = "FLOATING"
    PERIODICAL = "PERIODICAL"


class PeriodType(models.TextChoices):
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    QUARTERLY = "QUARTERLY"
    ANNUALLY = "ANNUALLY"


class InstrumentIdType(models.TextChoices):
    ISIN = "ISIN"
    UUID = "UUID"


class Allocation(models.Model):
    """A model portfolio. Its lines live in immutable versions; the newest is current."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    base_currency = models.CharField(max_length=3, default="EUR", validators=[validate_currency])
    current_version = models.ForeignKey(
        "AllocationVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name or f"Allocation {str(self.id)[:8]}"


class AllocationVersion(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    allocation = models.ForeignKey(Allocation, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200, blank=True, help_text="The allocation's name when saved.")
    effective_from = models.DateField()
    weight_type = models.CharField(max_length=10, choices=WeightType.choices, default=WeightType.STATIC)
    period_type = models.CharField(max_length=10, choices=PeriodType.choices, null=True, blank=True)
    period_count = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    change_summary = models.TextField(blank=True, help_text="What changed against the previous version.")

    class Meta:
        ordering = ["allocation", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["allocation", "version"], name="allocationversion_unique_number"),
            models.CheckConstraint(
                condition=(Q(weight_type=WeightType.PERIODICAL) & Q(period_type__isnull=False) & Q(period_count__gte=1))
                | (~Q(weight_type=WeightType.PERIODICAL) & Q(period_type__isnull=True) & Q(period_count__isnull=True)),
                name="allocationversion_period_only_for_periodical",
            ),
        ]

    def __str__(self):
        return f"{self.allocation} v{self.version}"


class AllocationLine(models.Model):
    # `allocation` repeats version.allocation so the admin can edit the current
    # lines inline on the allocation page and filters can reach them in one join.
    allocation = models.ForeignKey(Allocation, on_delete=models.CASCADE, related_name="lines")
    version = models.ForeignKey(AllocationVersion, on_delete=models.CASCADE, related_name="lines")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="allocation_lines")
    instrument_id_type = models.CharField(
        max_length=4, choices=InstrumentIdType.choices, default=InstrumentIdType.ISIN
    )
    weight = models.DecimalField(**WEIGHT)
    min_weight = models.DecimalField(**WEIGHT, null=True, blank=True)
    max_weight = models.DecimalField(**WEIGHT, null=True, blank=True)

    class Meta:
        ordering = ["version", "-weight", "id"]
        constraints = [
            models.UniqueConstraint(fields=["version", "instrument"], name="allocationline_unique_instrument"),
            models.CheckConstraint(condition=Q(weight__gt=0), name="allocationline_weight_positive"),
            models.CheckConstraint(
                condition=Q(min_weight__isnull=True) | (Q(min_weight__gte=0) & Q(min_weight__lte=F("weight"))),
                name="allocationline_min_within_0_and_weight",
            ),
            models.CheckConstraint(
                condition=Q(max_weight__isnull=True) | (Q(max_weight__gte=F("weight")) & Q(max_weight__lte=1)),
                name="allocationline_max_within_weight_and_1",
            ),
        ]

    def __str__(self):
        return f"{related(self, 'instrument', lambda i: i.name)} {percent(self.weight)}"
