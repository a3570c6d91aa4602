"""The database's own guard on the audit trail: on PostgreSQL, triggers refuse to
change or delete an entry, whatever path the statement took (the ORM's save,
QuerySet.update() or delete(), raw SQL). `receivers.py` refuses a save() of an
existing entry on every database, SQLite included, before any SQL is sent.

The triggers belong to django-auditlog's table; django-pgtrigger installs them
through this proxy model, in this app's migrations (auditlog's own stay untouched).
One change is let through: a deleted user's entries lose their `actor` (Django's
SET_NULL), so users can still be deleted; who it was stays in `actor_email`.
"""

import pgtrigger
from auditlog.models import LogEntry


class ProtectedLogEntry(LogEntry):
    class Meta:
        proxy = True
        triggers = [
            pgtrigger.Protect(name="audit_entry_no_delete", operation=pgtrigger.Delete),
            pgtrigger.Protect(
                name="audit_entry_no_update",
                operation=pgtrigger.Update,
                condition=pgtrigger.AnyChange(exclude=["actor"]),
            ),
            pgtrigger.Protect(
                name="audit_entry_no_new_actor",
                operation=pgtrigger.Update,
                condition=pgtrigger.Q(new__actor__isnull=False, old__actor__df=pgtrigger.F("new__actor")),
            ),
        ]
