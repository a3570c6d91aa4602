"""Celery tasks of the imports app: each takes an id and is one call into a service."""

from celery import shared_task

from . import services


@shared_task(name=services.RUN_TASK, acks_late=True, reject_on_worker_lost=True)
def import_run(import_id: str) -> str | None:
    """Run one import. Safe to deliver twice: the second finds it no longer PENDING."""
    job = services.import_run(import_id=import_id)
    return None if job is None else job.status
