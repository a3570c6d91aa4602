"""executions_recover: executions whose broker messages were lost are planned or
processed again, once stalled for REBALANCE_STALL_SECONDS, and the work is done once."""

from datetime import timedelta

import pytest
from django.utils import timezone

from rebalancing import tasks
from rebalancing.models import ChunkStatus, Execution, ExecutionResult, TradeOrder, Trigger
from rebalancing.services import execution_cancel, execution_chunk_process, execution_create, execution_plan
from rebalancing.services import executions as executions_module
from rebalancing.services.recovery import executions_recover

from .conftest import D, run_chunks

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """Capture what would go to the broker (and lose it, as a broker restart would)."""
    messages = {"plans": [], "chunks": []}
    monkeypatch.setattr(executions_module, "plan_enqueue",
                        lambda execution_id, ids=None: messages["plans"].append(execution_id))
    monkeypatch.setattr(executions_module, "chunks_enqueue", lambda chunk_ids: messages["chunks"].extend(chunk_ids))
    return messages


def create(accounts, **kwargs) -> Execution:
    return execution_create(account_ids=[str(a.pk) for a in accounts], trigger=Trigger.API, rebalance_date=D, **kwargs)


def test_a_lost_chunk_message_is_sent_again_once_the_execution_stalls(
    fifty_fifty, account_with, chunk_size, sent, django_capture_on_commit_callbacks, settings
):
    settings.REBALANCE_STALL_SECONDS = 600
    *_, allocation = fifty_fifty
    chunk_size(2)
    accounts = [account_with(allocation) for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        execution = create(accounts)
    chunk_ids = list(execution.chunks.order_by("number").values_list("pk", flat=True))
    assert sent["chunks"] == chunk_ids
    sent["chunks"].clear()  # the broker lost them

    now = timezone.now()
    assert executions_recover(now=now + timedelta(seconds=599)).chunks == 0  # not stalled yet
    recovery = executions_recover(now=now + timedelta(seconds=601))
    assert (recovery.plans, recovery.executions, recovery.chunks) == (0, 1, 2)
    assert sent["chunks"] == chunk_ids

    # The first chunk is done: progress, so the clock starts again from its finish.
    execution_chunk_process(chunk_id=chunk_ids[0])
    sent["chunks"].clear()
    assert executions_recover(now=timezone.now() + timedelta(seconds=300)).chunks == 0
    assert executions_recover(now=timezone.now() + timedelta(seconds=601)).chunks == 1
    assert sent["chunks"] == chunk_ids[1:]

    # Both deliveries of the resent chunk: the work is done once.
    for chunk_id in sent["chunks"] * 2:
        execution_chunk_process(chunk_id=chunk_id)
    execution.refresh_from_db()
    assert (execution.status, execution.done) == ("COMPLETED", 3)
    assert ExecutionResult.objects.filter(execution=execution).count() == 3
    orders = sum(ExecutionResult.objects.filter(execution=execution).values_list("order_count", flat=True))
    assert orders > 0 and TradeOrder.objects.filter(execution=execution).count() == orders

    # Finished: nothing to send any more.
    sent["chunks"].clear()
    assert executions_recover(now=timezone.now() + timedelta(days=1)).chunks == 0 and sent["chunks"] == []


def test_a_lost_planning_message_is_planned_again_with_the_accounts_asked_for(
    fifty_fifty, account_with, chunk_size, sent, django_capture_on_commit_callbacks, settings
):
    settings.REBALANCE_PLAN_INLINE_MAX = 2  # three accounts are planned by a task
    *_, allocation = fifty_fifty
    asked = [account_with(allocation) for _ in range(3)]
    not_asked = account_with(allocation)  # follows the same allocation: must not be swept in
    with django_capture_on_commit_callbacks(execute=True):
        execution = create(asked)
    assert sent["plans"] == [execution.pk]
    sent["plans"].clear()  # lost

    recovery = executions_recover(now=timezone.now() + timedelta(minutes=11))
    assert (recovery.plans, recovery.executions, recovery.chunks) == (1, 0, 0)
    assert sent["plans"] == [execution.pk]

    # What the resent task does: plan from the row, then twice (a duplicate) changes nothing.
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.execution_plan_run.apply(args=[str(execution.pk)]).get() == 1
        execution_plan(execution_id=execution.pk)
    run_chunks(execution)
    execution.refresh_from_db()
    assert execution.status == "COMPLETED"
    assert set(ExecutionResult.objects.filter(execution=execution).values_list("account_id", flat=True)) == {
        a.pk for a in asked
    }
    assert not ExecutionResult.objects.filter(account=not_asked).exists()
    assert execution.chunks.filter(status=ChunkStatus.DONE).count() == 1


def test_finished_and_cancelled_executions_are_left_alone(fifty_fifty, account_with, sent):
    *_, allocation = fifty_fifty
    done = create([account_with(allocation)])
    run_chunks(done)
    cancelled = create([account_with(allocation)])
    execution_cancel(execution=cancelled)
    sent["chunks"].clear()
    recovery = executions_recover(now=timezone.now() + timedelta(days=1))
    assert (recovery.plans, recovery.executions, recovery.chunks) == (0, 0, 0)
    assert sent == {"plans": [], "chunks": []}


def test_the_beat_task_reports_what_it_sent(fifty_fifty, account_with, sent, settings):
    settings.REBALANCE_STALL_SECONDS = 0
    *_, allocation = fifty_fifty
    create([account_with(allocation)])
    assert tasks.executions_recover_task.apply().get() == (
        "0 planning task(s) and 1 chunk(s) of 1 execution(s) sent again"
    )
