"""Signed webhooks: subscriptions, an outbox of events, and their delivery by Celery (docs/webhooks.md)."""
