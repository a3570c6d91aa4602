"""The one point where services hand work to Celery.

Services send tasks by name and never import a task module: task modules import
services, never the reverse, so no import circle can form between them. Each task
registers under the name its service declares (`@shared_task(name=...)`), so the two
cannot drift apart. Services call it from `transaction.on_commit`, so a worker never
looks for rows that are not committed yet, nor for rows rolled back.
"""

from celery import current_app


def task_send(name: str, *args, **options) -> None:
    """Send the task registered as `name` with positional `args` now; `options` are
    Celery's sending options (`eta`, `countdown`, ...). Raises what the broker raises."""
    current_app.send_task(name, args=args, **options)

