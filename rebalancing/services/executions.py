"""Executions: rebalance many accounts for real, in chunks, on Celery workers.

`execution_create` selects the accounts and `execution_plan` (inline, or a first task
for a large execution) leases them, splits them into chunks and enqueues one task per
chunk once its transaction commits. Each chunk is processed by
`execution_chunk_process` in ONE transaction: claim the chunk row (SELECT ... FOR
UPDATE, after a SKIP LOCKED check that lets a duplicate delivery leave at once), load
the whole chunk with `book_load` in a fixed number of queries, run the same
`rebalance_account` the previews use, replace the accounts' OPEN orders and write the
new trade orders and results with COPY, release the leases, count the chunk done,
and let the last chunk finish the execution. A worker that dies rolls its transaction
back, so the chunk is PENDING again for the redelivered task; the unique (execution,
account) key of the results is the database's guarantee that an account is done
exactly once. docs/executions.md explains every choice.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import date

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.services import audit_record
from core import dispatch
from core.errors import Conflict, FieldError, InvalidInput, raise_if_errors
from core.ids import IdTuple, parse_uuid
from portfolios.models import AccountStatus, Allocation, Configuration
from rebalancing import engine
from webhooks import events
from webhooks.payloads import execution_payload

from ..models import (
    ChunkStatus,
    Execution,
    ExecutionChunk,
    ExecutionStatus,
    Method,
    ResultStatus,
    TradeOrderStatus,
    Trigger,
)
from ..selectors.book import book_load
from .tax import estimated_gain_text, tax_book_for, tax_orders_text, tax_step
from . import approval, bulk
from .audit_trail import execution_audit
from .drift import SUMMARY_TASK, drift_rows_write
from .preferences import approval_thresholds, book_options, preferences_effective
from .preview import (
    account_ids_validate,
    account_price_fallbacks,
    adjustments_json,
    instrument_ids_resolve,
    TAXED,
    order_cash_accounts,
    rebalance_account,
)

logger = logging.getLogger(__name__)

MAX_EXECUTION_ACCOUNTS = 100_000  # explicit ids per call; the whole book has no limit
DEFAULT_CHUNK_SIZE = 1000
DEFAULT_PLAN_INLINE_MAX = 5000
MAX_CHUNK_ATTEMPTS = 5  # deliveries of one chunk before its accounts are failed (a chunk that kills workers)
CANCELLABLE = (ExecutionStatus.PENDING, ExecutionStatus.AWAITING_APPROVAL, ExecutionStatus.RUNNING)
UNFINISHED = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)
# A new rebalance proposal exists for these results, so it replaces the OPEN orders (§4.6).
REPLACING = (engine.ResultStatus.PROPOSED, engine.ResultStatus.NO_TRADES)


def chunk_size() -> int:
    """Accounts per chunk: settings.REBALANCE_CHUNK_SIZE (default 1000)."""
    return max(1, int(getattr(settings, "REBALANCE_CHUNK_SIZE", DEFAULT_CHUNK_SIZE)))


REFUSAL_PREFIX = "account is in running execution "
REFUSAL_UNKNOWN_HOLDER = "account is in another running execution"  # the holder finished meanwhile

# The Celery tasks these services send (core.dispatch); rebalancing/tasks.py registers them under these names.
PLAN_TASK = "rebalancing.tasks.execution_plan_run"
CHUNK_TASK = "rebalancing.tasks.execution_chunk_run"


def lease_refusal(holder) -> str:
    return f"{REFUSAL_PREFIX}{holder}" if holder else REFUSAL_UNKNOWN_HOLDER


# --- Create ------------------------------------------------------------------------------


def _allocation_of(allocation) -> Allocation:
    if isinstance(allocation, Allocation):
        return allocation
    allocation_id = parse_uuid(allocation)
    found = Allocation.objects.filter(pk=allocation_id).first() if allocation_id else None
    if found is None:
        raise InvalidInput([FieldError("allocation_id", f"no allocation with id {allocation}")])
    return found


def _validated_ids(account_ids) -> list:
    """Parse the ids (InvalidInput `accounts[i]` for a bad or unknown one), sorted."""
    parsed = account_ids_validate(list(account_ids), limit=MAX_EXECUTION_ACCOUNTS)
    known = bulk.existing_account_ids(parsed)
    raise_if_errors(
        [FieldError(f"accounts[{i}]", f"no account with id {a}") for i, a in enumerate(parsed) if a not in known]
    )
    return sorted(parsed)


def _configured(allocation_id=None):
    """Every account that follows the allocation (or any allocation): the rebalanceable
    ones only, ACTIVE top-level accounts. PENDING or CLOSED accounts and sub-portfolios
    would only add FAILED results to every scheduled run."""
    configured = Configuration.objects.filter(account__status=AccountStatus.ACTIVE, account__parent__isnull=True)
    if allocation_id is not None:
        configured = configured.filter(allocation_id=allocation_id)
    return configured


def plan_inline_max() -> int:
    """Executions up to this many accounts are planned inside execution_create; larger
    ones by a first Celery task (settings.REBALANCE_PLAN_INLINE_MAX, default 5000)."""
    return int(getattr(settings, "REBALANCE_PLAN_INLINE_MAX", DEFAULT_PLAN_INLINE_MAX))


def _failed_result_row(execution_id, account_id, error: str, now) -> tuple:
    return (execution_id, account_id, ResultStatus.FAILED.value, error, None, None, None, 0, now, [], [])


@transaction.atomic
def execution_create(
    *,
    method: str = Method.FULL,
    trigger: str = Trigger.MANUAL,
    user=None,
    account_ids: list | None = None,
    allocation=None,
    rebalance_date: date | None = None,
    instrument_ids: list | None = None,
) -> Execution:
    """Start an execution (PENDING) and plan it: lease its accounts, split them into
    chunks, enqueue one Celery task per chunk once the transaction commits.

    The accounts are `account_ids` (at most 100,000; unknown ids are InvalidInput
    `accounts[i]`), else the ACTIVE top-level accounts following `allocation` (an
    Allocation or its id), else every ACTIVE top-level configured account (the whole
    book). An execution of up to REBALANCE_PLAN_INLINE_MAX accounts is planned here,
    so an account already leased by another unfinished execution already has its
    FAILED result ("account is in running execution <id>", counted in `done`) and an
    execution with nothing to run is already finished. A larger one is planned by the
    task `execution_plan_run` right after the commit, which keeps the request short.
    """
    errors = []
    if method not in Method.values:
        errors.append(FieldError("method", f"must be one of {', '.join(Method.values)}"))
    if trigger not in Trigger.values:
        errors.append(FieldError("trigger", f"must be one of {', '.join(Trigger.values)}"))
    if account_ids is not None and allocation is not None:
        errors.append(FieldError("allocation_id", "give either accounts or allocation_id, not both"))
    raise_if_errors(errors)
    selected_instruments = instrument_ids_resolve(instrument_ids)
    allocation = _allocation_of(allocation) if allocation is not None else None
    if account_ids is not None:
        selected = _validated_ids(account_ids)
        total = len(selected)
    else:
        selected = None
        total = _configured(allocation.pk if allocation else None).count()
    deferred = total > plan_inline_max()
    execution = Execution.objects.create(
        status=ExecutionStatus.PENDING, trigger=trigger, method=method,
        rebalance_date=rebalance_date or timezone.localdate(), allocation=allocation,
        requested_by=user if user is not None and user.is_authenticated else None, total=total,
        # Kept on the row, not only in the planning task's message: a lost message can
        # then be planned again by executions_recover.
        requested_accounts=[str(a) for a in selected] if deferred and selected is not None else None,
        instrument_ids=sorted(str(i) for i in selected_instruments) if selected_instruments else None,
    )
    events.record("execution.status_changed", lambda: execution_payload(execution.pk))
    audit_record(execution, "create", {
        "status": (None, execution.status), "trigger": (None, trigger), "method": (None, method),
        "rebalance_date": (None, execution.rebalance_date), "allocation": (None, allocation), "accounts": (None, total),
    }, actor=user)
    if not deferred:
        execution_plan(execution_id=execution.pk, account_ids=selected)
        execution.refresh_from_db()
    else:
        transaction.on_commit(lambda: plan_enqueue(execution.pk))
    return execution


def plan_enqueue(execution_id) -> bool:
    """Send the planning task now; False if the broker refused it (down): the recovery
    sweep sends it again once it is back. The message carries only the id: the
    accounts asked for are on the row."""
    return dispatch.task_try_send(PLAN_TASK, str(execution_id), None)


@transaction.atomic
def execution_plan(*, execution_id, account_ids: list | None = None) -> int:
    """Lease the execution's accounts, write its chunks (and the FAILED results of the
    accounts other executions hold) and enqueue the chunks when the transaction
    commits; returns the number of chunks. `account_ids` None: the execution's
    `requested_accounts` if it has them, else the accounts following its allocation,
    else the whole book.

    Safe to run twice: the execution's row is locked and an execution already planned
    only has its PENDING chunks enqueued again (a worker may have died between the
    commit and the enqueueing). A cancelled execution is left alone.
    """
    execution = Execution.objects.order_by().select_for_update(of=("self",)).filter(pk=execution_id).first()
    if execution is None or execution.status != ExecutionStatus.PENDING:
        return 0
    planned = list(execution.chunks.filter(status=ChunkStatus.PENDING).order_by("number").values_list("pk", flat=True))
    if planned or execution.done or execution.chunks.exists():
        transaction.on_commit(lambda: chunks_enqueue(planned))
        return len(planned)
    if account_ids is None:
        account_ids = execution.requested_accounts
    # Thresholds as they are now: a held execution writes PENDING_APPROVAL orders (approval.py).
    hold = approval.hold_fields(approval_thresholds())
    now = timezone.now()
    size = chunk_size()
    if bulk.is_postgres():
        if account_ids is not None:
            selection = bulk.Selection.of_ids(account_ids)
        else:
            selection = bulk.Selection.configured(allocation_id=execution.allocation_id)
        total, refused, chunk_ids = bulk.plan(
            execution_id=execution.pk, selection=selection, chunk_size=size, now=now,
            refusal_prefix=REFUSAL_PREFIX, refusal_unknown=REFUSAL_UNKNOWN_HOLDER,
        )
    else:
        total, refused, chunk_ids = _plan_python(execution, account_ids, size, now)
    Execution.objects.filter(pk=execution.pk).update(total=total, done=refused, requested_accounts=None, **hold)
    if not chunk_ids:
        _execution_finish(execution.pk, now, held=bool(hold))
        return 0
    transaction.on_commit(lambda: chunks_enqueue(chunk_ids))
    return len(chunk_ids)


def _plan_python(execution: Execution, account_ids, size: int, now) -> tuple[int, int, list]:
    """The portable planner (SQLite): the same rows as bulk.plan, through the ORM."""
    if account_ids is not None:
        wanted = [uuid.UUID(str(a)) for a in account_ids]
        known = bulk.existing_account_ids(wanted)
        selected = sorted(a for a in wanted if a in known)
    else:
        selected = sorted(_configured(execution.allocation_id).values_list("account_id", flat=True))
    taken = bulk.leases_take(execution_id=execution.pk, account_ids=selected, now=now)
    refused = [a for a in selected if a not in taken]
    if refused:
        holders = bulk.lease_holders(refused)
        bulk.results_write([_failed_result_row(execution.pk, a, lease_refusal(holders.get(a)), now) for a in refused])
    runnable = [a for a in selected if a in taken]
    chunks = ExecutionChunk.objects.bulk_create(
        ExecutionChunk(execution=execution, number=n, account_ids=[str(a) for a in runnable[start:start + size]])
        for n, start in enumerate(range(0, len(runnable), size), start=1)
    )
    return len(selected), len(refused), [chunk.pk for chunk in chunks]


def chunks_enqueue(chunk_ids: list) -> int:
    """Send one chunk task per chunk id, now, and stamp the chunks' `sent_at`; returns
    how many were sent. A broker that is down refuses them: those chunks get no
    `sent_at`, and the recovery sweep (services/recovery.py) sends them once it is back.
    One query whatever the number of chunks; two when the broker refused some."""
    if not chunk_ids:
        return 0
    ExecutionChunk.objects.filter(pk__in=chunk_ids).update(sent_at=timezone.now())
    refused = []
    for position, chunk_id in enumerate(chunk_ids):
        if not dispatch.task_try_send(CHUNK_TASK, chunk_id):
            refused = list(chunk_ids[position:])  # the broker is down: do not wait on it for every chunk
            break
    if refused:
        ExecutionChunk.objects.filter(pk__in=refused).update(sent_at=None)
    return len(chunk_ids) - len(refused)


# --- Process one chunk -------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkOutcome:
    """What one call did: `processed` False when another worker has (or had) the chunk."""

    processed: bool
    accounts: int = 0
    orders: int = 0
    status: str = ""  # the chunk's status afterwards ("" when untouched)
    execution_status: str = ""  # the execution's, when this call finished it


SKIPPED = ChunkOutcome(processed=False)


def _chunks_locked(skip_locked: bool = False):
    """Chunks for SELECT ... FOR UPDATE OF the chunk rows only. `order_by()` matters: the
    default ordering (execution, number) joins the execution, and FOR UPDATE would then
    lock the execution's row too, making every chunk of it look locked to SKIP LOCKED."""
    return ExecutionChunk.objects.order_by("pk").select_for_update(skip_locked=skip_locked, of=("self",))


def _chunk_start(chunk_id) -> tuple | None:
    """Count a delivery of a PENDING chunk and mark its execution RUNNING, in a short
    transaction of its own. Returns (execution id, attempts) or None when the chunk
    is not PENDING or another worker holds it.

    Committed apart from the chunk's work on purpose: the attempt is counted even if
    the worker dies (so a chunk that kills every worker is failed after
    MAX_CHUNK_ATTEMPTS, not redelivered forever), and the execution's row lock is
    held for a moment rather than for a whole chunk, which would make every other
    chunk starting meanwhile wait on it.
    """
    now = timezone.now()
    with transaction.atomic():
        row = (
            _chunks_locked(skip_locked=True)
            .filter(pk=chunk_id, status=ChunkStatus.PENDING)
            .values_list("execution_id", "attempts")
            .first()
        )
        if row is None:
            return None
        execution_id, attempts = row
        ExecutionChunk.objects.filter(pk=chunk_id).update(attempts=F("attempts") + 1, claimed_at=now)
        if Execution.objects.filter(pk=execution_id, status=ExecutionStatus.PENDING).update(
            status=ExecutionStatus.RUNNING, started_at=now
        ):
            events.record("execution.status_changed", lambda: execution_payload(execution_id))
            execution_audit(execution_id, "start", ExecutionStatus.RUNNING, before=ExecutionStatus.PENDING)
    return execution_id, attempts + 1


def execution_chunk_process(*, chunk_id) -> ChunkOutcome:
    """Rebalance the accounts of one chunk and write their orders and results, in one
    transaction; safe to call twice or concurrently (only one call does the work).

    Hidden queries: a fixed number (about 25) whatever the chunk size; trade orders
    and results go in by COPY on PostgreSQL. Exceptions roll everything back and
    leave the chunk PENDING for a retry (see `execution_chunk_fail` for giving up).
    """
    started = _chunk_start(chunk_id)
    if started is None:
        return SKIPPED
    _, attempts = started
    if attempts > MAX_CHUNK_ATTEMPTS:
        return execution_chunk_fail(
            chunk_id=chunk_id, error=f"the chunk was given up after {MAX_CHUNK_ATTEMPTS} attempts (workers lost)"
        )
    with transaction.atomic():
        # Wait for the lock here rather than skip: the holder may be a duplicate delivery
        # in its short `_chunk_start`, and skipping it could leave the chunk to nobody.
        # A worker already processing the chunk was skipped in `_chunk_start` instead.
        chunk = _chunks_locked().filter(pk=chunk_id, status=ChunkStatus.PENDING).first()
        if chunk is None:
            return SKIPPED
        execution = Execution.objects.get(pk=chunk.execution_id)
        if execution.status not in UNFINISHED:  # cancelled meanwhile (or rejected)
            return _chunk_cancel(chunk, held=execution.held)
        return _chunk_run(chunk, execution)


def _chunk_cancel(chunk: ExecutionChunk, held: bool = False) -> ChunkOutcome:
    """The chunk of a cancelled execution: CANCELLED, its leases released. In a held
    execution, chunks done before the cancel keep their leases and PENDING_APPROVAL
    orders until the last busy chunk has ended (execution_cancel): if this is that
    chunk, the held execution's undo runs now (approval.held_execution_finish)."""
    now = timezone.now()
    bulk.leases_release(execution_id=chunk.execution_id, account_ids=[uuid.UUID(a) for a in chunk.account_ids])
    ExecutionChunk.objects.filter(pk=chunk.pk).update(status=ChunkStatus.CANCELLED, finished_at=now)
    if held:
        # The execution's row lock first, as _chunk_count_done takes it: of two chunks
        # ending together, the second sees the first's end and does the undo.
        Execution.objects.order_by().select_for_update(of=("self",)).filter(pk=chunk.execution_id).exists()
        _execution_finish(chunk.execution_id, now, held=True)
    return ChunkOutcome(processed=True, status=ChunkStatus.CANCELLED)


def _chunk_run(chunk: ExecutionChunk, execution: Execution) -> ChunkOutcome:
    account_ids = IdTuple(uuid.UUID(a) for a in chunk.account_ids)  # sent by several queries
    default, per_account = preferences_effective(account_ids=account_ids)
    book = book_load(
        account_ids=account_ids, on_date=execution.rebalance_date, lock_orders=True,
        **book_options(default, per_account),
    )
    for_engine = {}  # one engine.Preferences per distinct effective preferences (the engine caches by object)

    now = timezone.now()
    execution_id = execution.pk
    method = execution.method
    proposals, cash_accounts, result_rows, replacing = [], [], [], []
    drifts = {}  # account id → engine.Drift: the stored drift, from the group each rebalance builds
    selected = frozenset(uuid.UUID(i) for i in execution.instrument_ids) if execution.instrument_ids else None
    cash_of = book.cash_account_for
    fx = engine.TransactionType.FX
    outstanding = book.outstanding
    open_orders = book.open_orders
    accounts = book.accounts
    rebalanced = []  # (account id, effective preferences, engine preferences, result)
    for account_id in account_ids:
        if account_id not in accounts:
            continue  # deleted since the execution started: no row can refer to it
        effective = per_account.get(account_id, default)
        preferences = for_engine.get(id(effective))
        if preferences is None:
            # Accounts whose overrides resolve to the same values share one object: the
            # engine caches its prepared models by the preferences' default decimals.
            key = effective.engine_key()
            preferences = for_engine.get(key)
            if preferences is None:
                preferences = for_engine[key] = effective.for_engine()
            for_engine[id(effective)] = preferences
        try:
            result = rebalance_account(
                book=book, account_id=account_id, method=method, preferences=preferences,
                outstanding_orders=outstanding.get(account_id, ()), instrument_ids=selected, drift=True,
            )
        except Exception as exc:  # a bug for one account must not fail the other 999
            logger.exception("execution %s: rebalancing account %s failed", execution_id, account_id)
            result = engine.RebalanceResult(account_id, engine.ResultStatus.FAILED, reason=f"internal error: {exc!r}")
        rebalanced.append((account_id, effective, preferences, result))
    # §12, once the plain rebalances are known: the lots read are those of the positions
    # they sell (and every lot of the accounts that harvest losses).
    tax = tax_book_for(
        book=book, account_ids=account_ids, default=default, per_account=per_account,
        results=[r for _, _, _, r in rebalanced],
    )
    for_tax = {}  # engine preferences → their tax preferences (equal engine preferences: equal values)
    texts = {}  # id → text, for the tax JSON of the chunk's results
    for account_id, effective, preferences, result in rebalanced:
        taxed = None
        if tax is not None and result.status in TAXED and effective.values["tax_aware"]:
            try:
                tax_preferences = for_tax.get(id(preferences))
                if tax_preferences is None:
                    tax_preferences = for_tax[id(preferences)] = effective.for_tax()
                taxed = tax_step(book=book, tax=tax, account_id=account_id, result=result,
                                 preferences=tax_preferences, default_decimals=preferences.default_decimals)
                result = taxed.result
            except Exception as exc:  # as for the rebalance: one account's bug fails that account only
                logger.exception("execution %s: the tax step of account %s failed", execution_id, account_id)
                result = engine.RebalanceResult(
                    account_id, engine.ResultStatus.FAILED, reason=f"internal error: {exc!r}"
                )
        status = result.status
        if result.drift is not None:
            drifts[account_id] = result.drift
        if status in REPLACING and account_id in open_orders:
            replacing.extend(open_orders[account_id])
        if result.orders:
            proposals.extend(result.orders)
            # One lookup per account and currency: this loop is hot. An account's orders
            # share its id object, so `is` tells a sub-portfolio's sells apart.
            last_account = known = None
            for o in result.orders:
                if o.transaction_type == fx:
                    cash_accounts.append(order_cash_accounts(book, o))
                    continue
                if o.account_id is not last_account:
                    last_account, known = o.account_id, {}
                cash = known.get(o.currency)
                if cash is None:
                    cash = known[o.currency] = (cash_of(o.account_id, o.currency), None)
                cash_accounts.append(cash)
        result_rows.append((
            execution_id, account_id, status.value, _error_text(result), result.total_value, result.cash_before,
            result.cash_after, len(result.orders), now,
            adjustments_json(result.adjustments) if result.adjustments else [],
            account_price_fallbacks(book, account_id) if book.price_fallbacks else [],
            *((estimated_gain_text(taxed), tax_orders_text(taxed, texts)) if taxed is not None else ()),
        ))

    held = execution.held
    if held:  # waits for approval: OPEN orders stay, leases are kept (services/approval.py)
        bulk.trade_orders_write(
            proposals=proposals, execution_id=execution_id, now=now, status=TradeOrderStatus.PENDING_APPROVAL,
            cash_accounts=cash_accounts,
        )
        totals = approval.chunk_totals(
            proposals=proposals, currency=execution.approval_currency, on_date=execution.rebalance_date
        )
    else:
        bulk.trade_orders_replace(order_ids=replacing, now=now)
        bulk.trade_orders_write(proposals=proposals, execution_id=execution_id, now=now, cash_accounts=cash_accounts)
        totals = {}
    bulk.results_write(result_rows)
    # The accounts' stored drift, from their rebalances (docs/admin.md, "Drift").
    drift_rows_write(
        book=book, account_ids=account_ids, default=default, per_account=per_account, now=now, drifts=drifts
    )
    if not held:
        bulk.leases_release(execution_id=execution_id, account_ids=account_ids)
    ExecutionChunk.objects.filter(pk=chunk.pk).update(status=ChunkStatus.DONE, finished_at=now, **totals)
    finished = _chunk_count_done(execution_id, len(account_ids), now, held=held)
    return ChunkOutcome(
        processed=True, accounts=len(account_ids), orders=len(proposals), status=ChunkStatus.DONE,
        execution_status=finished or "",
    )


def _error_text(result: engine.RebalanceResult) -> str:
    if result.reason:
        return result.reason
    if result.status == engine.ResultStatus.SKIPPED_WITHIN_RANGE and result.excess_cash is not None:
        return f"the excess cash {result.excess_cash.normalize():f} lies within the cash range of the preferences"
    return ""


def _chunk_count_done(execution_id, accounts: int, now, held: bool = False) -> str | None:
    """Add the chunk's accounts to `done`, then finish the execution if no chunk is left.

    The F() update takes the execution's row lock first, so chunks ending at the same
    time pass here one after the other and the last one sees every other chunk DONE.
    """
    Execution.objects.filter(pk=execution_id).update(done=F("done") + accounts)
    return _execution_finish(execution_id, now, held=held)


def _execution_finish(execution_id, now, held: bool = False) -> str | None:
    """COMPLETED / PARTIALLY_FAILED / FAILED once no chunk is PENDING or RUNNING (a held
    execution: AWAITING_APPROVAL, or activated, by approval.held_execution_finish).
    The conditional update lets exactly one caller do it; returns the status set."""
    if ExecutionChunk.objects.filter(
        execution_id=execution_id, status__in=(ChunkStatus.PENDING, ChunkStatus.RUNNING)
    ).exists():
        return None
    if held:
        status = approval.held_execution_finish(execution_id, now)
    else:
        execution = Execution.objects.get(pk=execution_id)  # its status before, for the audit entry
        status = approval.execution_final_status(execution_id)
        if not Execution.objects.filter(pk=execution_id, status__in=UNFINISHED).update(status=status, finished_at=now):
            return None
        events.record("execution.status_changed", lambda: execution_payload(execution_id))
        execution_audit(execution, "finish", status)
    if status is not None:
        # The chunks stored their accounts' drift; the dashboard's drift summary is rebuilt
        # once per execution, after it, in its own task (docs/admin.md, "Drift").
        transaction.on_commit(lambda: dispatch.task_try_send(SUMMARY_TASK))
    return status


@transaction.atomic
def execution_chunk_fail(*, chunk_id, error: str) -> ChunkOutcome:
    """Give up on a PENDING chunk: every account of it gets a FAILED result with
    `error`, its leases are released and it counts as done, so the execution still
    finishes. For a chunk whose processing kept failing (the task's last retry)."""
    chunk = _chunks_locked(skip_locked=True).filter(pk=chunk_id, status=ChunkStatus.PENDING).first()
    if chunk is None:
        return SKIPPED
    execution = Execution.objects.get(pk=chunk.execution_id)
    if execution.status not in UNFINISHED:
        return _chunk_cancel(chunk, held=execution.held)
    now = timezone.now()
    account_ids = [uuid.UUID(a) for a in chunk.account_ids]
    existing = bulk.existing_account_ids(account_ids)
    bulk.results_write([_failed_result_row(execution.pk, a, error, now) for a in account_ids if a in existing])
    bulk.leases_release(execution_id=execution.pk, account_ids=account_ids)
    ExecutionChunk.objects.filter(pk=chunk.pk).update(status=ChunkStatus.DONE, finished_at=now)
    finished = _chunk_count_done(execution.pk, len(account_ids), now, held=execution.held)
    return ChunkOutcome(processed=True, accounts=len(account_ids), status=ChunkStatus.DONE, execution_status=finished or "")


@transaction.atomic
def execution_fail(*, execution_id, error: str) -> bool:
    """PENDING → FAILED with `error`, for an execution that could not be planned."""
    failed = bool(
        Execution.objects.filter(pk=execution_id, status=ExecutionStatus.PENDING).update(
            status=ExecutionStatus.FAILED, error=error, finished_at=timezone.now()
        )
    )
    if failed:
        execution_audit(execution_id, "fail", ExecutionStatus.FAILED, before=ExecutionStatus.PENDING,
                        changes={"error": ("", error)})
    return failed


# --- Cancel --------------------------------------------------------------------------------


@transaction.atomic
def execution_cancel(*, execution: Execution, user=None) -> Execution:
    """PENDING / AWAITING_APPROVAL / RUNNING → CANCELLED. Chunks not yet started are
    CANCELLED and their accounts' leases released; a chunk being processed right now
    finishes its transaction (its accounts get their results) and releases its own.
    A held execution (approval thresholds) also has its PENDING_APPROVAL orders
    CANCELLED and the leases of its done chunks released.
    A finished execution is a Conflict (409)."""
    now = timezone.now()
    # The status it has now, under its row lock: the audit entry's "before".
    before = (
        Execution.objects.order_by().select_for_update(of=("self",)).filter(pk=execution.pk)
        .values_list("status", flat=True).first()
    )
    updated = Execution.objects.filter(pk=execution.pk, status__in=CANCELLABLE).update(
        status=ExecutionStatus.CANCELLED, finished_at=now
    )
    if not updated:
        execution.refresh_from_db()
        raise Conflict(
            f"execution {execution.pk} is {execution.status}; only {', '.join(CANCELLABLE)} executions can be cancelled"
        )
    events.record("execution.status_changed", lambda: execution_payload(execution.pk))
    execution_audit(execution, "cancel", ExecutionStatus.CANCELLED, before=before, actor=user)
    # SKIP LOCKED: a chunk locked by a worker is running; leave it to finish (or, if its
    # worker dies, to be cancelled by the redelivered task).
    pending = list(
        _chunks_locked(skip_locked=True)
        .filter(execution_id=execution.pk, status=ChunkStatus.PENDING)
        .values_list("pk", "account_ids")
    )
    if pending:
        ExecutionChunk.objects.filter(pk__in=[pk for pk, _ in pending]).update(
            status=ChunkStatus.CANCELLED, finished_at=now
        )
        bulk.leases_release(
            execution_id=execution.pk, account_ids=[uuid.UUID(a) for _, ids in pending for a in ids]
        )
    if Execution.objects.filter(pk=execution.pk, held=True).exists():
        # Chunks still PENDING but locked are being processed: they keep their leases, and
        # the last of them undoes the rest (approval.held_execution_finish).
        busy = ExecutionChunk.objects.filter(execution_id=execution.pk, status=ChunkStatus.PENDING).values_list(
            "account_ids", flat=True
        )
        approval.held_release(
            execution_id=execution.pk, order_status=TradeOrderStatus.CANCELLED, now=now,
            keep_accounts=[a for ids in busy for a in ids],
        )
    logger.info("execution %s cancelled by %s", execution.pk, getattr(user, "username", None) or "the system")
    execution.refresh_from_db()
    return execution


__all__ = [
    "MAX_EXECUTION_ACCOUNTS",
    "ChunkOutcome",
    "chunk_size",
    "execution_cancel",
    "execution_chunk_fail",
    "execution_chunk_process",
    "execution_create",
    "execution_fail",
    "execution_plan",
]
