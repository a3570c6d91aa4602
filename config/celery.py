"""The Celery app: configured from Django settings (CELERY_* names)."""

import os

from celery import Celery
from celery.signals import task_prerun

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
