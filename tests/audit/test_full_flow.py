"""The done-when of the audit trail: allocation created → execution approved → an
order settled, every step with its user (or task) and its values before → after."""

from decimal import Decimal

import pytest
from auditlog.models import LogEntry

from rebalancing.models import Execution, TradeOrder
from rebalancing.tasks import execution_chunk_run
from tests.factories import AccountFactory, CashAccountFactory, UserFactory

from .conftest import D, entries_for

pytestmark = pytest.mark.django_db

CHUNK_TASK = "task rebalancing.tasks.execution_chunk_run"
SETTLE = ("ACCEPTED", "EXECUTABLE", "SENT_TO_EXECUTION", "IN_EXECUTION", "EXECUTED_IN_MARKET", "SETTLED_IN_MARKET",
          "SETTLED")


def _who(entry) -> str:
    return entry.actor.username if entry.actor else entry.additional_data.get("system", "")


def _what(entry) -> str:
    return entry.additional_data.get("event") or entry.get_action_display()


def test_the_audit_log_shows_the_whole_flow(api_client, client_for, user_with_perms, fifty_fifty, admin_client):
    a, b, _ = fifty_fifty
    approver = client_for(user_with_perms("rebalancing.approve_execution", "rebalancing.view_execution",
                                          username="approver"))
    ops = client_for(UserFactory(username="ops", is_staff=True, is_superuser=True))
    accounts = [AccountFactory(base_currency="EUR") for _ in range(2)]
    for account in accounts:
        CashAccountFactory(account=account, balance=Decimal(1000))
    start = LogEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0

    # The superuser "admin", with an API token: a threshold, an allocation, two configurations, an execution.
    assert api_client.put("/api/v1/rebalancing/preferences/", {"approval_order_count": 1}, format="json").status_code == 200
    created = api_client.post("/api/v1/portfolios/allocations/", {
        "name": "Core", "allocation": [{"instrument_id": a.isin, "weight": "0.5"}, {"instrument_id": b.isin, "weight": "0.5"}],
        "effective_from": "2026-01-01",
    }, format="json")
    assert created.status_code == 201, created.content
    allocation_id = created.json()["allocation_id"]
    for account in accounts:
        response = api_client.post("/api/v1/portfolios/configurations/",
                                   {"account_id": str(account.pk), "allocation_id": allocation_id}, format="json")
        assert response.status_code == 201, response.content
    started = api_client.post("/api/v1/portfolios/rebalancings/executions/",
                              {"accounts": [str(x.pk) for x in accounts], "rebalance_date": D.isoformat()}, format="json")
    assert started.status_code == 202, started.content
    execution = Execution.objects.get(pk=started.json()["execution_id"])

    # A Celery worker runs the chunks; above the threshold, the execution waits.
    for chunk in execution.chunks.all():
        execution_chunk_run.apply(args=[chunk.pk])
    execution.refresh_from_db()
    assert execution.status == "AWAITING_APPROVAL"

    # Another user approves it; "ops" settles one of its orders.
    approved = approver.post(f"/api/v1/portfolios/rebalancings/executions/{execution.pk}/approve/",
                             {"comment": "checked"}, format="json")
    assert approved.status_code == 200, approved.content
    order = TradeOrder.objects.filter(execution=execution).order_by("account_id", "instrument__isin").first()
    for status in SETTLE:
        assert ops.post(f"/api/v1/trade-orders/{order.pk}/transitions/", {"status": status}, format="json").status_code == 200

    flow = [
        (entry.content_type.model, _what(entry), _who(entry))
        for entry in LogEntry.objects.filter(id__gt=start).select_related("actor", "content_type").order_by("id")
    ]
    assert flow == [
        ("rebalancepreferences", "update", "admin"),
        ("allocation", "create", "admin"),
        ("configuration", "create", "admin"),
        ("configuration", "create", "admin"),
        ("execution", "create", "admin"),
        ("execution", "start", CHUNK_TASK),
        ("execution", "await_approval", CHUNK_TASK),
        ("execution", "approve", "approver"),
        *[("tradeorder", "transition", "ops")] * 6,
        ("portfolioaccount", "settle", "ops"),
        ("tradeorder", "settle", "ops"),
    ]

    allocation_entry = LogEntry.objects.get(id__gt=start, content_type__model="allocation")
    assert allocation_entry.changes_dict["lines"] == ["None", f"{a.isin} 0.5; {b.isin} 0.5"]
    assert allocation_entry.additional_data["via"] == "api-token"
    approval = entries_for(execution)[-1]
    assert approval.changes_dict == {"status": ["AWAITING_APPROVAL", "COMPLETED"], "approval_comment": ["", "checked"]}
    assert approval.additional_data["token"]
    settled = entries_for(order)[-1]
    assert settled.changes_dict["status"] == ["SETTLED_IN_MARKET", "SETTLED"]
    assert settled.changes_dict["settled_units"] == ["0", format(order.units.normalize(), "f")]

    # The audit log admin lists the execution's entries, with the users.
    page = admin_client.get("/admin/auditlog/logentry/", {"q": str(execution.pk)})
    assert page.status_code == 200
    assert [(_what(e), _who(e)) for e in reversed(page.context["cl"].result_list)] == [
        ("create", "admin"), ("start", CHUNK_TASK), ("await_approval", CHUNK_TASK), ("approve", "approver"),
    ]
