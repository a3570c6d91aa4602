"""The schedule of one account, as the admin's schedule page shows it (reads only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from portfolios.models import Configuration, PortfolioAccount
from rebalancing import engine

from ...models import AccountLease, Execution, ExecutionResult, ResultStatus, SavingsPlan, Strategy, StrategyType
from ...selectors.book import book_load
from ..preferences import book_options, preferences_effective
from .common import AUTOMATIC_TRIGGERS, evaluation_date, next_due_date, periodical_versions, strategy_periods
from .savings import savings_plan_next_run_date, with_last_run

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
        version = periodical_versions(today).get(configuration.allocation_id)

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
    book = book_load(account_ids=[account.pk], on_date=today, **book_options(default, per_account))
    targets = book.targets.get(account.pk)
    if targets is None or targets.error:
        return [], None, targets.error if targets else "no configuration", None
    try:
        valuation = engine.value_account(
            book.snapshots[account.pk], targets.lines, book.market_of(account.pk),
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
