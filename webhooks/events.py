"""`record(type, payload)`: put an event in the outbox, in the caller's transaction.

Call it inside the transaction that makes the change: if that transaction rolls
back, the event was never there. One `Delivery` (PENDING) is written per active
subscription that wants the event type, and one send task per subscription is
enqueued when the transaction commits.

Nothing is written when no subscription wants the type, and then `record` costs no
query: the active subscriptions are cached (see `_wanting`). `payload` may be a
callable, called only when someone wants the event, so a payload that needs queries
costs them only then.
"""

import logging
from collections.abc import Callable

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from core import dispatch

from .models import EVENT_TYPES, Delivery, Event, Subscription

logger = logging.getLogger(__name__)

CACHE_SECONDS = 10
# The Celery task that sends a subscription's due deliveries (webhooks/tasks.py registers it).
SEND_TASK = "webhooks.tasks.deliveries_send_task"


def _cache_key() -> str:
    # Per database: processes sharing one Redis may use different databases (test workers).
    return f"webhooks:active-subscriptions:{connection.settings_dict['NAME']}"


def _active_subscriptions() -> list[tuple[str, list]]:
    """(id, event_types) of the active subscriptions, cached for CACHE_SECONDS.

    Invalidated whenever a subscription is saved or deleted (at once and again at
    commit). A stale entry can only make a new subscription miss events for up to
    CACHE_SECONDS when the cache is per process (no Redis); a stale positive entry is
    harmless, as the subscriptions are read again from the database before writing.
    """
    active = cache.get(_cache_key())
    if active is None:
        active = [(str(pk), types) for pk, types in Subscription.objects.filter(active=True).values_list("pk", "event_types")]
        cache.set(_cache_key(), active, CACHE_SECONDS)
    return active


def subscriptions_cache_clear() -> None:
    cache.delete(_cache_key())


@receiver([post_save, post_delete], sender=Subscription, dispatch_uid="webhooks-subscriptions-cache")
def _subscription_changed(**kwargs) -> None:
    subscriptions_cache_clear()
    transaction.on_commit(subscriptions_cache_clear)


def record(event_type: str, payload: dict | Callable[[], dict]) -> Event | None:
    """Record `event_type` with `payload` (JSON-able; Decimals, dates and UUIDs become
    strings) for every active subscription that wants it; return the event, or None
    when nobody wants it. Queries: none then, else three."""
    subscriptions = _subscriptions_wanting(event_type)
    if not subscriptions:
        return None
    now = timezone.now()
    event = Event.objects.create(type=event_type, payload=payload() if callable(payload) else payload, created_at=now)
    Delivery.objects.bulk_create(
        Delivery(event=event, subscription=s, next_attempt_at=now, created_at=now) for s in subscriptions
    )
    subscription_ids = [s.pk for s in subscriptions]
    transaction.on_commit(lambda: enqueue(subscription_ids))
    return event


def _subscriptions_wanting(event_type: str) -> list:
    """The active subscriptions that want `event_type`: no query when the cache says
    none may, else one."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type}")
    if not wanted(event_type):
        return []
    return [
        s for s in Subscription.objects.filter(
            pk__in=[pk for pk, types in _active_subscriptions() if "*" in types or event_type in types], active=True,
        ).only("pk", "event_types") if s.wants(event_type)
    ]


def wanted(event_type: str) -> bool:
    """Whether an active subscription may want `event_type` (no query: the cache), so a
    caller of `record_many` makes the payloads only then."""
    return any("*" in types or event_type in types for _, types in _active_subscriptions())


def record_many(event_type: str, payloads: list[dict]) -> int:
    """`record` of many events of one type at once (a bulk change): one INSERT of the
    events and one of their deliveries, whatever their number; returns the events
    written (0 when nobody wants them)."""
    subscriptions = _subscriptions_wanting(event_type) if payloads else []
    if not subscriptions:
        return 0
    now = timezone.now()
    written = Event.objects.bulk_create([Event(type=event_type, payload=payload, created_at=now) for payload in payloads],
                                        batch_size=1000)
    Delivery.objects.bulk_create(
        [Delivery(event=event, subscription=s, next_attempt_at=now, created_at=now) for event in written for s in subscriptions],
        batch_size=1000,
    )
    subscription_ids = [s.pk for s in subscriptions]
    transaction.on_commit(lambda: enqueue(subscription_ids))
    return len(written)


def enqueue(subscription_ids) -> None:
    """Ask a worker to send what is due for each subscription. A broker that is down
    loses nothing: the deliveries are in the database, and the periodic dispatch
    (config/schedules.py) picks them up."""
    for subscription_id in subscription_ids:
        try:
            dispatch.task_send(SEND_TASK, str(subscription_id))
        except Exception:  # never fail the committed change for it
            logger.exception("webhooks: could not enqueue the sending for subscription %s", subscription_id)
