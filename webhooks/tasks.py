"""Celery adapters over `services`: each task is one service call, safe to run twice."""

from celery import shared_task

from . import events, services


@shared_task(name=events.SEND_TASK)
def deliveries_send_task(subscription_id: str) -> dict:
    """Send the subscription's due deliveries in order; schedule itself for the next retry."""
    outcome = services.deliveries_send(subscription_id=subscription_id)
    if outcome.more:
        deliveries_send_task.delay(subscription_id)
    elif outcome.next_due is not None:
        # The minute dispatch would find it too; this keeps short backoffs short.
        deliveries_send_task.apply_async((subscription_id,), eta=outcome.next_due)
    return {"sent": outcome.sent, "delivered": outcome.delivered, "failed": outcome.failed, "claimed": outcome.claimed}


@shared_task
def deliveries_dispatch_task() -> int:
    """Every minute: a send for each subscription with due deliveries (retries, lost tasks)."""
    return len(services.deliveries_dispatch())
