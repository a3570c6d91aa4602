"""The audit trail: who changed what, when, from what to what (docs/audit.md).

Entries are django-auditlog's `LogEntry` rows. Models edited with plain `save()` are
tracked by auditlog's signals (settings.AUDITLOG_INCLUDE_TRACKING_MODELS); versioned,
bulk and status-machine writes are recorded by their services with `audit_record`.
"""
