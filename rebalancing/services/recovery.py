"""Executions whose Celery messages were lost: plan or enqueue their work again.

Two nets. `executions_sweep` runs every few seconds inside each worker (rebalancing/
tasks.py starts it) and takes back, within `lease()` (20 s), the chunks of a worker that
died and the messages the broker lost or refused; `executions_recover` (beat, every 5
minutes) is the older, slower net for executions with no sign of life at all.

A worker that dies keeps its message unacknowledged, and the broker delivers it again.
A message can still be lost outright: Redis restarted without persistence, a queue
purged by hand, a broker failover. The execution would then stay PENDING or RUNNING for
ever. `executions_recover` (beat, every few minutes) finds unfinished executions that
have shown no sign of life for `stall_after()` and sends their messages again:

- PENDING with no chunk yet: its planning task again (the accounts asked for are kept
  on the row in `requested_accounts`, so nothing depends on the lost message);
- PENDING or RUNNING with PENDING chunks: every PENDING chunk's task again.

Sending a message twice is harmless by design: planning locks the execution row and
only re-enqueues an execution already planned, and a chunk is claimed under a row lock
and processed only while PENDING (docs/executions.md). Sign of life: the execution's
creation or start, or any chunk of it claimed or finished.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, Max, OuterRef, Q
from django.utils import timezone

from core import dispatch

from ..models import ChunkStatus, Execution, ExecutionChunk, ExecutionStatus
from . import executions

logger = logging.getLogger(__name__)

DEFAULT_STALL_SECONDS = 600
DEFAULT_LEASE_SECONDS = 20


def stall_after() -> timedelta:
    """How long an unfinished execution may show no progress before its messages are sent
    again (settings.REBALANCE_STALL_SECONDS, default 10 minutes: far longer than a chunk
    takes, so a busy queue is not mistaken for a lost one)."""
    return timedelta(seconds=int(getattr(settings, "REBALANCE_STALL_SECONDS", DEFAULT_STALL_SECONDS)))


@dataclass(frozen=True)
class Recovery:
    plans: int  # executions whose planning task was sent again
    executions: int  # executions whose PENDING chunks were sent again
    chunks: int

    def __str__(self):
        return f"{self.plans} planning task(s) and {self.chunks} chunk(s) of {self.executions} execution(s) sent again"


def executions_recover(*, now: datetime | None = None) -> Recovery:
    """Send again the messages of unfinished executions stalled for `stall_after()`.
    Reads in three queries plus one per stalled execution; writes nothing itself."""
    now = now or timezone.now()
    cutoff = now - stall_after()

    unplanned = list(
        Execution.objects.filter(
            status=ExecutionStatus.PENDING, created_at__lt=cutoff, done=0, chunks__isnull=True
        ).values_list("pk", flat=True)
    )
    for execution_id in unplanned:
        logger.warning("execution %s has not been planned for %s: sending its planning task again",
                       execution_id, stall_after())
        executions.plan_enqueue(execution_id)

    activity = {
        row["execution_id"]: row
        for row in ExecutionChunk.objects.filter(
            execution__status__in=(ExecutionStatus.PENDING, ExecutionStatus.RUNNING)
        ).order_by().values("execution_id").annotate(claimed=Max("claimed_at"), finished=Max("finished_at"))
    }
    stalled = []
    for execution in Execution.objects.filter(pk__in=list(activity)).only("pk", "created_at", "started_at"):
        row = activity[execution.pk]
        moments = [m for m in (execution.created_at, execution.started_at, row["claimed"], row["finished"]) if m]
        if max(moments) < cutoff:
            stalled.append(execution.pk)

    chunks = resent = 0
    for execution_id in stalled:
        pending = list(
            ExecutionChunk.objects.filter(execution_id=execution_id, status=ChunkStatus.PENDING)
            .order_by("number").values_list("pk", flat=True)
        )
        if pending:
            logger.warning("execution %s shows no progress for %s: sending its %d pending chunk(s) again",
                           execution_id, stall_after(), len(pending))
            executions.chunks_enqueue(pending)
            chunks += len(pending)
            resent += 1
    return Recovery(plans=len(unplanned), executions=resent, chunks=chunks)


# --- The sweep: seconds, not minutes ----------------------------------------------------


def lease() -> timedelta:
    """How long a claimed chunk may stay PENDING with no worker holding its row lock, and
    a sent message may wait unclaimed while the queue is empty, before the sweep sends
    the chunk again (settings.REBALANCE_LEASE_SECONDS, default 20 s)."""
    return timedelta(seconds=int(getattr(settings, "REBALANCE_LEASE_SECONDS", DEFAULT_LEASE_SECONDS)))


@dataclass(frozen=True)
class Sweep:
    chunks: int  # chunks whose task was sent again
    plans: int  # executions whose planning task was sent again
    broker_down: bool = False

    def __str__(self):
        if self.broker_down:
            return "broker unreachable: nothing sent"
        return f"{self.chunks} chunk(s) and {self.plans} planning task(s) sent again"


def executions_sweep(*, now: datetime | None = None) -> Sweep:
    """Send again, at once, the chunk tasks that no live worker will run:

    - **abandoned**: claimed (after its last send) more than `lease()` ago, still PENDING,
      and its row not locked. A worker processing a chunk holds the chunk's row lock for
      its whole transaction, and PostgreSQL drops the lock the moment the worker's
      connection dies (SIGKILL, OOM, lost host): an unlocked, claimed, PENDING chunk has
      no worker. Its message stays unacknowledged in Redis until the visibility
      timeout (1 h): a harmless duplicate by then.
    - **never sent**: no `sent_at` (the broker refused the send: it was down).
    - **lost**: sent more than `lease()` ago and not claimed since, while the broker's
      queue is empty (nothing waits: the message is gone, e.g. Redis restarted empty);
      with a non-empty queue, only after `stall_after()` (the queue may just be long).

    The same for the planning task of a PENDING execution without chunks. Nothing when
    the broker is unreachable. Rows are picked with FOR UPDATE SKIP LOCKED and stamped
    before sending, so sweeps running in several workers send each chunk once; a
    duplicate would be harmless anyway (a chunk is processed only while PENDING, under
    its row lock). Queries: four, plus the broker's queue size; none per chunk.
    """
    now = now or timezone.now()
    waiting = dispatch.queue_size()
    if waiting is None:
        return Sweep(chunks=0, plans=0, broker_down=True)
    lost_after = now - (lease() if waiting == 0 else stall_after())
    claimed_since_sent = Q(claimed_at__isnull=False) & (Q(sent_at__isnull=True) | Q(claimed_at__gte=F("sent_at")))
    abandoned = claimed_since_sent & Q(claimed_at__lt=now - lease())
    never_sent = Q(sent_at__isnull=True, claimed_at__isnull=True)
    lost = (Q(claimed_at__isnull=True) | Q(claimed_at__lt=F("sent_at"))) & Q(sent_at__lt=lost_after)
    with transaction.atomic():
        chunk_ids = list(
            ExecutionChunk.objects.order_by("pk").select_for_update(skip_locked=True, of=("self",))
            .filter(Q(status=ChunkStatus.PENDING) & (abandoned | never_sent | lost))
            .values_list("pk", flat=True)
        )
        if chunk_ids:  # stamped now: another sweep committing after us does not pick them again
            ExecutionChunk.objects.filter(pk__in=chunk_ids).update(sent_at=now)
        plan_ids = list(
            Execution.objects.order_by().select_for_update(skip_locked=True, of=("self",))
            .filter(status=ExecutionStatus.PENDING, done=0, created_at__lt=lost_after)
            .exclude(Exists(ExecutionChunk.objects.filter(execution_id=OuterRef("pk"))))
            .values_list("pk", flat=True)
        )
    if chunk_ids:
        logger.warning("sweep: sending %d chunk(s) again (worker lost, or message lost or refused)", len(chunk_ids))
        executions.chunks_enqueue(chunk_ids)
    for execution_id in plan_ids:
        logger.warning("sweep: sending the planning task of execution %s again", execution_id)
        executions.plan_enqueue(execution_id)
    return Sweep(chunks=len(chunk_ids), plans=len(plan_ids))
