"""Reads. Every function here runs a fixed number of queries, whatever its input size."""

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db import connection
from django.db.models import OuterRef, Q, Subquery, Sum

from core.ids import parse_uuid, uuid_array

from .models import (
    AllocationLine,
    AllocationVersion,
    CashAccount,
    CashKind,
    Configuration,
    FxRate,
    Instrument,
    InstrumentType,
    Lot,
    PortfolioAccount,
    Position,
    Price,
    RealizedGain,
    Term,
)
from .models.fields import MONEY, WEIGHT


def instruments_by_reference(references: Iterable[str]) -> dict[str, Instrument]:
    """Map each ISIN or UUID string to its instrument, in one query.

    Unknown references are absent from the result; the caller names them in its error.
    """
    references = {str(r) for r in references if r}
    uuids = {u for r in references if (u := parse_uuid(r))}
    isins = {r.upper() for r in references if not parse_uuid(r)}
    if not references:
        return {}
    found = Instrument.objects.filter(id__in=uuids) | Instrument.objects.filter(isin__in=isins)
    by_reference: dict[str, Instrument] = {}
    for instrument in found:
        by_reference[str(instrument.id)] = instrument
        if instrument.isin:
            by_reference[instrument.isin] = instrument
    result = {}
    for reference in references:
        key = str(parse_uuid(reference)) if parse_uuid(reference) else reference.upper()
        if key in by_reference:
            result[reference] = by_reference[key]
    return result


# --- Valuation ----------------------------------------------------------------------

@dataclass(frozen=True)
class PositionValuation:
    account_id: uuid.UUID  # the account holding it: the valued account or one of its sub-portfolios
    instrument: Instrument
    units: Decimal
    price: Decimal
    price_date: date
    fx_rate: Decimal  # base currency per 1 unit of the instrument's currency
    value: Decimal  # in the valued account's base currency
    weight: Decimal


@dataclass(frozen=True)
class CashValuation:
    account_id: uuid.UUID
    currency: str
    kind: str
    balance: Decimal
    is_default: bool
    counted: bool  # inside the available-cash scope
    value: Decimal  # in the valued account's base currency


@dataclass(frozen=True)
class LineValuation:
    instrument: Instrument
    target_weight: Decimal  # 0 for a holding outside the allocation
    actual_weight: Decimal
    drift: Decimal  # actual − target, in weight points
    value: Decimal


@dataclass(frozen=True)
class AccountValuation:
    account_id: uuid.UUID
    currency: str
    on_date: date
    total_value: Decimal | None = None
    cash_value: Decimal | None = None
    positions: list[PositionValuation] = field(default_factory=list)
    cash: list[CashValuation] = field(default_factory=list)
    lines: list[LineValuation] = field(default_factory=list)
    allocation_version_id: uuid.UUID | None = None
    error: str | None = None  # e.g. "no price for US0378331005 at or before 2026-03-02"


class MissingMarketData(Exception):
    """A price or FX rate needed for a valuation is missing: never valued as zero."""


def latest_prices(instrument_ids: Iterable, on_date: date, source: str = "default") -> dict:
    """instrument_id → (price, effective_at) of the latest price at or before `on_date`; one query.

    On PostgreSQL one probe of the unique (instrument, source, effective_at) index per
    instrument (a LATERAL join), so the cost does not grow with the price history.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT i.id, p.value, p.effective_at FROM unnest(%s::uuid[]) AS i(id) CROSS JOIN LATERAL ("
                f"SELECT value, effective_at FROM {connection.ops.quote_name(Price._meta.db_table)} "
                f"WHERE instrument_id = i.id AND source = %s AND effective_at <= %s "
                f"ORDER BY effective_at DESC LIMIT 1) AS p",
                [uuid_array(set(instrument_ids)), source, on_date],
            )
            return {instrument_id: (value, effective_at) for instrument_id, value, effective_at in cursor.fetchall()}
    latest = (
        Price.objects.filter(instrument=OuterRef("instrument"), source=source, effective_at__lte=on_date)
        .order_by("-effective_at")
        .values("effective_at")[:1]
    )
    rows = Price.objects.filter(
        instrument_id__in=list(instrument_ids), source=source, effective_at=Subquery(latest)
    ).values_list("instrument_id", "value", "effective_at")
    return {instrument_id: (value, effective_at) for instrument_id, value, effective_at in rows}


class FxTable:
    """Latest FX rates at or before a date among a set of currencies (one query).

    A rate stored as base/quote also answers quote/base (its inverse); when both are
    stored, the more recent wins.
    """

    def __init__(self, currencies: Iterable[str], on_date: date):
        currencies = sorted(set(currencies))
        self.on_date = on_date
        self._rates: dict[tuple[str, str], tuple[Decimal, date]] = {}
        if len(currencies) < 2:
            return
        latest = (
            FxRate.objects.filter(base=OuterRef("base"), quote=OuterRef("quote"), effective_at__lte=on_date)
            .order_by("-effective_at")
            .values("effective_at")[:1]
        )
        rows = FxRate.objects.filter(
            base__in=currencies, quote__in=currencies, effective_at=Subquery(latest)
        ).values_list("base", "quote", "rate", "effective_at")
        for base, quote, rate, effective_at in rows:
            for key, value in (((base, quote), rate), ((quote, base), Decimal(1) / rate)):
                known = self._rates.get(key)
                if known is None or known[1] < effective_at or (known[1] == effective_at and key == (base, quote)):
                    self._rates[key] = (value, effective_at)

    def rate(self, from_currency: str, to_currency: str) -> Decimal:
        """Units of `to_currency` per 1 `from_currency`; raises MissingMarketData."""
        if from_currency == to_currency:
            return Decimal(1)
        # A stored base/quote rate says: 1 base = rate quote.
        known = self._rates.get((from_currency, to_currency))
        if known is None:
            raise MissingMarketData(f"no FX rate {from_currency}/{to_currency} at or before {self.on_date}")
        return known[0]


MONEY_QUANTUM = Decimal(1).scaleb(-MONEY["decimal_places"])
WEIGHT_QUANTUM = Decimal(1).scaleb(-WEIGHT["decimal_places"])

AVAILABLE_CASH_KINDS = {
    "ALL_ACCOUNTS": None,  # every kind counts
    "CASH_ACCOUNTS_ONLY": {CashKind.CASH},
    "DEFAULT_ACCOUNT_ONLY": "default",
}


def versions_in_effect(allocation_ids: Iterable, on_date: date) -> dict:
    """allocation_id → the AllocationVersion in effect on `on_date` (latest effective_from
    at or before it, newest version number on a tie), lines and instruments prefetched.
    Two queries, whatever the number of allocations."""
    chosen: dict = {}
    versions = AllocationVersion.objects.filter(allocation_id__in=set(allocation_ids), effective_from__lte=on_date)
    for version in versions.order_by("allocation_id", "effective_from", "version"):
        chosen[version.allocation_id] = version
    lines = AllocationLine.objects.filter(version__in=list(chosen.values())).select_related("instrument")
    by_version = defaultdict(list)
    for line in lines:
        by_version[line.version_id].append(line)
    for version in chosen.values():
        version.lines_in_effect = by_version[version.pk]
    return chosen


def account_valuations(
    *,
    accounts: Sequence[PortfolioAccount],
    on_date: date,
    available_cash: str = "ALL_ACCOUNTS",
    price_source: str = "default",
) -> dict[uuid.UUID, AccountValuation]:
    """Value each account with its sub-portfolios on `on_date`, in its base currency.

    Positions × latest price at or before the date × FX, plus the cash in the
    `available_cash` scope; weights on the group's total; per allocation line the
    target weight (version in effect on the date), actual weight and drift. A missing
    price or FX rate sets `error` for that account; it is never valued as zero.
    At most eight queries, whatever the number of accounts.
    """
    accounts = list(accounts)
    children = defaultdict(list)
    for child in PortfolioAccount.objects.filter(parent__in=accounts).only("id", "parent_id"):
        children[child.parent_id].append(child.pk)
    group_of = {account.pk: account.pk for account in accounts}
    group_of.update({child: parent for parent, kids in children.items() for child in kids})

    positions = defaultdict(list)
    for position in Position.objects.filter(account_id__in=group_of).select_related("instrument"):
        positions[group_of[position.account_id]].append(position)
    cash = defaultdict(list)
    for cash_account in CashAccount.objects.filter(account_id__in=group_of):
        cash[group_of[cash_account.account_id]].append(cash_account)
    configured = dict(
        Configuration.objects.filter(account__in=accounts).values_list("account_id", "allocation_id")
    )
    versions = versions_in_effect(configured.values(), on_date)

    instrument_ids = {p.instrument_id for group in positions.values() for p in group}
    instrument_ids |= {line.instrument_id for v in versions.values() for line in v.lines_in_effect}
    prices = latest_prices(instrument_ids, on_date, price_source)
    currencies = {a.base_currency for a in accounts}
    currencies |= {p.instrument.currency for group in positions.values() for p in group}
    currencies |= {c.currency for group in cash.values() for c in group}
    currencies |= {line.instrument.currency for v in versions.values() for line in v.lines_in_effect}
    fx = FxTable(currencies, on_date)

    result = {}
    for account in accounts:
        version = versions.get(configured.get(account.pk))
        try:
            result[account.pk] = _value_account(
                account, positions[account.pk], cash[account.pk], version, prices, fx, on_date, available_cash
            )
        except MissingMarketData as exc:
            result[account.pk] = AccountValuation(
                account_id=account.pk, currency=account.base_currency, on_date=on_date,
                allocation_version_id=version.pk if version else None, error=str(exc),
            )
    return result


def _cash_counted(cash_account: CashAccount, available_cash: str) -> bool:
    scope = AVAILABLE_CASH_KINDS[available_cash]
    if scope is None:
        return True
    if scope == "default":
        return cash_account.is_default
    return cash_account.kind in scope


def _value_account(account, positions, cash_accounts, version, prices, fx, on_date, available_cash):
    currency = account.base_currency
    valued_positions = []
    for position in positions:
        instrument = position.instrument
        if instrument.pk not in prices:
            raise MissingMarketData(f"no price for {instrument.label} at or before {on_date}")
        price, price_date = prices[instrument.pk]
        rate = fx.rate(instrument.currency, currency)
        valued_positions.append((position, price, price_date, rate, position.units * price * rate))
    targets = {line.instrument_id: line for line in version.lines_in_effect} if version else {}
    for line in targets.values():
        if line.instrument.type != InstrumentType.CASH and line.instrument_id not in prices:
            raise MissingMarketData(f"no price for {line.instrument.label} at or before {on_date}")
    valued_cash = []
    for cash_account in cash_accounts:
        counted = _cash_counted(cash_account, available_cash)
        value = cash_account.balance * fx.rate(cash_account.currency, currency) if counted else Decimal(0)
        valued_cash.append((cash_account, counted, value))

    cash_value = sum((value for *_, value in valued_cash), Decimal(0))
    # A future's value is its exposure: shown on its line, not part of the total
    # (the same rule as the engine's valuation, docs/engine.md).
    total = cash_value + sum(
        (value for position, *_, value in valued_positions if position.instrument.type != InstrumentType.FUTURE),
        Decimal(0),
    )

    def weight(value: Decimal) -> Decimal:
        return (value / total).quantize(WEIGHT_QUANTUM) if total else Decimal(0)

    by_instrument: dict = defaultdict(Decimal)
    instruments = {}
    for position, *_, value in valued_positions:
        by_instrument[position.instrument_id] += value
        instruments[position.instrument_id] = position.instrument
    cash_lines = [line for line in targets.values() if line.instrument.type == InstrumentType.CASH]
    lines = []
    for instrument_id in sorted(set(by_instrument) | set(targets), key=str):
        line = targets.get(instrument_id)
        instrument = line.instrument if line else instruments[instrument_id]
        if instrument.type == InstrumentType.CASH:
            continue
        value = by_instrument.get(instrument_id, Decimal(0))
        target = line.weight if line else Decimal(0)
        lines.append(LineValuation(instrument, target, weight(value), weight(value) - target, value.quantize(MONEY_QUANTUM)))
    # Cash per currency (domain §9): each CASH line is the target of its own currency's cash.
    cash_by_currency: dict = defaultdict(Decimal)
    for cash_account, counted, value in valued_cash:
        if counted:
            cash_by_currency[cash_account.currency] += value
    lines_by_currency = defaultdict(list)
    for line in cash_lines:
        lines_by_currency[line.instrument.currency].append(line)
    for code in sorted(set(cash_by_currency) | set(lines_by_currency), key=lambda c: (c != currency, c)):
        value = cash_by_currency.get(code, Decimal(0))
        own = lines_by_currency.get(code, [])
        target = sum((line.weight for line in own), Decimal(0))
        cash_instrument = own[0].instrument if own else Instrument(name=code, type=InstrumentType.CASH, currency=code)
        lines.append(LineValuation(cash_instrument, target, weight(value), weight(value) - target, value.quantize(MONEY_QUANTUM)))
    return AccountValuation(
        account_id=account.pk,
        currency=currency,
        on_date=on_date,
        total_value=total.quantize(MONEY_QUANTUM),
        cash_value=cash_value.quantize(MONEY_QUANTUM),
        positions=[
            PositionValuation(position.account_id, position.instrument, position.units, price, price_date, rate,
                              value.quantize(MONEY_QUANTUM), weight(value))
            for position, price, price_date, rate, value in valued_positions
        ],
        cash=[
            CashValuation(c.account_id, c.currency, c.kind, c.balance, c.is_default, counted, value.quantize(MONEY_QUANTUM))
            for c, counted, value in valued_cash
        ],
        lines=lines,
        allocation_version_id=version.pk if version else None,
    )


# --- Tax lots and realized gains (§12) -------------------------------------------------


@dataclass(frozen=True)
class LotRow:
    account_id: uuid.UUID
    lot_id: uuid.UUID
    instrument_id: uuid.UUID
    isin: str | None
    instrument_label: str
    acquired_on: date
    units: Decimal
    unit_cost: Decimal | None
    cost_currency: str
    unrealized_gain: Decimal | None  # in cost_currency at the latest price; None: unknown cost or no price


def account_lots(*, account: PortfolioAccount, on_date: date, instrument_id=None, with_sub_accounts=False) -> list[LotRow]:
    """The account's lots (instrument, then oldest first) with their unrealized gain
    at the latest stored price at or before `on_date` (two queries); those of its
    sub-portfolios too with `with_sub_accounts`."""
    accounts = Q(position__account=account)
    if with_sub_accounts:
        accounts |= Q(position__account__parent=account)
    lots = Lot.objects.filter(accounts)
    if instrument_id is not None:
        lots = lots.filter(position__instrument_id=instrument_id)
    rows = list(lots.order_by("position__instrument__name", "position__instrument_id", "acquired_on", "id").values_list(
        "position__account_id", "id", "position__instrument_id", "position__instrument__isin", "position__instrument__name",
        "acquired_on", "units", "unit_cost", "cost_currency",
    ))
    prices = latest_prices({r[2] for r in rows}, on_date) if rows else {}
    out = []
    for account_id, lot_id, iid, isin, name, acquired_on, units, cost, currency in rows:
        price = prices.get(iid)
        gain = None
        if cost is not None and price is not None:
            gain = ((price[0] - cost) * units).quantize(MONEY_QUANTUM)
        out.append(LotRow(account_id, lot_id, iid, isin, isin or name, acquired_on, units, cost, currency, gain))
    return out


def realized_gains(*, account: PortfolioAccount, year: int | None = None, instrument_id=None):
    """The account's realized gain rows (a queryset: realized on, then id), of one
    calendar year and/or one instrument."""
    rows = RealizedGain.objects.filter(account=account).select_related("instrument")
    if year is not None:
        rows = rows.filter(realized_on__year=year)
    if instrument_id is not None:
        rows = rows.filter(instrument_id=instrument_id)
    return rows.order_by("realized_on", "id")


def realized_totals(rows) -> dict:
    """{"short", "long", "unknown_cost_units"} of realized gain rows (one query): the
    base-currency gains by term; the units of unknown cost count in no total."""
    totals = rows.order_by().aggregate(
        short=Sum("gain_base", filter=Q(term=Term.SHORT, gain_base__isnull=False)),
        long=Sum("gain_base", filter=Q(term=Term.LONG, gain_base__isnull=False)),
        unknown_cost_units=Sum("units", filter=Q(cost__isnull=True)),
    )
    return {name: value if value is not None else Decimal(0) for name, value in totals.items()}
