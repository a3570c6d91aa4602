"""Bulk imports (domain.md §13): one row per file received, and the breaks of a
reconciliation."""

import os
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.db.models import Q

from portfolios.models import Instrument, PortfolioAccount
from portfolios.models.fields import UNITS


def imports_storage() -> FileSystemStorage:
    """Where received files are kept: settings.IMPORTS_ROOT, else the environment's
    IMPORTS_ROOT, else var/imports/. The web process writes there and the worker reads,
    so several hosts need a shared folder (or another storage in its place)."""
    root = (getattr(settings, "IMPORTS_ROOT", None) or os.environ.get("IMPORTS_ROOT")
            or Path(settings.BASE_DIR) / "var" / "imports")
    return FileSystemStorage(location=root)


class ImportKind(models.TextChoices):
    HOLDINGS = "HOLDINGS"
    PRICES = "PRICES"
    FX_RATES = "FX_RATES"
    FILLS = "FILLS", "Fills (executed units and prices of trade orders)"


class ImportMode(models.TextChoices):
    APPLY = "APPLY", "Apply (write the snapshot)"
    RECONCILE = "RECONCILE", "Reconcile (list the breaks, write nothing)"


class ImportStatus(models.TextChoices):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    DONE = "DONE"
    AWAITING_ACCEPTANCE = "AWAITING_ACCEPTANCE"


class AccountMatch(models.TextChoices):
    ACCOUNT_ID = "account_id"
    CLIENT_ID = "client_id"


class ImportJob(models.Model):
    """One file received: who sent it, what it held, what it changed or would change."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=10, choices=ImportKind.choices)
    mode = models.CharField(max_length=10, choices=ImportMode.choices, default=ImportMode.APPLY)
    match = models.CharField(max_length=10, choices=AccountMatch.choices, default=AccountMatch.ACCOUNT_ID)
    tolerance = models.DecimalField(**UNITS, default=0, help_text="Differences up to this are not breaks.")
    status = models.CharField(max_length=20, choices=ImportStatus.choices, default=ImportStatus.PENDING)
    file = models.FileField(upload_to="%Y/%m/%d/", storage=imports_storage, max_length=300)
    file_name = models.CharField(max_length=255)
    sha256 = models.CharField("SHA-256", max_length=64)
    size = models.BigIntegerField(default=0, help_text="Bytes.")
    rows = models.BigIntegerField(default=0, help_text="Data rows in the file.")
    rows_changed = models.BigIntegerField(default=0, help_text="Positions, cash accounts or quotes written.")
    accounts_changed = models.BigIntegerField(default=0)
    break_count = models.BigIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="[{line, field, message}], the first 1000.")
    error_count = models.BigIntegerField(default=0)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "import"
        constraints = [
            models.UniqueConstraint(
                fields=["created_by", "idempotency_key"], condition=Q(idempotency_key__isnull=False),
                name="importjob_unique_idempotency_key",
            ),
        ]

    def __str__(self):
        return f"{self.kind} {self.mode} {self.file_name} ({str(self.id)[:8]})"

    @property
    def progress_key(self) -> str:
        """The cache key of the progress a worker reports while the connection is busy."""
        return f"imports:progress:{self.pk}"


class ImportBreak(models.Model):
    """One difference between the book and a reconciled file, for a position
    (`instrument` set) or a cash account (`currency` and `cash_kind` set)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    import_job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="breaks")
    account = models.ForeignKey(PortfolioAccount, on_delete=models.CASCADE, related_name="+", db_index=False)
    instrument = models.ForeignKey(Instrument, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                   db_index=False)
    currency = models.CharField(max_length=3, null=True, blank=True)
    cash_kind = models.CharField(max_length=10, null=True, blank=True)
    book = models.DecimalField(**UNITS, null=True, blank=True, help_text="Units or balance in Ballast; empty: none.")
    file = models.DecimalField(**UNITS, null=True, blank=True, help_text="In the file; empty: not in the file.")
    difference = models.DecimalField(**UNITS, help_text="file − book (a missing side counts as 0).")
    accepted = models.BooleanField(default=False)

    class Meta:
        ordering = ["import_job", "account", "instrument", "currency"]
        indexes = [models.Index(fields=["import_job", "account"])]

    def __str__(self):
        return f"{self.account_id} {self.instrument_id or self.currency}: {self.book} → {self.file}"
