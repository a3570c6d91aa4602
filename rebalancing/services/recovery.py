"""Executions whose Celery messages were lost: plan or enqueue their work again.

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
from django.db.models import Max
from django.utils import timezone

from ..models import ChunkStatus, Execution, ExecutionChunk, ExecutionStatus
from . import executions

logger = logging.getLogger(__name__)

DEFAULT_STALL_SECONDS = 600


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
