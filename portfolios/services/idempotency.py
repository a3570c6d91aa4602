"""Idempotency keys: remember the first response to a POST so a retry replays it.

The API's mixin (config/api/idempotency.py) calls `idempotency_claim` before the
work, then `idempotency_complete` with the response, or `idempotency_release` when
the work failed with a server error so the client may retry with the same key.
Records live in the database, so every web process sees the same claims.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import Conflict

from ..models import IdempotencyRecord


def _cutoff(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS)


@dataclass(frozen=True)
class Claim:
    """`replay` is None when the caller now owns the key and must do the work."""

    record: IdempotencyRecord
    replay: IdempotencyRecord | None = None


@transaction.atomic
def idempotency_claim(*, user, key: str, method: str, path: str, request_hash: str) -> Claim:
    """Claim `key` for this request, or return the stored first response to replay.

    Raises Conflict when the key was used with another request (method, path or
    body), or when the first request with this key is still being processed.
    A record older than IDEMPOTENCY_KEY_TTL_SECONDS is forgotten and replaced.
    """
    record = IdempotencyRecord.objects.select_for_update().filter(user=user, key=key).first()
    if record is not None and record.created_at < _cutoff():
        record.delete()
        record = None
    if record is None:
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    user=user, key=key, method=method, path=path, request_hash=request_hash
                )
            return Claim(record=record)
        except IntegrityError:  # another process claimed it between our read and insert
            record = IdempotencyRecord.objects.get(user=user, key=key)
    if record.request_hash != request_hash:
        raise Conflict(
            f"Idempotency-Key {key!r} was already used with a different request "
            f"({record.method} {record.path}); use a new key for a new request"
        )
    if record.status_code is None:
        raise Conflict(f"a request with Idempotency-Key {key!r} is still being processed; retry later")
    return Claim(record=record, replay=record)


def idempotency_complete(*, record: IdempotencyRecord, status_code: int, body: bytes, content_type: str) -> None:
    """Store the response that later requests with the key replay: its status, its body
    exactly as sent (UTF-8 JSON; JSON escapes U+0000, so PostgreSQL's text holds it) and
    its content type."""
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        status_code=status_code, response_body=body.decode("utf-8"), content_type=content_type
    )


def idempotency_release(*, record: IdempotencyRecord) -> None:
    """Forget the claim (the work failed on our side), so the same key may be retried."""
    IdempotencyRecord.objects.filter(pk=record.pk, status_code__isnull=True).delete()


def idempotency_records_purge(*, now: datetime | None = None) -> int:
    """Delete records past IDEMPOTENCY_KEY_TTL_SECONDS; returns how many went.

    Safe to run at any time (expired records are already ignored); meant for a
    periodic Celery task.
    """
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=_cutoff(now)).delete()
    return deleted


__all__ = [
    "Claim",
    "idempotency_claim",
    "idempotency_complete",
    "idempotency_records_purge",
    "idempotency_release",
]
