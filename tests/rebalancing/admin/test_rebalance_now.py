""""Rebalance now" on accounts and allocations: a page asking for the method and the date,
then execution_create and the execution's page. The tests' transactions never commit, so
no chunk task is sent: the executions stay PENDING."""

from datetime import date

import pytest
from django.urls import reverse

from portfolios.models import AccountStatus
from rebalancing.models import Execution, ExecutionStatus, Trigger
from tests.factories import AccountFactory, make_allocation, make_configuration

from .conftest import messages_of, url

pytestmark = pytest.mark.django_db
ACCOUNTS = reverse("admin:portfolios_portfolioaccount_changelist")
ALLOCATIONS = reverse("admin:portfolios_allocation_changelist")


def account_ids(execution) -> set[str]:
    return {a for chunk in execution.chunks.all() for a in chunk.account_ids}


@pytest.fixture
def configured(db):
    allocation = make_allocation(name="Balanced")
    return allocation, [make_configuration(AccountFactory(client_id=f"RB-{i}"), allocation).account for i in range(3)]


def test_the_page_asks_for_method_and_date_then_starts_one_execution(admin_client, configured, superuser):
    _, accounts = configured
    chosen = accounts[:2]
    data = {"action": "rebalance_now", "_selected_action": [str(a.pk) for a in chosen]}
    response = admin_client.post(ACCOUNTS, {**data, "index": "0"})
    assert response.status_code == 200
    assert response.templates[0].name == "admin/rebalancing/execution/rebalance_now.html"
    content = response.content.decode()
    assert "RB-0" in content and "RB-1" in content and "RB-2" not in content
    assert '<strong id="rebalance-now-accounts">2</strong>' in content
    assert not Execution.objects.exists()  # nothing before the confirmation

    response = admin_client.post(
        ACCOUNTS, {**data, "rebalance_now_confirmed": "yes", "method": "EXCHANGE", "rebalance_date": "2026-03-02"}
    )
    execution = Execution.objects.get()
    assert response.status_code == 302 and response.url == url("execution", "change", execution.pk)
    assert (execution.method, execution.trigger, execution.rebalance_date, execution.requested_by) == (
        "EXCHANGE", Trigger.MANUAL, date(2026, 3, 2), superuser
    )
    assert execution.status == ExecutionStatus.PENDING and execution.total == 2
    assert account_ids(execution) == {str(a.pk) for a in chosen}
    assert any("started (EXCHANGE, 2026-03-02) for 2 accounts" in t for t in messages_of(response))


def test_an_invalid_date_shows_the_page_again(admin_client, configured):
    _, accounts = configured
    response = admin_client.post(ACCOUNTS, {
        "action": "rebalance_now", "_selected_action": [str(accounts[0].pk)], "rebalance_now_confirmed": "yes",
        "method": "FULL", "rebalance_date": "02/03/2026",
    })
    assert response.status_code == 200 and response.context["form"].errors["rebalance_date"]
    assert not Execution.objects.exists()


def test_select_all_takes_the_filtered_accounts(admin_client, configured):
    _, accounts = configured
    AccountFactory(client_id="CLOSED-1", status=AccountStatus.CLOSED)
    path = ACCOUNTS + "?status__exact=ACTIVE"
    data = {"action": "rebalance_now", "_selected_action": [str(accounts[0].pk)], "select_across": "1"}
    response = admin_client.post(path, {**data, "index": "0"})
    assert response.context["form_url"] == path and response.context["select_across"]
    assert '<strong id="rebalance-now-accounts">3</strong>' in response.content.decode()
    admin_client.post(path, {**data, "rebalance_now_confirmed": "yes", "method": "FULL", "rebalance_date": "2026-03-02"})
    assert account_ids(Execution.objects.get()) == {str(a.pk) for a in accounts}


def test_rebalance_now_needs_the_execute_permission(client, configured, user_with_perms):
    _, accounts = configured
    client.force_login(user_with_perms("portfolios.view_portfolioaccount", "portfolios.change_portfolioaccount"))
    response = client.get(ACCOUNTS)
    actions = {name for name, _ in response.context["action_form"].fields["action"].choices}
    assert "preview_rebalance" in actions and "rebalance_now" not in actions
    client.post(ACCOUNTS, {
        "action": "rebalance_now", "_selected_action": [str(accounts[0].pk)], "rebalance_now_confirmed": "yes",
        "method": "FULL", "rebalance_date": "2026-03-02",
    })
    assert not Execution.objects.exists()

    client.force_login(user_with_perms(
        "portfolios.view_portfolioaccount", "rebalancing.execute_rebalance", "rebalancing.view_execution", username="ops"
    ))
    response = client.post(ACCOUNTS, {
        "action": "rebalance_now", "_selected_action": [str(accounts[0].pk)], "rebalance_now_confirmed": "yes",
        "method": "FULL", "rebalance_date": "2026-03-02",
    })
    assert response.status_code == 302 and Execution.objects.count() == 1


def test_an_account_in_a_running_execution_is_reported(admin_client, configured):
    _, accounts = configured
    data = {"action": "rebalance_now", "_selected_action": [str(accounts[0].pk)], "rebalance_now_confirmed": "yes",
            "method": "FULL", "rebalance_date": "2026-03-02"}
    admin_client.post(ACCOUNTS, data)
    response = admin_client.post(ACCOUNTS, {**data, "_selected_action": [str(accounts[0].pk), str(accounts[1].pk)]})
    assert any("for 2 accounts; 1 already in another running execution got a FAILED result" in t
               for t in messages_of(response))
    response = admin_client.post(ACCOUNTS, data)
    ended = Execution.objects.order_by("-created_at", "-pk").filter(total=1).exclude(status="PENDING").get()
    assert ended.status == ExecutionStatus.FAILED and response.url == url("execution", "change", ended.pk)
    assert any("ended at once (FAILED): all 1 account already in another running execution" in t
               for t in messages_of(response))


def test_allocations_start_one_execution_each(admin_client, configured):
    balanced, accounts = configured
    growth = make_allocation(name="Growth")
    growth_accounts = [make_configuration(AccountFactory(), growth).account for _ in range(2)]
    make_configuration(AccountFactory(status=AccountStatus.CLOSED), growth)  # not taken by execution_create
    data = {"action": "rebalance_now", "_selected_action": [str(balanced.pk), str(growth.pk)]}
    response = admin_client.post(ALLOCATIONS, {**data, "index": "0"})
    assert response.status_code == 200
    assert [(t["label"], t["accounts"]) for t in response.context["targets"]] == [("Balanced", 3), ("Growth", 2)]
    assert 'value="Start 2 executions"' in response.content.decode()

    response = admin_client.post(
        ALLOCATIONS, {**data, "rebalance_now_confirmed": "yes", "method": "CONSERVATIVE", "rebalance_date": "2026-03-02"}
    )
    executions = {e.allocation_id: e for e in Execution.objects.all()}
    assert set(executions) == {balanced.pk, growth.pk}
    assert account_ids(executions[balanced.pk]) == {str(a.pk) for a in accounts}
    assert account_ids(executions[growth.pk]) == {str(a.pk) for a in growth_accounts}
    assert {e.method for e in executions.values()} == {"CONSERVATIVE"}
    assert response.status_code == 302 and response.url.startswith(url("execution", "changelist") + "?id__in=")
    listed = {e.pk for e in admin_client.get(response.url).context["cl"].result_list}
    assert listed == {e.pk for e in executions.values()}


def test_one_allocation_goes_to_its_execution(admin_client, configured, user_with_perms, client):
    balanced, _ = configured
    data = {"action": "rebalance_now", "_selected_action": [str(balanced.pk)], "rebalance_now_confirmed": "yes",
            "method": "FULL", "rebalance_date": "2026-03-02"}
    response = admin_client.post(ALLOCATIONS, data)
    execution = Execution.objects.get()
    assert response.url == url("execution", "change", execution.pk) and execution.allocation_id == balanced.pk

    client.force_login(user_with_perms("portfolios.view_allocation", "portfolios.change_allocation"))
    assert client.get(ALLOCATIONS).context["action_form"] is None  # no action left for this user
    client.post(ALLOCATIONS, data)
    assert Execution.objects.count() == 1
