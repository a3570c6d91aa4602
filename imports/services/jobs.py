"""Receiving a file, claiming and finishing an import: what every kind of import shares."""

import csv
import datetime
import hashlib
import io
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation

from django.core.cache import cache
from django.core.files.base import File
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from core.dispatch import task_send
from core.errors import Conflict, FieldError, raise_if_errors

from ..models import AccountMatch, ImportJob, ImportKind, ImportMode, ImportStatus

RUN_TASK = "imports.tasks.import_run"
MAX_ERRORS = 1000  # kept and shown; the count says how many there were
CHUNK = 1 << 20


class ErrorList:
    """Row errors of a file: the first MAX_ERRORS kept, all of them counted."""

    def __init__(self):
        self.items: list[dict] = []
        self.count = 0

    def add(self, line: int, field: str, message: str) -> None:
        self.count += 1
        if len(self.items) < MAX_ERRORS:
            self.items.append({"line": line, "field": field, "message": message})

    def __bool__(self):
        return self.count > 0

    def sorted(self) -> list[dict]:
        return sorted(self.items, key=lambda e: (e["line"], e["field"]))


def _hash_and_size(upload) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    upload.seek(0)
    for chunk in iter(lambda: upload.read(CHUNK), b""):
        digest.update(chunk)
        size += len(chunk)
    upload.seek(0)
    return digest.hexdigest(), size


def import_create(
    *, kind: str, upload, file_name: str, user=None, mode: str = ImportMode.APPLY,
    match: str = AccountMatch.ACCOUNT_ID, tolerance: Decimal | str | None = None,
    idempotency_key: str | None = None, enqueue: bool = True,
) -> tuple[ImportJob, bool]:
    """Keep the file (a binary file object, read in 1 MB chunks) and record the import
    as PENDING; on commit, send it to a worker unless `enqueue` is false (the management
    command runs it in its own process). Returns (import, created): the same user and
    `idempotency_key` with the same file returns the first import; with another file,
    409."""
    errors = []
    if kind not in ImportKind.values:
        errors.append(FieldError("kind", f"must be one of {', '.join(ImportKind.values)}"))
    if mode not in ImportMode.values:
        errors.append(FieldError("mode", f"must be one of {', '.join(ImportMode.values)}"))
    elif mode == ImportMode.RECONCILE and kind != ImportKind.HOLDINGS:
        errors.append(FieldError("mode", "only a holdings file can be reconciled"))
    if match not in AccountMatch.values:
        errors.append(FieldError("match", f"must be one of {', '.join(AccountMatch.values)}"))
    try:
        tolerance = Decimal(str(tolerance if tolerance not in (None, "") else 0))
        if not tolerance.is_finite() or tolerance < 0:
            raise InvalidOperation
    except InvalidOperation:
        errors.append(FieldError("tolerance", "must be a number of 0 or more"))
        tolerance = Decimal(0)
    if not (file_name or "").strip():
        file_name = "upload.csv"
    raise_if_errors(errors)
    sha256, size = _hash_and_size(upload)
    user = user if getattr(user, "is_authenticated", False) else None
    if idempotency_key and user is not None:
        first = ImportJob.objects.filter(created_by=user, idempotency_key=idempotency_key).first()
        if first is not None:
            if first.sha256 != sha256 or (first.kind, first.mode, first.match) != (kind, mode, match):
                raise Conflict(f"Idempotency-Key {idempotency_key} was used for import {first.pk} with another file")
            return first, False
    job = ImportJob(
        kind=kind, mode=mode, match=match, tolerance=tolerance, file_name=file_name[:255], sha256=sha256, size=size,
        created_by=user, idempotency_key=idempotency_key if user is not None else None,
    )
    job.file.save(file_name.rsplit("/", 1)[-1][:100] or "upload.csv", File(upload), save=False)
    try:
        with transaction.atomic():
            job.save()
            audit_record(job, "create", {"file": (None, f"{job.file_name} sha256:{sha256}"), "mode": (None, mode)})
    except IntegrityError as exc:  # the same key, concurrently
        job.file.delete(save=False)
        raise Conflict(f"Idempotency-Key {idempotency_key} is in use") from exc
    if enqueue:
        transaction.on_commit(lambda: import_enqueue(job.pk))
    return job, True


def import_enqueue(import_id) -> None:
    task_send(RUN_TASK, str(import_id))


def import_claim(import_id) -> ImportJob | None:
    """PENDING → RUNNING; None when another worker has it (or it is finished)."""
    now = timezone.now()
    if not ImportJob.objects.filter(pk=import_id, status=ImportStatus.PENDING).update(
        status=ImportStatus.RUNNING, started_at=now, progress=0
    ):
        return None
    return ImportJob.objects.get(pk=import_id)


def import_progress(job: ImportJob, percent: float, *, live: bool = False) -> None:
    """Record progress. `live` (while a COPY holds the connection): in the cache, where
    the admin and the API look first; otherwise on the row (its own statement: callers
    run outside a transaction, so the progress bar sees it at once)."""
    percent = max(0, min(100, int(percent)))
    if percent == job.progress:
        return
    job.progress = percent
    if live:
        cache.set(job.progress_key, percent, 24 * 3600)
    else:
        ImportJob.objects.filter(pk=job.pk).update(progress=percent)


@transaction.atomic
def import_fail(job: ImportJob, *, errors: list[dict], error_count: int | None = None, rows: int | None = None) -> None:
    """FAILED with these errors; nothing of the file was written."""
    job.status = ImportStatus.FAILED
    job.errors = errors[:MAX_ERRORS]
    job.error_count = len(errors) if error_count is None else error_count
    if rows is not None:
        job.rows = rows
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "errors", "error_count", "rows", "finished_at"])
    audit_record(job, "import_failed", {"status": (ImportStatus.RUNNING, ImportStatus.FAILED)},
                 errors=job.error_count, rows=job.rows)


def import_finish(job: ImportJob, *, status: str, rows: int, rows_changed: int, accounts_changed: int,
                  break_count: int = 0, actor=None, **extra) -> None:
    """Record the outcome and its audit entry (in the caller's transaction)."""
    job_status_before = job.status
    job.status = status
    job.rows, job.rows_changed, job.accounts_changed, job.break_count = rows, rows_changed, accounts_changed, break_count
    job.progress = 100
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "rows", "rows_changed", "accounts_changed", "break_count", "progress",
                            "finished_at"])
    audit_record(
        job, "import", {"status": (job_status_before, status)}, actor=actor,
        file=job.file_name, sha256=job.sha256, rows=rows, rows_changed=rows_changed,
        accounts_changed=accounts_changed, breaks=break_count, **extra,
    )


class FileRows:
    """The stored file's rows as lists of strings, header first, streamed: CSV (UTF-8,
    a byte-order mark allowed) or, for a name ending in .xlsx, the first sheet read by
    openpyxl in read-only mode (numbers as Excel stores them, empty cells as "").
    `position()` is the bytes read so far (for progress). Use as a context manager."""

    def __init__(self, job: ImportJob):
        self.job = job
        self.handle = job.file.storage.open(job.file.name, "rb")
        self.raw = getattr(self.handle, "file", self.handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def position(self) -> int:
        try:
            return self.raw.tell()
        except (OSError, ValueError):
            return 0

    def __iter__(self) -> Iterator[list[str]]:
        if self.job.file_name.lower().endswith(".xlsx"):
            return _xlsx_rows(self.raw)
        return csv.reader(io.TextIOWrapper(self.raw, encoding="utf-8-sig", newline=""))


def _xlsx_rows(raw) -> Iterator[list[str]]:
    from openpyxl import load_workbook

    workbook = load_workbook(raw, read_only=True, data_only=True)
    try:
        sheet = workbook.worksheets[0]
        for values in sheet.iter_rows(values_only=True):
            yield ["" if v is None else _xlsx_text(v) for v in values]
    finally:
        workbook.close()


def _xlsx_text(value) -> str:
    """A cell as the CSV would have it. Excel keeps a date as a datetime at midnight
    without a zone: that is the date (`2026-03-02`); other date-times keep their time."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None and value.time() == datetime.time():
            return value.date().isoformat()
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def header_index(header: list[str], *, required: tuple, optional: tuple, errors: ErrorList) -> dict[str, int]:
    """Column name → position; unknown, missing or repeated columns are errors of line 0."""
    names = [h.strip().lower() for h in header]
    index = {}
    for position, name in enumerate(names):
        if name in index:
            errors.add(0, name, "column appears twice")
        elif name not in required + optional:
            errors.add(0, name or f"column {position + 1}",
                       f"unknown column; expected {', '.join(required + optional)}")
        index.setdefault(name, position)
    for name in required:
        if name not in index:
            errors.add(0, name, "required column is missing")
    return index
