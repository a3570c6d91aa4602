"""Reset and calendar date arithmetic (§2.1, §7).

The k-th date of a schedule anchored at F is ``F + k·n·period`` (k = 0, 1, ...),
always computed from F, never by stepping from the previous date, so month ends
do not creep: 31 Jan + 1 month = 28/29 Feb, + 2 months = 31 Mar. F itself is
the 0-th date.
"""

from __future__ import annotations

from calendar import monthrange
from datetime import date, timedelta

from .types import InvalidInputError, PeriodType

_DAYS = {PeriodType.DAILY: 1, PeriodType.WEEKLY: 7}
_MONTHS = {PeriodType.MONTHLY: 1, PeriodType.QUARTERLY: 3, PeriodType.ANNUALLY: 12}


def add_months(d: date, months: int) -> date:
    """Return ``d`` moved by ``months``, clamping the day to the month's end."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    last = monthrange(year, month)[1]
    return date(year, month, d.day if d.day <= last else last)


def _step(period_type: PeriodType, period_count: int) -> tuple[int, int]:
    """Return (days, months) of one period of ``period_count`` × ``period_type``."""
    if not isinstance(period_count, int) or isinstance(period_count, bool) or period_count < 1:
        raise InvalidInputError(f"period count must be a positive integer, got {period_count!r}")
    if period_type in _DAYS:
        return _DAYS[period_type] * period_count, 0
    if period_type in _MONTHS:
        return 0, _MONTHS[period_type] * period_count
    raise InvalidInputError(f"unknown period type {period_type!r}")


def reset_date(effective_from: date, period_type: PeriodType, period_count: int, k: int) -> date:
    """Return the k-th date (k ≥ 0) of the schedule anchored at ``effective_from``."""
    days, months = _step(period_type, period_count)
    if days:
        return effective_from + timedelta(days=days * k)
    return add_months(effective_from, months * k)


def _index_on_or_before(effective_from: date, days: int, months: int, d: date) -> int:
    """Return the largest k with date_k ≤ d (−1 when d < effective_from)."""
    if d < effective_from:
        return -1
    if days:
        return (d - effective_from).days // days
    elapsed = (d.year - effective_from.year) * 12 + d.month - effective_from.month
    k = elapsed // months
    # Clamping can only pull a date earlier within its month, never later, so
    # the candidate is at most one step too far.
    if add_months(effective_from, months * k) > d:
        k -= 1
    return k


def reset_date_on_or_before(
    effective_from: date, period_type: PeriodType, period_count: int, d: date
) -> date | None:
    """Return the last reset date at or before ``d`` (None when d < effective_from)."""
    days, months = _step(period_type, period_count)
    k = _index_on_or_before(effective_from, days, months, d)
    if k < 0:
        return None
    return effective_from + timedelta(days=days * k) if days else add_months(effective_from, months * k)


def next_reset_after(effective_from: date, period_type: PeriodType, period_count: int, d: date) -> date:
    """Return the first reset date strictly after ``d`` (``effective_from`` when d < it)."""
    days, months = _step(period_type, period_count)
    k = _index_on_or_before(effective_from, days, months, d) + 1
    return effective_from + timedelta(days=days * k) if days else add_months(effective_from, months * k)


def reset_dates_between(
    effective_from: date, period_type: PeriodType, period_count: int, after: date, until: date
) -> tuple[date, ...]:
    """Return the reset dates r with ``after < r ≤ until``, oldest first."""
    days, months = _step(period_type, period_count)
    first = _index_on_or_before(effective_from, days, months, after) + 1
    last = _index_on_or_before(effective_from, days, months, until)
    if days:
        return tuple(effective_from + timedelta(days=days * k) for k in range(first, last + 1))
    return tuple(add_months(effective_from, months * k) for k in range(first, last + 1))
