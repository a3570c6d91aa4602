"""Four-eyes approval of large executions (docs/executions.md, "Approval").

When the global preferences set an approval threshold, an execution is *held* from its
planning on: its chunks write their trade orders PENDING_APPROVAL, leave the accounts'
OPEN orders alone and keep the accounts' leases, and each records its part of the
totals (gross trade amount in the approval currency, order count). When the last chunk
is done, `held_execution_finish` compares the totals with the thresholds: above one →
AWAITING_APPROVAL; else the execution is activated at once, exactly as an approval
would. `execution_approve` / `execution_reject` decide an AWAITING_APPROVAL execution;
`held_release` undoes a held execution that is cancelled.

Everything here is set-based (one statement per table, whatever the number of
accounts or orders) and runs in the caller's transaction or owns its own.
"""

from decimal import Decimal

from django.db import transaction
from django.db.models import Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.errors import Conflict, Forbidden
from portfolios.models import AccountStatus, PortfolioAccount
from portfolios.models.fields import MONEY
from portfolios.selectors import FxTable, MissingMarketData
from webhooks import events
from webhooks.payloads import execution_payload

from ..models import (
    AccountLease,
    ChunkStatus,
    Execution,
    ExecutionChunk,
    ExecutionResult,
    ExecutionStatus,
    ResultStatus,
    TradeOrder,
    TradeOrderStatus,
)
from . import bulk
from .audit_trail import execution_audit
from .preferences import APPROVE_PERMISSION, ApprovalThresholds

UNFINISHED = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)
# A new rebalance proposal exists for these results, so it replaces the OPEN orders (§4.6).
REPLACING = (ResultStatus.PROPOSED, ResultStatus.NO_TRADES)
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY["decimal_places"])
MAX_NOTES = 5  # missing FX rates named in the approval reason; beyond, a count


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


# --- Planning and chunks ---------------------------------------------------------------------


def hold_fields(thresholds: ApprovalThresholds) -> dict:
    """The Execution fields that hold an execution under `thresholds` (none when inactive)."""
    if not thresholds.active:
        return {}
    return {
        "held": True, "approval_gross_limit": thresholds.gross_amount,
        "approval_order_limit": thresholds.order_count, "approval_currency": thresholds.currency,
    }


def chunk_totals(*, proposals, currency: str, on_date) -> dict:
    """A held chunk's part of the totals, as ExecutionChunk fields: Σ |trade amount| of
    `proposals` converted into `currency` with the FX rates at or before `on_date`, the
    number of orders, and a note naming every missing FX rate (those orders are left
    out of the sum, and the execution will need approval). One query when the orders
    are in another currency than `currency`, none otherwise."""
    currencies = {o.currency for o in proposals}
    fx = FxTable(currencies | {currency}, on_date)
    rates, missing = {}, []
    for code in sorted(currencies):
        try:
            rates[code] = fx.rate(code, currency)
        except MissingMarketData as exc:
            missing.append(str(exc))
    gross = sum((abs(o.trade_amount) * rates[o.currency] for o in proposals if o.currency in rates), Decimal(0))
    return {
        "gross_amount": gross.quantize(MONEY_QUANTUM), "order_count": len(proposals), "approval_note": "; ".join(missing),
    }


def _reasons(execution: Execution, gross: Decimal, count: int, notes: list[str]) -> list[str]:
    """Why the execution needs approval ([] when it does not). At the limit is not above it."""
    currency = execution.approval_currency
    reasons = []
    if execution.approval_gross_limit is not None:
        if notes:
            unique = sorted(set(notes))
            named = "; ".join(unique[:MAX_NOTES]) + (f"; and {len(unique) - MAX_NOTES} more" if len(unique) > MAX_NOTES else "")
            reasons.append(f"the gross amount in {currency} is unknown for some orders ({named})")
        if gross > execution.approval_gross_limit:
            reasons.append(
                f"gross amount {_plain(gross)} {currency} is above the limit of "
                f"{_plain(execution.approval_gross_limit)} {currency}"
            )
    if execution.approval_order_limit is not None and count > execution.approval_order_limit:
        reasons.append(f"{count} trade orders are above the limit of {execution.approval_order_limit}")
    return reasons


def held_execution_finish(execution_id, now) -> str | None:
    """The last chunk of a held execution is done (the caller holds the execution's row
    lock): AWAITING_APPROVAL when a total is above its threshold, else activate it now.
    A held execution cancelled meanwhile has the rest of its orders and leases undone.
    Returns the status set, or None."""
    execution = Execution.objects.order_by().select_for_update(of=("self",)).get(pk=execution_id)
    if execution.status not in UNFINISHED:
        if execution.status == ExecutionStatus.CANCELLED:
            held_release(execution_id=execution_id, order_status=TradeOrderStatus.CANCELLED, now=now)
        return None
    chunks = ExecutionChunk.objects.filter(execution_id=execution_id, status=ChunkStatus.DONE).order_by()
    totals = chunks.aggregate(gross=Coalesce(Sum("gross_amount"), Decimal(0)), count=Coalesce(Sum("order_count"), 0))
    notes = [note for text in chunks.exclude(approval_note="").values_list("approval_note", flat=True)
             for note in text.split("; ")]
    execution.gross_amount, execution.order_count = totals["gross"], totals["count"]
    reasons = _reasons(execution, execution.gross_amount, execution.order_count, notes)
    if reasons:
        execution_audit(execution, "await_approval", ExecutionStatus.AWAITING_APPROVAL,
                        changes={"approval_reason": ("", "; ".join(reasons))})
        execution.status = ExecutionStatus.AWAITING_APPROVAL
        execution.approval_reason = "; ".join(reasons)
        execution.save(update_fields=["status", "gross_amount", "order_count", "approval_reason"])
        events.record("execution.status_changed", lambda: execution_payload(execution_id))
        return execution.status
    execution.save(update_fields=["gross_amount", "order_count"])
    before = execution.status
    status = _activate(execution, now=now)
    execution_audit(execution, "finish", status, before=before)
    return status


# --- Activation, approval, rejection ----------------------------------------------------------


def execution_final_status(execution_id) -> str:
    """COMPLETED (no FAILED result), FAILED (every result FAILED, at least one), else
    PARTIALLY_FAILED: the status an execution ends with once every chunk is done."""
    results = ExecutionResult.objects.filter(execution_id=execution_id)
    failed = results.filter(status=ResultStatus.FAILED).exists()
    return (
        ExecutionStatus.COMPLETED if not failed
        else ExecutionStatus.PARTIALLY_FAILED if results.exclude(status=ResultStatus.FAILED).exists()
        else ExecutionStatus.FAILED
    )


BARRED = (
    "the account was locked or is no longer ACTIVE when execution {execution} was activated: its proposal was "
    "not made OPEN (its orders are CANCELLED) and its OPEN orders were kept"
)


def _bar_accounts_changed_since(execution: Execution, *, now) -> int:
    """Accounts locked or no longer ACTIVE since their chunk ran (or with a sub-portfolio
    that sells and is now locked) may not receive the proposal: their PENDING_APPROVAL
    orders → CANCELLED, their result → FAILED with the reason, so `_activate` neither
    opens nor replaces anything for them. Returns how many accounts. Four statements."""
    proposed = ExecutionResult.objects.filter(execution_id=execution.pk, status__in=REPLACING)
    held_orders = TradeOrder.objects.filter(execution_id=execution.pk, status=TradeOrderStatus.PENDING_APPROVAL)
    barred = set(
        PortfolioAccount.objects.filter(pk__in=Subquery(proposed.values("account_id")))
        .filter(Q(locked=True) | ~Q(status=AccountStatus.ACTIVE)).values_list("pk", flat=True)
    )
    barred |= set(
        PortfolioAccount.objects.filter(
            parent_id__in=Subquery(proposed.values("account_id")), locked=True,
            pk__in=Subquery(held_orders.values("account_id")),
        ).values_list("parent_id", flat=True)
    )
    if not barred:
        return 0
    barred = list(barred)  # a handful: accounts changed by hand during the wait
    held_orders.filter(Q(account_id__in=barred) | Q(account__parent_id__in=barred)).update(
        status=TradeOrderStatus.CANCELLED, updated_at=now
    )
    proposed.filter(account_id__in=barred).update(
        status=ResultStatus.FAILED, error=BARRED.format(execution=execution.pk)
    )
    return len(barred)


def _activate(execution: Execution, *, now, user=None, comment: str = "") -> str:
    """Make a held execution's proposals the accounts' OPEN orders, as a chunk of a
    non-held execution does: the OPEN orders of every account (and its sub-portfolios)
    whose result is PROPOSED or NO_TRADES → REPLACED, except a portfolio order's; the
    execution's PENDING_APPROVAL orders → OPEN; its leases released; its final status.
    A fixed number of statements whatever the size (accounts changed during the wait are
    barred first). The caller holds the execution's row lock."""
    _bar_accounts_changed_since(execution, now=now)
    replacing = ExecutionResult.objects.filter(execution_id=execution.pk, status__in=REPLACING).values("account_id")
    sub_accounts = PortfolioAccount.objects.filter(parent_id__in=Subquery(replacing)).values("pk")
    TradeOrder.objects.filter(status=TradeOrderStatus.OPEN, portfolio_order__isnull=True).filter(
        Q(account_id__in=Subquery(replacing)) | Q(account_id__in=Subquery(sub_accounts))
    ).update(status=TradeOrderStatus.REPLACED, updated_at=now)
    TradeOrder.objects.filter(execution_id=execution.pk, status=TradeOrderStatus.PENDING_APPROVAL).update(
        status=TradeOrderStatus.OPEN, updated_at=now
    )
    AccountLease.objects.filter(execution_id=execution.pk).delete()
    execution.status = execution_final_status(execution.pk)
    execution.finished_at = now
    fields = ["status", "finished_at"]
    if user is not None:
        execution.approved_by, execution.approved_at, execution.approval_comment = user, now, comment
        fields += ["approved_by", "approved_at", "approval_comment"]
    execution.save(update_fields=fields)
    events.record("execution.status_changed", lambda: execution_payload(execution.pk))
    return execution.status


def held_release(*, execution_id, order_status: str, now, keep_accounts=()) -> None:
    """Undo a held execution: its PENDING_APPROVAL orders → `order_status` (REJECTED or
    CANCELLED) and its leases released, except those of `keep_accounts` (the accounts
    of a chunk still being processed, which releases them itself)."""
    TradeOrder.objects.filter(execution_id=execution_id, status=TradeOrderStatus.PENDING_APPROVAL).update(
        status=order_status, updated_at=now
    )
    leases = AccountLease.objects.filter(execution_id=execution_id)
    if not keep_accounts:
        leases.delete()  # one DELETE
        return
    # Rare (a cancel while chunks run): the ids through Python, in batches under SQLite's limit.
    keep = {str(a) for a in keep_accounts}
    bulk.leases_release(
        execution_id=execution_id,
        account_ids=[a for a in leases.values_list("account_id", flat=True) if str(a) not in keep],
    )


def _decision_locked(execution: Execution, user, verb: str) -> Execution:
    """The execution, locked, once `user` may decide it: 403 (Forbidden) without the
    approve permission or for the execution's own requester (superusers included), 409
    (Conflict) unless it is AWAITING_APPROVAL."""
    if user is None or not user.is_authenticated or not user.has_perm(APPROVE_PERMISSION):
        raise Forbidden(f"to {verb} an execution you need the permission {APPROVE_PERMISSION}")
    locked = Execution.objects.order_by().select_for_update(of=("self",)).get(pk=execution.pk)
    if locked.requested_by_id is not None and locked.requested_by_id == user.pk:
        raise Forbidden(
            f"you requested execution {locked.pk}: another user must {verb} it (four eyes), superusers included"
        )
    if locked.status != ExecutionStatus.AWAITING_APPROVAL:
        raise Conflict(f"execution {locked.pk} is {locked.status}; only an AWAITING_APPROVAL execution can be {verb}d")
    return locked


def _comment(comment) -> str:
    return (comment or "").strip()


@transaction.atomic
def execution_approve(*, execution: Execution, user, comment: str = "") -> Execution:
    """AWAITING_APPROVAL → activated: its orders become OPEN and replace the accounts'
    OPEN orders, its leases are released, and it ends COMPLETED / PARTIALLY_FAILED /
    FAILED as its results say. Records who approved, when, and `comment`.

    Forbidden (403) without `rebalancing.approve_execution` or for the requester;
    Conflict (409) unless AWAITING_APPROVAL. Set-based: a fixed number of statements."""
    locked = _decision_locked(execution, user, "approve")
    _activate(locked, now=timezone.now(), user=user, comment=_comment(comment))
    execution_audit(locked, "approve", locked.status, before=ExecutionStatus.AWAITING_APPROVAL, actor=user,
                    changes={"approval_comment": ("", locked.approval_comment)})
    return locked


@transaction.atomic
def execution_reject(*, execution: Execution, user, comment: str = "") -> Execution:
    """AWAITING_APPROVAL → REJECTED: its PENDING_APPROVAL orders → REJECTED, its leases
    released; the accounts keep their OPEN orders. Records who rejected, when, and
    `comment`. Same refusals as `execution_approve`."""
    locked = _decision_locked(execution, user, "reject")
    now = timezone.now()
    execution_audit(locked, "reject", ExecutionStatus.REJECTED, actor=user,
                    changes={"approval_comment": ("", _comment(comment))})
    held_release(execution_id=locked.pk, order_status=TradeOrderStatus.REJECTED, now=now)
    locked.status, locked.finished_at = ExecutionStatus.REJECTED, now
    locked.approved_by, locked.approved_at, locked.approval_comment = user, now, _comment(comment)
    locked.save(update_fields=["status", "finished_at", "approved_by", "approved_at", "approval_comment"])
    events.record("execution.status_changed", lambda: execution_payload(locked.pk))
    return locked


__all__ = [
    "APPROVE_PERMISSION",
    "chunk_totals",
    "execution_approve",
    "execution_final_status",
    "execution_reject",
    "held_execution_finish",
    "held_release",
    "hold_fields",
]
