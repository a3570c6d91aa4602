"""The daily evaluation of rebalancing strategies (spec §7): calendar and drift due
dates, claimed once, executions per (trigger, method)."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from core.errors import DomainError
from portfolios.models import AccountStatus, Configuration
from rebalancing import engine

from ...models import ClaimOutcome, Strategy, StrategyRun, StrategyType, Trigger
from ...selectors.book import book_load
from ..drift import account_drifts_refresh
from ..executions import MAX_EXECUTION_ACCOUNTS, execution_create
from ..preferences import book_options, preferences_effective
from .common import (
    ERRORS_SHOWN,
    VALUATION_CHUNK,
    claim_rows,
    evaluation_date,
    in_chunks,
    in_cooldown,
    last_automatic_dates,
    latest_due_date,
    periodical_versions,
    strategy_periods,
    utc_date,
)

logger = logging.getLogger(__name__)


# --- Strategy evaluation ---------------------------------------------------------------


@dataclass
class _Due:
    """One (strategy, due date) found due, and what became of it."""

    strategy: object  # a Strategy row (values_list, named)
    due_date: date
    trigger: str
    candidates: list  # accounts of the strategy out of cooldown
    cooling: int = 0
    threshold: bool = False  # the accounts must cross the threshold to be rebalanced
    due: list = field(default_factory=list)
    errors: dict = field(default_factory=dict)
    within: int = 0
    claim_id: int | None = None
    outcome: str = ""
    execution_id: uuid.UUID | None = None
    detail: str = ""

    @property
    def key(self) -> tuple:
        return self.strategy.id, self.due_date

    def worth_recording(self) -> bool:
        # A calendar date is claimed whatever happens, so it is never evaluated again;
        # a threshold check only when it found something to do or to report.
        return self.trigger == Trigger.SCHEDULED or bool(self.due) or bool(self.errors)


@dataclass(frozen=True)
class EvaluationSummary:
    """What one evaluation did."""

    on_date: date
    strategies: int  # active strategies with at least one account
    accounts_valued: int  # accounts whose drift was computed
    claimed: int  # (strategy, due date) claimed by this call
    already_claimed: int  # found claimed by a concurrent evaluation at insert time
    executions: tuple  # ids of the executions created
    accounts: int  # accounts in those executions
    failed: int  # claims recorded FAILED

    def __str__(self):
        return (
            f"evaluation of {self.on_date}: {self.claimed} due date(s) claimed, {len(self.executions)} execution(s) "
            f"for {self.accounts} account(s), {self.failed} failed, {self.accounts_valued} account(s) valued"
        )


_STRATEGY_COLUMNS = (
    "id", "configuration_id", "allocation_id", "type", "period_type", "period_count", "anchor_date",
    "absolute_drift", "relative_drift", "method", "cooldown_days", "paused", "updated_at",
)


def strategies_evaluate(*, on_date: date | None = None, now: datetime | None = None) -> EvaluationSummary:
    """Find every account due for an automatic rebalance on `on_date` (default: the UTC
    date of `now`, default the current time) and start its execution.

    Due: a calendar date of its strategy (or a reset date of its PERIODICAL allocation)
    in (day before the strategy was created or last changed, on_date], the latest one
    only and only if not claimed yet (a missed date is caught up once); CALENDAR_AND_
    THRESHOLD on such a date only if the threshold is crossed; THRESHOLD on any day the
    drift crosses it, valued at the latest prices. Accounts in their cooldown are left
    out, paused strategies skipped. Each (strategy, due date) is claimed before any
    execution is created, and one execution is created per (trigger, method).

    Queries: a fixed number to find what is due, about ten per 2,000 accounts whose
    drift is checked, then one transaction that claims and creates the executions (the
    chunks are enqueued when it commits). Safe to run twice or concurrently: the
    second run finds the claims and does nothing.
    """
    now = now or timezone.now()
    today = on_date or evaluation_date(now)
    entries, strategies = _find_due(today)
    valued = _check_thresholds([e for e in entries if e.threshold], today)
    summary = _claim_and_execute([e for e in entries if e.worth_recording()], today, now, strategies, valued)
    # The stored drift the admin lists and counts (docs/admin.md): every configured account, once a day.
    account_drifts_refresh(on_date=today)
    return summary


def _find_due(today: date) -> tuple[list[_Due], int]:
    rows = list(Strategy.objects.order_by().values_list(*_STRATEGY_COLUMNS, named=True))
    own = {row.configuration_id: row for row in rows if row.configuration_id}
    of_allocation = {row.allocation_id: row for row in rows if row.allocation_id}
    members: dict = defaultdict(list)  # strategy id → accounts
    allocation_of: dict = {}  # configuration strategy id → the account's allocation
    configured = Configuration.objects.filter(
        account__status=AccountStatus.ACTIVE, account__parent__isnull=True, account__locked=False
    ).order_by().values_list("account_id", "allocation_id")
    for account_id, allocation_id in configured:
        strategy = own.get(account_id)
        if strategy is not None:
            allocation_of[strategy.id] = allocation_id
        else:
            strategy = of_allocation.get(allocation_id)
        if strategy is not None and not strategy.paused:
            members[strategy.id].append(account_id)

    versions = periodical_versions(today)
    active = [row for row in rows if row.id in members]
    plans = []
    for row in active:
        version = versions.get(row.allocation_id or allocation_of.get(row.id))
        since = utc_date(row.updated_at) - timedelta(days=1)
        calendar_date = latest_due_date(strategy_periods(row, version), since, today)
        plans.append((row, calendar_date))

    wanted_dates = {d for _, d in plans if d is not None} | {today}
    claimed = set(StrategyRun.objects.filter(due_date__in=wanted_dates).values_list("strategy_id", "due_date"))
    cooldowns = [row.cooldown_days for row in active if row.cooldown_days]
    last_auto = last_automatic_dates(today - timedelta(days=max(cooldowns))) if cooldowns else {}

    entries = []
    for row, calendar_date in plans:
        if calendar_date is not None and (row.id, calendar_date) not in claimed:
            due_date, trigger = calendar_date, Trigger.SCHEDULED
            threshold = row.type == StrategyType.CALENDAR_AND_THRESHOLD
        elif row.type == StrategyType.THRESHOLD and (row.id, today) not in claimed:
            due_date, trigger, threshold = today, Trigger.THRESHOLD, True
        else:
            continue
        accounts = members[row.id]
        candidates = [a for a in accounts if not in_cooldown(last_auto.get(a), row.cooldown_days, today)]
        entries.append(_Due(
            strategy=row, due_date=due_date, trigger=trigger, candidates=sorted(candidates),
            cooling=len(accounts) - len(candidates), threshold=threshold,
        ))
        if not threshold:
            entries[-1].due = entries[-1].candidates
    return entries, len(active)


def drift_crossed(book, account_id, strategy, available_cash: str) -> bool:
    """Whether the loaded account drifts past the strategy's threshold (strictly, as
    engine.drift_exceeds). Raises engine.DataError when it cannot be valued."""
    account = book.accounts.get(account_id)
    if account is None:
        raise engine.InvalidInputError(f"account {account_id} no longer exists")
    targets = book.targets.get(account_id)
    if targets is None:
        raise engine.InvalidInputError(f"account {account_id} has no configuration")
    if targets.error:
        raise engine.InvalidInputError(targets.error)
    valuation = engine.value_account(
        book.snapshots[account_id], targets.lines, book.market_of(account_id),
        engine.AvailableCash(available_cash),
    )
    return engine.drift_exceeds(
        valuation, absolute_drift=strategy.absolute_drift, relative_drift=strategy.relative_drift
    )


def _check_thresholds(entries: list[_Due], today: date) -> int:
    """Value every candidate of `entries` at the latest prices, VALUATION_CHUNK accounts
    at a time, and sort them into due / within the threshold / errors."""
    entry_of = {account_id: entry for entry in entries for account_id in entry.candidates}
    account_ids = sorted(entry_of)
    for chunk in in_chunks(account_ids, VALUATION_CHUNK):
        default, per_account = preferences_effective(account_ids=chunk)
        book = book_load(account_ids=chunk, on_date=today, **book_options(default, per_account))
        for account_id in chunk:
            entry = entry_of[account_id]
            scope = per_account.get(account_id, default).values["available_cash"]
            try:
                crossed = drift_crossed(book, account_id, entry.strategy, scope)
            except engine.DataError as exc:
                entry.errors[account_id] = str(exc)
                continue
            if crossed:
                entry.due.append(account_id)
            else:
                entry.within += 1
    return len(account_ids)


def _errors_text(errors: dict) -> str:
    shown = "; ".join(f"{account_id}: {message}" for account_id, message in sorted(errors.items())[:ERRORS_SHOWN])
    more = f" (and {len(errors) - ERRORS_SHOWN} more)" if len(errors) > ERRORS_SHOWN else ""
    return f"{len(errors)} account(s) could not be valued: {shown}{more}"


def _details(entry: _Due) -> list[str]:
    parts = []
    if entry.within:
        parts.append(f"{entry.within} account(s) within the threshold")
    if entry.cooling:
        parts.append(f"{entry.cooling} account(s) in their cooldown")
    if entry.errors:
        parts.append(_errors_text(entry.errors))
    return parts


@transaction.atomic
def _claim_and_execute(entries: list[_Due], today: date, now: datetime, strategies: int, valued: int):
    won = claim_rows(StrategyRun, "strategy", [e.key for e in entries], now)
    mine = [e for e in entries if e.key in won]
    groups: dict = defaultdict(list)
    for entry in mine:
        entry.claim_id = won[entry.key]
        if entry.due:
            groups[(entry.trigger, entry.strategy.method)].append(entry)
        elif entry.errors:
            entry.outcome = ClaimOutcome.FAILED
            entry.detail = "; ".join(_details(entry))
        else:
            entry.outcome = ClaimOutcome.NOT_DUE
            reasons = _details(entry) or ["no ACTIVE, unlocked account follows it"]
            entry.detail = "nothing to rebalance: " + "; ".join(reasons)

    executions = []
    for (trigger, method), group in sorted(groups.items()):
        accounts = sorted({account_id for entry in group for account_id in entry.due})
        try:
            with transaction.atomic():
                created = [
                    (execution_create(method=method, trigger=trigger, account_ids=part, rebalance_date=today), part)
                    for part in in_chunks(accounts, MAX_EXECUTION_ACCOUNTS)
                ]
        except Exception as exc:  # recorded on the claims: the other groups still run
            logger.exception("evaluation of %s: the %s %s execution could not be created", today, trigger, method)
            reason = exc.detail if isinstance(exc, DomainError) else f"internal error: {exc!r}"
            for entry in group:
                entry.outcome = ClaimOutcome.FAILED
                entry.detail = "; ".join([f"the execution could not be created: {reason}", *_details(entry)])
            continue
        execution_of = {account_id: execution.pk for execution, part in created for account_id in part}
        executions.extend(execution for execution, _ in created)
        for entry in group:
            entry.outcome = ClaimOutcome.EXECUTED
            entry.execution_id = execution_of[entry.due[0]]
            entry.detail = "; ".join(_details(entry))

    # One UPDATE per distinct outcome (claims of one execution mostly share theirs).
    same: dict = defaultdict(list)
    for entry in mine:
        accounts = len(entry.due)
        same[(entry.outcome, entry.execution_id, accounts, entry.detail)].append(entry.claim_id)
    for (outcome, execution_id, accounts, detail), claim_ids in same.items():
        for part in in_chunks(claim_ids, 5000):
            StrategyRun.objects.filter(pk__in=part).update(
                outcome=outcome, execution_id=execution_id, accounts=accounts, detail=detail
            )
    summary = EvaluationSummary(
        on_date=today, strategies=strategies, accounts_valued=valued, claimed=len(mine),
        already_claimed=len(entries) - len(mine), executions=tuple(e.pk for e in executions),
        accounts=sum(e.total for e in executions),
        failed=sum(1 for e in mine if e.outcome == ClaimOutcome.FAILED),
    )
    logger.info("%s", summary)
    return summary
