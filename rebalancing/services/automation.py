"""Automation (spec §7): the daily evaluation of rebalancing strategies, the daily run
of savings plans, and the reads behind the admin's schedule page.

Both daily jobs follow one pattern: find what is due with set-based queries, insert
the claim of each (owner, due date) first, under a unique key, and only then do the
work, recording its outcome on the claim. A claim that is already there (a second
beat tick, a redelivered task, a concurrent "run now") means someone else has it:
skip. Dates are UTC dates; docs/automation.md gives every rule and its reason.
"""

from __future__ import annotations

import logging
import uuid
from calendar import monthrange
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Max, OuterRef, Q, Subquery
from django.utils import timezone

from portfolios.errors import BusinessRuleViolation, DomainError, FieldError, InvalidInput, raise_if_errors
from portfolios.models import (
    AccountStatus,
    AccountType,
    AllocationVersion,
    CashAccount,
    Configuration,
    PortfolioAccount,
    WeightType,
)
from portfolios.models.fields import MONEY, is_currency_code
from rebalancing import engine
from rebalancing.engine import schedule

from ..models import (
    AccountLease,
    ClaimOutcome,
    Execution,
    ExecutionResult,
    Initiation,
    ResultStatus,
    SavingsInterval,
    SavingsPlan,
    SavingsPlanRun,
    Side,
    Strategy,
    StrategyRun,
    StrategyType,
    Trigger,
)
from ..selectors import book_load
from .executions import MAX_EXECUTION_ACCOUNTS, execution_create
from .orders import portfolio_order_create
from .preferences import preferences_effective
from .strategies import CALENDAR_TYPES

logger = logging.getLogger(__name__)

AUTOMATIC_TRIGGERS = (Trigger.SCHEDULED, Trigger.THRESHOLD)
VALUATION_CHUNK = 2000  # accounts valued per book_load: bounds the memory of a threshold check
CLAIM_BATCH = 1000
ERRORS_SHOWN = 3


def evaluation_date(now: datetime | None = None) -> date:
    """The date a job running at `now` (default: the current time) counts as: its UTC
    date, whatever the time zone `now` is given in."""
    now = now or timezone.now()
    if timezone.is_naive(now):
        raise ValueError("now must be an aware datetime")
    return now.astimezone(dt_timezone.utc).date()


def _utc_date(moment: datetime) -> date:
    return moment.astimezone(dt_timezone.utc).date()


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --- Calendar dates -------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """A schedule anchored at `start`: `start + k·count·period`. `first_k` is 0 when the
    anchor is itself a date (a strategy's anchor), 1 when it is not (a version's
    `effective_from` is where its drift starts, not a reset)."""

    start: date
    period_type: str
    period_count: int
    first_k: int = 0

    def latest_on_or_before(self, day: date) -> date | None:
        found = schedule.reset_date_on_or_before(self.start, engine.PeriodType(self.period_type), self.period_count, day)
        if found is None or (self.first_k and found == self.start):
            return None
        return found

    def next_after(self, day: date) -> date:
        found = schedule.next_reset_after(self.start, engine.PeriodType(self.period_type), self.period_count, day)
        if self.first_k and found == self.start:
            found = schedule.reset_date(self.start, engine.PeriodType(self.period_type), self.period_count, 1)
        return found


def strategy_periods(strategy, version=None) -> list[Period]:
    """The schedules whose dates are due dates of `strategy`: its own calendar
    (CALENDAR, CALENDAR_AND_THRESHOLD) and the reset dates of `version` when that
    allocation version is PERIODICAL (§2.1: they are rebalance dates of its accounts).

    `strategy` and `version` may be model instances or rows with the same attributes.
    """
    periods = []
    if strategy.type in CALENDAR_TYPES and strategy.period_type and strategy.period_count and strategy.anchor_date:
        periods.append(Period(strategy.anchor_date, strategy.period_type, strategy.period_count))
    if (
        version is not None and version.weight_type == WeightType.PERIODICAL
        and version.period_type and version.period_count
    ):
        periods.append(Period(version.effective_from, version.period_type, version.period_count, first_k=1))
    return periods


def latest_due_date(periods: Iterable[Period], after: date, until: date) -> date | None:
    """The latest date of any of `periods` in (after, until], or None."""
    found = [d for p in periods if (d := p.latest_on_or_before(until)) is not None and d > after]
    return max(found, default=None)


def next_due_date(periods: Iterable[Period], after: date) -> date | None:
    """The first date of any of `periods` strictly after `after`, or None."""
    return min((p.next_after(after) for p in periods), default=None)


def _periodical_versions(on_date: date) -> dict:
    """allocation id → its version in effect on `on_date`, when PERIODICAL. One query."""
    chosen = {}
    rows = (
        AllocationVersion.objects.filter(effective_from__lte=on_date)
        .order_by("allocation_id", "effective_from", "version")
        .values_list("allocation_id", "weight_type", "period_type", "period_count", "effective_from", named=True)
    )
    for row in rows:
        chosen[row.allocation_id] = row
    return {key: row for key, row in chosen.items() if row.weight_type == WeightType.PERIODICAL}


def _last_automatic(since: date) -> dict:
    """account id → the latest rebalance date of an automatic execution (SCHEDULED or
    THRESHOLD) on or after `since` that rebalanced it or still holds it. A FAILED result
    (e.g. the account was in another execution) is not a rebalance. Two queries."""
    last: dict = {}
    results = (
        ExecutionResult.objects.filter(execution__trigger__in=AUTOMATIC_TRIGGERS, execution__rebalance_date__gte=since)
        .exclude(status=ResultStatus.FAILED)
        .order_by()
        .values("account_id")
        .annotate(last=Max("execution__rebalance_date"))
        .values_list("account_id", "last")
    )
    leases = AccountLease.objects.filter(execution__trigger__in=AUTOMATIC_TRIGGERS).values_list(
        "account_id", "execution__rebalance_date"
    )
    for account_id, day in (*results, *leases):
        if account_id not in last or day > last[account_id]:
            last[account_id] = day
    return last


def in_cooldown(last_automatic: date | None, cooldown_days: int | None, on_date: date) -> bool:
    """True when an automatic rebalance on `last_automatic` still blocks one on `on_date`:
    fewer than `cooldown_days` days have passed (cooldown 7, last on 1 March: blocked
    up to 7 March, allowed from 8 March)."""
    return bool(cooldown_days) and last_automatic is not None and (on_date - last_automatic).days < cooldown_days


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
    return _claim_and_execute([e for e in entries if e.worth_recording()], today, now, strategies, valued)


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

    versions = _periodical_versions(today)
    active = [row for row in rows if row.id in members]
    plans = []
    for row in active:
        version = versions.get(row.allocation_id or allocation_of.get(row.id))
        since = _utc_date(row.updated_at) - timedelta(days=1)
        calendar_date = latest_due_date(strategy_periods(row, version), since, today)
        plans.append((row, calendar_date))

    wanted_dates = {d for _, d in plans if d is not None} | {today}
    claimed = set(StrategyRun.objects.filter(due_date__in=wanted_dates).values_list("strategy_id", "due_date"))
    cooldowns = [row.cooldown_days for row in active if row.cooldown_days]
    last_auto = _last_automatic(today - timedelta(days=max(cooldowns))) if cooldowns else {}

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
        book.snapshots[account_id], targets.lines, book.markets[account.base_currency],
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
    for chunk in _chunks(account_ids, VALUATION_CHUNK):
        default, per_account = preferences_effective(account_ids=chunk)
        book = book_load(account_ids=chunk, on_date=today, price_source=default.values["price_source"])
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


def _claim_rows(model, owner_field: str, keys: list[tuple], now: datetime) -> dict:
    """INSERT the claims (owner, due date) with ON CONFLICT DO NOTHING; return
    {(owner id, due date): claim id} of the rows this call inserted. A row another
    transaction is inserting makes this one wait for it, then skip it."""
    meta = model._meta
    owner = meta.get_field(owner_field)
    quote = connection.ops.quote_name
    columns = [owner.column, "due_date", "outcome", "detail", "claimed_at"]
    if model is StrategyRun:
        columns.append("accounts")
    won = {}
    for batch in _chunks(keys, CLAIM_BATCH):
        params = []
        for owner_id, due_date in batch:
            params += [
                owner.get_db_prep_value(owner_id, connection), connection.ops.adapt_datefield_value(due_date),
                ClaimOutcome.CLAIMED.value, "", connection.ops.adapt_datetimefield_value(now),
            ]
            if model is StrategyRun:
                params.append(0)
        placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
        sql = (
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES {', '.join([placeholders] * len(batch))} "
            f"ON CONFLICT ({quote(owner.column)}, {quote('due_date')}) DO NOTHING "
            f"RETURNING {quote('id')}, {quote(owner.column)}, {quote('due_date')}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for claim_id, owner_id, due_date in cursor.fetchall():
                if isinstance(due_date, str):
                    due_date = date.fromisoformat(due_date)
                won[(uuid.UUID(str(owner_id)), due_date)] = claim_id
    return won


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
    won = _claim_rows(StrategyRun, "strategy", [e.key for e in entries], now)
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
                    for part in _chunks(accounts, MAX_EXECUTION_ACCOUNTS)
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
        for part in _chunks(claim_ids, 5000):
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


# --- Savings plans: dates ----------------------------------------------------------------

_STEP_MONTHS = {SavingsInterval.MONTHLY: 1, SavingsInterval.QUARTERLY: 3}


def _month_date(month_index: int, day: int) -> date:
    year, month = divmod(month_index, 12)
    month += 1
    return date(year, month, min(day, monthrange(year, month)[1]))


def _first_month(plan) -> int:
    """The month (year·12 + month − 1) of the plan's first date: the first `day` (clamped)
    on or after its start date."""
    index = plan.start_date.year * 12 + plan.start_date.month - 1
    return index if _month_date(index, plan.day) >= plan.start_date else index + 1


def _first_weekly(plan) -> date:
    return plan.start_date + timedelta(days=(plan.day - plan.start_date.isoweekday()) % 7)


def savings_plan_date_on_or_before(plan, day: date) -> date | None:
    """The latest date of the plan at or before `day` (its end date ignored), or None.

    WEEKLY: every `day`-th weekday (1 = Monday) from the start date on. MONTHLY and
    QUARTERLY: `day` of every (third) month, clamped to the month's end (31 → 28/29 Feb,
    30 Apr, 31 May ...), from the first such date on or after the start date; each date
    is computed from `day`, never from the previous date, so month ends do not creep.
    """
    if plan.interval == SavingsInterval.WEEKLY:
        first = _first_weekly(plan)
        return None if day < first else first + timedelta(days=7 * ((day - first).days // 7))
    step = _STEP_MONTHS[plan.interval]
    first = _first_month(plan)
    k = (day.year * 12 + day.month - 1 - first) // step
    if k >= 0 and _month_date(first + k * step, plan.day) > day:
        k -= 1
    return _month_date(first + k * step, plan.day) if k >= 0 else None


def savings_plan_date_after(plan, day: date) -> date | None:
    """The first date of the plan strictly after `day`, or None past its end date."""
    if plan.interval == SavingsInterval.WEEKLY:
        first = _first_weekly(plan)
        found = first if day < first else first + timedelta(days=7 * ((day - first).days // 7 + 1))
    else:
        step = _STEP_MONTHS[plan.interval]
        first = _first_month(plan)
        k = (day.year * 12 + day.month - 1 - first) // step
        k = max(k, 0)
        found = _month_date(first + k * step, plan.day)
        while found <= day:
            k += 1
            found = _month_date(first + k * step, plan.day)
    if plan.end_date is not None and found > plan.end_date:
        return None
    return found


def savings_plan_next_run_date(plan, *, last_run: date | None = None, today: date | None = None) -> date | None:
    """The next date the plan will buy on: its first date on or after `today` (default:
    the UTC date) that is not claimed yet (`last_run`: its latest claimed date). None
    when the plan is paused or has ended."""
    today = today or evaluation_date()
    if not plan.active or (plan.end_date is not None and plan.end_date < today):
        return None
    after = today - timedelta(days=1)
    if last_run is not None and last_run > after:
        after = last_run
    return savings_plan_date_after(plan, after)


def with_last_run(queryset):
    """Annotate `last_run` (the latest claimed due date) on a SavingsPlan queryset, for
    `savings_plan_next_run_date` without a query per plan."""
    latest = SavingsPlanRun.objects.filter(savings_plan=OuterRef("pk")).order_by("-due_date").values("due_date")[:1]
    return queryset.annotate(last_run=Subquery(latest))


# --- Savings plans: the daily run --------------------------------------------------------


@dataclass(frozen=True)
class SavingsPlanSummary:
    on_date: date
    due: int  # plans with a due date not claimed yet
    executed: int  # portfolio orders created
    failed: int  # claims recorded FAILED (the reason is on the claim)
    already_claimed: int  # claimed by a concurrent run meanwhile

    def __str__(self):
        return (
            f"savings plans of {self.on_date}: {self.due} due, {self.executed} portfolio order(s), "
            f"{self.failed} failed"
        )


def savings_plans_run(*, on_date: date | None = None, now: datetime | None = None) -> SavingsPlanSummary:
    """Place the BUY portfolio order of every active savings plan due on `on_date`
    (default: the UTC date of `now`, default the current time).

    Due: the plan's latest date in (day before it was created or last changed,
    on_date], not claimed yet; so a date missed while the system was down is caught
    up once. A plan past its end date, or paused, does nothing. Each plan is handled
    in a transaction of its own: claim (plan, due date) first, then
    `portfolio_order_create`; a refusal (account not ACTIVE, not configured, not enough
    cash ...) is recorded as FAILED with its reason, and the plan goes on next period.
    """
    now = now or timezone.now()
    today = on_date or evaluation_date(now)
    plans = (
        SavingsPlan.objects.filter(active=True, start_date__lte=today)
        .filter(Q(end_date__isnull=True) | Q(end_date__gte=today))
        .select_related("account")
        .order_by("start_date", "id")
    )
    due = []
    for plan in plans:
        due_date = savings_plan_date_on_or_before(plan, today)
        if due_date is not None and due_date > _utc_date(plan.updated_at) - timedelta(days=1):
            due.append((plan, due_date))
    claimed = set(
        SavingsPlanRun.objects.filter(due_date__in={d for _, d in due}).values_list("savings_plan_id", "due_date")
    )
    due = [(plan, due_date) for plan, due_date in due if (plan.pk, due_date) not in claimed]
    outcomes = [savings_plan_execute(plan=plan, due_date=due_date, now=now) for plan, due_date in due]
    summary = SavingsPlanSummary(
        on_date=today, due=len(due), executed=outcomes.count(ClaimOutcome.EXECUTED),
        failed=outcomes.count(ClaimOutcome.FAILED), already_claimed=outcomes.count(None),
    )
    logger.info("%s", summary)
    return summary


@transaction.atomic
def savings_plan_execute(*, plan: SavingsPlan, due_date: date, now: datetime | None = None) -> str | None:
    """Claim (plan, due date) and place its portfolio order; return the outcome, or
    None when the date was already claimed (nothing done)."""
    now = now or timezone.now()
    if not _claim_rows(SavingsPlanRun, "savings_plan", [(plan.pk, due_date)], now):
        return None
    run = SavingsPlanRun.objects.get(savings_plan=plan, due_date=due_date)
    try:
        with transaction.atomic():
            order = portfolio_order_create(
                account=plan.account, side=Side.BUY, cash_amount=plan.cash_amount, currency=plan.currency,
                initiation=Initiation.SAVINGS_PLAN,
            )
    except DomainError as exc:
        run.outcome, run.detail = ClaimOutcome.FAILED, exc.detail
    except Exception as exc:  # a bug for one plan must not stop the others; the date stays claimed
        logger.exception("savings plan %s, %s: the portfolio order failed", plan.pk, due_date)
        run.outcome, run.detail = ClaimOutcome.FAILED, f"internal error: {exc!r}"
    else:
        run.outcome, run.portfolio_order = ClaimOutcome.EXECUTED, order
    run.save(update_fields=["outcome", "detail", "portfolio_order"])
    return run.outcome


# --- Savings plans: create, change, delete -------------------------------------------------

MONEY_QUANTUM = Decimal(1).scaleb(-MONEY["decimal_places"])
MONEY_LIMIT = 10 ** (MONEY["max_digits"] - MONEY["decimal_places"])
SAVINGS_PLAN_FIELDS = ("cash_amount", "currency", "interval", "day", "start_date", "end_date", "active")


def _account_rules(account: PortfolioAccount) -> None:
    """422 for an account that can never take a savings plan's order. (Not ACTIVE or not
    configured yet is allowed: those are checked on each due date and recorded.)"""
    if account.account_type != AccountType.PORTFOLIO:
        raise BusinessRuleViolation(
            f"account {account.pk} is of type {account.account_type}; only PORTFOLIO accounts invest",
            [FieldError("account_id", "account_type must be PORTFOLIO")],
        )
    if account.parent_id is not None:
        raise BusinessRuleViolation(
            f"account {account.pk} is a sub-portfolio; give the plan to its parent {account.parent_id}",
            [FieldError("account_id", "must not be a sub-portfolio")],
        )
    if account.status == AccountStatus.CLOSED:
        raise BusinessRuleViolation(
            f"account {account.pk} is CLOSED", [FieldError("account_id", "a CLOSED account takes no savings plan")]
        )


def _plan_errors(account: PortfolioAccount, values: dict) -> list[FieldError]:
    errors = []
    amount = values.get("cash_amount")
    if amount is None:
        errors.append(FieldError("cash_amount", "is required"))
    elif isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        errors.append(FieldError("cash_amount", "must be a decimal number"))
    elif not Decimal(amount).is_finite() or amount <= 0:
        errors.append(FieldError("cash_amount", "must be greater than 0"))
    elif amount >= MONEY_LIMIT or Decimal(amount).quantize(MONEY_QUANTUM) != amount:
        errors.append(FieldError("cash_amount", f"less than {MONEY_LIMIT:,} with at most {MONEY['decimal_places']} "
                                                "decimal places"))
    currency = values.get("currency")
    if not currency or not is_currency_code(currency):
        errors.append(FieldError("currency", f"{currency} is not an ISO 4217 currency code"))
    else:
        held = {account.base_currency, *CashAccount.objects.filter(account=account).values_list("currency", flat=True)}
        if currency not in held:
            errors.append(FieldError(
                "currency", f"must be the account's base currency or one it holds cash in: {', '.join(sorted(held))}"
            ))
    interval = values.get("interval")
    if interval not in SavingsInterval.values:
        errors.append(FieldError("interval", f"must be one of {', '.join(SavingsInterval.values)}"))
    day = values.get("day")
    if isinstance(day, bool) or not isinstance(day, int):
        errors.append(FieldError("day", "is required: a whole number"))
    elif interval == SavingsInterval.WEEKLY and not 1 <= day <= 7:
        errors.append(FieldError("day", "must be a weekday from 1 (Monday) to 7 (Sunday) for a WEEKLY plan"))
    elif not 1 <= day <= 31:
        errors.append(FieldError("day", "must be a day of the month from 1 to 31 (clamped to the month's end)"))
    start, end = values.get("start_date"), values.get("end_date")
    if not isinstance(start, date):
        errors.append(FieldError("start_date", "is required: a date"))
    elif end is not None and end < start:
        errors.append(FieldError("end_date", "must not be before start_date"))
    if not isinstance(values.get("active"), bool):
        errors.append(FieldError("active", "must be true or false"))
    return errors


@transaction.atomic
def savings_plan_create(
    *, account: PortfolioAccount, cash_amount: Decimal, currency: str, day: int,
    interval: str = SavingsInterval.MONTHLY, start_date: date | None = None, end_date: date | None = None,
    active: bool = True,
) -> SavingsPlan:
    """A recurring BUY portfolio order for `account`. `start_date` defaults to today
    (UTC). Raises InvalidInput naming each bad field, BusinessRuleViolation (422) for an
    account that can never invest (not PORTFOLIO, a sub-portfolio, CLOSED)."""
    values = {
        "cash_amount": cash_amount, "currency": currency, "interval": interval, "day": day,
        "start_date": start_date or evaluation_date(), "end_date": end_date, "active": active,
    }
    raise_if_errors(_plan_errors(account, values))
    _account_rules(account)
    values["cash_amount"] = Decimal(values["cash_amount"])
    return SavingsPlan.objects.create(account=account, **values)


@transaction.atomic
def savings_plan_update(*, plan: SavingsPlan, **changes) -> SavingsPlan:
    """Change any of SAVINGS_PLAN_FIELDS; the account is fixed. The plan's dates count
    from the day of the change: a date missed before it is not caught up."""
    unknown = sorted(set(changes) - set(SAVINGS_PLAN_FIELDS))
    if unknown:
        raise InvalidInput([FieldError(name, "cannot be changed") for name in unknown])
    values = {name: getattr(plan, name) for name in SAVINGS_PLAN_FIELDS}
    values.update(changes)
    raise_if_errors(_plan_errors(plan.account, values))
    if any(getattr(plan, name) != value for name, value in values.items()):
        for name, value in values.items():
            setattr(plan, name, value)
        plan.save()
    return plan


@transaction.atomic
def savings_plan_delete(*, plan: SavingsPlan) -> None:
    """Remove the plan and its claims; portfolio orders it placed stay."""
    plan.delete()


def savings_plans_pause(*, plan_ids: Iterable, active: bool = False) -> int:
    """Pause (active False) or resume plans; returns how many changed. Resuming catches
    up no date missed while paused."""
    return SavingsPlan.objects.filter(pk__in=list(plan_ids)).exclude(active=active).update(
        active=active, updated_at=timezone.now()
    )


# --- The schedule of one account (admin) ----------------------------------------------------


@dataclass(frozen=True)
class DriftLine:
    label: str
    weight: Decimal
    target_weight: Decimal
    drift: Decimal
    relative: Decimal | None  # drift as a fraction of the target; None for a target of 0
    crossed: bool


@dataclass(frozen=True)
class AccountSchedule:
    account: PortfolioAccount
    on_date: date
    configuration: Configuration | None
    strategy: Strategy | None
    source: str  # "own", "allocation" or ""
    periodical: bool  # the allocation's reset dates are due dates too
    next_date: date | None
    last_claims: list
    last_execution: Execution | None
    cooldown_until: date | None
    drift: list  # DriftLine, cash last
    drift_crossed: bool | None  # None: no threshold, or not valued
    drift_error: str
    total_value: Decimal | None
    savings_plans: list  # (plan, next run date)


def account_schedule(*, account: PortfolioAccount, on_date: date | None = None) -> AccountSchedule:
    """Everything the admin's schedule page shows for one account: its strategy and
    where it comes from, the next calendar date, the drift at the latest prices against
    the threshold, the last automatic execution and cooldown, the recent claims, and
    its savings plans. Reads only; about twenty queries."""
    today = on_date or evaluation_date()
    configuration = Configuration.objects.filter(account=account).select_related("allocation").first()
    strategy, source = None, ""
    if configuration is not None:
        strategy = Strategy.objects.filter(configuration=configuration).first()
        source = "own" if strategy is not None else ""
        if strategy is None:
            strategy = Strategy.objects.filter(allocation_id=configuration.allocation_id).first()
            source = "allocation" if strategy is not None else ""
    version = None
    if configuration is not None:
        version = _periodical_versions(today).get(configuration.allocation_id)

    next_date, last_claims = None, []
    if strategy is not None:
        last_claims = list(strategy.runs.select_related("execution").order_by("-due_date")[:10])
        periods = strategy_periods(strategy, version)
        after = today - timedelta(days=1)
        if last_claims and last_claims[0].due_date > after:
            after = last_claims[0].due_date
        next_date = next_due_date(periods, after)

    last_execution = last_automatic_execution(account)
    cooldown_until = None
    if strategy is not None and strategy.cooldown_days and last_execution is not None:
        until = last_execution.rebalance_date + timedelta(days=strategy.cooldown_days - 1)
        cooldown_until = until if until >= today else None

    drift, crossed, error, total = [], None, "", None
    if configuration is not None:
        drift, crossed, error, total = _drift_lines(account, strategy, today)
    plans = with_last_run(SavingsPlan.objects.filter(account=account).order_by("start_date", "id"))
    return AccountSchedule(
        account=account, on_date=today, configuration=configuration, strategy=strategy, source=source,
        periodical=version is not None, next_date=next_date, last_claims=last_claims,
        last_execution=last_execution, cooldown_until=cooldown_until, drift=drift, drift_crossed=crossed,
        drift_error=error, total_value=total,
        savings_plans=[(plan, savings_plan_next_run_date(plan, last_run=plan.last_run, today=today)) for plan in plans],
    )


def last_automatic_execution(account: PortfolioAccount) -> Execution | None:
    """The latest automatic execution that rebalanced `account` (a result other than
    FAILED) or still holds it. Two queries."""
    found = [
        result.execution
        for result in ExecutionResult.objects.filter(account=account, execution__trigger__in=AUTOMATIC_TRIGGERS)
        .exclude(status=ResultStatus.FAILED)
        .select_related("execution")
        .order_by("-execution__rebalance_date", "-execution__created_at")[:1]
    ]
    lease = AccountLease.objects.filter(account=account, execution__trigger__in=AUTOMATIC_TRIGGERS).select_related(
        "execution"
    ).first()
    if lease is not None:
        found.append(lease.execution)
    return max(found, key=lambda e: (e.rebalance_date, e.created_at), default=None)


def _drift_lines(account, strategy, today) -> tuple[list, bool | None, str, Decimal | None]:
    default, per_account = preferences_effective(account_ids=[account.pk])
    effective = per_account.get(account.pk, default)
    book = book_load(account_ids=[account.pk], on_date=today, price_source=effective.values["price_source"])
    targets = book.targets.get(account.pk)
    if targets is None or targets.error:
        return [], None, targets.error if targets else "no configuration", None
    try:
        valuation = engine.value_account(
            book.snapshots[account.pk], targets.lines, book.markets[account.base_currency],
            engine.AvailableCash(effective.values["available_cash"]),
        )
    except engine.DataError as exc:
        return [], None, str(exc), None
    absolute = strategy.absolute_drift if strategy is not None and strategy.type != StrategyType.CALENDAR else None
    relative = strategy.relative_drift if strategy is not None and strategy.type != StrategyType.CALENDAR else None
    labels = {pk: f"{i.name} ({i.isin})" if i.isin else i.name for pk, i in book.instruments.items()}
    rows = [(labels.get(line.instrument_id, str(line.instrument_id)), line.weight, line.target_weight, line.drift)
            for line in valuation.lines]
    rows.append(("Cash", valuation.cash_weight, valuation.cash_target_weight, valuation.cash_drift))
    lines = []
    for label, weight, target, drift in rows:
        relative_drift = abs(drift) / target if target else None
        hit = (absolute is not None and abs(drift) > absolute) or (
            relative is not None and drift != 0 and (relative_drift is None or relative_drift > relative)
        )
        lines.append(DriftLine(label, weight, target, drift, relative_drift, hit))
    crossed = None
    if absolute is not None or relative is not None:
        crossed = engine.drift_exceeds(valuation, absolute_drift=absolute, relative_drift=relative)
    return lines, crossed, "", valuation.total_value


__all__ = [
    "AUTOMATIC_TRIGGERS",
    "AccountSchedule",
    "EvaluationSummary",
    "Period",
    "SavingsPlanSummary",
    "account_schedule",
    "drift_crossed",
    "evaluation_date",
    "in_cooldown",
    "last_automatic_execution",
    "latest_due_date",
    "next_due_date",
    "savings_plan_create",
    "savings_plan_date_after",
    "savings_plan_date_on_or_before",
    "savings_plan_delete",
    "savings_plan_execute",
    "savings_plan_next_run_date",
    "savings_plan_update",
    "savings_plans_pause",
    "savings_plans_run",
    "strategies_evaluate",
    "strategy_periods",
    "with_last_run",
]
