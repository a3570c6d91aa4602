"""The one point where services hand work to Celery.

Services send tasks by name and never import a task module: task modules import
services, never the reverse, so no import circle can form between them. Each task
registers under the name its service declares (`@shared_task(name=...)`), so the two
cannot drift apart. Services call it from `transaction.on_commit`, so a worker never
looks for rows that are not committed yet, nor for rows rolled back.
"""

import logging

from celery import current_app
from kombu.exceptions import ChannelError

logger = logging.getLogger(__name__)


def task_send(name: str, *args, **options) -> None:
    """Send the task registered as `name` with positional `args` now; `options` are
    Celery's sending options (`eta`, `countdown`, ...). Raises what the broker raises.

    No service waits for a task's result (the outcome is in the database), so none is
    kept: with results kept, every send first subscribes to the result store, which
    retries for ~20 s when Redis is down instead of failing at once."""
    options.setdefault("ignore_result", True)
    current_app.send_task(name, args=args, **options)


def task_try_send(name: str, *args, **options) -> bool:
    """`task_send`, but a broker that is down (or refuses) is logged, not raised: for
    work whose state is in the database and that a sweep sends again. False if not sent."""
    try:
        task_send(name, *args, **options)
    except Exception:  # kombu's OperationalError, redis' ConnectionError, an OSError...
        logger.warning("the broker refused task %s%r; it will be sent again by a sweep", name, args, exc_info=True)
        return False
    return True


def queue_size(queue: str | None = None) -> int | None:
    """Messages waiting in `queue` (default: the default task queue), as the broker
    reports them; None when the broker cannot be asked (down). Messages a worker has
    taken (running, or reserved) are not counted."""
    app = current_app
    name = queue or app.conf.task_default_queue
    try:
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2)
            channel = connection.default_channel
            try:
                return channel.queue_declare(queue=name, passive=True).message_count
            except (ChannelError, *connection.channel_errors):  # never declared, or emptied and removed: nothing waits
                return 0
    except Exception:
        logger.warning("the broker cannot tell the size of queue %s", name, exc_info=True)
        return None
