from celery import shared_task

from . import services


@shared_task
def api_tokens_purge_task() -> int:
    """Daily: delete expired API tokens."""
    return services.api_tokens_purge()
