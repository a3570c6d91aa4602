"""Reads that feed the engine: everything for a set of accounts in a fixed number of
set-based queries, turned into the engine's frozen dataclasses."""

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from portfolios.models import (
    Allocation,
    CashAccount,
    Configuration,
    Instrument,
    InstrumentType,
    PortfolioAccount,
    Position,
)
from portfolios.selectors import FxTable, MissingMarketData, latest_prices, versions_in_effect
from rebalancing import engine


def engine_instrument(instrument: Instrument) -> engine.Instrument:
    return engine.Instrument(
        id=instrument.pk,
        type=engine.InstrumentType(instrument.type),
        currency=instrument.currency,
        isin=instrument.isin,
        block_size=instrument.block_size,
        futures_cost=engine.FuturesCost(instrument.futures_cost) if instrument.futures_cost else None,
        tradable=instrument.tradable,
    )


@dataclass(frozen=True)
class Targets:
    """The target lines of one allocation version on a date, or why there are none."""

    lines: tuple[engine.TargetLine, ...] = ()
    reset_date: date | None = None  # t0 of the drift (None for STATIC)
    version_id: uuid.UUID | None = None
    error: str = ""


def targets_on(versions: Iterable, on_date: date, price_source: str, prices_on_date: dict) -> dict:
    """version id → Targets on `on_date`: the version's weights (STATIC) or drifted by
    prices since t0 (FLOATING/PERIODICAL, spec §2.1). One price query per distinct t0."""
    result, by_t0 = {}, defaultdict(list)
    for version in versions:
        lines = tuple(
            engine.TargetLine(line.instrument_id, line.weight, line.min_weight, line.max_weight)
            for line in version.lines_in_effect
        )
        try:
            t0 = engine.drift_start(
                engine.WeightType(version.weight_type), version.effective_from, on_date,
                engine.PeriodType(version.period_type) if version.period_type else None, version.period_count,
            )
        except engine.DataError as exc:
            result[version.pk] = Targets(version_id=version.pk, error=str(exc))
            continue
        if t0 is None or t0 == on_date:
            result[version.pk] = Targets(lines, t0, version.pk)
        else:
            by_t0[t0].append((version, lines))
    for t0, group in by_t0.items():
        instrument_ids = {line.instrument_id for version, _ in group for line in version.lines_in_effect}
        prices_at_t0 = {key: value for key, (value, _) in latest_prices(instrument_ids, t0, price_source).items()}
        for version, lines in group:
            kinds = {line.instrument_id: line.instrument for line in version.lines_in_effect}
            try:
                drifted = engine.target_lines_on(
                    lines, engine.WeightType(version.weight_type),
                    prices_at_t0=prices_at_t0, prices_at_d=prices_on_date,
                    futures={k for k, i in kinds.items() if i.type == InstrumentType.FUTURE},
                    cash={k for k, i in kinds.items() if i.type == InstrumentType.CASH},
                    t0=t0, d=on_date, labels={k: i.label for k, i in kinds.items()},
                )
                result[version.pk] = Targets(drifted, t0, version.pk)
            except engine.DataError as exc:
                result[version.pk] = Targets(version_id=version.pk, error=str(exc))
    return result


@dataclass
class Book:
    """Everything the engine needs for a set of accounts on one date."""

    on_date: date
    accounts: dict = field(default_factory=dict)  # id → PortfolioAccount
    snapshots: dict = field(default_factory=dict)  # id → engine.AccountSnapshot (with sub-accounts)
    targets: dict = field(default_factory=dict)  # account id → Targets (configured accounts only)
    markets: dict = field(default_factory=dict)  # base currency → engine.Market
    instruments: dict = field(default_factory=dict)  # id → portfolios Instrument (for ISINs in answers)


def book_load(*, account_ids: Sequence, on_date: date, price_source: str = "default") -> Book:
    """Load accounts, sub-accounts, holdings, targets, instruments, prices and FX rates
    for `account_ids` in a fixed number of queries (about ten, plus one per distinct
    floating-weight start date), whatever the number of accounts."""
    book = Book(on_date=on_date)
    book.accounts = {a.pk: a for a in PortfolioAccount.objects.filter(pk__in=list(account_ids))}
    children = defaultdict(list)
    for child in PortfolioAccount.objects.filter(parent_id__in=list(book.accounts)):
        children[child.parent_id].append(child)
    every_id = list(book.accounts) + [c.pk for kids in children.values() for c in kids]
    positions, cash = defaultdict(list), defaultdict(list)
    for account_id, instrument_id, units in Position.objects.filter(account_id__in=every_id).values_list(
        "account_id", "instrument_id", "units"
    ):
        positions[account_id].append(engine.Position(instrument_id, units))
    for row in CashAccount.objects.filter(account_id__in=every_id).values_list(
        "account_id", "currency", "balance", "is_default", "kind"
    ):
        cash[row[0]].append(engine.CashAccount(row[1], row[2], row[3], engine.CashAccountKind(row[4])))

    def snapshot(account, sub_accounts=()):
        return engine.AccountSnapshot(
            id=account.pk, base_currency=account.base_currency, locked=account.locked,
            positions=tuple(positions[account.pk]), cash_accounts=tuple(cash[account.pk]), sub_accounts=sub_accounts,
        )

    for account in book.accounts.values():
        book.snapshots[account.pk] = snapshot(account, tuple(snapshot(c) for c in children[account.pk]))

    configured = dict(Configuration.objects.filter(account_id__in=list(book.accounts)).values_list("account_id", "allocation_id"))
    versions = versions_in_effect(configured.values(), on_date)
    instrument_ids = {p.instrument_id for rows in positions.values() for p in rows}
    instrument_ids |= {line.instrument_id for v in versions.values() for line in v.lines_in_effect}
    book.instruments = {i.pk: i for i in Instrument.objects.filter(pk__in=instrument_ids)}
    prices = {key: value for key, (value, _) in latest_prices(instrument_ids, on_date, price_source).items()}
    targets = targets_on(versions.values(), on_date, price_source, prices)
    for account_id, allocation_id in configured.items():
        version = versions.get(allocation_id)
        book.targets[account_id] = (
            targets[version.pk] if version else Targets(error=f"allocation {allocation_id} has no version in effect on {on_date}")
        )

    currencies = {i.currency for i in book.instruments.values()} | {a.base_currency for a in book.accounts.values()}
    currencies |= {c.currency for rows in cash.values() for c in rows}
    fx = FxTable(currencies, on_date)
    instruments = {pk: engine_instrument(i) for pk, i in book.instruments.items()}
    for base in {a.base_currency for a in book.accounts.values()}:
        rates = {}
        for currency in currencies:
            try:
                rates[currency] = fx.rate(currency, base)
            except MissingMarketData:
                rates[currency] = None
        book.markets[base] = engine.Market(instruments=instruments, prices=prices, fx_rates=rates, as_of=on_date)
    return book


def allocation_constituents(*, allocation: Allocation, on_date: date, price_source: str = "default") -> dict:
    """The version in effect on `on_date` with each line's weight and floating weight
    (spec §2.1) and the reset date used. Raises MissingMarketData for a missing price."""
    version = versions_in_effect([allocation.pk], on_date).get(allocation.pk)
    if version is None:
        return {"effective_at": on_date, "reset_date": None, "version": None, "constituents": []}
    instrument_ids = [line.instrument_id for line in version.lines_in_effect]
    prices = {key: value for key, (value, _) in latest_prices(instrument_ids, on_date, price_source).items()}
    targets = targets_on([version], on_date, price_source, prices)[version.pk]
    if targets.error:
        raise MissingMarketData(targets.error)
    floating = {line.instrument_id: line.weight for line in targets.lines}
    return {
        "effective_at": on_date,
        "reset_date": targets.reset_date,
        "version": version,
        "constituents": [
            {"instrument": line.instrument, "weight": line.weight, "floating_weight": floating[line.instrument_id]}
            for line in sorted(version.lines_in_effect, key=lambda line: (-line.weight, str(line.instrument_id)))
        ],
    }
