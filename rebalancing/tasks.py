"""Celery tasks of the rebalancing app: each takes ids and is one call into a service.

Executions (chunks, planning, recovery) and the daily automation jobs declared in
config/schedules.py. The automation services claim every due date under a unique key
before doing any work, so a second beat tick, a redelivery or a concurrent "run now"
from the admin does nothing twice."""

import logging
import threading

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

from .services import automation, drift, executions, recovery

logger = logging.getLogger(__name__)

CHUNK_RETRIES = 3
DEFAULT_SWEEP_SECONDS = 10


@shared_task(name=executions.CHUNK_TASK, bind=True, max_retries=CHUNK_RETRIES, acks_late=True, reject_on_worker_lost=True)
def execution_chunk_run(self, chunk_id: int) -> dict:
    """Process one chunk of an execution. Safe to deliver twice: a duplicate finds the
    chunk row locked (SKIP LOCKED) or no longer PENDING and does nothing.

    An error rolls the chunk back to PENDING and retries it (after 5, 10, 20 s);
    after the last retry its accounts are failed with the error, so the execution
    still finishes. A lost worker (killed, OOM) leaves the message unacknowledged:
    the broker delivers it again.
    """
    try:
        outcome = executions.execution_chunk_process(chunk_id=chunk_id)
    except Exception as exc:
        if self.request.retries < self.max_retries:
            logger.warning("chunk %s failed (%r); retrying", chunk_id, exc)
            raise self.retry(exc=exc, countdown=5 * 2**self.request.retries)
        logger.exception("chunk %s failed %s times; failing its accounts", chunk_id, self.max_retries + 1)
        outcome = executions.execution_chunk_fail(chunk_id=chunk_id, error=f"the chunk failed: {exc!r}")
    return {
        "processed": outcome.processed, "accounts": outcome.accounts, "orders": outcome.orders,
        "execution_status": outcome.execution_status,
    }


@shared_task(name=executions.PLAN_TASK, bind=True, max_retries=CHUNK_RETRIES, acks_late=True, reject_on_worker_lost=True)
def execution_plan_run(self, execution_id: str, account_ids: list | None = None) -> int:
    """Plan a large execution (leases, chunks) and enqueue its chunks; safe to run twice.
    After the last retry the execution is FAILED with the error."""
    try:
        return executions.execution_plan(execution_id=execution_id, account_ids=account_ids)
    except Exception as exc:
        if self.request.retries < self.max_retries:
            logger.warning("planning execution %s failed (%r); retrying", execution_id, exc)
            raise self.retry(exc=exc, countdown=5 * 2**self.request.retries)
        logger.exception("planning execution %s failed; failing it", execution_id)
        executions.execution_fail(execution_id=execution_id, error=f"planning failed: {exc!r}")
        return 0


@shared_task
def executions_recover_task() -> str:
    """Beat, every few minutes: send again the lost messages of stalled executions."""
    return str(recovery.executions_recover())


# --- The recovery sweep, inside each worker ------------------------------------------------
# A thread of the worker's main process, not a beat task: a beat message would wait in
# the queue behind the very chunks it is meant to rescue, and beat may not be running.


class _Sweeper(threading.Thread):
    def __init__(self, interval: float):
        super().__init__(name="executions-sweep", daemon=True)
        self.interval = interval
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.wait(self.interval):
            try:
                close_old_connections()
                outcome = recovery.executions_sweep()
                if outcome.chunks or outcome.plans:
                    logger.warning("executions sweep: %s", outcome)
            except Exception:  # the database may be restarting: try again next time
                logger.exception("executions sweep failed")
                connection.close()
        connection.close()


_sweeper: _Sweeper | None = None


def sweep_seconds() -> float:
    """settings.REBALANCE_SWEEP_SECONDS (default 10; 0 turns the worker's sweep off)."""
    return float(getattr(settings, "REBALANCE_SWEEP_SECONDS", DEFAULT_SWEEP_SECONDS))


@worker_ready.connect
def _sweeper_start(**kwargs):
    global _sweeper
    if sweep_seconds() > 0 and _sweeper is None:
        _sweeper = _Sweeper(sweep_seconds())
        _sweeper.start()


@worker_shutdown.connect
def _sweeper_stop(**kwargs):
    global _sweeper
    if _sweeper is not None:
        _sweeper.stopping.set()
        _sweeper = None


@shared_task(acks_late=True, reject_on_worker_lost=True)
def strategies_evaluate_task() -> dict:
    """Evaluate every rebalancing strategy for today's UTC date and start the executions."""
    summary = automation.strategies_evaluate()
    return {
        "on_date": summary.on_date.isoformat(), "claimed": summary.claimed, "executions": len(summary.executions),
        "accounts": summary.accounts, "failed": summary.failed,
    }


@shared_task(acks_late=True, reject_on_worker_lost=True)
def savings_plans_run_task() -> dict:
    """Place the portfolio orders of every savings plan due on today's UTC date."""
    summary = automation.savings_plans_run()
    return {
        "on_date": summary.on_date.isoformat(), "due": summary.due, "executed": summary.executed,
        "failed": summary.failed,
    }


@shared_task(name=drift.SUMMARY_TASK, acks_late=True, reject_on_worker_lost=True, autoretry_for=(DatabaseError,),
             max_retries=3, default_retry_delay=1)
def drift_summary_refresh_task() -> int:
    """Rebuild the dashboard's drift summary from the stored drift (after an execution).
    A database error (a lock, a lost connection) tries again a second later; the next
    execution or daily evaluation rebuilds it anyway."""
    return drift.drift_summary_refresh()
