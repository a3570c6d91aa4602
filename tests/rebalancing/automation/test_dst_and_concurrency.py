"""The job's date across the DST changes of Europe/Berlin and America/New_York, beat
firing twice, and two evaluations at once (real threads on PostgreSQL)."""

import threading
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from rebalancing.models import Execution, StrategyRun
from rebalancing.services import automation, strategies_evaluate
from rebalancing.tasks import strategies_evaluate_task

from .conftest import calendar, threshold

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


def local(zone, *parts, fold=0) -> datetime:
    return datetime(*parts, tzinfo=zone, fold=fold)


@pytest.mark.parametrize(("moment", "expected"), [
    # Berlin, spring forward (29 Mar 2026, 02:00 CET → 03:00 CEST) and fall back (25 Oct 2026).
    (local(BERLIN, 2026, 3, 29, 0, 30), date(2026, 3, 28)),  # 23:30 UTC the day before
    (local(BERLIN, 2026, 3, 29, 3, 30), date(2026, 3, 29)),  # 01:30 UTC
    (local(BERLIN, 2026, 10, 25, 0, 30), date(2026, 10, 24)),  # 22:30 UTC the day before
    (local(BERLIN, 2026, 10, 25, 2, 30, 0), date(2026, 10, 25)),  # first 02:30 (CEST), 00:30 UTC
    # New York, spring forward (8 Mar 2026, 02:00 EST → 03:00 EDT) and fall back (1 Nov 2026).
    (local(NEW_YORK, 2026, 3, 8, 0, 30), date(2026, 3, 8)),  # 05:30 UTC
    (local(NEW_YORK, 2026, 3, 8, 23, 30), date(2026, 3, 9)),  # 03:30 UTC the next day
    (local(NEW_YORK, 2026, 11, 1, 0, 30), date(2026, 11, 1)),  # 04:30 UTC
    (local(NEW_YORK, 2026, 10, 31, 20, 30), date(2026, 11, 1)),  # 00:30 UTC
])
def test_the_evaluation_date_is_the_utc_date_of_the_run(moment, expected):
    assert automation.evaluation_date(moment) == expected


def test_a_naive_moment_is_refused():
    with pytest.raises(ValueError):
        automation.evaluation_date(datetime(2026, 3, 29, 0, 30))


@pytest.mark.django_db
@pytest.mark.parametrize(("zone", "days"), [
    (BERLIN, [(2026, 3, d) for d in range(27, 32)] + [(2026, 10, d) for d in range(24, 28)]),
    (NEW_YORK, [(2026, 3, d) for d in range(6, 11)] + [(2026, 10, 30), (2026, 10, 31), (2026, 11, 1), (2026, 11, 2)]),
])
def test_a_daily_job_at_0030_local_claims_each_date_once_across_dst(travel, allocation, account_on, strategy_on,
                                                                   zone, days):
    """A beat crontab at 00:30 in a local zone: every run computes the UTC date of its
    moment, so consecutive runs claim consecutive dates, none twice, none lost, on
    both switch days."""
    travel(local(zone, *days[0], 0, 0))
    strategy_on(account_on(allocation), **calendar(period_type="DAILY", anchor_date=date(2026, 1, 1)))
    claimed = []
    for day in days:
        travel(local(zone, *day, 0, 30))
        before = set(StrategyRun.objects.values_list("due_date", flat=True))
        strategies_evaluate_task.run()
        claimed += sorted(set(StrategyRun.objects.values_list("due_date", flat=True)) - before)
    expected = [automation.evaluation_date(local(zone, *day, 0, 30)) for day in days]
    assert claimed == expected
    assert len(set(claimed)) == len(claimed)


@pytest.mark.django_db
@pytest.mark.parametrize("firings", [
    # 02:30 Europe/Berlin happens twice on 25 Oct 2026 (CEST, then CET): a local crontab may fire at both.
    [local(BERLIN, 2026, 10, 25, 2, 30, fold=0), local(BERLIN, 2026, 10, 25, 2, 30, fold=1)],
    # 01:30 America/New_York happens twice on 1 Nov 2026.
    [local(NEW_YORK, 2026, 11, 1, 1, 30, fold=0), local(NEW_YORK, 2026, 11, 1, 1, 30, fold=1)],
    # 02:30 does not exist on the spring days; beat's fallbacks may fire before and after the gap.
    [local(BERLIN, 2026, 3, 29, 1, 59), local(BERLIN, 2026, 3, 29, 3, 30)],
    [local(NEW_YORK, 2026, 3, 8, 1, 59), local(NEW_YORK, 2026, 3, 8, 3, 30)],
])
def test_beat_firing_twice_on_a_dst_day_claims_the_date_once(travel, allocation, account_on, strategy_on, firings):
    travel(datetime(2026, 1, 1, tzinfo=BERLIN))
    strategy_on(account_on(allocation, a="70", b="30"), **calendar(period_type="DAILY", anchor_date=date(2026, 1, 1)))
    results = []
    for moment in firings:
        travel(moment)
        results.append(strategies_evaluate_task.run())
    assert [r["executions"] for r in results] == [1, 0]
    assert results[0]["on_date"] == results[1]["on_date"] == automation.evaluation_date(firings[0]).isoformat()
    assert Execution.objects.count() == 1 and StrategyRun.objects.count() == 1


@pytest.mark.django_db
def test_two_evaluations_one_after_the_other_create_one_execution(travel, allocation, account_on, strategy_on):
    travel(date(2026, 3, 2))
    strategy_on(account_on(allocation, a="70", b="30"), **threshold())
    strategy_on(account_on(allocation), **calendar(period_type="DAILY", anchor_date=date(2026, 3, 2)))
    first, second = strategies_evaluate(), strategies_evaluate()
    assert (first.claimed, len(first.executions)) == (2, 2)
    assert (second.claimed, len(second.executions)) == (0, 0)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_evaluations_create_one_execution_each_due_date(
    is_postgres, travel, allocation, account_on, strategy_on, monkeypatch
):
    if not is_postgres:
        pytest.skip("needs PostgreSQL (concurrent connections)")
    travel(date(2026, 3, 2))
    strategy_on(account_on(allocation, a="70", b="30"), **threshold())
    strategy_on(account_on(allocation), **calendar(period_type="DAILY", anchor_date=date(2026, 3, 2)))

    # Both evaluations find the same due dates before either claims anything.
    barrier = threading.Barrier(2, timeout=30)
    claim = automation.common.claim_rows

    def claim_together(*args, **kwargs):
        if args[0] is StrategyRun:
            barrier.wait()
        return claim(*args, **kwargs)

    monkeypatch.setattr(automation.evaluation, "claim_rows", claim_together)
    outcomes = []

    def run():
        try:
            outcomes.append(strategies_evaluate())
        except Exception as exc:  # noqa: BLE001 - the outcome is what is asserted
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(o, automation.EvaluationSummary) for o in outcomes), outcomes
    assert sorted(o.claimed for o in outcomes) == [0, 2]
    assert sorted(o.already_claimed for o in outcomes) == [0, 2]
    assert Execution.objects.count() == 2  # one THRESHOLD, one SCHEDULED
    assert StrategyRun.objects.count() == 2
