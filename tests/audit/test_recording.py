"""What each kind of change records: who, how, and each value before → after."""

import sys
from decimal import Decimal

import pytest
from auditlog.models import LogEntry
from django.core.exceptions import PermissionDenied

from audit.context import audit_context
from portfolios import services as portfolios_services
from portfolios.models import Allocation
from rebalancing.models import Execution, RebalancePreferences, Strategy, TradeOrder, TradeOrderStatus
from rebalancing.services import execution_cancel, execution_create, strategies
from rebalancing.services.automation.savings import savings_plan_create, savings_plans_pause
from tests.factories import AccountFactory, CashAccountFactory, InstrumentFactory, PositionFactory, UserFactory

from .conftest import D, entries_for

pytestmark = pytest.mark.django_db

ACCOUNTS = "/api/v1/portfolios/accounts/"
ALLOCATIONS = "/api/v1/portfolios/allocations/"
EXECUTIONS = "/api/v1/portfolios/rebalancings/executions/"
TRADE_ORDERS = "/api/v1/trade-orders/"


def test_an_api_change_records_the_token_user_the_token_prefix_and_before_after(api_client, superuser):
    account = AccountFactory()
    response = api_client.put(f"{ACCOUNTS}{account.pk}/preferences/", {"min_trade_amount": "25.5"}, format="json")
    assert response.status_code == 200, response.content
    preferences = RebalancePreferences.objects.get(account=account)
    [entry] = entries_for(preferences)
    assert entry.actor == superuser
    assert entry.additional_data["via"] == "api-token"
    key = api_client.token_key
    assert entry.additional_data["token"] == key[:8]
    assert key not in str(entry.additional_data) and key not in str(entry.changes)
    assert entry.changes_dict["min_trade_amount"] == ["None", "25.5"]

    api_client.put(f"{ACCOUNTS}{account.pk}/preferences/", {"min_trade_amount": "30"}, format="json")
    assert entries_for(preferences)[-1].changes_dict == {"min_trade_amount": ["25.5", "30"]}


def test_a_session_api_change_records_the_session_user(client, superuser):
    client.force_login(superuser)
    account = AccountFactory()
    response = client.patch(f"{ACCOUNTS}{account.pk}/", {"locked": True}, content_type="application/json")
    assert response.status_code == 200, response.content
    entry = entries_for(account)[-1]
    assert (entry.actor, entry.additional_data["via"]) == (superuser, "api-session")
    assert entry.changes_dict == {"locked": ["False", "True"]}
    assert "token" not in entry.additional_data


def test_allocation_versions_record_the_lines_before_and_after(api_client, superuser):
    a, b = InstrumentFactory(isin="IE00B4L5Y983"), InstrumentFactory(isin="US0378331005")
    created = api_client.post(ALLOCATIONS, {
        "name": "Balanced", "allocation": [{"instrument_id": a.isin, "weight": "0.6"},
                                            {"instrument_id": b.isin, "weight": "0.4", "min_weight": "0.3"}],
        "effective_from": "2026-01-05",
    }, format="json")
    assert created.status_code == 201, created.content
    allocation_id = created.json()["allocation_id"]
    updated = api_client.put(f"{ALLOCATIONS}{allocation_id}/", {
        "name": "Growth", "allocation": [{"instrument_id": a.isin, "weight": "1"}], "effective_from": "2026-02-01",
    }, format="json")
    assert updated.status_code == 200, updated.content

    first, second = entries_for(Allocation.objects.get(pk=allocation_id))
    assert first.action == LogEntry.Action.CREATE and first.actor == superuser
    assert first.changes_dict["lines"] == ["None", "IE00B4L5Y983 0.6; US0378331005 0.4 [0.3–]"]
    assert first.changes_dict["version"] == ["None", "1"]
    assert second.action == LogEntry.Action.UPDATE
    assert second.changes_dict == {
        "name": ["Balanced", "Growth"],
        "version": ["1", "2"],
        "effective_from": ["2026-01-05", "2026-02-01"],
        "lines": ["IE00B4L5Y983 0.6; US0378331005 0.4 [0.3–]", "IE00B4L5Y983 1"],
    }
    assert second.additional_data["summary"].startswith("IE00B4L5Y983 0.6 → 1")


def test_a_holdings_put_records_positions_and_cash_before_and_after(api_client, superuser):
    account = AccountFactory(base_currency="EUR")
    old = InstrumentFactory(isin="DE0005140008")
    new = InstrumentFactory(isin="FR0000120271")
    PositionFactory(account=account, instrument=old, units=Decimal("7"))
    CashAccountFactory(account=account, currency="EUR", balance=Decimal("100"))
    body = {
        "positions": [{"instrument_id": old.isin, "units": "7"}, {"instrument_id": new.isin, "units": "2.5"}],
        "cash": [{"currency": "EUR", "balance": "80.10", "is_default": True}],
    }
    assert api_client.put(f"{ACCOUNTS}{account.pk}/holdings/", body, format="json").status_code == 200
    entry = entries_for(account)[-1]
    assert (entry.actor, entry.additional_data["event"], entry.additional_data["via"]) == (
        superuser, "replace_holdings", "api-token")
    assert entry.changes_dict == {
        "positions": ["DE0005140008 7", "DE0005140008 7; FR0000120271 2.5"],
        "cash": ["EUR CASH 100 (default)", "EUR CASH 80.1 (default)"],
    }
    # The same snapshot again changes nothing, and records nothing.
    count = len(entries_for(account))
    assert api_client.put(f"{ACCOUNTS}{account.pk}/holdings/", body, format="json").status_code == 200
    assert len(entries_for(account)) == count


def _order(account, instrument, **fields):
    return TradeOrder.objects.create(
        account=account, instrument=instrument, side="BUY", transaction_type="BUY", units=Decimal(4),
        unit_price=Decimal(10), trade_amount=Decimal(40), currency="EUR", execution_method="UNITS", **fields,
    )


def test_trade_order_transitions_and_the_settlement_are_recorded(api_client, superuser):
    account = AccountFactory(base_currency="EUR")
    instrument = InstrumentFactory(isin="IE00B4L5Y983", currency="EUR")
    PositionFactory(account=account, instrument=instrument, units=Decimal(1))
    CashAccountFactory(account=account, currency="EUR", balance=Decimal(100))
    order = _order(account, instrument)
    for status, extra in (("ACCEPTED", {}), ("EXECUTABLE", {}), ("SENT_TO_EXECUTION", {}), ("IN_EXECUTION", {}),
                          ("PARTIALLY_EXECUTED", {"executed_units": "1", "executed_price": "9"}),
                          ("EXECUTED_IN_MARKET", {}), ("SETTLED_IN_MARKET", {}), ("SETTLED", {})):
        response = api_client.post(f"{TRADE_ORDERS}{order.pk}/transitions/", {"status": status, **extra}, format="json")
        assert response.status_code == 200, response.content

    entries = entries_for(order)
    assert [e.changes_dict["status"] for e in entries] == [
        ["OPEN", "ACCEPTED"], ["ACCEPTED", "EXECUTABLE"], ["EXECUTABLE", "SENT_TO_EXECUTION"],
        ["SENT_TO_EXECUTION", "IN_EXECUTION"], ["IN_EXECUTION", "PARTIALLY_EXECUTED"],
        ["PARTIALLY_EXECUTED", "EXECUTED_IN_MARKET"], ["EXECUTED_IN_MARKET", "SETTLED_IN_MARKET"],
        ["SETTLED_IN_MARKET", "SETTLED"],
    ]
    assert {e.actor for e in entries} == {superuser}
    fill, rest, settled = entries[4], entries[5], entries[7]
    assert fill.changes_dict["executed_units"] == ["0", "1"] and fill.changes_dict["executed_amount"] == ["0", "9"]
    assert rest.changes_dict["executed_units"] == ["1", "4"] and rest.changes_dict["executed_amount"] == ["9", "39"]
    assert settled.additional_data["event"] == "settle"
    assert settled.changes_dict["settled_units"] == ["0", "4"] and settled.changes_dict["settled_amount"] == ["0", "39"]

    booked = entries_for(account)[-1]
    assert booked.additional_data["event"] == "settle" and booked.additional_data["trade_order"] == str(order.pk)
    assert booked.actor == superuser
    assert booked.changes_dict == {"position IE00B4L5Y983": ["1", "5"], "cash EUR CASH": ["100", "61"]}


def test_an_execution_records_who_created_and_who_cancelled_it(fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    requester, canceller = UserFactory(username="requester"), UserFactory(username="canceller")
    accounts = [account_with(allocation), account_with(allocation)]
    execution = execution_create(account_ids=[a.pk for a in accounts], user=requester, rebalance_date=D)
    execution_cancel(execution=Execution.objects.get(pk=execution.pk), user=canceller)

    created, cancelled = entries_for(execution)
    assert created.action == LogEntry.Action.CREATE and created.actor == requester
    assert created.changes_dict["status"] == ["None", "PENDING"]
    assert created.changes_dict["accounts"] == ["None", "2"]
    assert created.changes_dict["rebalance_date"] == ["None", D.isoformat()]
    assert cancelled.actor == canceller and cancelled.additional_data["event"] == "cancel"
    assert cancelled.changes_dict == {"status": ["PENDING", "CANCELLED"]}


def test_an_executions_orders_are_covered_by_the_execution_record(fifty_fifty, account_with):
    from rebalancing.services import execution_chunk_process

    *_, allocation = fifty_fifty
    execution = execution_create(account_ids=[account_with(allocation).pk], rebalance_date=D)
    before = LogEntry.objects.count()
    for chunk in execution.chunks.all():
        execution_chunk_process(chunk_id=chunk.pk)
    assert TradeOrder.objects.filter(execution=execution, status=TradeOrderStatus.OPEN).count() == 2
    events = [e.additional_data["event"] for e in LogEntry.objects.order_by("id")[before:]]
    assert events == ["start", "finish"]  # nothing per order
    assert entries_for(execution)[-1].changes_dict["status"] == ["RUNNING", "COMPLETED"]


def test_bulk_pauses_and_locks_record_each_row(fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    account = account_with(allocation)
    strategy = strategies.strategy_create(
        data=strategies.strategy_validate({"type": "THRESHOLD", "absolute_drift": "0.05"}), allocation=allocation
    )
    plan = savings_plan_create(account=account, cash_amount=Decimal(100), currency="EUR", day=1)
    assert strategies.strategies_pause(strategy_ids=[strategy.pk]) == 1
    assert savings_plans_pause(plan_ids=[plan.pk]) == 1
    assert portfolios_services.accounts_set_locked(account_ids=[account.pk], locked=True) == 1

    assert entries_for(strategy)[0].action == LogEntry.Action.CREATE  # by auditlog's signals
    assert entries_for(strategy)[-1].changes_dict == {"paused": ["False", "True"]}
    assert entries_for(plan)[-1].changes_dict == {"active": ["True", "False"]}
    assert entries_for(account)[-1].changes_dict == {"locked": ["False", "True"]}
    assert Strategy.objects.get(pk=strategy.pk).paused


def test_outside_a_request_the_command_or_process_is_named(monkeypatch, fifty_fifty):
    *_, allocation = fifty_fifty
    monkeypatch.setattr(sys, "argv", ["manage.py", "rebalance", "--all"])
    execution = execution_create(allocation=allocation, rebalance_date=D)
    entry = entries_for(execution)[0]
    assert entry.actor is None
    assert entry.additional_data["via"] == "command" and entry.additional_data["system"] == "command rebalance"
    with audit_context(via="task", system="task rebalancing.tasks.strategies_evaluate_task"):
        second = execution_create(allocation=allocation, rebalance_date=D)
    # No account follows the allocation: created and finished at once, both by the "task".
    assert [(e.action, e.additional_data.get("event"), e.additional_data["system"]) for e in entries_for(second)] == [
        (LogEntry.Action.CREATE, None, "task rebalancing.tasks.strategies_evaluate_task"),
        (LogEntry.Action.UPDATE, "finish", "task rebalancing.tasks.strategies_evaluate_task"),
    ]


def test_an_entry_is_never_changed_once_written():
    account = AccountFactory()
    entry = entries_for(account)[0]
    entry.changes = {"client_id": ["forged", "x"]}
    with pytest.raises(PermissionDenied):
        entry.save()
