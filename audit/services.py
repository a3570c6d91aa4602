"""Write audit entries by hand, for the changes auditlog's signals cannot see: bulk
writes (`QuerySet.update`, `bulk_create`, COPY), versioned rows, status machines.

`audit_record(instance, action, changes)` writes one entry in the caller's
transaction (rolled back with it). `action` is "create", "update" or "delete", or a
word for what happened ("cancel", "settle", "replace_holdings"), which is then an
update whose `additional_data["event"]` names it. `changes` maps a field (or any
label: "lines", "position IE00B4L5Y983") to `[before, after]`; values become text as
auditlog writes them (None → "None"), decimals without trailing zeros.
"""

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils.encoding import smart_str

from .context import current

ACTIONS = {"create": LogEntry.Action.CREATE, "update": LogEntry.Action.UPDATE, "delete": LogEntry.Action.DELETE}
SKIPPED_FIELDS = ("created_at", "updated_at")


def text(value) -> str:
    """A value as an entry shows it: "None", "0.05" (not "0.0500000000"), ISO dates."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, models.Model):
        return str(value)
    return smart_str(value)


def apply_context(entry: LogEntry, actor=None) -> None:
    """Fill in who and how from the current context; what the entry already has wins."""
    context = current()
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else context.user()
    if entry.actor_id is None and user is not None:
        entry.actor = user
        entry.actor_email = getattr(user, "email", None) or None
    data = dict(entry.additional_data or {})
    data.setdefault("via", context.via)
    if context.token:
        data.setdefault("token", context.token)
    if context.system:
        data.setdefault("system", context.system)
    entry.additional_data = data
    if entry.remote_addr is None:
        entry.remote_addr = context.remote_addr


def _entry(instance, action: str, changes, actor, object_repr, extra: dict) -> LogEntry:
    pk = instance.pk
    data = {key: text(value) for key, value in extra.items() if value is not None}
    if action not in ACTIONS:
        data["event"] = action
    entry = LogEntry(
        content_type=ContentType.objects.get_for_model(instance.__class__),
        object_pk=smart_str(pk),
        object_id=pk if isinstance(pk, int) else None,
        object_repr=object_repr if object_repr is not None else smart_str(instance),
        action=ACTIONS.get(action, LogEntry.Action.UPDATE),
        changes={field: [text(before), text(after)] for field, (before, after) in (changes or {}).items()},
        additional_data=data,
    )
    apply_context(entry, actor)
    return entry


def audit_record(instance, action: str, changes: dict | None = None, *, actor=None, object_repr=None, **extra) -> LogEntry:
    """Record one change of `instance`; `extra` (JSON-able, e.g. trade_order=<id>) goes
    into the entry's additional data. One INSERT."""
    entry = _entry(instance, action, changes, actor, object_repr, extra)
    entry.save()
    return entry


def audit_records(items: Iterable[tuple], action: str, *, actor=None, **extra) -> int:
    """Record many changes in one INSERT: `items` are (instance, changes) pairs, or
    (instance, changes, object_repr) when the entry must show the instance as it was
    then (several changes of one instance)."""
    entries = [_entry(item[0], action, item[1], actor, item[2] if len(item) > 2 else None, extra) for item in items]
    LogEntry.objects.bulk_create(entries)
    return len(entries)


def audit_snapshot(instance, *, exclude=SKIPPED_FIELDS) -> dict:
    """The instance's concrete field values as text, by field name (foreign keys as ids)."""
    return {
        field.name: text(getattr(instance, field.attname))
        for field in instance._meta.concrete_fields
        if field.name not in exclude
    }


def audit_diff(before: dict, after: dict) -> dict:
    """{name: [before, after]} for each name whose value differs."""
    return {name: [before.get(name), after.get(name)] for name in {**before, **after} if before.get(name) != after.get(name)}


def audit_save(instance, *, actor=None, **extra) -> LogEntry | None:
    """`instance.save()`, recording what changed against the stored row (one more
    SELECT). A row that was not stored yet is recorded as created. Nothing is recorded
    when no field changed."""
    stored = type(instance)._base_manager.filter(pk=instance.pk).first() if instance.pk is not None else None
    before = audit_snapshot(stored) if stored is not None else {}
    instance.save()
    changes = audit_diff(before, audit_snapshot(instance))
    if stored is not None and not changes:
        return None
    return audit_record(instance, "update" if stored is not None else "create", changes, actor=actor, **extra)


__all__ = ["audit_diff", "audit_record", "audit_records", "audit_save", "audit_snapshot", "text"]
