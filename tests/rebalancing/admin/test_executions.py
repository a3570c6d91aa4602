"""The execution admin: list, read-only detail with progress and paginated results,
the progress endpoint, and cancelling through execution_cancel."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rebalancing.admin import executions as admin_executions
from rebalancing.models import Execution, ExecutionResult, ExecutionStatus, ResultStatus, Side, Trigger
from rebalancing.services import execution_create
from tests.factories import AccountFactory, make_allocation, make_configuration

from .conftest import messages_of, url

pytestmark = pytest.mark.django_db


def test_the_changelist_shows_status_trigger_method_and_progress(admin_client, make_execution, superuser):
    running = make_execution(accounts=3, status=ExecutionStatus.RUNNING, trigger=Trigger.SCHEDULED, requested_by=superuser)
    Execution.objects.filter(pk=running.pk).update(done=2)
    make_execution(accounts=1, method="EXCHANGE")
    response = admin_client.get(url("execution", "changelist"))
    assert response.status_code == 200
    content = response.content.decode()
    assert str(running.pk)[:8] in content
    assert '<progress value="2" max="3"' in content and "2/3" in content
    assert "SCHEDULED" in content and "EXCHANGE" in content and "RUNNING" in content
    assert response.context["cl"].show_full_result_count is False

    filtered = admin_client.get(url("execution", "changelist") + "?status__exact=RUNNING")
    assert [e.pk for e in filtered.context["cl"].result_list] == [running.pk]
    assert admin_client.get(url("execution", "changelist") + "?trigger__exact=MANUAL").context["cl"].result_count == 1
    assert admin_client.get(url("execution", "changelist") + "?method__exact=EXCHANGE").context["cl"].result_count == 1


def test_executions_are_not_added_changed_or_deleted_in_the_admin(admin_client, make_execution):
    execution = make_execution(accounts=1)
    assert admin_client.get(url("execution", "add")).status_code == 403
    assert admin_client.get(url("execution", "delete", execution.pk)).status_code == 403
    response = admin_client.get(url("execution", "change", execution.pk))
    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    assert 'name="_save"' not in response.content.decode()


def test_the_detail_page_lists_each_account_with_its_orders(admin_client, make_execution, instruments):
    a, b, _ = instruments
    execution = make_execution(accounts=2)
    response = admin_client.get(url("execution", "change", execution.pk))
    assert response.status_code == 200
    content = response.content.decode()
    for result in ExecutionResult.objects.filter(execution=execution).select_related("account"):
        assert f'data-account="{result.account_id}" data-status="PROPOSED"' in content
        assert f">{result.account.client_id}</a>" in content
    assert content.count('<tr class="order"') == 4
    assert a.isin in content and "Alpha ETF" in content and b.isin in content
    assert '<td class="number" data-units>10</td>' in content  # units without trailing zeros
    assert '<td class="number" data-trade-amount>100.00</td>' in content
    assert "1,000.00 EUR" in content and "250.00 EUR" in content and "50.50 EUR" in content
    assert url("tradeorder", "changelist") + f"?execution__id__exact={execution.pk}" in content
    assert 'id="execution-status">COMPLETED<' in content
    assert "fetch(" not in content  # finished: no polling


def test_a_running_execution_polls_its_progress(admin_client, make_execution):
    execution = make_execution(accounts=4, status=ExecutionStatus.RUNNING)
    Execution.objects.filter(pk=execution.pk).update(done=1)
    content = admin_client.get(url("execution", "change", execution.pk)).content.decode()
    assert '<progress id="execution-progress" value="1" max="4">' in content
    assert "fetch(" in content and url("execution", "progress", execution.pk) in content


def test_the_progress_over_time_chart_counts_the_finished_chunks(admin_client, make_execution):
    """A line of accounts done by the time each chunk finished, with the rate so far."""
    from datetime import timedelta

    from rebalancing.models import ChunkStatus, ExecutionChunk

    execution = make_execution(accounts=4, status=ExecutionStatus.RUNNING)
    start = execution.created_at
    Execution.objects.filter(pk=execution.pk).update(done=3, started_at=start, total=5)
    for number, (ids, seconds) in enumerate([(["a", "b"], 10), (["c"], 20), (["d", "e"], None)]):
        ExecutionChunk.objects.create(
            execution=execution, number=number, account_ids=ids,
            status=ChunkStatus.DONE if seconds else ChunkStatus.PENDING,
            finished_at=start + timedelta(seconds=seconds) if seconds else None,
        )
    content = admin_client.get(url("execution", "change", execution.pk)).content.decode()
    assert 'id="chart-execution-progress"' in content
    # Two finished chunks: 2 accounts at 10 s, 3 at 20 s; 0.15 accounts/s, 2 left.
    assert "<title>10 s: 2</title>" in content and "<title>20 s: 3</title>" in content
    assert "0.1 accounts/s, about 13 s left" in content
    answer = json.loads(admin_client.get(url("execution", "progress", execution.pk)).content)
    assert "<title>20 s: 3</title>" in answer["chart"]


def test_the_progress_endpoint(admin_client, client, make_execution, user_with_perms):
    execution = make_execution(accounts=4, status=ExecutionStatus.RUNNING)
    Execution.objects.filter(pk=execution.pk).update(done=3)
    response = admin_client.get(url("execution", "progress", execution.pk))
    assert response.status_code == 200
    answer = json.loads(response.content)
    assert {k: answer[k] for k in ("status", "done", "total")} == {"status": "RUNNING", "done": 3, "total": 4}
    assert 'id="chart-execution-progress"' in answer["chart"]
    assert admin_client.get(url("execution", "progress", "00000000-0000-0000-0000-000000000000")).status_code == 404
    assert admin_client.get(url("execution", "progress", "not-a-uuid")).status_code == 404

    client.logout()
    assert client.get(url("execution", "progress", execution.pk)).status_code == 302  # to the login page
    client.force_login(user_with_perms("portfolios.view_instrument", username="other-staff"))
    assert client.get(url("execution", "progress", execution.pk)).status_code == 403
    client.force_login(user_with_perms("rebalancing.view_execution", username="viewer"))
    assert client.get(url("execution", "progress", execution.pk)).status_code == 200


def test_results_are_paginated_and_filtered_by_status(admin_client, make_execution, monkeypatch):
    monkeypatch.setattr(admin_executions, "RESULTS_PER_PAGE", 2)
    execution = make_execution(accounts=5)
    failed = ExecutionResult.objects.filter(execution=execution).order_by("account_id").last()
    ExecutionResult.objects.filter(pk=failed.pk).update(status=ResultStatus.FAILED, error="no price for X")
    seen = []
    for page in (1, 2, 3):
        response = admin_client.get(url("execution", "change", execution.pk) + f"?results_page={page}")
        rows = response.context["results_page"]["results"]
        assert len(rows) == (2 if page < 3 else 1)
        seen += [row["account_id"] for row in rows]
    assert seen == sorted(ExecutionResult.objects.filter(execution=execution).values_list("account_id", flat=True))
    assert "Page 3 of 3" in response.content.decode()

    response = admin_client.get(url("execution", "change", execution.pk) + "?result_status=FAILED")
    rows = response.context["results_page"]["results"]
    assert [row["account_id"] for row in rows] == [failed.account_id]
    content = response.content.decode()
    assert "no price for X" in content
    assert '<span data-status-count="PROPOSED">4</span>' in content
    assert '<span data-status-count="FAILED">1</span>' in content


def test_orders_of_a_sub_portfolio_show_under_its_parent(admin_client, make_execution, instruments, make_order):
    execution = make_execution(accounts=1)
    parent = ExecutionResult.objects.get(execution=execution).account
    sub = AccountFactory(parent=parent, client_id="SUB-1")
    make_order(sub, instruments[0], Side.SELL, units="3", unit_price="10", execution=execution)
    response = admin_client.get(url("execution", "change", execution.pk))
    (result,) = response.context["results_page"]["results"]
    assert [order["sub_account"] for order in result["orders"]].count("SUB-1") == 1
    assert len(result["orders"]) == 3


def _queries(client, path) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured)


def test_the_detail_page_runs_a_fixed_number_of_queries(admin_client, make_execution):
    small, large = make_execution(accounts=2), make_execution(accounts=12)
    assert _queries(admin_client, url("execution", "change", small.pk)) == _queries(
        admin_client, url("execution", "change", large.pk)
    )


def test_the_changelist_query_count_does_not_grow_with_the_rows(admin_client, superuser, make_execution):
    for _ in range(10):
        make_execution(accounts=0, requested_by=superuser, allocation=None)
    ten = _queries(admin_client, url("execution", "changelist"))
    for _ in range(90):
        make_execution(accounts=0, requested_by=superuser)
    assert Execution.objects.count() == 100
    assert _queries(admin_client, url("execution", "changelist")) == ten


@pytest.fixture
def pending(db):
    """A real PENDING execution of two configured accounts (its tasks are never sent:
    the test's transaction never commits)."""
    allocation = make_allocation()
    accounts = [make_configuration(AccountFactory(), allocation).account for _ in range(2)]
    return execution_create(account_ids=[a.pk for a in accounts], method="FULL")


def test_cancel_selected_executions(admin_client, pending, make_execution):
    finished = make_execution(accounts=1)
    response = admin_client.post(
        url("execution", "changelist"),
        {"action": "cancel_executions", "_selected_action": [str(pending.pk), str(finished.pk)], "index": "0"},
        follow=True,
    )
    assert response.status_code == 200
    pending.refresh_from_db()
    assert pending.status == ExecutionStatus.CANCELLED
    finished.refresh_from_db()
    assert finished.status == ExecutionStatus.COMPLETED
    texts = messages_of(response)
    assert "Cancelled 1 execution." in texts
    assert any(str(finished.pk) in t and "COMPLETED" in t and "not cancelled" in t for t in texts)


def test_cancel_needs_the_execute_permission(client, pending, user_with_perms):
    client.force_login(user_with_perms("rebalancing.view_execution"))
    response = client.get(url("execution", "changelist"))
    assert "cancel_executions" not in response.content.decode()
    client.post(url("execution", "changelist"),
                {"action": "cancel_executions", "_selected_action": [str(pending.pk)], "index": "0"})
    assert client.post(url("execution", "cancel", pending.pk)).status_code == 403
    pending.refresh_from_db()
    assert pending.status == ExecutionStatus.PENDING


def test_the_detail_page_cancels(admin_client, pending):
    content = admin_client.get(url("execution", "change", pending.pk)).content.decode()
    assert url("execution", "cancel", pending.pk) in content
    response = admin_client.post(url("execution", "cancel", pending.pk), follow=True)
    assert response.redirect_chain[-1][0] == url("execution", "change", pending.pk)
    pending.refresh_from_db()
    assert pending.status == ExecutionStatus.CANCELLED
    assert admin_client.get(url("execution", "cancel", pending.pk)).status_code == 405
