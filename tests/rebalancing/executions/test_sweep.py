"""executions_sweep: within seconds, the chunks of a dead worker and the messages the
broker lost or refused are sent again, never a chunk a live worker holds, and the work
is still done once."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from core import dispatch
from rebalancing.models import ChunkStatus, Execution, ExecutionChunk, ExecutionResult, TradeOrder, Trigger
from rebalancing.services import execution_chunk_process, execution_create
from rebalancing.services.recovery import executions_sweep

from .conftest import D

LEASE = timedelta(seconds=20)


@pytest.fixture
def broker(monkeypatch, settings):
    """A fake broker: records the tasks sent, can be 'down', and reports a queue size."""
    settings.REBALANCE_LEASE_SECONDS = 20
    settings.REBALANCE_STALL_SECONDS = 600
    state = {"sent": [], "down": False, "waiting": 0}

    def send(name, *args, **options):
        if state["down"]:
            raise ConnectionError("Error 111 connecting to redis: Connection refused")
        state["sent"].append((name.rsplit(".", 1)[-1], args[0]))

    monkeypatch.setattr(dispatch, "task_send", send)
    monkeypatch.setattr(dispatch, "queue_size", lambda queue=None: None if state["down"] else state["waiting"])
    return state


def chunks_sent(broker) -> list:
    return [arg for name, arg in broker["sent"] if name == "execution_chunk_run"]


def create(accounts, django_capture_on_commit_callbacks) -> Execution:
    with django_capture_on_commit_callbacks(execute=True):
        return execution_create(account_ids=[str(a.pk) for a in accounts], trigger=Trigger.API, rebalance_date=D)


def claim_and_die(chunk_id, at):
    """What a worker killed mid-chunk leaves: the claim (committed apart) and nothing else."""
    ExecutionChunk.objects.filter(pk=chunk_id).update(attempts=1, claimed_at=at)


@pytest.mark.django_db
def test_the_chunk_of_a_dead_worker_is_sent_again_once_its_lease_expired(
    fifty_fifty, account_with, chunk_size, broker, django_capture_on_commit_callbacks
):
    *_, allocation = fifty_fifty
    chunk_size(2)
    execution = create([account_with(allocation) for _ in range(3)], django_capture_on_commit_callbacks)
    first, second = execution.chunks.order_by("number").values_list("pk", flat=True)
    assert chunks_sent(broker) == [first, second]
    broker["sent"].clear()
    claimed = timezone.now()
    claim_and_die(first, claimed)
    broker["waiting"] = 1  # the second chunk's message, waiting in the queue

    assert executions_sweep(now=claimed + LEASE - timedelta(seconds=1)).chunks == 0
    outcome = executions_sweep(now=claimed + LEASE + timedelta(seconds=1))
    assert (outcome.chunks, outcome.plans) == (1, 0)
    assert chunks_sent(broker) == [first]  # the second chunk's message may still come: left alone
    # Sent again, not claimed since: not resent by the next sweep while the queue holds it.
    broker["sent"].clear()
    assert executions_sweep(now=claimed + 2 * LEASE + timedelta(seconds=1)).chunks == 0

    for chunk_id in (first, first, second):  # the resent task and the original message: once
        execution_chunk_process(chunk_id=chunk_id)
    execution.refresh_from_db()
    assert (execution.status, execution.done) == ("COMPLETED", 3)
    orders = sum(ExecutionResult.objects.filter(execution=execution).values_list("order_count", flat=True))
    assert orders > 0 and TradeOrder.objects.filter(execution=execution).count() == orders
    assert executions_sweep(now=timezone.now() + timedelta(days=1)).chunks == 0


@pytest.mark.django_db
def test_chunks_the_broker_refused_are_sent_as_soon_as_it_is_back(
    fifty_fifty, account_with, chunk_size, broker, django_capture_on_commit_callbacks
):
    *_, allocation = fifty_fifty
    chunk_size(1)
    broker["down"] = True
    execution = create([account_with(allocation) for _ in range(2)], django_capture_on_commit_callbacks)
    assert execution.status == "PENDING" and broker["sent"] == []  # accepted all the same
    assert list(execution.chunks.values_list("sent_at", flat=True)) == [None, None]

    assert executions_sweep().broker_down  # nothing can be sent yet
    broker["down"] = False
    assert executions_sweep().chunks == 2
    assert sorted(chunks_sent(broker)) == sorted(execution.chunks.values_list("pk", flat=True))
    assert execution.chunks.filter(sent_at__isnull=True).count() == 0


@pytest.mark.django_db
def test_a_message_lost_by_the_broker_is_sent_again_when_the_queue_is_empty(
    fifty_fifty, account_with, broker, django_capture_on_commit_callbacks
):
    *_, allocation = fifty_fifty
    execution = create([account_with(allocation)], django_capture_on_commit_callbacks)
    (chunk_id,) = execution.chunks.values_list("pk", flat=True)
    broker["sent"].clear()
    later = timezone.now() + LEASE + timedelta(seconds=1)

    broker["waiting"] = 5  # a long queue: the message may still be in it
    assert executions_sweep(now=later).chunks == 0
    broker["waiting"] = 0  # nothing waits and nobody claimed it: lost (Redis restarted empty)
    assert executions_sweep(now=later).chunks == 1
    assert chunks_sent(broker) == [chunk_id]
    broker["waiting"] = 5  # ... and a long stall is resent whatever the queue says
    assert executions_sweep(now=later + timedelta(seconds=601)).chunks == 1


@pytest.mark.django_db
def test_a_lost_planning_message_is_sent_again(
    fifty_fifty, account_with, broker, settings, django_capture_on_commit_callbacks
):
    settings.REBALANCE_PLAN_INLINE_MAX = 1  # planned by a task
    *_, allocation = fifty_fifty
    broker["down"] = True
    execution = create([account_with(allocation) for _ in range(2)], django_capture_on_commit_callbacks)
    broker["down"] = False
    assert executions_sweep().plans == 0  # just created: its task may be on its way
    outcome = executions_sweep(now=timezone.now() + LEASE + timedelta(seconds=1))
    assert outcome.plans == 1 and broker["sent"] == [("execution_plan_run", str(execution.pk))]


@pytest.mark.django_db(transaction=True)
def test_a_chunk_a_live_worker_holds_is_never_sent_again(
    fifty_fifty, account_with, broker, django_capture_on_commit_callbacks
):
    """On PostgreSQL the chunk's row lock is the worker's lease: however old the claim,
    a chunk locked by a running transaction is left alone."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL only (SQLite serialises writers instead)")
    *_, allocation = fifty_fifty
    execution = create([account_with(allocation)], django_capture_on_commit_callbacks)
    (chunk_id,) = execution.chunks.values_list("pk", flat=True)
    claim_and_die(chunk_id, timezone.now())
    later = timezone.now() + timedelta(hours=1)
    locked, release = threading.Event(), threading.Event()

    def worker():
        with transaction.atomic():
            ExecutionChunk.objects.select_for_update().filter(pk=chunk_id).exists()
            locked.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert locked.wait(10)
        assert executions_sweep(now=later).chunks == 0
    finally:
        release.set()
        thread.join()
    assert executions_sweep(now=later).chunks == 1  # its worker's connection is gone: sent again
    assert ExecutionChunk.objects.get(pk=chunk_id).status == ChunkStatus.PENDING
