"""The demo book: real-looking instruments, 90 days of market data, a few
allocations and as many accounts as asked (a few hundred for the demo, 100 000 for
benchmarks). Deterministic for a given seed. Allocations go through the allocation
service, so the demo obeys the same rules as the API and the admin."""

import random
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from ..models import (
    AccountStatus,
    AccountType,
    Allocation,
    CashAccount,
    CashKind,
    Configuration,
    FuturesCost,
    FxRate,
    Instrument,
    InstrumentType,
    Lot,
    PeriodType,
    PortfolioAccount,
    Position,
    Price,
    WeightType,
)
from .allocations import AllocationInput, LineInput, allocation_create

# ISIN, name, type, currency, starting price, block size
INSTRUMENTS = [
    ("IE00B4L5Y983", "iShares Core MSCI World UCITS ETF", "ETF", "EUR", "98.40", "1"),
    ("IE00B5BMR087", "iShares Core S&P 500 UCITS ETF", "ETF", "EUR", "560.10", "1"),
    ("IE00BKM4GZ66", "iShares Core MSCI EM IMI UCITS ETF", "ETF", "EUR", "33.20", "1"),
    ("IE00B3RBWM25", "Vanguard FTSE All-World UCITS ETF", "ETF", "EUR", "128.70", "1"),
    ("LU0274208692", "Xtrackers MSCI World Swap UCITS ETF", "ETF", "EUR", "104.30", "1"),
    ("DE0005933931", "iShares Core DAX UCITS ETF", "ETF", "EUR", "181.50", "1"),
    ("IE00B52VJ196", "iShares MSCI Europe SRI UCITS ETF", "ETF", "EUR", "71.90", "1"),
    ("IE00BK5BQT80", "Vanguard FTSE All-World Acc UCITS ETF", "ETF", "EUR", "126.20", "1"),
    ("LU1681045370", "Amundi MSCI Emerging Markets UCITS ETF", "ETF", "EUR", "5.42", "1"),
    ("FR0010315770", "Amundi MSCI World UCITS ETF", "ETF", "EUR", "520.80", "1"),
    ("IE00B1FZS350", "iShares Developed Markets Property Yield UCITS ETF", "ETF", "EUR", "21.60", "1"),
    ("IE00BZ163G84", "Vanguard EUR Corporate Bond UCITS ETF", "BOND", "EUR", "49.80", "1"),
    ("IE00B4WXJJ64", "iShares Core Euro Government Bond UCITS ETF", "BOND", "EUR", "114.20", "1"),
    ("IE00B3F81R35", "iShares Core Euro Corporate Bond UCITS ETF", "BOND", "EUR", "119.60", "1"),
    ("IE00B14X4M10", "iShares MSCI North America UCITS ETF", "ETF", "EUR", "82.40", "1"),
    ("LU0290358497", "Xtrackers II EUR Overnight Rate Swap UCITS ETF", "FUND", "EUR", "143.10", "0.001"),
    ("LU0908500753", "Amundi Core Stoxx Europe 600 UCITS ETF", "ETF", "EUR", "246.30", "1"),
    ("IE00BDBRDM35", "iShares Core Global Aggregate Bond UCITS ETF", "BOND", "EUR", "4.86", "1"),
    ("DE0001102580", "Bundesrepublik Deutschland 0% 2032", "BOND", "EUR", "84.25", "0.01"),
    ("IE00B579F325", "Invesco Physical Gold ETC", "ETF", "USD", "245.10", "1"),
    ("US0378331005", "Apple Inc.", "EQUITY", "USD", "227.50", "1"),
    ("US5949181045", "Microsoft Corp.", "EQUITY", "USD", "415.30", "1"),
    ("US0231351067", "Amazon.com Inc.", "EQUITY", "USD", "186.40", "1"),
    ("US67066G1040", "NVIDIA Corp.", "EQUITY", "USD", "118.90", "1"),
    ("US02079K3059", "Alphabet Inc. Class A", "EQUITY", "USD", "163.20", "1"),
    ("US88160R1014", "Tesla Inc.", "EQUITY", "USD", "241.00", "1"),
    ("US30303M1027", "Meta Platforms Inc.", "EQUITY", "USD", "520.70", "1"),
    ("DE0007164600", "SAP SE", "EQUITY", "EUR", "205.60", "1"),
    ("DE0007236101", "Siemens AG", "EQUITY", "EUR", "172.80", "1"),
    ("NL0010273215", "ASML Holding N.V.", "EQUITY", "EUR", "640.20", "1"),
    ("FR0000121014", "LVMH Moët Hennessy Louis Vuitton", "EQUITY", "EUR", "655.00", "1"),
    ("DE0008404005", "Allianz SE", "EQUITY", "EUR", "278.40", "1"),
    ("FR0000120271", "TotalEnergies SE", "EQUITY", "EUR", "59.70", "1"),
    ("DE0005557508", "Deutsche Telekom AG", "EQUITY", "EUR", "27.10", "1"),
    ("ES0113900J37", "Banco Santander S.A.", "EQUITY", "EUR", "4.62", "1"),
    ("IT0003128367", "Enel S.p.A.", "EQUITY", "EUR", "6.81", "1"),
    ("CH0038863350", "Nestlé S.A.", "EQUITY", "CHF", "88.30", "1"),
    ("GB0002374006", "Diageo plc", "EQUITY", "GBP", "25.40", "1"),
]
EXTRA_INSTRUMENTS = [
    # name, type, currency, starting price, block size, futures cost
    ("Bitcoin", InstrumentType.CRYPTO, "EUR", "58000.00", "0.00000001", None),
    ("Euro Stoxx 50 Index Future", InstrumentType.FUTURE, "EUR", "4900.00", "1", FuturesCost.LATER),
]
CASH_CURRENCIES = ["EUR", "USD", "CHF", "GBP"]
FX_START = {("EUR", "USD"): "1.0850", ("EUR", "CHF"): "0.9420", ("EUR", "GBP"): "0.8450"}

# name, weight type, period, lines (ISIN or instrument name → weight)
ALLOCATIONS = [
    ("Defensive 30/70", WeightType.STATIC, None, {
        "IE00B4L5Y983": "0.15", "IE00BKM4GZ66": "0.05", "LU0908500753": "0.10", "IE00BZ163G84": "0.20",
        "IE00B4WXJJ64": "0.20", "IE00B3F81R35": "0.15", "IE00BDBRDM35": "0.05", "LU0290358497": "0.05",
        "DE0001102580": "0.03", "EUR": "0.02",
    }),
    ("Balanced 60/40", WeightType.FLOATING, None, {
        "IE00B4L5Y983": "0.25", "IE00B5BMR087": "0.10", "IE00BKM4GZ66": "0.08", "LU0908500753": "0.08",
        "IE00B1FZS350": "0.04", "IE00B579F325": "0.05", "IE00BZ163G84": "0.15", "IE00B4WXJJ64": "0.15",
        "IE00B3F81R35": "0.08", "EUR": "0.02",
    }),
    ("Growth 90/10", WeightType.PERIODICAL, (PeriodType.QUARTERLY, 1), {
        "IE00B4L5Y983": "0.30", "IE00B5BMR087": "0.15", "IE00BKM4GZ66": "0.10", "IE00B3RBWM25": "0.10",
        "DE0005933931": "0.08", "IE00B14X4M10": "0.07", "LU1681045370": "0.05", "IE00B579F325": "0.05",
        "IE00BZ163G84": "0.06", "EUR": "0.04",
    }),
    ("Global Champions Equity", WeightType.STATIC, None, {
        "US0378331005": "0.12", "US5949181045": "0.12", "US0231351067": "0.10", "US67066G1040": "0.10",
        "US02079K3059": "0.10", "DE0007164600": "0.10", "NL0010273215": "0.10", "FR0000121014": "0.08",
        "CH0038863350": "0.08", "DE0008404005": "0.08", "EUR": "0.02",
    }),
    ("Dynamic Overlay", WeightType.STATIC, None, {
        "IE00B4L5Y983": "0.40", "FR0010315770": "0.20", "IE00B4WXJJ64": "0.25", "Bitcoin": "0.05",
        "LU0290358497": "0.08", "EUR": "0.02", "Euro Stoxx 50 Index Future": "0.10",
    }),
]


@dataclass(frozen=True)
class DemoSummary:
    instruments: int
    prices: int
    fx_rates: int
    allocations: int
    accounts: int
    positions: int


def _random_walk(rng: random.Random, start: Decimal, days: int) -> list[Decimal]:
    """Daily prices with moves of at most ±2 %, in whole basis points (no floats)."""
    prices, price = [], start
    for _ in range(days):
        prices.append(price)
        price = (price * (Decimal(10_000 + rng.randint(-200, 205)) / 10_000)).quantize(start)
    return prices


def _ensure_instruments(rng: random.Random, days: int, today: date) -> tuple[dict, int, int]:
    existing = {i.isin or i.name: i for i in Instrument.objects.all()}
    new = []
    for isin, name, kind, currency, _, block in INSTRUMENTS:
        if isin not in existing:
            new.append(Instrument(isin=isin, name=name, type=kind, currency=currency, block_size=Decimal(block)))
    for name, kind, currency, _, block, futures_cost in EXTRA_INSTRUMENTS:
        if name not in existing:
            new.append(Instrument(name=name, type=kind, currency=currency, block_size=Decimal(block), futures_cost=futures_cost))
    cash_existing = set(Instrument.objects.filter(type=InstrumentType.CASH).values_list("currency", flat=True))
    for currency in CASH_CURRENCIES:
        if currency not in cash_existing:
            new.append(Instrument(name=currency, type=InstrumentType.CASH, currency=currency, block_size=Decimal("0.01")))
    for instrument in new:
        instrument.full_clean(validate_constraints=False)
    Instrument.objects.bulk_create(new)
    by_key = {i.isin or (i.currency if i.type == InstrumentType.CASH else i.name): i for i in Instrument.objects.all()}
    if not new:
        return by_key, 0, 0

    start = today - timedelta(days=days - 1)
    dates = [start + timedelta(days=d) for d in range(days)]
    starts = {isin: Decimal(price) for isin, _, _, _, price, _ in INSTRUMENTS}
    starts.update({name: Decimal(price) for name, _, _, price, _, _ in EXTRA_INSTRUMENTS})
    prices = [
        Price(instrument=by_key[key], effective_at=day, value=value)
        for key, first in starts.items()
        for day, value in zip(dates, _random_walk(rng, first, days))
    ]
    Price.objects.bulk_create(prices, batch_size=5000, ignore_conflicts=True)
    rates = [
        FxRate(base=base, quote=quote, effective_at=day, rate=rate)
        for (base, quote), first in FX_START.items()
        for day, rate in zip(dates, _random_walk(rng, Decimal(first), days))
    ]
    FxRate.objects.bulk_create(rates, batch_size=5000, ignore_conflicts=True)
    return by_key, len(prices), len(rates)


def _ensure_allocations(instruments: dict, effective_from: date) -> list[Allocation]:
    existing = {a.name: a for a in Allocation.objects.filter(name__in=[a[0] for a in ALLOCATIONS])}
    allocations = []
    for name, weight_type, period, weights in ALLOCATIONS:
        if name in existing:
            allocations.append(existing[name])
            continue
        lines = [LineInput(instrument_id=str(instruments[key].pk), weight=Decimal(w)) for key, w in weights.items()]
        allocations.append(
            allocation_create(
                data=AllocationInput(
                    lines=lines, name=name, base_currency="EUR", weight_type=weight_type,
                    period_type=period[0] if period else None, period_count=period[1] if period else None,
                    effective_from=effective_from,
                )
            )
        )
    return allocations


def _demo_lots(positions, latest: dict, today: date, rng: random.Random) -> list:
    """One to three lots per position (§12) adding up to its units: bought between a
    month and four years ago at 60 % to 140 % of today's price (so a tax-aware preview
    finds gains and losses, short and long); one position in twenty keeps a lot of
    unknown cost, as a transfer from another custodian would."""
    lots = []
    for position in positions:
        step = position.instrument.block_size or Decimal("0.0001")
        count = rng.choice((1, 2, 2, 3, 3))
        left = position.units
        for k in range(count):
            units = left if k == count - 1 else (position.units / count).quantize(step, rounding="ROUND_DOWN")
            if units <= 0:
                continue
            left -= units
            unknown = k == 0 and rng.random() < 0.05
            cost = None if unknown else (latest[position.instrument.pk] * Decimal(rng.randint(60, 140)) / 100).quantize(
                Decimal("0.0001")
            )
            lots.append(Lot(
                position=position, acquired_on=today - timedelta(days=rng.randint(30, 1460)), units=units,
                unit_cost=cost, cost_currency=position.instrument.currency,
            ))
    return lots


def _write(model, rows, batch_size=5000):
    model.objects.bulk_create(rows, batch_size=batch_size)


@transaction.atomic
def demo_book_load(*, accounts: int = 300, days: int = 90, seed: int = 7, today: date | None = None) -> DemoSummary:
    """Load the demo book. Instruments, market data and allocations are created once;
    accounts are added only while the book has none (load into an empty database to
    size a benchmark)."""
    rng = random.Random(seed)
    today = today or timezone.localdate()
    instruments, price_count, fx_count = _ensure_instruments(rng, days, today)
    allocations = _ensure_allocations(instruments, today - timedelta(days=days - 1))
    if PortfolioAccount.objects.exists():
        return DemoSummary(len(instruments), price_count, fx_count, len(allocations), 0, 0)

    latest = {p.instrument_id: p.value for p in Price.objects.filter(effective_at=today)}
    eur_per = {"EUR": Decimal(1)}
    for rate in FxRate.objects.filter(effective_at=today, base="EUR"):
        eur_per[rate.quote] = Decimal(1) / rate.rate
    now = timezone.now()
    lines_of = {a.pk: list(a.current_version.lines.select_related("instrument")) for a in allocations}
    account_rows, position_rows, cash_rows, configuration_rows = [], [], [], []
    for n in range(accounts):
        roll = rng.random()
        status = AccountStatus.ACTIVE if roll < 0.9 else AccountStatus.PENDING if roll < 0.96 else AccountStatus.CLOSED
        account_type = AccountType.PORTFOLIO if rng.random() < 0.95 else AccountType.CUSTODY
        account = PortfolioAccount(
            id=uuid.UUID(int=rng.getrandbits(128), version=4), client_id=f"CL-{n + 1:07d}",
            account_type=account_type, base_currency="EUR", status=status,
            locked=rng.random() < 0.04, created_at=now, updated_at=now,
        )
        account_rows.append(account)
        invest = Decimal(rng.randrange(5_000, 250_000))
        allocation = allocations[n % len(allocations)]
        for line in lines_of[allocation.pk]:
            instrument = line.instrument
            if instrument.type in (InstrumentType.CASH, InstrumentType.FUTURE):
                continue
            # Holdings near target with some drift, so a rebalance has work to do.
            drift = Decimal(rng.randint(70, 130)) / 100
            price_eur = latest[instrument.pk] * eur_per[instrument.currency]
            units = (invest * line.weight * drift / price_eur).quantize(instrument.block_size or Decimal("0.0001"), rounding="ROUND_DOWN")
            if units > 0:
                position_rows.append(Position(account=account, instrument=instrument, units=units))
        cash_rows.append(CashAccount(account=account, currency="EUR", kind=CashKind.CASH, is_default=True,
                                     balance=(invest * Decimal(rng.randint(0, 80)) / 1000).quantize(Decimal("0.01"))))
        if account_type == AccountType.PORTFOLIO and status != AccountStatus.CLOSED:
            configuration_rows.append(Configuration(account=account, allocation=allocation, created_at=now, updated_at=now))
        if rng.random() < 0.06:
            # A locked sub-portfolio: collateral held apart, counted in the parent's total.
            child = PortfolioAccount(
                id=uuid.UUID(int=rng.getrandbits(128), version=4), client_id=f"CL-{n + 1:07d}-COLL",
                account_type=AccountType.CUSTODY, base_currency="EUR", status=AccountStatus.ACTIVE,
                parent=account, locked=True, created_at=now, updated_at=now,
            )
            account_rows.append(child)
            cash_rows.append(CashAccount(account=child, currency="EUR", kind=CashKind.MARGIN, is_default=True,
                                         balance=Decimal(rng.randrange(1_000, 20_000))))
    _write(PortfolioAccount, [a for a in account_rows if a.parent_id is None])
    _write(PortfolioAccount, [a for a in account_rows if a.parent_id is not None])
    _write(Position, position_rows)
    _write(Lot, _demo_lots(position_rows, latest, today, random.Random(seed + 16)))
    _write(CashAccount, cash_rows)
    _write(Configuration, configuration_rows)
    return DemoSummary(len(instruments), price_count, fx_count, len(allocations), len(account_rows), len(position_rows))
