import uuid
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone

EVENT_TYPES = (
    "allocation.created",
    "allocation.updated",
    "allocation.needs_attention",
    "configuration.created",
    "configuration.updated",
    "execution.status_changed",
    "trade_order.status_changed",
    "portfolio_order.status_changed",
)
ALL_EVENTS = "*"


def validate_webhook_url(value: str) -> None:
    """http or https, with a host and without credentials (no file:, ftp:, javascript: ...)."""
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationError(f"must be an http or https URL, not {parts.scheme or 'one without a scheme'}")
    if not parts.hostname:
        raise ValidationError("must name a host")
    if parts.username or parts.password:
        raise ValidationError("must not carry credentials; the signature authenticates Ballast")


def generate_secret() -> str:
    """`whsec_` and 32 random bytes in base64: the Standard Webhooks secret format."""
    from .standard import secret_generate

    return secret_generate()


def validate_event_types(value) -> None:
    if not isinstance(value, list) or not value:
        raise ValidationError("must be a non-empty list of event types, or [\"*\"] for all")
    unknown = [v for v in value if v != ALL_EVENTS and v not in EVENT_TYPES]
    if unknown:
        raise ValidationError(
            f"unknown event type(s) {', '.join(map(str, unknown))}; known: {', '.join(EVENT_TYPES)}, or * for all"
        )


class Subscription(models.Model):
    """A partner's endpoint: every event of `event_types` is POSTed there, signed with `secret`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.URLField(max_length=2000, validators=[validate_webhook_url])
    event_types = models.JSONField(
        validators=[validate_event_types], help_text='A list of event types, e.g. ["allocation.updated"]; ["*"] for all.'
    )
    active = models.BooleanField(default=True)
    secret = models.CharField(max_length=100, default=generate_secret, editable=False)
    # One sender per subscription at a time (claimed by a conditional update, see services).
    sending_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "id"]

    def __str__(self):
        return self.url

    def wants(self, event_type: str) -> bool:
        return ALL_EVENTS in self.event_types or event_type in self.event_types


class Event(models.Model):
    """One change, recorded in the transaction that made it (the outbox)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=50, db_index=True)
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.type} {self.id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED", "Failed (gave up)"


class Delivery(models.Model):
    """One event for one subscription. The auto-increment id is the order of sending
    within a subscription: an event is not sent while an older one is PENDING."""

    id = models.BigAutoField(primary_key=True)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now, help_text="Not sent before this time (backoff).")
    first_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Retries go on 24 h from here.")
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["subscription", "status", "id"]),
            models.Index(fields=["status", "next_attempt_at"], condition=Q(status="PENDING"), name="delivery_pending_due"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["event", "subscription"], name="delivery_once_per_event_subscription"),
        ]

    def __str__(self):
        return f"delivery {self.pk} ({self.status})"


class DeliveryAttempt(models.Model):
    """One HTTP request of a delivery, successful or not: every try is logged."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True, help_text="Empty when no answer came.")
    latency_ms = models.PositiveIntegerField()
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "at", "id"]

    def __str__(self):
        return f"{self.status_code or 'no answer'} in {self.latency_ms} ms"
