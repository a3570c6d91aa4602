from celery import shared_task

from .services import idempotency_records_purge


@shared_task
def idempotency_records_purge_task() -> int:
    """Delete idempotency records older than the 24 h window; returns how many."""
    return idempotency_records_purge()
