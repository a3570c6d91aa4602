"""Audit entries cannot be changed or deleted by any path: PostgreSQL triggers
(audit/models.py) under the model's own check (audit/receivers.py)."""

import pytest
from auditlog.models import LogEntry
from django.db import DatabaseError, connection, transaction

from tests.audit.conftest import entries_for
from tests.factories import AccountFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

REFUSED = "pgtrigger: Cannot"


@pytest.fixture
def entry(is_postgres):
    if not is_postgres:
        pytest.skip("the triggers exist on PostgreSQL only; SQLite has the model check (test_recording.py)")
    return entries_for(AccountFactory())[0]


def _refused(statement):
    with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
        statement()


def test_queryset_update_is_refused(entry):
    _refused(lambda: LogEntry.objects.filter(pk=entry.pk).update(changes={"client_id": ["forged", "x"]}))
    _refused(lambda: LogEntry.objects.filter(pk=entry.pk).update(object_repr="forged"))
    entry.refresh_from_db()
    assert entry.object_repr != "forged" and "forged" not in str(entry.changes)


def test_queryset_delete_and_model_delete_are_refused(entry):
    _refused(lambda: LogEntry.objects.filter(pk=entry.pk).delete())
    _refused(lambda: LogEntry.objects.get(pk=entry.pk).delete())
    assert LogEntry.objects.filter(pk=entry.pk).exists()


def test_raw_sql_is_refused(entry):
    def run(sql, params):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)

    _refused(lambda: run("UPDATE auditlog_logentry SET object_repr = 'forged' WHERE id = %s", [entry.pk]))
    _refused(lambda: run("DELETE FROM auditlog_logentry WHERE id = %s", [entry.pk]))
    _refused(lambda: run("UPDATE auditlog_logentry SET actor_id = %s WHERE id = %s", [UserFactory().pk, entry.pk]))
    assert LogEntry.objects.filter(pk=entry.pk, object_repr=entry.object_repr).exists()


def test_a_user_with_entries_can_still_be_deleted_and_the_entries_keep_the_email(entry):
    user = UserFactory(username="leaver", email="leaver@bank.example")
    with connection.cursor() as cursor:  # an entry by this user, as auditlog writes it
        cursor.execute(
            "INSERT INTO auditlog_logentry (content_type_id, object_pk, object_repr, action, changes, actor_id, actor_email,"
            " timestamp, additional_data, serialized_data, changes_text, remote_addr, remote_port, cid, object_id)"
            " SELECT content_type_id, object_pk, object_repr, action, changes, %s, %s, timestamp, additional_data,"
            " serialized_data, changes_text, remote_addr, remote_port, cid, object_id FROM auditlog_logentry WHERE id = %s"
            " RETURNING id",
            [user.pk, user.email, entry.pk],
        )
        [authored_id] = cursor.fetchone()
    user.delete()  # SET_NULL on the entry's actor: the one change the triggers let through
    authored = LogEntry.objects.get(pk=authored_id)
    assert authored.actor_id is None and authored.actor_email == "leaver@bank.example"
