"""§2.1 / §7 reset-date arithmetic."""

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rebalancing.engine import (
    InvalidInputError,
    PeriodType,
    add_months,
    next_reset_after,
    reset_date,
    reset_date_on_or_before,
    reset_dates_between,
)

F = date(2022, 1, 5)  # a Wednesday


def test_reset_dates_weekly_worked_example():
    assert [reset_date(F, PeriodType.WEEKLY, 3, k) for k in (1, 2, 3)] == [
        date(2022, 1, 26),
        date(2022, 2, 16),
        date(2022, 3, 9),
    ]
    assert reset_date_on_or_before(F, PeriodType.WEEKLY, 3, date(2022, 1, 12)) == F
    assert reset_date_on_or_before(F, PeriodType.WEEKLY, 3, date(2022, 1, 25)) == F
    assert reset_date_on_or_before(F, PeriodType.WEEKLY, 3, date(2022, 1, 26)) == date(2022, 1, 26)
    assert reset_date_on_or_before(F, PeriodType.WEEKLY, 3, date(2022, 2, 15)) == date(2022, 1, 26)
    assert next_reset_after(F, PeriodType.WEEKLY, 3, date(2022, 1, 26)) == date(2022, 2, 16)
    assert next_reset_after(F, PeriodType.WEEKLY, 3, date(2022, 3, 8)) == date(2022, 3, 9)


def test_reset_month_end_clamps_to_last_day():
    jan31 = date(2022, 1, 31)
    assert reset_date(jan31, PeriodType.MONTHLY, 1, 1) == date(2022, 2, 28)
    assert reset_date(date(2024, 1, 31), PeriodType.MONTHLY, 1, 1) == date(2024, 2, 29)
    assert reset_date(jan31, PeriodType.MONTHLY, 1, 2) == date(2022, 3, 31)


def test_reset_dates_are_computed_from_effective_from_so_month_ends_do_not_creep():
    jan31 = date(2022, 1, 31)
    dates = [reset_date(jan31, PeriodType.MONTHLY, 1, k) for k in range(1, 7)]
    assert dates == [
        date(2022, 2, 28),
        date(2022, 3, 31),
        date(2022, 4, 30),
        date(2022, 5, 31),
        date(2022, 6, 30),
        date(2022, 7, 31),
    ]
    # stepping from the previous reset would have crept to the 28th
    assert add_months(add_months(jan31, 1), 1) == date(2022, 3, 28)


def test_reset_on_or_before_a_clamped_reset():
    jan31 = date(2023, 1, 31)
    assert reset_date_on_or_before(jan31, PeriodType.MONTHLY, 1, date(2023, 2, 27)) == jan31
    assert reset_date_on_or_before(jan31, PeriodType.MONTHLY, 1, date(2023, 2, 28)) == date(2023, 2, 28)
    assert reset_date_on_or_before(jan31, PeriodType.MONTHLY, 1, date(2023, 3, 30)) == date(2023, 2, 28)
    assert reset_date_on_or_before(jan31, PeriodType.MONTHLY, 1, date(2023, 3, 31)) == date(2023, 3, 31)


@pytest.mark.parametrize(
    ("period_type", "count", "k", "expected"),
    [
        (PeriodType.DAILY, 2, 3, date(2022, 1, 11)),
        (PeriodType.WEEKLY, 1, 1, date(2022, 1, 12)),
        (PeriodType.MONTHLY, 2, 1, date(2022, 3, 5)),
        (PeriodType.QUARTERLY, 1, 1, date(2022, 4, 5)),
        (PeriodType.QUARTERLY, 2, 2, date(2023, 1, 5)),
        (PeriodType.ANNUALLY, 1, 3, date(2025, 1, 5)),
    ],
)
def test_reset_period_lengths(period_type, count, k, expected):
    assert reset_date(F, period_type, count, k) == expected


def test_reset_quarterly_and_annually_clamp():
    assert reset_date(date(2023, 11, 30), PeriodType.QUARTERLY, 1, 1) == date(2024, 2, 29)
    assert reset_date(date(2023, 11, 30), PeriodType.QUARTERLY, 1, 2) == date(2024, 5, 30)
    assert reset_date(date(2024, 2, 29), PeriodType.ANNUALLY, 1, 1) == date(2025, 2, 28)
    assert reset_date(date(2024, 2, 29), PeriodType.ANNUALLY, 1, 4) == date(2028, 2, 29)


def test_reset_before_effective_from():
    assert reset_date_on_or_before(F, PeriodType.DAILY, 1, date(2022, 1, 4)) is None
    assert next_reset_after(F, PeriodType.DAILY, 1, date(2022, 1, 4)) == F


def test_reset_dates_between_is_exclusive_inclusive():
    assert reset_dates_between(F, PeriodType.WEEKLY, 3, date(2022, 1, 5), date(2022, 3, 9)) == (
        date(2022, 1, 26),
        date(2022, 2, 16),
        date(2022, 3, 9),
    )
    assert reset_dates_between(F, PeriodType.WEEKLY, 3, date(2022, 1, 26), date(2022, 2, 15)) == ()
    assert reset_dates_between(F, PeriodType.WEEKLY, 3, date(2021, 1, 1), date(2022, 1, 5)) == (F,)


@pytest.mark.parametrize("count", [0, -1, 1.5, True])
def test_reset_period_count_must_be_a_positive_integer(count):
    with pytest.raises(InvalidInputError):
        reset_date(F, PeriodType.MONTHLY, count, 1)


@given(
    start=st.dates(date(2000, 1, 1), date(2040, 12, 31)),
    offset=st.integers(0, 5000),
    period_type=st.sampled_from(list(PeriodType)),
    count=st.integers(1, 13),
)
def test_reset_on_or_before_and_next_bracket_the_date(start, offset, period_type, count):
    d = start + timedelta(days=offset)
    last = reset_date_on_or_before(start, period_type, count, d)
    following = next_reset_after(start, period_type, count, d)
    assert start <= last <= d < following
    # consecutive resets: nothing in between
    assert reset_dates_between(start, period_type, count, last, following) == (following,)
