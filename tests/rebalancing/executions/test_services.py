"""Executions through the services: the lifecycle, §4.6 outstanding orders, exactly-once
chunks (twice, interrupted, failed), overlapping executions, cancel, and the query
budget of a chunk."""

from decimal import Decimal

import pytest

from core.errors import Conflict, InvalidInput
from rebalancing.models import (
    AccountLease,
    ChunkStatus,
    Execution,
    ExecutionChunk,
    ExecutionResult,
    ExecutionStatus,
    TradeOrder,
    TradeOrderStatus,
    Trigger,
)
from rebalancing.services import (
    bulk,
    execution_cancel,
    execution_chunk_fail,
    execution_chunk_process,
    execution_create,
    preferences_replace,
)
from rebalancing.services import executions as executions_module
from tests.factories import AccountFactory, PositionFactory, make_allocation
from webhooks.events import subscriptions_cache_clear

from .conftest import D, run_chunks

pytestmark = pytest.mark.django_db


def create(accounts=None, **kwargs) -> Execution:
    if accounts is not None:
        kwargs["account_ids"] = [str(a.pk) for a in accounts]
    return execution_create(method=kwargs.pop("method", "FULL"), trigger=kwargs.pop("trigger", Trigger.API),
                            rebalance_date=D, **kwargs)


def orders_of(account, **filters) -> list[tuple]:
    return sorted(
        (o.instrument_id, o.side, o.units, o.trade_amount, o.status)
        for o in TradeOrder.objects.filter(account=account, **filters)
    )


def test_lifecycle_pending_running_completed(fifty_fifty, account_with, chunk_size):
    a, b, allocation = fifty_fifty
    chunk_size(2)
    accounts = [account_with(allocation) for _ in range(3)]

    execution = create(accounts)
    assert (execution.status, execution.total, execution.done, execution.trigger) == ("PENDING", 3, 0, "API")
    assert [len(c.account_ids) for c in execution.chunks.order_by("number")] == [2, 1]
    assert AccountLease.objects.filter(execution=execution).count() == 3

    first, second = execution.chunks.order_by("number")
    outcome = execution_chunk_process(chunk_id=first.pk)
    assert (outcome.processed, outcome.accounts, outcome.orders, outcome.execution_status) == (True, 2, 4, "")
    execution.refresh_from_db()
    assert (execution.status, execution.done) == ("RUNNING", 2)
    assert execution.started_at is not None and execution.finished_at is None

    assert execution_chunk_process(chunk_id=second.pk).execution_status == "COMPLETED"
    execution.refresh_from_db()
    assert (execution.status, execution.done) == ("COMPLETED", 3)
    assert execution.finished_at >= execution.started_at
    assert not AccountLease.objects.exists()
    assert set(execution.chunks.values_list("status", flat=True)) == {ChunkStatus.DONE}

    for account in accounts:
        result = ExecutionResult.objects.get(execution=execution, account=account)
        assert (result.status, result.error, result.total_value, result.cash_before, result.cash_after) == (
            "PROPOSED", "", Decimal(1000), Decimal(1000), Decimal(0)
        )
        assert result.order_count == 2
        assert orders_of(account) == sorted(
            [(a.pk, "BUY", Decimal(50), Decimal(500), "OPEN"), (b.pk, "BUY", Decimal(50), Decimal(500), "OPEN")]
        )
    order = TradeOrder.objects.filter(execution=execution).first()
    assert (order.currency, order.execution_method, order.transaction_type) == ("EUR", "NET_TRADE_AMOUNT", "BUY")
    # Columns the PostgreSQL COPY leaves to their database defaults (written on SQLite).
    for order in TradeOrder.objects.filter(execution=execution):
        assert (order.executed_units, order.executed_amount, order.settled_units, order.settled_amount) == (0, 0, 0, 0)
        assert order.portfolio_order_id is None
        assert order.created_at == order.updated_at and order.created_at <= execution.finished_at


def test_failed_accounts_make_it_partially_failed_and_all_failed_make_it_failed(fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    good, unconfigured = account_with(allocation), AccountFactory()
    execution = create([good, unconfigured])
    run_chunks(execution)
    execution.refresh_from_db()
    assert execution.status == "PARTIALLY_FAILED"
    failed = ExecutionResult.objects.get(execution=execution, account=unconfigured)
    assert failed.status == "FAILED" and "has no configuration" in failed.error
    assert failed.total_value is None and failed.order_count == 0

    pending = account_with(allocation, status="PENDING")
    only_failures = create([pending])
    run_chunks(only_failures)
    only_failures.refresh_from_db()
    assert only_failures.status == "FAILED"


def test_locked_and_within_range_are_not_failures(fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    locked = account_with(allocation, locked=True)
    execution = create([locked])
    run_chunks(execution)
    execution.refresh_from_db()
    assert execution.status == "COMPLETED"
    assert ExecutionResult.objects.get(execution=execution).status == "SKIPPED_LOCKED"
    assert not TradeOrder.objects.exists()


def test_open_orders_of_a_previous_execution_are_replaced(fifty_fifty, account_with):
    a, b, allocation = fifty_fifty
    account = account_with(allocation)
    child = AccountFactory(parent=account)
    PositionFactory(account=child, instrument=a, units=Decimal(10))  # 100 EUR of A: total 1100, 550 each
    first = create([account])
    run_chunks(first)
    first_orders = set(TradeOrder.objects.filter(execution=first).values_list("pk", flat=True))
    assert TradeOrder.objects.filter(execution=first, account=child).exists() is False  # only buys: into the parent

    # An OPEN order the sub-portfolio holds from elsewhere goes too: it belongs to the group.
    stray = TradeOrder.objects.create(
        account=child, instrument=a, side="SELL", transaction_type="SELL", units=Decimal(1), unit_price=Decimal(10),
        trade_amount=Decimal(10), currency="EUR", execution_method="UNITS",
    )
    second = create([account])
    run_chunks(second)
    assert set(TradeOrder.objects.filter(pk__in=first_orders).values_list("status", flat=True)) == {"REPLACED"}
    stray.refresh_from_db()
    assert stray.status == "REPLACED"
    # The new proposal is the same (the OPEN orders never counted), now OPEN under the second execution.
    assert sorted(TradeOrder.objects.filter(execution=second).values_list("side", "units", "status")) == [
        ("BUY", Decimal(45), "OPEN"), ("BUY", Decimal(55), "OPEN")
    ]


def test_kept_orders_are_netted_not_replaced(fifty_fifty, account_with):
    # Cash 1000, 50/50 at 10: A needs 500, an ACCEPTED buy of A for 200 exists → buy A 300, B 500 (§4.6).
    a, b, allocation = fifty_fifty
    account = account_with(allocation)
    kept = TradeOrder.objects.create(
        account=account, instrument=a, side="BUY", transaction_type="BUY", units=Decimal(20), unit_price=Decimal(10),
        trade_amount=Decimal(200), currency="EUR", execution_method="NET_TRADE_AMOUNT", status="ACCEPTED",
    )
    execution = create([account])
    run_chunks(execution)
    kept.refresh_from_db()
    assert kept.status == "ACCEPTED"
    assert orders_of(account, execution=execution) == sorted(
        [(a.pk, "BUY", Decimal(30), Decimal(300), "OPEN"), (b.pk, "BUY", Decimal(50), Decimal(500), "OPEN")]
    )


def test_failed_and_skipped_accounts_keep_their_open_orders(fifty_fifty, account_with):
    a, _, allocation = fifty_fifty
    account = account_with(allocation)
    run_chunks(create([account]))
    account.locked = True
    account.save()
    run_chunks(create([account]))
    assert set(TradeOrder.objects.filter(account=account).values_list("status", flat=True)) == {"OPEN"}


def test_running_the_same_chunk_twice_does_the_work_once(fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    accounts = [account_with(allocation) for _ in range(3)]
    execution = create(accounts)
    [chunk] = execution.chunks.all()
    assert execution_chunk_process(chunk_id=chunk.pk).processed
    again = execution_chunk_process(chunk_id=chunk.pk)
    assert not again.processed
    execution.refresh_from_db()
    assert (execution.status, execution.done) == ("COMPLETED", 3)
    assert ExecutionResult.objects.filter(execution=execution).count() == 3
    assert TradeOrder.objects.filter(execution=execution).count() == 6


class WorkerLost(BaseException):
    """Stands for the worker process dying: not an Exception, nothing catches it."""


@pytest.mark.parametrize("where", ["engine", "writes"])
def test_an_interrupted_chunk_rolls_back_and_finishes_on_retry(fifty_fifty, account_with, monkeypatch, where):
    *_, allocation = fifty_fifty
    accounts = [account_with(allocation) for _ in range(4)]
    execution = create(accounts)
    [chunk] = execution.chunks.all()

    if where == "engine":  # dies after two accounts are rebalanced
        real, calls = executions_module.rebalance_account, []

        def dying(**kwargs):
            calls.append(1)
            if len(calls) == 3:
                raise WorkerLost()
            return real(**kwargs)

        monkeypatch.setattr(executions_module, "rebalance_account", dying)
    else:  # dies after the trade orders went in, before the results
        real_write = bulk.results_write

        def dying_write(rows):
            assert TradeOrder.objects.filter(execution=execution).count() == 8
            raise WorkerLost()

        monkeypatch.setattr(bulk, "results_write", dying_write)
    with pytest.raises(WorkerLost):
        execution_chunk_process(chunk_id=chunk.pk)

    chunk.refresh_from_db()
    execution.refresh_from_db()
    assert chunk.status == "PENDING" and chunk.attempts == 1
    assert execution.done == 0 and execution.status == "RUNNING"
    assert not TradeOrder.objects.exists() and not ExecutionResult.objects.exists()
    assert AccountLease.objects.filter(execution=execution).count() == 4

    monkeypatch.undo()
    assert execution_chunk_process(chunk_id=chunk.pk).execution_status == "COMPLETED"
    chunk.refresh_from_db()
    assert chunk.attempts == 2
    assert sorted(ExecutionResult.objects.values_list("account_id", flat=True)) == sorted(a.pk for a in accounts)
    assert TradeOrder.objects.filter(execution=execution).count() == 8
    if where == "writes":
        assert real_write is bulk.results_write


def test_a_chunk_that_kills_every_worker_is_failed_after_max_attempts(fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    account = account_with(allocation)
    execution = create([account])
    [chunk] = execution.chunks.all()
    ExecutionChunk.objects.filter(pk=chunk.pk).update(attempts=executions_module.MAX_CHUNK_ATTEMPTS)
    outcome = execution_chunk_process(chunk_id=chunk.pk)
    assert outcome.execution_status == "FAILED"
    result = ExecutionResult.objects.get(execution=execution)
    assert result.status == "FAILED" and "attempts" in result.error
    assert not AccountLease.objects.exists()


def test_chunk_fail_fails_its_accounts_and_the_execution_still_finishes(fifty_fifty, account_with, chunk_size):
    *_, allocation = fifty_fifty
    chunk_size(1)
    good, doomed = account_with(allocation), account_with(allocation)
    execution = create([good, doomed])
    chunks = {c.account_ids[0]: c for c in execution.chunks.all()}
    execution_chunk_process(chunk_id=chunks[str(good.pk)].pk)
    outcome = execution_chunk_fail(chunk_id=chunks[str(doomed.pk)].pk, error="the chunk failed: OperationalError()")
    assert outcome.execution_status == "PARTIALLY_FAILED"
    assert ExecutionResult.objects.get(account=doomed).error == "the chunk failed: OperationalError()"
    assert not execution_chunk_fail(chunk_id=chunks[str(doomed.pk)].pk, error="again").processed


def test_overlapping_executions_fail_the_shared_accounts_naming_the_holder(fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    a, b, c = (account_with(allocation) for _ in range(3))
    first = create([a, b])
    second = create([b, c])
    assert (second.total, second.done) == (2, 1)
    refused = ExecutionResult.objects.get(execution=second, account=b)
    assert (refused.status, refused.error) == ("FAILED", f"account is in running execution {first.pk}")
    assert [chunk.account_ids for chunk in second.chunks.all()] == [[str(c.pk)]]

    run_chunks(first)
    run_chunks(second)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("COMPLETED", "PARTIALLY_FAILED")
    assert TradeOrder.objects.filter(account=b, status="OPEN").count() == 2  # one set, from the first
    # Once the first has finished, b can run again.
    third = create([b])
    assert third.done == 0 and third.chunks.count() == 1


def test_cancel_stops_the_chunks_not_started(fifty_fifty, account_with, chunk_size):
    *_, allocation = fifty_fifty
    chunk_size(1)
    accounts = [account_with(allocation) for _ in range(3)]
    execution = create(accounts)
    first, second, third = execution.chunks.order_by("number")
    execution_chunk_process(chunk_id=first.pk)

    cancelled = execution_cancel(execution=execution)
    assert cancelled.status == "CANCELLED" and cancelled.finished_at is not None
    assert list(execution.chunks.order_by("number").values_list("status", flat=True)) == [
        "DONE", "CANCELLED", "CANCELLED"
    ]
    assert not AccountLease.objects.exists()
    assert not execution_chunk_process(chunk_id=second.pk).processed
    assert ExecutionResult.objects.filter(execution=execution).count() == 1
    assert TradeOrder.objects.filter(execution=execution).count() == 2
    with pytest.raises(Conflict, match="is CANCELLED"):
        execution_cancel(execution=execution)
    # The cancelled accounts are free again.
    assert create(accounts[1:]).done == 0


def test_a_chunk_left_pending_by_a_cancel_is_cancelled_when_redelivered(fifty_fifty, account_with):
    # The worker holding the chunk died after the cancel skipped it: the redelivered task finds it PENDING.
    *_, allocation = fifty_fifty
    execution = create([account_with(allocation)])
    [chunk] = execution.chunks.all()
    Execution.objects.filter(pk=execution.pk).update(status=ExecutionStatus.CANCELLED)
    outcome = execution_chunk_process(chunk_id=chunk.pk)
    assert outcome.status == "CANCELLED"
    assert not AccountLease.objects.exists() and not TradeOrder.objects.exists()


def test_a_finished_execution_cannot_be_cancelled(fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    execution = create([account_with(allocation)])
    run_chunks(execution)
    with pytest.raises(Conflict, match="is COMPLETED"):
        execution_cancel(execution=Execution.objects.get(pk=execution.pk))


def test_selection_by_allocation_and_whole_book(fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    other = make_allocation()
    mine = [account_with(allocation) for _ in range(2)]
    theirs = account_with(other)
    account_with(allocation, status="PENDING")  # not rebalanceable: left out
    AccountFactory()  # not configured: left out

    by_allocation = create(allocation=allocation)
    assert by_allocation.allocation == allocation and by_allocation.total == 2
    assert sorted(by_allocation.chunks.get().account_ids) == sorted(str(a.pk) for a in mine)
    run_chunks(by_allocation)

    whole_book = create(allocation=None, trigger=Trigger.MANUAL)
    assert whole_book.total == 3
    assert str(theirs.pk) in whole_book.chunks.get().account_ids


def test_nothing_to_run_finishes_at_once(db):
    execution = create(allocation=make_allocation())
    assert (execution.status, execution.total) == ("COMPLETED", 0)
    assert execution.finished_at is not None


def test_invalid_requests(fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    account = account_with(allocation)
    with pytest.raises(InvalidInput) as error:
        execution_create(method="FULL", trigger="API", account_ids=[str(account.pk), "0b5f2b8e-8f5e-4c39-9d0e-3f4f0c2d9a11", "x"])
    assert {e.field for e in error.value.errors} == {"accounts[2]"}  # shape first, then existence
    with pytest.raises(InvalidInput) as error:
        execution_create(method="FULL", trigger="API", account_ids=[str(account.pk), "0b5f2b8e-8f5e-4c39-9d0e-3f4f0c2d9a11"])
    assert [e.field for e in error.value.errors] == ["accounts[1]"]
    with pytest.raises(InvalidInput) as error:
        execution_create(method="SOMETIMES", trigger="API", account_ids=[str(account.pk)])
    assert [e.field for e in error.value.errors] == ["method"]
    with pytest.raises(InvalidInput):
        execution_create(method="FULL", trigger="API", account_ids=[str(account.pk)], allocation=allocation)
    with pytest.raises(InvalidInput) as error:
        execution_create(method="FULL", trigger="API", allocation="0b5f2b8e-8f5e-4c39-9d0e-3f4f0c2d9a11")
    assert [e.field for e in error.value.errors] == ["allocation_id"]
    assert not Execution.objects.exists()


def test_account_preferences_apply(fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    plain, picky = account_with(allocation), account_with(allocation)
    preferences_replace(values={"min_trade_amount": Decimal("600")}, account=picky)
    execution = create([plain, picky])
    run_chunks(execution)
    assert dict(ExecutionResult.objects.values_list("account_id", "order_count")) == {plain.pk: 2, picky.pk: 0}
    assert ExecutionResult.objects.get(account=picky).status == "NO_TRADES"


def test_the_task_retries_then_fails_the_chunk(fifty_fifty, account_with, monkeypatch):
    from rebalancing import tasks

    *_, allocation = fifty_fifty
    execution = create([account_with(allocation)])
    [chunk] = execution.chunks.all()
    calls = []

    def broken(*, chunk_id):
        calls.append(chunk_id)
        raise RuntimeError("database went away")

    monkeypatch.setattr(executions_module, "execution_chunk_process", broken)
    outcome = tasks.execution_chunk_run.apply(args=[chunk.pk]).get()
    assert len(calls) == tasks.CHUNK_RETRIES + 1
    assert outcome["execution_status"] == "FAILED"
    assert ExecutionResult.objects.get(execution=execution).error == "the chunk failed: RuntimeError('database went away')"


@pytest.mark.parametrize("size", [10, 50])
def test_a_chunk_runs_a_fixed_number_of_queries(size, fifty_fifty, account_with, django_assert_num_queries):
    a, _, allocation = fifty_fifty
    accounts = []
    for n in range(size):
        account = account_with(allocation)
        if n % 5 == 0:  # sub-portfolios, positions, kept and OPEN orders, so every query has rows
            child = AccountFactory(parent=account, locked=True)
            PositionFactory(account=child, instrument=a, units=Decimal(3))
            for status in (TradeOrderStatus.EXECUTABLE, TradeOrderStatus.OPEN):
                TradeOrder.objects.create(
                    account=account, instrument=a, side="BUY", transaction_type="BUY", units=Decimal(1),
                    unit_price=Decimal(10), trade_amount=Decimal(10), currency="EUR", execution_method="UNITS",
                    status=status,
                )
        accounts.append(account)
    execution = create(accounts)
    [chunk] = execution.chunks.all()
    # Claim (3), chunk and execution (2), preferences (2), book (12: OPEN orders locked, one currency,
    # static weights, restrictions by list and by account), replace, orders, results, leases (4), chunk done, execution done, finish (5);
    # the audit entries of the execution's start and finish (4: read it, write one, twice);
    # the test's savepoints (4); the active webhook subscriptions (1: cached for 10 s, so
    # cleared here, or the count would depend on how long the setup took); the stored drift
    # of the chunk's accounts (4: strategies, savepoint and release, one upsert; the
    # allocations come with the book, the drifts from the rebalances).
    subscriptions_cache_clear()
    with django_assert_num_queries(41):
        outcome = execution_chunk_process(chunk_id=chunk.pk)
    assert outcome.accounts == size and outcome.execution_status == "COMPLETED"
    assert TradeOrder.objects.filter(status=TradeOrderStatus.REPLACED).count() == size // 5


def test_a_large_execution_is_planned_by_a_task(fifty_fifty, account_with, settings,
                                                 django_capture_on_commit_callbacks, monkeypatch):
    from rebalancing.services import execution_plan

    *_, allocation = fifty_fifty
    settings.REBALANCE_PLAN_INLINE_MAX = 2  # "large" is anything above two accounts here
    held, *others = [account_with(allocation) for _ in range(4)]
    holder = create([held])  # small: planned inline
    planned = []
    monkeypatch.setattr(executions_module, "plan_enqueue", lambda execution_id, ids=None: planned.append(execution_id))
    with django_capture_on_commit_callbacks(execute=True):
        execution = create([held, *others])
    assert (execution.status, execution.total, execution.done) == ("PENDING", 4, 0)
    assert not execution.chunks.exists() and not AccountLease.objects.filter(execution=execution).exists()
    # The planning message carries the id only; the accounts asked for wait on the row.
    assert planned == [execution.pk]
    assert execution.requested_accounts == sorted(str(a.pk) for a in (held, *others))

    enqueued = []
    monkeypatch.setattr(executions_module, "chunks_enqueue", lambda chunk_ids: enqueued.append(list(chunk_ids)))
    with django_capture_on_commit_callbacks(execute=True):
        assert execution_plan(execution_id=execution.pk) == 1
    execution.refresh_from_db()
    assert (execution.total, execution.done, execution.requested_accounts) == (4, 1, None)
    assert ExecutionResult.objects.get(execution=execution, account=held).error == (
        f"account is in running execution {holder.pk}"
    )
    [chunk] = execution.chunks.all()
    assert chunk.account_ids == sorted(str(a.pk) for a in others)
    # Delivered twice: nothing planned again, the PENDING chunks enqueued again.
    with django_capture_on_commit_callbacks(execute=True):
        assert execution_plan(execution_id=execution.pk) == 1
    assert enqueued == [[chunk.pk], [chunk.pk]]
    assert execution.chunks.count() == 1 and ExecutionResult.objects.filter(execution=execution).count() == 1
    run_chunks(execution)
    execution.refresh_from_db()
    assert execution.status == "PARTIALLY_FAILED"


def test_a_whole_book_planned_by_a_task_and_a_cancel_before_planning(fifty_fifty, account_with, settings):
    from rebalancing.services import execution_plan

    *_, allocation = fifty_fifty
    settings.REBALANCE_PLAN_INLINE_MAX = 0
    accounts = [account_with(allocation) for _ in range(3)]
    whole_book = create(allocation=None)
    assert whole_book.total == 3 and not whole_book.chunks.exists()
    assert execution_plan(execution_id=whole_book.pk) == 1
    assert sorted(whole_book.chunks.get().account_ids) == sorted(str(a.pk) for a in accounts)

    execution_cancel(execution=whole_book)
    by_allocation = create(allocation=allocation)
    execution_cancel(execution=by_allocation)
    assert execution_plan(execution_id=by_allocation.pk) == 0
    assert not by_allocation.chunks.exists() and not AccountLease.objects.exists()


def test_planning_that_keeps_failing_fails_the_execution(fifty_fifty, account_with, settings, monkeypatch):
    from rebalancing import tasks

    *_, allocation = fifty_fifty
    settings.REBALANCE_PLAN_INLINE_MAX = 0
    execution = create([account_with(allocation)])

    def broken(**kwargs):
        raise RuntimeError("no database")

    monkeypatch.setattr(executions_module, "execution_plan", broken)
    assert tasks.execution_plan_run.apply(args=[str(execution.pk), None]).get() == 0
    execution.refresh_from_db()
    assert execution.status == "FAILED" and execution.error == "planning failed: RuntimeError('no database')"
