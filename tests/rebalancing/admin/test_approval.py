"""Four-eyes approval in the execution admin: the changelist actions and the detail
page's Approve / Reject (with a comment on a confirmation page), refusals, and what
the detail shows."""

from decimal import Decimal

import pytest

from rebalancing.models import AccountLease, Execution, TradeOrder
from rebalancing.services import execution_create, preferences_replace
from tests.rebalancing.conftest import D
from tests.rebalancing.executions.conftest import run_chunks

from .conftest import messages_of, url

pytestmark = pytest.mark.django_db


@pytest.fixture
def awaiting(fifty_fifty, account_with, superuser):
    """An execution requested by the superuser "admin", above a threshold of 1 order."""
    *_, allocation = fifty_fifty
    accounts = [account_with(allocation), account_with(allocation)]
    preferences_replace(values={"approval_order_count": 1})
    execution = execution_create(account_ids=[str(a.pk) for a in accounts], user=superuser, rebalance_date=D)
    run_chunks(execution)
    execution.refresh_from_db()
    assert execution.status == "AWAITING_APPROVAL"
    return execution


@pytest.fixture
def approver_client(client, user_with_perms):
    user = user_with_perms(
        "rebalancing.approve_execution", "rebalancing.view_execution", "rebalancing.execute_rebalance",
        username="approver",
    )
    client.force_login(user)
    return client


def order_statuses(execution) -> set:
    return set(TradeOrder.objects.filter(execution=execution).values_list("status", flat=True))


def test_the_status_filter_offers_awaiting_approval(admin_client, awaiting):
    response = admin_client.get(url("execution", "changelist") + "?status__exact=AWAITING_APPROVAL")
    assert [e.pk for e in response.context["cl"].result_list] == [awaiting.pk]
    assert "?status__exact=AWAITING_APPROVAL" in response.content.decode()


def test_the_detail_shows_the_approval(approver_client, awaiting):
    content = approver_client.get(url("execution", "change", awaiting.pk)).content.decode()
    assert "Needs approval: 4 trade orders are above the limit of 1" in content
    approval = content[content.index('id="execution-approval"'):]
    assert "Thresholds: gross amount no limit," in approval and "trade orders above 1." in approval
    assert "2,000 EUR, 4 trade orders" in approval
    assert url("execution", "approve", awaiting.pk) in content and url("execution", "reject", awaiting.pk) in content


def test_the_requester_sees_no_buttons_and_is_refused(admin_client, awaiting):
    content = admin_client.get(url("execution", "change", awaiting.pk)).content.decode()
    assert 'id="execution-approve-link"' not in content
    assert "You requested this execution: another user must approve or reject it." in content
    response = admin_client.post(url("execution", "approve", awaiting.pk), {"comment": "mine"}, follow=True)
    assert any("another user must approve it" in text for text in messages_of(response))
    awaiting.refresh_from_db()
    assert awaiting.status == "AWAITING_APPROVAL"


def test_approve_from_the_detail_page_with_a_comment(approver_client, awaiting):
    page = approver_client.get(url("execution", "approve", awaiting.pk))
    assert page.status_code == 200 and 'id="execution-decision-form"' in page.content.decode()
    assert '<textarea name="comment"' in page.content.decode()  # the form's field, laid out by the include
    response = approver_client.post(url("execution", "approve", awaiting.pk), {"comment": "fine"})
    assert response.status_code == 302
    awaiting.refresh_from_db()
    assert (awaiting.status, awaiting.approved_by.username, awaiting.approval_comment) == ("COMPLETED", "approver", "fine")
    assert order_statuses(awaiting) == {"OPEN"}
    assert not AccountLease.objects.exists()
    detail = approver_client.get(url("execution", "change", awaiting.pk)).content.decode()
    assert "Approved by approver" in detail and "fine" in detail


def test_reject_from_the_changelist_after_confirmation(approver_client, awaiting):
    changelist = url("execution", "changelist")
    selected = {"action": "reject_executions", "_selected_action": [str(awaiting.pk)], "index": "0"}
    confirm = approver_client.post(changelist, selected)
    assert confirm.status_code == 200 and 'id="execution-decision-form"' in confirm.content.decode()
    awaiting.refresh_from_db()
    assert awaiting.status == "AWAITING_APPROVAL"  # nothing yet
    response = approver_client.post(changelist, {**selected, "decision_confirmed": "yes", "comment": "not now"}, follow=True)
    assert "Rejected 1 execution." in messages_of(response)
    awaiting.refresh_from_db()
    assert (awaiting.status, awaiting.approval_comment) == ("REJECTED", "not now")
    assert order_statuses(awaiting) == {"REJECTED"}


def test_approve_action_reports_executions_not_awaiting(approver_client, awaiting):
    Execution.objects.filter(pk=awaiting.pk).update(status="RUNNING")
    response = approver_client.post(url("execution", "changelist"), {
        "action": "approve_executions", "_selected_action": [str(awaiting.pk)], "index": "0", "decision_confirmed": "yes",
    }, follow=True)
    assert any("is RUNNING; only an AWAITING_APPROVAL execution can be approved" in t for t in messages_of(response))


def test_deciding_needs_the_approve_permission(client, user_with_perms, awaiting):
    client.force_login(user_with_perms("rebalancing.view_execution", "rebalancing.execute_rebalance", username="op"))
    response = client.get(url("execution", "changelist"))
    assert "approve_executions" not in response.content.decode()
    assert 'id="execution-approve-link"' not in client.get(url("execution", "change", awaiting.pk)).content.decode()
    assert client.get(url("execution", "approve", awaiting.pk)).status_code == 403
    assert client.post(url("execution", "reject", awaiting.pk)).status_code == 403
    awaiting.refresh_from_db()
    assert awaiting.status == "AWAITING_APPROVAL"


def test_global_preferences_admin_shows_the_thresholds_and_account_rows_do_not(admin_client, fifty_fifty, account_with):
    from rebalancing.models import RebalancePreferences

    row = preferences_replace(values={"approval_gross_amount": Decimal(5)})
    content = admin_client.get(url("rebalancepreferences", "change", row.pk)).content.decode()
    assert 'name="approval_gross_amount"' in content and 'name="approval_currency"' in content
    account = account_with(fifty_fifty[2])
    own = preferences_replace(values={"min_trade_amount": Decimal(1)}, account=account)
    content = admin_client.get(url("rebalancepreferences", "change", own.pk)).content.decode()
    assert 'name="approval_gross_amount"' not in content
    assert RebalancePreferences.objects.get(pk=own.pk).approval_gross_amount is None
