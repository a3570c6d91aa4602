"""The audit trail in the admin: entries of staff users, History pages, and the audit
log: filterable, and read-only for everyone, superusers included."""

from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portfolios.models import PortfolioAccount
from rebalancing.services import execution_create
from tests.factories import AccountFactory

from .conftest import D, entries_for

pytestmark = pytest.mark.django_db

LOG = "/admin/auditlog/logentry/"


def _lock_in_admin(client, account):
    return client.post("/admin/portfolios/portfolioaccount/",
                       {"action": "lock_accounts", "_selected_action": [str(account.pk)]})


def test_an_admin_change_records_the_staff_user_and_shows_on_the_history_page(admin_client, superuser):
    account = AccountFactory(client_id="C-42")
    assert _lock_in_admin(admin_client, account).status_code == 302
    entry = entries_for(account)[-1]
    assert (entry.actor, entry.additional_data["via"]) == (superuser, "admin")
    assert entry.changes_dict == {"locked": ["False", "True"]}
    assert entry.remote_addr == "127.0.0.1"

    page = admin_client.get(f"/admin/portfolios/portfolioaccount/{account.pk}/history/")
    assert page.status_code == 200
    entries = page.context["entries"]
    assert [(e.actor, rows) for e, rows in entries][0] == (superuser, [("locked", "False", "True")])
    html = page.content.decode()
    assert "admin" in html and "locked" in html and "False" in html and "True" in html


def test_an_admin_form_save_records_the_staff_user(admin_client, superuser, fifty_fifty, account_with):
    from tests.factories import make_allocation

    *_, allocation = fifty_fifty
    configuration = account_with(allocation).configuration
    other = make_allocation(name="Other")
    response = admin_client.post(f"/admin/portfolios/configuration/{configuration.pk}/change/",
                                 {"allocation": str(other.pk)})
    assert response.status_code == 302, response.content[:3000]
    entry = entries_for(configuration)[-1]
    assert entry.actor == superuser and entry.additional_data["via"] == "admin"
    assert entry.changes_dict["allocation"] == [str(allocation), "Other"]


def test_the_history_page_needs_the_view_permission(client, user_with_perms):
    account = AccountFactory()
    client.force_login(user_with_perms(username="nobody"))
    assert client.get(f"/admin/portfolios/portfolioaccount/{account.pk}/history/").status_code == 403
    client.force_login(user_with_perms("portfolios.view_portfolioaccount", username="viewer"))
    assert client.get(f"/admin/portfolios/portfolioaccount/{account.pk}/history/").status_code == 200


def test_the_audit_log_is_read_only_even_for_a_superuser(admin_client):
    account = AccountFactory()
    entry = entries_for(account)[0]
    change, delete = f"{LOG}{entry.pk}/change/", f"{LOG}{entry.pk}/delete/"

    assert admin_client.get(f"{LOG}add/").status_code == 403
    assert admin_client.post(f"{LOG}add/", {"object_repr": "forged"}).status_code == 403
    page = admin_client.get(change)
    assert page.status_code == 200 and not page.context["has_change_permission"]
    assert b'name="_save"' not in page.content
    assert admin_client.post(change, {"object_repr": "forged"}).status_code == 403
    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    listed = admin_client.get(LOG)
    assert listed.status_code == 200 and listed.context["action_form"] is None  # no "delete selected"
    assert admin_client.post(LOG, {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"}
                             ).status_code in (200, 302)
    assert LogEntry.objects.filter(pk=entry.pk, object_repr=entry.object_repr).exists()


def test_the_audit_log_needs_its_view_permission(client, user_with_perms):
    AccountFactory()
    client.force_login(user_with_perms(username="nobody"))
    assert client.get(LOG).status_code == 403
    client.force_login(user_with_perms("auditlog.view_logentry", username="auditor"))
    assert client.get(LOG).status_code == 200


def _listed(client, **params) -> set:
    response = client.get(LOG, params)
    assert response.status_code == 200
    return {entry.pk for entry in response.context["cl"].result_list}


def test_the_audit_log_filters(admin_client, api_client, superuser, fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    account = account_with(allocation)  # signals: account created by the test process, no user
    _lock_in_admin(admin_client, account)  # admin, superuser
    api_client.patch(f"/api/v1/portfolios/accounts/{account.pk}/", {"locked": False}, format="json")  # API token
    execution = execution_create(account_ids=[account.pk], rebalance_date=D)  # no user
    by_admin = entries_for(account)[-2]
    by_token = entries_for(account)[-1]
    execution_entries = {e.pk for e in entries_for(execution)}
    everything = set(LogEntry.objects.values_list("pk", flat=True))

    assert _listed(admin_client, model="rebalancing.execution") == execution_entries
    assert _listed(admin_client, via="admin") == {by_admin.pk}
    assert _listed(admin_client, via="api-token") == {by_token.pk}
    assert _listed(admin_client, actor=str(superuser.pk)) == {by_admin.pk, by_token.pk}
    assert _listed(admin_client, actor="system") == everything - {by_admin.pk, by_token.pk}
    assert _listed(admin_client, action=str(LogEntry.Action.CREATE)) == set(
        LogEntry.objects.filter(action=LogEntry.Action.CREATE).values_list("pk", flat=True))
    # An account's id is also its configuration's (the configuration's primary key is the account).
    assert _listed(admin_client, q=str(account.pk)) == {e.pk for e in entries_for(account) + entries_for(account.configuration)}
    assert by_admin.pk in _listed(admin_client, q=account.client_id)
    assert _listed(admin_client, q="no such object") == set()
    tomorrow = (timezone.now() + timedelta(days=1)).isoformat()
    assert _listed(admin_client, timestamp__gte=tomorrow) == set()
    assert _listed(admin_client, timestamp__lt=tomorrow) == everything


def test_the_audit_log_list_runs_a_fixed_number_of_queries(admin_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(LOG).status_code == 200
        return len(captured)

    AccountFactory()
    few = queries()
    for _ in range(15):
        AccountFactory()
    assert PortfolioAccount.objects.count() == 16
    assert queries() == few
