"""Subscriptions, and the sending of deliveries (docs/webhooks.md).

Order per subscription: `deliveries_send` always sends the oldest PENDING delivery of
the subscription (lowest id, i.e. the event recorded first) and nothing after it
until it is DELIVERED or FAILED; while it waits for a retry, the later ones wait too.
One sender per subscription at a time: a sender claims the subscription with a
conditional update of `sending_until` (a lease, renewed before each request and
released at the end), so two workers never send for the same subscription at once
and a dead worker's claim lapses after LEASE. No database transaction or row lock is
held during an HTTP request.
"""

import json
import logging
import os
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import urllib3
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from config import metrics

from . import events, signing, standard
from .models import Delivery, DeliveryAttempt, DeliveryStatus, Subscription

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 3
READ_TIMEOUT_SECONDS = 10
POOL_HOSTS = 50
POOL_CONNECTIONS_PER_HOST = 2
LEASE = timedelta(seconds=60)  # > CONNECT + READ timeouts: renewed before every request
RETRY_FOR = timedelta(hours=24)
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 3600
SENDS_PER_CALL = 100
USER_AGENT = "Ballast-Webhooks/1"


# --- Subscriptions ---------------------------------------------------------------------


@transaction.atomic
def subscription_create(*, url: str, event_types: list[str], active: bool = True) -> Subscription:
    """A new subscription with a secret generated here; `secret` is readable only now."""
    subscription = Subscription(url=url, event_types=list(event_types), active=active)
    subscription.full_clean()
    subscription.save()
    return subscription


@transaction.atomic
def subscription_update(*, subscription: Subscription, **changes) -> Subscription:
    """Change any of `url`, `event_types`, `active`. Re-activating resumes the PENDING deliveries."""
    for name in ("url", "event_types", "active"):
        if name in changes:
            setattr(subscription, name, changes[name])
    subscription.full_clean()
    subscription.save(update_fields=["url", "event_types", "active"])
    if subscription.active:
        transaction.on_commit(lambda: events.enqueue([subscription.pk]))
    return subscription


@transaction.atomic
def subscription_delete(*, subscription: Subscription) -> None:
    """Delete it with its deliveries and their attempts."""
    subscription.delete()


# --- Sending -----------------------------------------------------------------------------


@dataclass
class SendOutcome:
    sent: int = 0
    delivered: int = 0
    failed: int = 0  # deliveries given up (FAILED)
    claimed: bool = True  # False: another sender holds the subscription, or it is inactive
    next_due: datetime | None = None  # the head delivery waits for a retry until then
    more: bool = False  # due deliveries are left: call again


@dataclass(frozen=True)
class HttpResult:
    status_code: int | None
    latency_ms: int
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


_pool: urllib3.PoolManager | None = None
_pool_pid: int | None = None


def http_pool() -> urllib3.PoolManager:
    """This process's connection pool (made again after a fork: a worker process must
    not share its parent's sockets). Keeps up to POOL_CONNECTIONS_PER_HOST connections
    per partner host alive between deliveries."""
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():
        _pool = urllib3.PoolManager(
            num_pools=POOL_HOSTS, maxsize=POOL_CONNECTIONS_PER_HOST, block=False,
            timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS),
            retries=False,  # our own backoff decides; a 3xx is an answer like any other
            headers={"User-Agent": USER_AGENT},
        )
        _pool_pid = os.getpid()
    return _pool


def http_post(url: str, body: bytes, headers: dict, timeout: urllib3.Timeout | None = None) -> HttpResult:
    """POST `body` through the pool (connect and read timeouts apart, redirects not
    followed); never raises for network trouble, it comes back as `error`."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        response = http_pool().request(
            "POST", url, body=body, headers=headers, redirect=False, preload_content=False,
            **({"timeout": timeout} if timeout is not None else {}),
        )
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:  # refused, DNS, timeout, TLS, bad URL
        reason = getattr(exc, "reason", None) or exc
        return HttpResult(None, elapsed(), f"{type(reason).__name__}: {reason}"[:2000])
    try:
        detail = response.read(1024 if response.status < 300 else 500, decode_content=False)
    except (urllib3.exceptions.HTTPError, OSError):
        detail = b""
    finally:
        response.release_conn()
    if 200 <= response.status < 300:
        return HttpResult(response.status, elapsed())
    text = detail.decode(errors="replace")
    return HttpResult(response.status, elapsed(), f"HTTP {response.status} {response.reason}: {text}".strip().rstrip(":"))


def delivery_body(delivery: Delivery) -> bytes:
    """The JSON body: `{"id", "type", "created_at", "data"}` (the event's id, type, time and payload)."""
    event = delivery.event
    document = {"id": str(event.id), "type": event.type, "created_at": event.created_at.isoformat(), "data": event.payload}
    return json.dumps(document, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False).encode()


def delivery_headers(*, delivery: Delivery, secret: str, body: bytes, now: datetime) -> dict:
    """Standard Webhooks headers (webhooks/standard.py), plus the Ballast-* headers of
    the previous release (deprecated: docs/webhooks.md)."""
    timestamp = int(now.timestamp())
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **standard.headers(secret=secret, message_id=str(delivery.event_id), timestamp=timestamp, body=body),
        "Ballast-Event-Id": str(delivery.event_id),
        "Ballast-Timestamp": str(timestamp),
        "Ballast-Signature": signing.signature(secret=secret, timestamp=timestamp, body=body),
    }


def retry_delay(attempts: int) -> timedelta:
    """30 s × 2^(attempts-1), capped at 1 h, jittered by ±20 % (so retries of many
    deliveries failing together spread out)."""
    seconds = min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_CAP_SECONDS)
    return timedelta(seconds=min(seconds * random.uniform(0.8, 1.2), BACKOFF_CAP_SECONDS))


def _claim(subscription_id, now: datetime) -> datetime | None:
    """Take the subscription's lease; its new end, or None when someone else holds it."""
    until = now + LEASE
    taken = (
        Subscription.objects.filter(pk=subscription_id, active=True)
        .filter(Q(sending_until__isnull=True) | Q(sending_until__lt=now))
        .update(sending_until=until)
    )
    return until if taken else None


def _renew(subscription_id, held: datetime, now: datetime) -> datetime | None:
    until = now + LEASE
    renewed = Subscription.objects.filter(pk=subscription_id, active=True, sending_until=held).update(sending_until=until)
    return until if renewed else None


def _record(delivery: Delivery, result: HttpResult, now: datetime) -> str:
    """Log the attempt and move the delivery on; return its new status."""
    first = delivery.first_attempt_at or now
    changes = {
        "attempts": F("attempts") + 1, "first_attempt_at": first,
        "last_status_code": result.status_code, "last_error": result.error,
    }
    if result.ok:
        status = DeliveryStatus.DELIVERED
        changes.update(status=status, delivered_at=now)
    elif now - first >= RETRY_FOR:
        status = DeliveryStatus.FAILED
        changes.update(status=status)
    else:
        status = DeliveryStatus.PENDING
        changes.update(next_attempt_at=now + retry_delay(delivery.attempts + 1))
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery, at=now, status_code=result.status_code, latency_ms=result.latency_ms, error=result.error
        )
        Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(**changes)
    metrics.webhook_attempt({DeliveryStatus.DELIVERED: "delivered", DeliveryStatus.FAILED: "failed"}.get(status, "retry"))
    if status == DeliveryStatus.FAILED:
        logger.warning("webhooks: delivery %s given up after %s attempts: %s", delivery.pk, delivery.attempts + 1, result.error)
    return status


def deliveries_send(*, subscription_id, now: datetime | None = None, limit: int = SENDS_PER_CALL) -> SendOutcome:
    """Send the subscription's due deliveries, oldest first, up to `limit`; stop at the
    first one that must wait for a retry (its time is `next_due`). Safe to call
    concurrently: only the holder of the lease sends. `now` fixes the clock (tests)."""
    clock = (lambda: now) if now is not None else timezone.now
    outcome = SendOutcome()
    held = _claim(subscription_id, clock())
    if held is None:
        outcome.claimed = False
        return outcome
    try:
        secret, url = Subscription.objects.values_list("secret", "url").get(pk=subscription_id)
        while outcome.sent < limit:
            delivery = (
                Delivery.objects.filter(subscription_id=subscription_id, status=DeliveryStatus.PENDING)
                .select_related("event").order_by("id").first()
            )
            if delivery is None:
                break
            moment = clock()
            if delivery.next_attempt_at > moment:
                outcome.next_due = delivery.next_attempt_at
                break
            held = _renew(subscription_id, held, moment)
            if held is None:  # deactivated, or our lease lapsed and another sender took over
                break
            body = delivery_body(delivery)
            result = http_post(url, body, delivery_headers(delivery=delivery, secret=secret, body=body, now=moment))
            status = _record(delivery, result, clock())
            outcome.sent += 1
            outcome.delivered += status == DeliveryStatus.DELIVERED
            outcome.failed += status == DeliveryStatus.FAILED
        else:
            outcome.more = True
    finally:
        if held is not None:
            Subscription.objects.filter(pk=subscription_id, sending_until=held).update(sending_until=None)
    if not outcome.more and outcome.next_due is None:
        # A delivery committed while we were releasing would find the lease taken: look once more.
        outcome.more = _due(clock()).filter(subscription_id=subscription_id).exists()
    return outcome


def _due(now: datetime):
    return Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now, subscription__active=True)


def deliveries_dispatch(*, now: datetime | None = None) -> list:
    """Enqueue a send for every active subscription with a due PENDING delivery (the
    periodic safety net for lost tasks and retries); return their ids."""
    subscription_ids = list(_due(now or timezone.now()).values_list("subscription_id", flat=True).distinct())
    events.enqueue(subscription_ids)
    return subscription_ids


@transaction.atomic
def deliveries_resend(*, delivery_ids, now: datetime | None = None) -> int:
    """DELIVERED or FAILED deliveries back to PENDING, due now, with a fresh 24 h of
    retries (the attempts so far stay logged); return how many. A resent delivery is
    sent before the subscription's later PENDING ones, as it is older."""
    now = now or timezone.now()
    rows = Delivery.objects.filter(pk__in=list(delivery_ids)).exclude(status=DeliveryStatus.PENDING)
    subscription_ids = set(rows.values_list("subscription_id", flat=True))
    count = rows.update(
        status=DeliveryStatus.PENDING, next_attempt_at=now, first_attempt_at=None, delivered_at=None,
    )
    transaction.on_commit(lambda: events.enqueue(sorted(subscription_ids, key=str)))
    return count
