"""Calendar due dates (same arithmetic as §2.1) and savings plan dates: no database."""

from datetime import date, timedelta
from types import SimpleNamespace

import pytest

from rebalancing.services.automation import (
    Period,
    latest_due_date,
    next_due_date,
    savings_plan_date_after,
    savings_plan_date_on_or_before,
    strategy_periods,
)


def dates_of(period: Period, after: date, until: date) -> list[date]:
    """Every date of `period` in (after, until], found one by one through next_after."""
    found, day = [], after
    while (day := period.next_after(day)) <= until:
        found.append(day)
    return found


@pytest.mark.parametrize(("period_type", "count", "anchor", "expected"), [
    ("DAILY", 3, date(2026, 2, 26), [date(2026, 2, 26), date(2026, 3, 1), date(2026, 3, 4)]),
    ("WEEKLY", 3, date(2022, 1, 5), [date(2022, 1, 5), date(2022, 1, 26), date(2022, 2, 16), date(2022, 3, 9)]),
    # Month ends clamp and never creep: 31 Jan → 28 Feb → 31 Mar → 30 Apr.
    ("MONTHLY", 1, date(2026, 1, 31), [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]),
    # A leap year: 31 Jan 2028 + 1 month = 29 Feb.
    ("MONTHLY", 1, date(2028, 1, 31), [date(2028, 1, 31), date(2028, 2, 29), date(2028, 3, 31), date(2028, 4, 30)]),
    ("MONTHLY", 2, date(2026, 12, 31), [date(2026, 12, 31), date(2027, 2, 28), date(2027, 4, 30), date(2027, 6, 30)]),
    ("QUARTERLY", 1, date(2025, 11, 30), [date(2025, 11, 30), date(2026, 2, 28), date(2026, 5, 30), date(2026, 8, 30)]),
    # 29 Feb of a leap year, yearly: 28 Feb in common years, 29 Feb again in 2028.
    ("ANNUALLY", 1, date(2024, 2, 29), [date(2024, 2, 29), date(2025, 2, 28), date(2026, 2, 28), date(2027, 2, 28),
                                        date(2028, 2, 29)]),
])
def test_calendar_dates_of_every_period_type(period_type, count, anchor, expected):
    period = Period(anchor, period_type, count)
    assert dates_of(period, date(2000, 1, 1), expected[-1]) == expected
    # The latest date on or before each date, and none before the anchor.
    for day in expected:
        assert latest_due_date([period], date(2000, 1, 1), day) == day
    assert latest_due_date([period], date(2000, 1, 1), anchor - timedelta(days=1)) is None


def test_the_latest_missed_date_is_the_one_due():
    period = Period(date(2026, 1, 1), "DAILY", 1)
    # Down from 3 to 12 March: one date due on the 13th, the 13th itself.
    assert latest_due_date([period], date(2026, 3, 2), date(2026, 3, 13)) == date(2026, 3, 13)
    monthly = Period(date(2026, 1, 31), "MONTHLY", 1)
    # The 28 Feb was missed; on 5 March it is the one due, once.
    assert latest_due_date([monthly], date(2026, 2, 20), date(2026, 3, 5)) == date(2026, 2, 28)
    assert latest_due_date([monthly], date(2026, 2, 28), date(2026, 3, 5)) is None


def test_a_versions_effective_from_is_not_a_reset_date():
    resets = Period(date(2026, 1, 5), "WEEKLY", 3, first_k=1)
    assert latest_due_date([resets], date(2025, 12, 31), date(2026, 1, 20)) is None
    assert latest_due_date([resets], date(2025, 12, 31), date(2026, 1, 26)) == date(2026, 1, 26)
    assert resets.next_after(date(2025, 12, 1)) == date(2026, 1, 26)


def test_strategy_periods_add_a_periodical_allocations_resets():
    strategy = SimpleNamespace(type="CALENDAR", period_type="MONTHLY", period_count=1, anchor_date=date(2026, 1, 15))
    version = SimpleNamespace(weight_type="PERIODICAL", period_type="WEEKLY", period_count=2,
                              effective_from=date(2026, 1, 1))
    periods = strategy_periods(strategy, version)
    assert len(periods) == 2
    assert next_due_date(periods, date(2026, 1, 10)) == date(2026, 1, 15)
    assert next_due_date(periods, date(2026, 1, 15)) == date(2026, 1, 29)  # 1 Jan + 4 weeks
    threshold = SimpleNamespace(type="THRESHOLD", period_type=None, period_count=None, anchor_date=None)
    assert strategy_periods(threshold, None) == []
    static = SimpleNamespace(weight_type="STATIC", period_type=None, period_count=None, effective_from=date(2026, 1, 1))
    assert strategy_periods(threshold, static) == []


def plan(interval, day, start, end=None):
    return SimpleNamespace(interval=interval, day=day, start_date=start, end_date=end)


def plan_dates(p, until):
    found, day = [], p.start_date - timedelta(days=1)  # the start itself may be a date
    while (day := savings_plan_date_after(p, day)) is not None and day <= until:
        found.append(day)
    return found


def test_monthly_day_31_clamps_to_every_months_end():
    p = plan("MONTHLY", 31, date(2026, 1, 1))
    assert plan_dates(p, date(2026, 6, 30)) == [
        date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30), date(2026, 5, 31), date(2026, 6, 30),
    ]
    leap = plan("MONTHLY", 30, date(2028, 1, 15))
    assert plan_dates(leap, date(2028, 3, 31)) == [date(2028, 1, 30), date(2028, 2, 29), date(2028, 3, 30)]


def test_monthly_first_date_is_on_or_after_the_start():
    assert plan_dates(plan("MONTHLY", 15, date(2026, 3, 15)), date(2026, 4, 30)) == [date(2026, 3, 15), date(2026, 4, 15)]
    assert plan_dates(plan("MONTHLY", 15, date(2026, 3, 16)), date(2026, 5, 31)) == [date(2026, 4, 15), date(2026, 5, 15)]


def test_quarterly_counts_from_the_first_date():
    p = plan("QUARTERLY", 31, date(2025, 11, 5))
    assert plan_dates(p, date(2026, 9, 1)) == [date(2025, 11, 30), date(2026, 2, 28), date(2026, 5, 31),
                                               date(2026, 8, 31)]


def test_weekly_uses_the_iso_weekday():
    p = plan("WEEKLY", 1, date(2026, 3, 4))  # a Wednesday; day 1 = Monday
    assert plan_dates(p, date(2026, 3, 23)) == [date(2026, 3, 9), date(2026, 3, 16), date(2026, 3, 23)]
    sunday = plan("WEEKLY", 7, date(2026, 3, 8))  # a Sunday
    assert plan_dates(sunday, date(2026, 3, 15)) == [date(2026, 3, 8), date(2026, 3, 15)]


def test_end_date_and_latest_on_or_before():
    p = plan("MONTHLY", 10, date(2026, 1, 1), end=date(2026, 3, 9))
    assert plan_dates(p, date(2026, 12, 31)) == [date(2026, 1, 10), date(2026, 2, 10)]
    assert savings_plan_date_on_or_before(p, date(2026, 2, 9)) == date(2026, 1, 10)
    assert savings_plan_date_on_or_before(p, date(2026, 2, 10)) == date(2026, 2, 10)
    assert savings_plan_date_on_or_before(p, date(2026, 1, 9)) is None
    assert savings_plan_date_on_or_before(plan("WEEKLY", 5, date(2026, 3, 2)), date(2026, 3, 5)) is None
    assert savings_plan_date_on_or_before(plan("WEEKLY", 5, date(2026, 3, 2)), date(2026, 3, 12)) == date(2026, 3, 6)
