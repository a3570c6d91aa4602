"""strategies_evaluate: calendar and threshold due dates, catch-up once, cooldown, pause,
allocation strategies, periodical resets, one execution per (trigger, method)."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from rebalancing.models import (
    ClaimOutcome,
    Execution,
    ExecutionChunk,
    Method,
    StrategyRun,
    StrategyType,
    Trigger,
)
from rebalancing.services import execution_chunk_process, strategies_evaluate
from tests.factories import make_allocation

from .conftest import PRICES_FROM, calendar, threshold

pytestmark = pytest.mark.django_db


def accounts_of(execution) -> set:
    ids = set()
    for chunk in ExecutionChunk.objects.filter(execution=execution):
        ids |= set(chunk.account_ids)
    return ids


def run_executions():
    """Process every pending chunk, as the workers would."""
    for chunk_id in ExecutionChunk.objects.filter(status="PENDING").values_list("pk", flat=True):
        execution_chunk_process(chunk_id=chunk_id)


# --- Calendar ----------------------------------------------------------------------------


def test_a_calendar_date_rebalances_its_account_once(travel, allocation, account_on, strategy_on):
    travel(date(2026, 3, 1))
    account = account_on(allocation)
    strategy = strategy_on(account, **calendar(anchor_date=date(2026, 1, 31), method=Method.EXCHANGE))

    travel(date(2026, 3, 30))
    assert strategies_evaluate().claimed == 0  # 28 Feb was before the strategy existed; 31 Mar is to come

    travel(date(2026, 3, 31))
    summary = strategies_evaluate()
    assert (summary.claimed, len(summary.executions), summary.accounts) == (1, 1, 1)
    execution = Execution.objects.get()
    assert (execution.trigger, execution.method, execution.rebalance_date) == (
        Trigger.SCHEDULED, Method.EXCHANGE, date(2026, 3, 31))
    assert accounts_of(execution) == {str(account.pk)}
    run = StrategyRun.objects.get()
    assert (run.strategy, run.due_date, run.outcome, run.execution, run.accounts) == (
        strategy, date(2026, 3, 31), ClaimOutcome.EXECUTED, execution, 1)

    # Twice the same day, and the next days: nothing more.
    assert strategies_evaluate().claimed == 0
    travel(date(2026, 4, 1))
    assert strategies_evaluate().claimed == 0
    assert Execution.objects.count() == 1
    travel(date(2026, 4, 30))  # 31 Jan + 3 months, clamped
    assert len(strategies_evaluate().executions) == 1


def test_catch_up_after_a_ten_day_gap_runs_once(travel, allocation, account_on, strategy_on):
    travel(date(2026, 3, 1))
    account = account_on(allocation)
    strategy_on(account, **calendar(period_type="DAILY", anchor_date=date(2026, 3, 1)))
    strategies_evaluate()
    assert StrategyRun.objects.get().due_date == date(2026, 3, 1)

    travel(date(2026, 3, 12))  # down from the 2nd to the 11th
    run_executions()
    summary = strategies_evaluate()
    assert (summary.claimed, len(summary.executions)) == (1, 1)
    assert list(StrategyRun.objects.order_by("due_date").values_list("due_date", flat=True)) == [
        date(2026, 3, 1), date(2026, 3, 12)]
    assert strategies_evaluate().claimed == 0


def test_a_missed_monthly_date_is_caught_up_once_on_the_next_evaluation(travel, allocation, account_on, strategy_on):
    travel(date(2026, 2, 1))
    strategy_on(account_on(allocation), **calendar(anchor_date=date(2026, 1, 31)))
    travel(date(2026, 3, 4))  # 28 Feb was missed
    summary = strategies_evaluate()
    assert summary.claimed == 1
    run = StrategyRun.objects.get()
    assert run.due_date == date(2026, 2, 28) and run.outcome == ClaimOutcome.EXECUTED
    assert Execution.objects.get().rebalance_date == date(2026, 3, 4)  # at today's prices
    travel(date(2026, 3, 5))
    assert strategies_evaluate().claimed == 0


def test_on_date_overrides_the_clock(travel, allocation, account_on, strategy_on):
    travel(date(2026, 2, 1))
    strategy_on(account_on(allocation), **calendar(period_type="WEEKLY", anchor_date=date(2026, 2, 2)))
    travel(date(2026, 2, 10))
    summary = strategies_evaluate(on_date=date(2026, 2, 2))
    assert summary.on_date == date(2026, 2, 2)
    assert StrategyRun.objects.get().due_date == date(2026, 2, 2)


def test_a_changed_strategy_does_not_catch_up_dates_before_the_change(travel, allocation, account_on, strategy_on):
    travel(date(2026, 1, 1))
    strategy = strategy_on(account_on(allocation), **calendar(anchor_date=date(2026, 1, 10)))
    travel(date(2026, 2, 20))  # 10 Feb was missed, then the strategy changes
    strategy.method = Method.CONSERVATIVE
    strategy.save()
    assert strategies_evaluate().claimed == 0
    travel(date(2026, 3, 10))
    assert strategies_evaluate().claimed == 1


# --- Threshold ----------------------------------------------------------------------------

# 60 / 40 units at 10 EUR against 50 / 50: each line drifts 0.1 (10 points), 0.2 of its target.
@pytest.mark.parametrize(("limits", "crossed"), [
    ({"absolute_drift": Decimal("0.1")}, False),  # exactly at the limit: not more than it
    ({"absolute_drift": Decimal("0.100000000001")}, False),  # just above the drift
    ({"absolute_drift": Decimal("0.099999999999")}, True),  # the drift is just above the limit
    ({"relative_drift": Decimal("0.2")}, False),
    ({"relative_drift": Decimal("0.200000000001")}, False),
    ({"relative_drift": Decimal("0.199999999999")}, True),
    ({"absolute_drift": Decimal("0.5"), "relative_drift": Decimal("0.19")}, True),  # either one crossing is enough
])
def test_threshold_at_and_around_the_limit(travel, allocation, account_on, strategy_on, limits, crossed):
    travel(date(2026, 3, 2))
    account = account_on(allocation, a="60", b="40")
    strategy_on(account, type=StrategyType.THRESHOLD, **limits)
    summary = strategies_evaluate()
    assert summary.accounts_valued == 1
    assert len(summary.executions) == (1 if crossed else 0)
    if crossed:
        execution = Execution.objects.get()
        assert (execution.trigger, execution.rebalance_date) == (Trigger.THRESHOLD, date(2026, 3, 2))
        assert StrategyRun.objects.get().due_date == date(2026, 3, 2)
    else:
        assert not StrategyRun.objects.exists()  # nothing due: no claim


def test_threshold_runs_once_a_day_and_again_the_next_day(travel, allocation, account_on, strategy_on):
    travel(date(2026, 3, 2))
    strategy_on(account_on(allocation, a="70", b="30"), **threshold())
    assert len(strategies_evaluate().executions) == 1
    assert strategies_evaluate().claimed == 0
    travel(date(2026, 3, 3))
    run_executions()  # the proposals are orders, not holdings: the drift is still there
    assert len(strategies_evaluate().executions) == 1
    assert Execution.objects.count() == 2


def test_calendar_and_threshold_rebalances_on_calendar_dates_only_if_crossed(
    travel, allocation, account_on, strategy_on
):
    travel(date(2026, 3, 1))
    drifted = account_on(allocation, a="70", b="30")
    balanced = account_on(allocation)
    fields = calendar(type=StrategyType.CALENDAR_AND_THRESHOLD, period_type="WEEKLY", anchor_date=date(2026, 3, 6),
                      absolute_drift=Decimal("0.05"))
    strategy_on(drifted, **fields)
    strategy_on(balanced, **fields)
    travel(date(2026, 3, 5))  # not a calendar date: nothing, however drifted
    assert strategies_evaluate().claimed == 0
    travel(date(2026, 3, 6))
    summary = strategies_evaluate()
    assert (summary.claimed, summary.accounts, summary.accounts_valued) == (2, 1, 2)
    execution = Execution.objects.get()
    assert execution.trigger == Trigger.SCHEDULED and accounts_of(execution) == {str(drifted.pk)}
    outcomes = dict(StrategyRun.objects.values_list("strategy__configuration_id", "outcome"))
    assert outcomes == {drifted.pk: ClaimOutcome.EXECUTED, balanced.pk: ClaimOutcome.NOT_DUE}
    assert "within the threshold" in StrategyRun.objects.get(strategy__configuration_id=balanced.pk).detail
    travel(date(2026, 3, 7))  # the calendar date was claimed: not looked at again
    assert strategies_evaluate().claimed == 0


def test_an_account_that_cannot_be_valued_is_a_failed_claim(travel, allocation, account_on, strategy_on, etfs):
    travel(date(2026, 3, 2))
    account = account_on(allocation, a="70", b="30")
    strategy_on(account, **threshold())
    from portfolios.models import Price

    Price.objects.filter(instrument=etfs[1]).delete()
    summary = strategies_evaluate()
    assert (summary.claimed, summary.failed, len(summary.executions)) == (1, 1, 0)
    run = StrategyRun.objects.get()
    assert run.outcome == ClaimOutcome.FAILED
    assert str(account.pk) in run.detail and "no price" in run.detail.lower()


# --- Cooldown, pause, owners ----------------------------------------------------------------


def test_cooldown_blocks_automatic_rebalances_within_n_days(travel, allocation, account_on, strategy_on):
    travel(date(2026, 3, 1))
    account = account_on(allocation, a="70", b="30")
    strategy_on(account, **threshold(cooldown_days=7))
    assert len(strategies_evaluate().executions) == 1
    run_executions()
    for day in range(2, 8):  # 2 to 7 March: fewer than 7 days since the 1st
        travel(date(2026, 3, day))
        summary = strategies_evaluate()
        assert (summary.claimed, summary.accounts_valued) == (0, 0), day
    travel(date(2026, 3, 8))
    assert len(strategies_evaluate().executions) == 1


def test_cooldown_counts_an_automatic_execution_still_running(travel, allocation, account_on, strategy_on):
    travel(date(2026, 3, 1))
    account = account_on(allocation, a="70", b="30")
    strategy_on(account, **threshold(cooldown_days=3))
    strategies_evaluate()  # its chunks are not processed: the account stays leased
    travel(date(2026, 3, 2))
    assert strategies_evaluate().claimed == 0


def test_cooldown_on_a_calendar_date_records_not_due(travel, allocation, account_on, strategy_on):
    travel(date(2026, 3, 1))
    account = account_on(allocation, a="70", b="30")
    strategy = strategy_on(account, **threshold(cooldown_days=10))
    strategies_evaluate()
    run_executions()
    strategy.type, strategy.period_type, strategy.period_count = StrategyType.CALENDAR, "DAILY", 1
    strategy.anchor_date, strategy.absolute_drift = date(2026, 3, 1), None
    strategy.save()
    travel(date(2026, 3, 3))
    summary = strategies_evaluate()
    assert (summary.claimed, len(summary.executions)) == (1, 0)
    run = StrategyRun.objects.get(due_date=date(2026, 3, 3))
    assert run.outcome == ClaimOutcome.NOT_DUE and "1 account(s) in their cooldown" in run.detail


def test_manual_executions_do_not_start_a_cooldown(travel, allocation, account_on, strategy_on):
    from rebalancing.services import execution_create

    travel(date(2026, 3, 1))
    account = account_on(allocation, a="70", b="30")
    strategy_on(account, **threshold(cooldown_days=30))
    execution_create(account_ids=[account.pk], trigger=Trigger.MANUAL)
    run_executions()
    travel(date(2026, 3, 2))
    assert len(strategies_evaluate().executions) == 1


def test_paused_strategies_are_skipped(travel, allocation, account_on, strategy_on):
    travel(date(2026, 3, 1))
    account = account_on(allocation, a="70", b="30")
    strategy_on(allocation, **threshold())
    strategy_on(account, **threshold(paused=True))  # its own, paused: no fall back to the allocation's
    assert strategies_evaluate().claimed == 0


def test_an_allocation_strategy_applies_to_accounts_without_their_own(
    travel, allocation, account_on, strategy_on
):
    travel(date(2026, 3, 1))
    followers = [account_on(allocation, a="70", b="30") for _ in range(3)]
    own = account_on(allocation, a="70", b="30")
    strategy_on(allocation, **calendar(period_type="DAILY", anchor_date=date(2026, 3, 1)))
    strategy_on(own, **threshold(method=Method.CONSERVATIVE))
    locked = account_on(allocation, locked=True)
    pending = account_on(allocation, status="PENDING")
    summary = strategies_evaluate()
    assert (summary.claimed, len(summary.executions), summary.accounts) == (2, 2, 4)
    by_trigger = {e.trigger: e for e in Execution.objects.all()}
    assert accounts_of(by_trigger[Trigger.SCHEDULED]) == {str(a.pk) for a in followers}
    assert by_trigger[Trigger.SCHEDULED].method == Method.FULL
    assert accounts_of(by_trigger[Trigger.THRESHOLD]) == {str(own.pk)}
    assert by_trigger[Trigger.THRESHOLD].method == Method.CONSERVATIVE
    assert str(locked.pk) not in accounts_of(by_trigger[Trigger.SCHEDULED])
    assert str(pending.pk) not in accounts_of(by_trigger[Trigger.SCHEDULED])
    assert StrategyRun.objects.get(strategy__allocation=allocation).accounts == 3


def test_one_execution_per_trigger_and_method_not_per_account(travel, allocation, account_on, strategy_on):
    travel(date(2026, 3, 2))
    for method in (Method.FULL, Method.FULL, Method.EXCHANGE):
        strategy_on(account_on(allocation, a="70", b="30"), **threshold(method=method))
    for _ in range(2):
        strategy_on(account_on(allocation, a="70", b="30"),
                    **calendar(period_type="DAILY", anchor_date=date(2026, 3, 2)))
    summary = strategies_evaluate()
    assert summary.claimed == 5
    assert sorted((e.trigger, e.method, e.total) for e in Execution.objects.all()) == [
        (Trigger.SCHEDULED, Method.FULL, 2), (Trigger.THRESHOLD, Method.EXCHANGE, 1), (Trigger.THRESHOLD, Method.FULL, 2),
    ]


def test_a_calendar_date_without_accounts_is_recorded_not_due(travel, allocation, strategy_on):
    travel(date(2026, 3, 2))
    strategy_on(allocation, **calendar(period_type="DAILY", anchor_date=date(2026, 3, 1)))
    summary = strategies_evaluate()
    assert summary.claimed == 0  # no account follows the allocation: nothing evaluated at all
    assert summary.strategies == 0


def test_periodical_reset_dates_are_due_dates_of_its_accounts(travel, etfs, account_on, strategy_on):
    travel(date(2026, 1, 1))
    a, b = etfs
    periodical = make_allocation({a: "0.5", b: "0.5"}, effective_from=date(2022, 1, 5), weight_type="PERIODICAL",
                                 period_type="WEEKLY", period_count=3)
    account = account_on(periodical)
    strategy_on(account, **threshold(absolute_drift=Decimal("0.4")))  # never crossed here
    travel(date(2026, 1, 13))
    assert strategies_evaluate().claimed == 0
    travel(date(2026, 1, 14))  # 5 Jan 2022 + 70 × 3 weeks, a reset date
    summary = strategies_evaluate()
    assert (summary.claimed, len(summary.executions)) == (1, 1)
    assert Execution.objects.get().trigger == Trigger.SCHEDULED
    assert StrategyRun.objects.get().due_date == date(2026, 1, 14)
    travel(date(2026, 1, 15))
    assert strategies_evaluate().claimed == 0
    travel(date(2026, 1, 14) + timedelta(weeks=3))
    assert strategies_evaluate().claimed == 1


def test_accounts_without_a_strategy_never_rebalance_by_themselves(travel, allocation, account_on):
    travel(date(2026, 3, 2))
    account_on(allocation, a="90", b="10")
    summary = strategies_evaluate()
    assert (summary.claimed, summary.strategies, summary.accounts_valued) == (0, 0, 0)
    assert PRICES_FROM < date(2026, 3, 2)


def test_an_execution_that_cannot_be_created_fails_its_claims_only(
    travel, allocation, account_on, strategy_on, monkeypatch
):
    from rebalancing.services import automation

    travel(date(2026, 3, 2))
    strategy_on(account_on(allocation, a="70", b="30"), **threshold(method=Method.EXCHANGE))
    calendar_strategy = strategy_on(account_on(allocation), **calendar(period_type="DAILY", anchor_date=date(2026, 3, 2)))
    create = automation.evaluation.execution_create

    def refuse_exchange(**kwargs):
        if kwargs["method"] == Method.EXCHANGE:
            raise RuntimeError("broker on fire")
        return create(**kwargs)

    monkeypatch.setattr(automation.evaluation, "execution_create", refuse_exchange)
    summary = strategies_evaluate()
    assert (summary.claimed, summary.failed, len(summary.executions)) == (2, 1, 1)
    failed = StrategyRun.objects.get(outcome=ClaimOutcome.FAILED)
    assert "the execution could not be created: internal error: RuntimeError('broker on fire')" in failed.detail
    assert StrategyRun.objects.get(strategy=calendar_strategy).outcome == ClaimOutcome.EXECUTED
