"""Every write of the imports app (docs/imports.md)."""

from ..models import ImportJob, ImportKind, ImportStatus
from .allocations import allocation_import
from .fills import fills_import_run
from .holdings import breaks_accept, holdings_import_run, holdings_snapshot_load
from .jobs import RUN_TASK, import_claim, import_create, import_enqueue, import_fail
from .market_data import market_data_import_run


def import_run(*, import_id) -> ImportJob | None:
    """Claim a PENDING import and run it to its end; None when another worker has it
    (a second delivery of the message does nothing). An unexpected error fails the
    import with the error and is raised again."""
    job = import_claim(import_id)
    if job is None:
        return None
    try:
        if job.kind == ImportKind.HOLDINGS:
            return holdings_import_run(job=job)
        if job.kind == ImportKind.FILLS:
            return fills_import_run(job=job)
        return market_data_import_run(job=job)
    except Exception as exc:
        job.refresh_from_db()
        if job.status == ImportStatus.RUNNING:
            import_fail(job, errors=[{"line": None, "field": "", "message": f"the import failed: {exc!r}"}])
        raise


__all__ = [
    "RUN_TASK", "allocation_import", "breaks_accept", "fills_import_run", "holdings_import_run", "holdings_snapshot_load", "import_claim", "import_create", "import_enqueue",
    "import_run", "market_data_import_run",
]
