"""Four-eyes approval of large executions, through the services: thresholds hold an
execution (PENDING_APPROVAL orders, OPEN orders untouched, leases kept), the totals
decide AWAITING_APPROVAL or activation, approve / reject / cancel, and who may decide."""

from datetime import date
from decimal import Decimal

import pytest

from core.errors import Conflict, Forbidden, InvalidInput
from portfolios.models import FxRate
from rebalancing.models import (
    AccountLease,
    Execution,
    ExecutionStatus,
    PortfolioOrder,
    TradeOrder,
    TradeOrderStatus,
    Trigger,
)
from rebalancing.services import (
    execution_cancel,
    execution_create,
    preferences_replace,
    trade_order_transition,
)
from rebalancing.services.approval import execution_approve, execution_reject
from webhooks.events import subscriptions_cache_clear
from webhooks.models import Event

from .conftest import D, run_chunks

pytestmark = pytest.mark.django_db
S = TradeOrderStatus


@pytest.fixture
def approver(user_with_perms):
    return user_with_perms("rebalancing.approve_execution", "rebalancing.execute_rebalance", username="approver")


@pytest.fixture
def requester(user_with_perms):
    return user_with_perms("rebalancing.approve_execution", "rebalancing.execute_rebalance", username="requester")


def thresholds(**values):
    preferences_replace(values=values)


def run(accounts, user=None, trigger=Trigger.API) -> Execution:
    execution = execution_create(
        account_ids=[str(a.pk) for a in accounts], trigger=trigger, user=user, rebalance_date=D, method="FULL"
    )
    run_chunks(execution)
    execution.refresh_from_db()
    return execution


def statuses(**filters) -> list:
    return sorted(TradeOrder.objects.filter(**filters).values_list("status", flat=True))


@pytest.fixture
def two_accounts(fifty_fifty, account_with):
    """Two accounts of 1000 EUR cash: each gets a buy of 500 of A and of B (gross 1000, 2 orders)."""
    *_, allocation = fifty_fifty
    return [account_with(allocation), account_with(allocation)]


@pytest.fixture
def previous_open(two_accounts):
    """OPEN orders of the two accounts from an earlier execution, made without thresholds."""
    first = run(two_accounts)
    assert first.status == "COMPLETED" and not first.held
    return set(TradeOrder.objects.filter(execution=first).values_list("pk", flat=True))


def test_without_thresholds_nothing_is_held(two_accounts):
    execution = run(two_accounts)
    assert (execution.status, execution.held, execution.gross_amount, execution.order_count) == (
        "COMPLETED", False, None, None
    )
    assert statuses(execution=execution) == ["OPEN"] * 4
    assert not AccountLease.objects.exists()


def test_below_the_thresholds_it_is_activated_at_once(two_accounts, previous_open, requester):
    thresholds(approval_gross_amount=Decimal("2000.01"), approval_order_count=4)
    execution = run(two_accounts, user=requester)
    assert (execution.status, execution.held) == ("COMPLETED", True)
    assert (execution.gross_amount, execution.order_count, execution.approval_reason) == (Decimal("2000"), 4, "")
    assert execution.approved_by is None and execution.finished_at is not None
    assert statuses(execution=execution) == ["OPEN"] * 4
    assert statuses(pk__in=previous_open) == ["REPLACED"] * 4
    assert not AccountLease.objects.exists()


def test_at_the_limit_is_not_above_it(two_accounts):
    thresholds(approval_gross_amount=Decimal("2000"), approval_order_count=4)
    assert run(two_accounts).status == "COMPLETED"


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        ({"approval_gross_amount": Decimal("1999.99")}, "gross amount 2000 EUR is above the limit of 1999.99 EUR"),
        ({"approval_order_count": 3}, "4 trade orders are above the limit of 3"),
    ],
)
def test_above_a_threshold_it_waits_for_approval(two_accounts, previous_open, fifty_fifty, account_with, limits, reason):
    thresholds(**limits)
    execution = run(two_accounts)
    assert execution.status == "AWAITING_APPROVAL" and execution.finished_at is None
    assert (execution.gross_amount, execution.order_count, execution.approval_reason) == (Decimal("2000"), 4, reason)
    assert statuses(execution=execution) == ["PENDING_APPROVAL"] * 4
    assert statuses(pk__in=previous_open) == ["OPEN"] * 4  # untouched until approved
    assert set(AccountLease.objects.values_list("execution_id", flat=True)) == {execution.pk}
    assert AccountLease.objects.count() == 2

    # The accounts stay taken: another execution gets the usual refusal for them.
    other = run([two_accounts[0]])
    assert other.status == "FAILED"
    assert other.results.get().error == f"account is in running execution {execution.pk}"


def test_approval_by_another_user_activates_it(two_accounts, previous_open, requester, approver):
    thresholds(approval_order_count=1)
    execution = run(two_accounts, user=requester)
    approved = execution_approve(execution=execution, user=approver, comment="  checked the sizes ")
    execution.refresh_from_db()
    assert execution.status == approved.status == "COMPLETED"
    assert (execution.approved_by, execution.approval_comment) == (approver, "checked the sizes")
    assert execution.approved_at is not None and execution.finished_at == execution.approved_at
    assert statuses(execution=execution) == ["OPEN"] * 4
    assert statuses(pk__in=previous_open) == ["REPLACED"] * 4
    assert not AccountLease.objects.exists()
    assert run([two_accounts[0]]).status == "AWAITING_APPROVAL"  # the accounts are free again

    with pytest.raises(Conflict, match="is COMPLETED; only an AWAITING_APPROVAL execution can be approved"):
        execution_approve(execution=execution, user=approver)


def test_approval_keeps_the_final_status_of_the_results(two_accounts, approver):
    two_accounts[1].locked = True
    two_accounts[1].save()
    thresholds(approval_order_count=1)
    execution = run(two_accounts)
    assert execution.status == "AWAITING_APPROVAL"
    # A SKIPPED_LOCKED result is not FAILED: COMPLETED, as without approval.
    assert execution_approve(execution=execution, user=approver).status == "COMPLETED"


def test_the_requester_may_never_decide_even_as_superuser(two_accounts, superuser, requester):
    thresholds(approval_order_count=1)
    for user in (requester, superuser):
        execution = run(two_accounts, user=user)
        for decide in (execution_approve, execution_reject):
            with pytest.raises(Forbidden, match="another user must"):
                decide(execution=execution, user=user)
        execution.refresh_from_db()
        assert execution.status == "AWAITING_APPROVAL"
        assert statuses(execution=execution) == ["PENDING_APPROVAL"] * 4
        execution_cancel(execution=execution)


def test_deciding_needs_the_approve_permission(two_accounts, user_with_perms):
    thresholds(approval_order_count=1)
    execution = run(two_accounts)
    operator = user_with_perms("rebalancing.execute_rebalance", "rebalancing.change_execution", username="operator")
    with pytest.raises(Forbidden, match="rebalancing.approve_execution"):
        execution_approve(execution=execution, user=operator)
    execution.refresh_from_db()
    assert execution.status == "AWAITING_APPROVAL"


def test_reject(two_accounts, previous_open, requester, approver):
    thresholds(approval_gross_amount=Decimal(1))
    execution = run(two_accounts, user=requester)
    execution_reject(execution=execution, user=approver, comment="too large today")
    execution.refresh_from_db()
    assert (execution.status, execution.approved_by, execution.approval_comment) == (
        "REJECTED", approver, "too large today"
    )
    assert execution.finished_at is not None
    assert statuses(execution=execution) == ["REJECTED"] * 4
    assert statuses(pk__in=previous_open) == ["OPEN"] * 4
    assert not AccountLease.objects.exists()
    with pytest.raises(Conflict, match="is REJECTED"):
        execution_reject(execution=execution, user=approver)


def test_cancel_while_awaiting_approval(two_accounts, previous_open):
    thresholds(approval_order_count=1)
    execution = run(two_accounts)
    execution_cancel(execution=execution)
    execution.refresh_from_db()
    assert execution.status == "CANCELLED"
    assert statuses(execution=execution) == ["CANCELLED"] * 4
    assert statuses(pk__in=previous_open) == ["OPEN"] * 4
    assert not AccountLease.objects.exists()


def test_cancel_while_a_held_execution_runs(fifty_fifty, account_with, chunk_size):
    *_, allocation = fifty_fifty
    chunk_size(1)
    accounts = [account_with(allocation) for _ in range(2)]
    thresholds(approval_order_count=1)
    execution = execution_create(account_ids=[str(a.pk) for a in accounts], rebalance_date=D)
    from rebalancing.services import execution_chunk_process

    first = execution.chunks.order_by("number").first()
    execution_chunk_process(chunk_id=first.pk)
    assert statuses(execution=execution) == ["PENDING_APPROVAL"] * 2
    execution_cancel(execution=execution)
    assert statuses(execution=execution) == ["CANCELLED"] * 2
    assert not AccountLease.objects.exists()
    assert set(execution.chunks.values_list("status", flat=True)) == {"DONE", "CANCELLED"}


def test_a_cancel_while_every_chunk_is_busy_is_undone_by_the_last_one_to_end(fifty_fifty, account_with, chunk_size):
    """Cancel arrives while both chunks are being processed (locked by workers): the
    first commits its PENDING_APPROVAL orders after the cancel, the second ends as
    CANCELLED on its redelivery; that last chunk undoes the held execution."""
    from django.db import transaction

    from rebalancing.models import ChunkStatus, ExecutionChunk
    from rebalancing.services import execution_chunk_process
    from rebalancing.services.executions import _chunk_run

    *_, allocation = fifty_fifty
    chunk_size(1)
    accounts = [account_with(allocation) for _ in range(2)]
    thresholds(approval_order_count=1)
    execution = execution_create(account_ids=[str(a.pk) for a in accounts], rebalance_date=D)
    first, second = execution.chunks.order_by("number")
    seen_running = Execution.objects.get(pk=execution.pk)  # what the first chunk read before the cancel
    # The cancel finds both chunks locked: it cancels the execution and leaves them to their workers.
    Execution.objects.filter(pk=execution.pk).update(status=ExecutionStatus.CANCELLED)
    with transaction.atomic():
        _chunk_run(ExecutionChunk.objects.get(pk=first.pk), seen_running)
    assert statuses(execution=execution) == ["PENDING_APPROVAL"] * 2 and AccountLease.objects.count() == 2
    execution_chunk_process(chunk_id=second.pk)  # redelivered after its worker died: the execution is cancelled
    assert statuses(execution=execution) == ["CANCELLED"] * 2
    assert not AccountLease.objects.exists()
    assert list(execution.chunks.order_by("number").values_list("status", flat=True)) == [
        ChunkStatus.DONE, ChunkStatus.CANCELLED
    ]


def test_an_open_order_the_held_execution_will_replace_cannot_be_accepted_meanwhile(
    two_accounts, previous_open, approver
):
    """Accepted during the wait, an old OPEN buy would trade next to its replacement:
    2000 EUR of buys on 1000 EUR. Refused (409) until the execution is decided;
    cancelling an old OPEN order stays possible."""
    thresholds(approval_order_count=1)
    execution = run(two_accounts)
    assert execution.status == "AWAITING_APPROVAL"
    old = sorted(TradeOrder.objects.filter(pk__in=previous_open), key=lambda o: str(o.pk))
    with pytest.raises(Conflict, match=f"execution {execution.pk} .*AWAITING_APPROVAL.* will rebalance once approved"):
        trade_order_transition(order=old[0], status=S.ACCEPTED)
    trade_order_transition(order=old[1], status=S.CANCELLED)
    execution_approve(execution=execution, user=approver)
    assert statuses(pk__in=previous_open) == ["CANCELLED", "REPLACED", "REPLACED", "REPLACED"]
    assert statuses(execution=execution) == ["OPEN"] * 4
    trade_order_transition(order=TradeOrder.objects.filter(execution=execution).first(), status=S.ACCEPTED)


def test_an_open_order_of_a_sub_portfolio_is_held_with_its_parent(fifty_fifty, account_with):
    from tests.factories import AccountFactory

    a, _, allocation = fifty_fifty
    parent = account_with(allocation)
    child = AccountFactory(parent=parent)
    order = TradeOrder.objects.create(
        account=child, instrument=a, side="SELL", transaction_type="SELL", units=Decimal(1), unit_price=Decimal(10),
        trade_amount=Decimal(10), currency="EUR", execution_method="UNITS",
    )
    thresholds(approval_order_count=1)
    execution = run([parent])
    assert execution.status == "AWAITING_APPROVAL"
    with pytest.raises(Conflict, match=f"execution {execution.pk}"):
        trade_order_transition(order=order, status=S.ACCEPTED)


def test_an_account_locked_or_closed_during_the_wait_gets_nothing_on_approval(two_accounts, previous_open, approver):
    thresholds(approval_order_count=1)
    execution = run(two_accounts)
    locked, other = two_accounts
    locked.locked = True
    locked.save(update_fields=["locked"])
    execution = execution_approve(execution=execution, user=approver)
    assert execution.status == "PARTIALLY_FAILED"
    assert statuses(execution=execution, account=locked) == ["CANCELLED"] * 2
    assert statuses(execution=execution, account=other) == ["OPEN"] * 2
    assert statuses(pk__in=previous_open, account=locked) == ["OPEN"] * 2  # kept: no proposal replaces them
    assert statuses(pk__in=previous_open, account=other) == ["REPLACED"] * 2
    result = execution.results.get(account=locked)
    assert result.status == "FAILED" and "was locked or is no longer ACTIVE" in result.error
    assert not AccountLease.objects.exists()


def test_a_scheduled_execution_waits_too_and_any_holder_decides(two_accounts, approver):
    thresholds(approval_order_count=1)
    execution = run(two_accounts, trigger=Trigger.SCHEDULED)
    assert (execution.status, execution.requested_by, execution.trigger) == ("AWAITING_APPROVAL", None, "SCHEDULED")
    assert execution_approve(execution=execution, user=approver).status == "COMPLETED"


def test_thresholds_are_those_at_planning_time(two_accounts):
    thresholds(approval_order_count=1)
    execution = execution_create(account_ids=[str(a.pk) for a in two_accounts], rebalance_date=D)
    thresholds()  # removed after planning: the execution still waits
    run_chunks(execution)
    execution.refresh_from_db()
    assert (execution.status, execution.approval_order_limit) == ("AWAITING_APPROVAL", 1)


def test_gross_amount_in_the_approval_currency(two_accounts):
    FxRate.objects.create(base="EUR", quote="USD", rate=Decimal("1.1"), effective_at=date(2026, 1, 1))
    thresholds(approval_gross_amount=Decimal("2199"), approval_currency="USD")
    execution = run(two_accounts)
    assert (execution.status, execution.gross_amount, execution.approval_currency) == (
        "AWAITING_APPROVAL", Decimal("2200"), "USD"
    )
    assert execution.approval_reason == "gross amount 2200 USD is above the limit of 2199 USD"


def test_a_missing_fx_rate_needs_approval_and_says_why(two_accounts):
    thresholds(approval_gross_amount=Decimal("1000000"), approval_currency="CHF")
    execution = run(two_accounts)
    assert execution.status == "AWAITING_APPROVAL"
    assert execution.approval_reason == (
        f"the gross amount in CHF is unknown for some orders (no FX rate EUR/CHF at or before {D})"
    )


def test_portfolio_order_trade_orders_are_not_replaced_on_approval(two_accounts, approver):
    account = two_accounts[0]
    portfolio_order = PortfolioOrder.objects.create(account=account, side="BUY", cash_amount=Decimal(10), currency="EUR")
    instrument = TradeOrder.objects.model._meta.get_field("instrument").related_model.objects.first()
    client_order = TradeOrder.objects.create(
        account=account, instrument=instrument, side="BUY", transaction_type="BUY", units=Decimal(1),
        unit_price=Decimal(10), trade_amount=Decimal(10), currency="EUR", execution_method="NET_TRADE_AMOUNT",
        portfolio_order=portfolio_order,
    )
    thresholds(approval_order_count=1)
    execution_approve(execution=run(two_accounts), user=approver)
    client_order.refresh_from_db()
    assert client_order.status == "OPEN"


def test_pending_approval_orders_cannot_be_moved_by_hand(two_accounts):
    thresholds(approval_order_count=1)
    execution = run(two_accounts)
    order = TradeOrder.objects.filter(execution=execution).first()
    for target in (S.ACCEPTED, S.OPEN, S.CANCELLED):
        with pytest.raises(Conflict, match=f"waits for the approval of execution {execution.pk}"):
            trade_order_transition(order=order, status=target)
    order.refresh_from_db()
    assert order.status == S.PENDING_APPROVAL


def test_pending_approval_orders_are_neither_kept_nor_replaced_by_another_execution(two_accounts, approver):
    # Rejected, the accounts rebalance again from scratch: the rejected orders count for nothing.
    thresholds(approval_order_count=1)
    execution = run(two_accounts)
    execution_reject(execution=execution, user=approver)
    thresholds(approval_order_count=None)  # null lifts the limit (left out, it would stay)
    second = run(two_accounts)
    assert second.status == "COMPLETED"
    assert statuses(execution=second) == ["OPEN"] * 4
    assert statuses(execution=execution) == ["REJECTED"] * 4


def test_every_status_change_is_an_event(two_accounts, requester, approver):
    from webhooks import services as webhook_services

    webhook_services.subscription_create(
        url="https://partner.example/hooks", event_types=["execution.status_changed"], active=True
    )
    subscriptions_cache_clear()
    thresholds(approval_order_count=1)
    approved = run(two_accounts, user=requester)
    execution_approve(execution=approved, user=approver)
    rejected = run(two_accounts, user=requester)
    execution_reject(execution=rejected, user=approver)

    def seen(execution):
        return [
            e.payload["status"] for e in Event.objects.filter(type="execution.status_changed").order_by("created_at", "id")
            if e.payload["execution_id"] == str(execution.pk)
        ]

    assert seen(approved) == ["PENDING", "RUNNING", "AWAITING_APPROVAL", "COMPLETED"]
    assert seen(rejected) == ["PENDING", "RUNNING", "AWAITING_APPROVAL", "REJECTED"]
    subscriptions_cache_clear()


# --- Preferences --------------------------------------------------------------------------------


def test_thresholds_are_validated_and_bad_values_change_nothing():
    thresholds(approval_gross_amount=Decimal(5))
    with pytest.raises(InvalidInput) as caught:
        thresholds(approval_gross_amount=Decimal("-1"), approval_order_count=0, approval_currency="eur")
    assert {(e.field, e.message) for e in caught.value.errors} == {
        ("approval_gross_amount", "must not be negative"),
        ("approval_order_count", "must be a whole number of at least 1"),
        ("approval_currency", "eur is not an ISO 4217 currency code"),
    }
    with pytest.raises(InvalidInput, match="approval_gross_amount: at most 8 decimal places"):
        thresholds(approval_gross_amount=Decimal("1.000000001"))
    from rebalancing.services.preferences import approval_thresholds

    assert approval_thresholds().gross_amount == Decimal(5)


def test_thresholds_are_refused_for_an_account(two_accounts):
    with pytest.raises(InvalidInput) as caught:
        preferences_replace(values={"approval_order_count": 3, "min_trade_amount": Decimal(1)}, account=two_accounts[0])
    assert [e.field for e in caught.value.errors] == ["approval_order_count"]
    assert "global preference only" in caught.value.errors[0].message

