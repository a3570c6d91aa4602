"""Reads of the imports app."""

from collections.abc import Iterator

from .models import ImportBreak, ImportJob, ImportStatus

BREAK_REPORT_COLUMNS = (
    "break_id", "account_id", "client_id", "instrument_id", "isin", "currency", "kind", "book", "file", "difference",
    "accepted",
)


def break_report_rows(job: ImportJob) -> Iterator[list]:
    """The break report: a header, then one row per break (streamed from the database
    in chunks, so a report of millions of breaks is never held in memory)."""
    yield list(BREAK_REPORT_COLUMNS)
    rows = (
        ImportBreak.objects.filter(import_job=job)
        .order_by("account__client_id", "account_id", "instrument__isin", "currency")
        .values_list("id", "account_id", "account__client_id", "instrument_id", "instrument__isin", "currency",
                     "cash_kind", "book", "file", "difference", "accepted")
        .iterator(chunk_size=5000)
    )
    for row in rows:
        yield ["" if v is None else (format(v.normalize(), "f") if hasattr(v, "normalize") else v) for v in row]


def import_progress_of(job: ImportJob) -> int:
    """Percent done: while the file is read the worker reports to the cache (the
    connection is busy with the COPY), otherwise on the row."""
    from django.core.cache import cache

    if job.status in (ImportStatus.DONE, ImportStatus.AWAITING_ACCEPTANCE):
        return 100
    if job.status != ImportStatus.RUNNING:
        return job.progress
    return max(job.progress, cache.get(job.progress_key) or 0)


ALLOCATION_COLUMNS = ("instrument_id", "isin", "instrument_name", "weight", "min_weight", "max_weight")


def allocation_rows(allocation) -> Iterator[tuple]:
    """The current version's lines as rows (header first), in the columns an
    allocation import reads (`instrument_id` is the UUID; extra columns are for people
    and must be dropped before importing the sheet back). One query."""
    from portfolios.models import AllocationLine
    from rebalancing.selectors.orders import decimal_text, text_cell

    yield ALLOCATION_COLUMNS
    if allocation.current_version_id is None:
        return
    lines = (AllocationLine.objects.filter(version_id=allocation.current_version_id).select_related("instrument")
             .order_by("-weight", "instrument__isin"))
    for line in lines:
        yield (str(line.instrument_id), line.instrument.isin or "", text_cell(line.instrument.name),
               decimal_text(line.weight), decimal_text(line.min_weight), decimal_text(line.max_weight))
