"""The Celery app: configured from Django settings (CELERY_* names)."""

import gc
import os

from celery import Celery
from celery.signals import task_prerun, worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("ballast")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _database_connections_check(task=None, **kwargs):
    """Before each task, as Django does before each request: close a connection that is
    broken or older than CONN_MAX_AGE, so a reused one (CELERY_DB_REUSE_MAX) is sound.
    Not for a task run eagerly (`apply()`), which runs inside its caller's transaction."""
    from django.db import close_old_connections

    if task is not None and getattr(task.request, "is_eager", False):
        return
    close_old_connections()


# A chunk allocates some hundred thousand objects; with the default thresholds the
# collector ran a full collection of the whole worker heap (Django, the apps, their
# modules) every other chunk: ~45 ms per 1000 accounts, a fifth of a worker's time.
GC_FIRST_GENERATION_THRESHOLD = 10_000


@worker_process_init.connect
def _garbage_collector_tune(**kwargs):
    """In each worker process, once it has started: move everything loaded so far to
    the collector's permanent generation (`gc.freeze`: never scanned again, never
    freed) and collect the young generation every 10,000 allocations instead of 700.
    Cycles are still collected; docs/executions.md, "Choices"."""
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_FIRST_GENERATION_THRESHOLD, second, third)


@worker_init.connect
def _worker_metrics_serve(**kwargs):
    """With CELERY_METRICS_PORT, the worker's main process serves the task metrics of
    its pool (config/metrics.py; docs/operations.md, "Metrics")."""
    from django.conf import settings

    if settings.CELERY_METRICS_PORT:
        from config.metrics import worker_metrics_server_start

        worker_metrics_server_start(settings.CELERY_METRICS_PORT)
