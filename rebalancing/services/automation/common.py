"""Shared by the daily jobs: UTC evaluation dates, calendar periods and due dates,
cooldowns, and the claims (owner, due date) inserted under a unique key."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from datetime import timezone as dt_timezone

from django.db import connection
from django.db.models import Max
from django.utils import timezone

from portfolios.models import AllocationVersion, WeightType
from rebalancing import engine
from rebalancing.engine import schedule

from ...models import AccountLease, ClaimOutcome, ExecutionResult, ResultStatus, StrategyRun, Trigger
from ..strategies import CALENDAR_TYPES

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


def utc_date(moment: datetime) -> date:
    return moment.astimezone(dt_timezone.utc).date()


def in_chunks(items: list, size: int):
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


def periodical_versions(on_date: date) -> dict:
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


def last_automatic_dates(since: date) -> dict:
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


# --- Claims -------------------------------------------------------------------------------


def claim_rows(model, owner_field: str, keys: list[tuple], now: datetime) -> dict:
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
    for batch in in_chunks(keys, CLAIM_BATCH):
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
