"""The demo book: real-looking instruments, 90 days of market data, a few
allocations and as many accounts as asked (a few hundred for the demo, 100 000 for
benchmarks). Deterministic for a given seed. Allocations go through the allocation
service, so the demo obeys the same rules as the API and the admin."""

import random
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db import connection, transaction
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


HOLDINGS_HEADER = ["account_id", "instrument_id", "units", "currency", "balance", "kind"]


def _demo_accounts(rng: random.Random, count: int, allocations: list, lines: dict, *, holdings: bool):
    """The demo's accounts, drawn from `rng` in a fixed order (the same draws whether or
    not `holdings` are computed, so a second run from the same state gives the same
    accounts): (n, id, status, account type, locked, allocation, positions [(instrument
    id, units)], cash balance, collateral child (id, margin) or None)."""
    for n in range(count):
        roll = rng.random()
        status = AccountStatus.ACTIVE if roll < 0.9 else AccountStatus.PENDING if roll < 0.96 else AccountStatus.CLOSED
        account_type = AccountType.PORTFOLIO if rng.random() < 0.95 else AccountType.CUSTODY
        account_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        locked = rng.random() < 0.04
        invest = Decimal(rng.randrange(5_000, 250_000))
        allocation = allocations[n % len(allocations)]
        positions = []
        for instrument_id, weight, price_eur, quantum in lines[allocation.pk]:
            # Holdings near target with some drift, so a rebalance has work to do.
            drift = rng.randint(70, 130)
            if holdings:
                units = (invest * weight * (Decimal(drift) / 100) / price_eur).quantize(quantum, rounding="ROUND_DOWN")
                if units > 0:
                    positions.append((instrument_id, units))
        per_mille = rng.randint(0, 80)
        balance = (invest * Decimal(per_mille) / 1000).quantize(Decimal("0.01")) if holdings else None
        child = None
        if rng.random() < 0.06:
            # A locked sub-portfolio: collateral held apart, counted in the parent's total.
            child = (uuid.UUID(int=rng.getrandbits(128), version=4), rng.randrange(1_000, 20_000))
        yield n, account_id, status, account_type, locked, allocation, positions, balance, child


def _holdings_rows(accounts, counter: list):
    """The demo's accounts as the rows of a holdings file, the header first; counts the
    positions into counter[0]."""
    yield HOLDINGS_HEADER
    for _, account_id, _, _, _, _, positions, balance, child in accounts:
        account = str(account_id)
        for instrument_id, units in positions:
            yield [account, instrument_id, format(units, "f"), "", "", ""]
        counter[0] += len(positions)
        yield [account, "", "", "EUR", format(balance, "f"), CashKind.CASH]
        if child is not None:
            yield [str(child[0]), "", "", "EUR", str(child[1]), CashKind.MARGIN]


def _write_accounts(accounts, allocations: list, now) -> int:
    """COPY the accounts (PostgreSQL; executemany elsewhere), then their configurations
    with one INSERT … SELECT (the n-th account follows allocations[n % k]). Returns the
    number of accounts written."""
    from imports.services import staging as db

    pg = db.is_postgres()
    ident = str if pg else (lambda value: value.hex)
    yes, no = ("t", "f") if pg else ("1", "0")
    stamp = str(connection.ops.adapt_datetimefield_value(now))
    table = PortfolioAccount._meta.db_table
    written = 0
    with db.Stager(table, ("id", "client_id", "account_type", "base_currency", "status", "locked", "created_at",
                           "updated_at", "parent_id")) as stager:
        for n, account_id, status, account_type, locked, _, _, _, child in accounts:
            parent = ident(account_id)
            stager.add(f"{parent}\tCL-{n + 1:07d}\t{account_type}\tEUR\t{status}\t{yes if locked else no}\t"
                       f"{stamp}\t{stamp}\t\\N\n")
            written += 1
            if child is not None:
                stager.add(f"{ident(child[0])}\tCL-{n + 1:07d}-COLL\t{AccountType.CUSTODY}\tEUR\t"
                           f"{AccountStatus.ACTIVE}\t{yes}\t{stamp}\t{stamp}\t{parent}\n")
                written += 1
    choice = " ".join(f"WHEN {k} THEN %s" for k in range(len(allocations)))
    moment = connection.ops.adapt_datetimefield_value(now)
    db.execute(
        f"INSERT INTO {Configuration._meta.db_table} (account_id, allocation_id, created_at, updated_at) "
        f"SELECT id, CASE (CAST(substr(client_id, 4) AS INTEGER) - 1) %% {len(allocations)} {choice} END, %s, %s "
        f"FROM {table} WHERE parent_id IS NULL AND account_type = %s AND status <> %s",
        [*(a.pk if pg else a.pk.hex for a in allocations), moment, moment, AccountType.PORTFOLIO, AccountStatus.CLOSED],
    )
    return written


LOT_DATES = 12  # a lot's date: one of 12 days, 30 + 130·k days ago


def _lot_dates(today: date) -> list[date]:
    return [today - timedelta(days=30 + 130 * k) for k in range(LOT_DATES)]


def _demo_new_lots(latest: dict, today: date):
    """Demo lots (§12) on PostgreSQL, given their cost and date as the holdings load
    writes them (one INSERT, no second pass): see `_demo_lot_costs`, the same values."""
    from imports.services.holdings import NewLots

    params = {f"lot_i{k}": pk for k, pk in enumerate(latest)}
    params.update({f"lot_p{k}": price for k, price in enumerate(latest.values())})
    params.update({f"lot_d{k}": day for k, day in enumerate(_lot_dates(today))})
    prices = " ".join(f"WHEN %(lot_i{k})s THEN %(lot_p{k})s" for k in range(len(latest)))
    dates = " ".join(f"WHEN {k} THEN %(lot_d{k})s" for k in range(LOT_DATES))
    return NewLots(
        unit_cost=(f"CASE WHEN n.position_id %% 20 = 0 THEN NULL ELSE round(CASE n.instrument_id {prices} END "
                   f"* (60 + n.position_id * 7919 %% 81) / 100.0, 4) END"),
        acquired_on=f"CASE WHEN n.position_id %% 20 = 0 THEN %(today)s ELSE CASE n.position_id %% {LOT_DATES} {dates} END END",
        params=params,
    )


def _demo_lot_costs(latest: dict, today: date) -> int:
    """Demo lots (§12), set-based, after the load (SQLite, where the holdings load
    writes lots through the lots' writer): the holdings load gave every position one
    lot of unknown cost dated today; each gets a unit cost of 60 % to 140 % of the
    instrument's latest price and a date a month to four years ago, drawn from its
    position id, so a tax-aware preview finds gains and losses, short and long. One
    position in twenty keeps its unknown cost, as a transfer from another custodian
    would. Returns the lots updated."""
    from imports.services import staging as db

    ident = (lambda value: value) if db.is_postgres() else (lambda value: value.hex)
    prices = " ".join("WHEN %s THEN %s" for _ in latest)
    dates = _lot_dates(today)
    when_dates = " ".join(f"WHEN {k} THEN %s" for k in range(len(dates)))
    lot, position = Lot._meta.db_table, Position._meta.db_table
    return db.execute(
        f"UPDATE {lot} SET "
        f"unit_cost = (SELECT round(CASE p.instrument_id {prices} END * (60 + p.id * 7919 %% 81) / 100.0, 4) "
        f"FROM {position} p WHERE p.id = {lot}.position_id), "
        f"acquired_on = (SELECT CASE p.id %% {len(dates)} {when_dates} END FROM {position} p WHERE p.id = {lot}.position_id) "
        f"WHERE position_id %% 20 <> 0 AND unit_cost IS NULL",
        [value for pk, price in latest.items() for value in (ident(pk), price)] + dates,
    )


@transaction.atomic
def demo_book_load(*, accounts: int = 300, days: int = 90, seed: int = 7, today: date | None = None) -> DemoSummary:
    """Load the demo book. Instruments, market data and allocations are created once;
    accounts are added only while the book has none (load into an empty database to
    size a benchmark). Set-based, in two passes over the same random draws: the
    accounts go in by COPY and their configurations by one INSERT … SELECT; then their
    holdings go, as a custodian's file would, through the holdings import
    (`imports.services.holdings_snapshot_load`: staging table, one merge), recorded as
    an import; their lots get their demo cost and date as that load writes them
    (PostgreSQL, `_demo_new_lots`) or by one UPDATE afterwards (SQLite). Raises
    RuntimeError if that import refuses them (a bug of the demo)."""
    from imports.services import staging as db
    from imports.services.holdings import bulk_foreign_key_rows, holdings_snapshot_load

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
    lines = {
        a.pk: [
            (str(line.instrument.pk), line.weight, latest[line.instrument.pk] * eur_per[line.instrument.currency],
             line.instrument.block_size or Decimal("0.0001"))
            for line in a.current_version.lines.select_related("instrument")
            if line.instrument.type not in (InstrumentType.CASH, InstrumentType.FUTURE)
        ]
        for a in allocations
    }
    state = rng.getstate()
    tables = (PortfolioAccount._meta.db_table, Configuration._meta.db_table)
    with db.foreign_keys_checked_once(tables, enabled=accounts >= bulk_foreign_key_rows()):
        account_count = _write_accounts(_demo_accounts(rng, accounts, allocations, lines, holdings=False),
                                        allocations, now)
    rng.setstate(state)
    positions = [0]
    job = holdings_snapshot_load(
        rows=_holdings_rows(_demo_accounts(rng, accounts, allocations, lines, holdings=True), positions),
        name=f"demo book: {accounts} accounts, seed {seed}",
        lots=_demo_new_lots(latest, today) if db.is_postgres() else None,
    )
    if job.status != "DONE":
        raise RuntimeError(f"the demo's holdings were refused: {job.errors[:5]}")
    # The import writes no cash account whose balance is 0 and that did not exist: the
    # demo gives every account a default one. The collateral sub-portfolios hold only
    # their MARGIN account: it is their default.
    CashAccount.objects.bulk_create(
        CashAccount(account_id=pk, currency="EUR", kind=CashKind.CASH, balance=Decimal(0), is_default=True)
        for pk in PortfolioAccount.objects.filter(cash_accounts__isnull=True).values_list("pk", flat=True).iterator()
    )
    CashAccount.objects.filter(kind=CashKind.MARGIN, account__parent__isnull=False).update(is_default=True)
    if not db.is_postgres():
        _demo_lot_costs(latest, today)
    return DemoSummary(len(instruments), price_count, fx_count, len(allocations), account_count, positions[0])
