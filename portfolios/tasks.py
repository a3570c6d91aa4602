from celery import shared_task

from .services import allocation_alerts_refresh, idempotency_records_purge


@shared_task
def idempotency_records_purge_task() -> int:
    """Delete idempotency records older than the 24 h window; returns how many."""
    return idempotency_records_purge()


@shared_task
def allocation_alerts_refresh_task() -> int:
    """Recompute every allocation's alerts (daily); returns how many need attention."""
    return allocation_alerts_refresh()
