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
import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from . import events, signing
from .models import Delivery, DeliveryAttempt, DeliveryStatus, Subscription

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10
LEASE = timedelta(seconds=60)  # > TIMEOUT_SECONDS: renewed before every request
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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx is an answer like any other non-2xx: not followed, retried."""

    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def http_post(url: str, body: bytes, headers: dict, timeout: float = TIMEOUT_SECONDS) -> HttpResult:
    """POST `body`; never raises for network trouble, it comes back as `error`."""
    request = urllib.request.Request(url, data=body, method="POST")
    for name, value in headers.items():
        # urllib would send "Ballast-signature"; keep the documented spelling (names are
        # case-insensitive, but partners compare them in code, sometimes exactly).
        request.headers[name if name.startswith("Ballast-") else name.capitalize()] = value
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(1024)
            return HttpResult(response.status, elapsed())
    except urllib.error.HTTPError as exc:
        detail = exc.read(500).decode(errors="replace") if exc.fp else ""
        return HttpResult(exc.code, elapsed(), f"HTTP {exc.code} {exc.reason}: {detail}".strip().rstrip(":"))
    except (urllib.error.URLError, OSError, ValueError) as exc:  # refused, DNS, timeout, TLS, bad URL
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return HttpResult(None, elapsed(), f"{type(reason).__name__}: {reason}"[:2000])


def delivery_body(delivery: Delivery) -> bytes:
    """The JSON body: `{"id", "type", "created_at", "data"}` (the event's id, type, time and payload)."""
    event = delivery.event
    document = {"id": str(event.id), "type": event.type, "created_at": event.created_at.isoformat(), "data": event.payload}
    return json.dumps(document, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False).encode()


def delivery_headers(*, delivery: Delivery, secret: str, body: bytes, now: datetime) -> dict:
    timestamp = int(now.timestamp())
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
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
