"""Every periodic task, declared once. `manage.py install_schedules` writes them into
django-celery-beat's database scheduler, where operators can see, re-time and pause
them in the admin. Times are UTC."""

SCHEDULES = {
    "Purge expired idempotency keys": {
        "task": "portfolios.tasks.idempotency_records_purge_task",
        "crontab": {"minute": "15", "hour": "3"},
    },
}
