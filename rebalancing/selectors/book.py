"""Reads that feed the engine: everything for a set of accounts in a fixed number of
set-based queries, turned into the engine's frozen dataclasses."""

import dataclasses
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

from django.db import connection
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL
from django.db.models.sql import Query

from core.ids import IdTuple, uuid_array
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

from ..models import TradeOrder, TradeOrderStatus
from .restrictions import restrictions_load

# §4.6: the statuses a new rebalance counts (kept) and the one it replaces (OPEN).
KEPT_ORDER_STATUSES = tuple(sorted(str(s) for s in engine.KEPT_STATUSES))
_position_slots = [engine.Position.__dict__[name].__set__ for name in engine.Position.__slots__]
assert tuple(engine.Position.__slots__) == ("instrument_id", "units")


def engine_position(instrument_id, units, _new=object.__new__, _cls=engine.Position, _s=_position_slots):
    """engine.Position(instrument_id, units) without the frozen dataclass __init__ (a
    third faster): a chunk builds one per position, eight thousand of them."""
    o = _new(_cls)
    _s[0](o, instrument_id)
    _s[1](o, units)
    return o


# Enum members by value: calling an Enum class per row is a few microseconds each.
_CASH_KINDS = {kind.value: kind for kind in engine.CashAccountKind}
_SIDES = {side.value: side for side in engine.Side}
_ORDER_STATUSES = {status.value: status for status in engine.OrderStatus}


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


@dataclass(frozen=True, slots=True)
class AccountRow:
    """The fields of a PortfolioAccount that rebalancing reads, without a model
    instance (building a thousand of those is a good part of loading a chunk)."""

    id: uuid.UUID
    parent_id: uuid.UUID | None
    account_type: str
    base_currency: str
    status: str
    locked: bool
    client_id: str

    @property
    def pk(self) -> uuid.UUID:
        return self.id


ACCOUNT_ROW_FIELDS = ("id", "parent_id", "account_type", "base_currency", "status", "locked", "client_id")


@dataclass
class Book:
    """Everything the engine needs for a set of accounts on one date."""

    on_date: date
    accounts: dict = field(default_factory=dict)  # id → AccountRow
    snapshots: dict = field(default_factory=dict)  # id → engine.AccountSnapshot (with sub-accounts)
    targets: dict = field(default_factory=dict)  # account id → Targets (configured accounts only)
    markets: dict = field(default_factory=dict)  # (base currency, price source) → engine.Market
    price_source: str = "default"  # the source of the accounts not in `price_sources`
    price_sources: dict = field(default_factory=dict)  # account id → its own price source (overrides only)
    cash_accounts: dict = field(default_factory=dict)  # account id → [(cash account id, currency, is_default, kind)]
    price_fallbacks: dict = field(default_factory=dict)  # price source → instrument ids priced from stored prices
    instruments: dict = field(default_factory=dict)  # id → portfolios Instrument (for ISINs in answers)
    sub_accounts: dict = field(default_factory=dict)  # account id → [sub-account ids] (one level, as loaded)
    outstanding: dict = field(default_factory=dict)  # account id → (engine.OutstandingOrder, ...) of its group, kept only
    open_orders: dict = field(default_factory=dict)  # account id → ids of its group's OPEN orders (lock_orders only)
    restrictions: dict = field(default_factory=dict)  # account id → engine.Restrictions (restricted accounts only)
    allocations: dict = field(default_factory=dict)  # account id → the allocation id it follows (configured accounts)

    def market_of(self, account_id) -> engine.Market:
        """The market of the account: its base currency, its price source."""
        account = self.accounts[account_id]
        return self.markets[(account.base_currency, self.price_sources.get(account_id, self.price_source))]

    def cash_account_for(self, account_id, currency: str):
        """The cash account of `account_id` that pays for (or receives) an order in
        `currency` (§10): the default account when it is in that currency, else its CASH
        account in it, else any in it, else the default account (AUTO: the custodian
        converts). None when the account has no cash account at all."""
        rows = self.cash_accounts.get(account_id, ())
        same = [r for r in rows if r[1] == currency]
        for r in same:
            if r[2]:
                return r[0]
        for r in same:
            if r[3] == engine.CashAccountKind.CASH:
                return r[0]
        if same:
            return same[0][0]
        for r in rows:
            if r[2]:
                return r[0]
        return None

    def default_cash_account(self, account_id):
        for r in self.cash_accounts.get(account_id, ()):
            if r[2]:
                return r[0]
        return None

    def cash_account_in(self, account_id, currency: str):
        """The account's cash account in `currency` (default, then CASH kind), or None."""
        rows = [r for r in self.cash_accounts.get(account_id, ()) if r[1] == currency]
        rows.sort(key=lambda r: (not r[2], r[3] != engine.CashAccountKind.CASH))
        return rows[0][0] if rows else None

    def group_ids(self, account_id) -> list:
        """The account and its sub-accounts: the accounts whose orders a rebalance of it owns."""
        return [account_id, *self.sub_accounts.get(account_id, ())]


def with_ids(queryset, ids, *fields: str):
    """`queryset` where any of `fields` (default the primary key) is one of `ids`,
    without the default ordering. On PostgreSQL the ids go as one array parameter
    (`= ANY(%s::uuid[])`) instead of one parameter each: Django and psycopg then do no
    per-id work. For the large reads of a chunk, `rows_by_ids` is the faster form."""
    fields = fields or ("pk",)
    queryset = queryset.order_by()
    if connection.vendor != "postgresql":
        condition = Q()
        for name in fields:
            condition |= Q(**{f"{name}__in": list(ids)})
        return queryset.filter(condition)
    meta = queryset.model._meta
    table = connection.ops.quote_name(meta.db_table)
    columns = [connection.ops.quote_name(_column(meta, name)) for name in fields]
    array = uuid_array(ids)
    sql = " OR ".join(f"{table}.{column} = ANY(%s::uuid[])" for column in columns)
    return queryset.filter(RawSQL(f"({sql})", [array] * len(columns), output_field=BooleanField()))


def _column(meta, name: str) -> str:
    return (meta.pk if name == "pk" else meta.get_field(name)).column


def rows_by_ids(
    model, keys: str | tuple, ids, fields: Sequence[str], where: Q | None = None, lock: bool = False,
    probe: bool = True, text: Sequence[str] = (),
) -> list:
    """The `fields` (tuples, as values_list gives them) of the rows of `model` whose
    key (or any of `keys`) is one of `ids` and that match `where`; `lock` takes their
    row locks (FOR UPDATE). No ordering; with several keys, a row matching two of them
    may come twice on PostgreSQL.

    On PostgreSQL one probe of the key's index per id, whatever the statistics say: a
    LATERAL join from the array (the OFFSET 0 keeps the planner from turning it into a
    hash join). `key = ANY(array)` leaves the choice to the planner, which with its
    default costs scans a whole 100,000-row table for 1000 ids, and picks a status
    index over the account one on a trade-order table analyzed while small: five to
    forty times slower. With `probe` False, `key = ANY(array)` after all: for a large
    table with several rows per id, where the planner's one bitmap scan for the whole
    array beats a thousand small ones. Elsewhere, the ORM with `key IN (...)`. `lock`
    takes one key only (PostgreSQL locks no rows of a UNION).

    The `text` fields (UUIDs) come back as their text: a str is built and hashed several
    times faster than a uuid.UUID, for rows that are only grouped by it.
    """
    keys = (keys,) if isinstance(keys, str) else keys
    if lock and len(keys) > 1:
        raise ValueError("rows_by_ids locks rows found by one key only")
    if connection.vendor != "postgresql":
        rows = _rows_orm(model, keys, ids, fields, where, lock)
        if text:
            as_text = [name in text for name in fields]
            rows = [tuple(str(v) if t and v is not None else v for v, t in zip(row, as_text)) for row in rows]
        return rows
    meta = model._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    columns = ", ".join(
        f"{table}.{quote(_column(meta, name))}{'::text' if name in text else ''}" for name in fields
    )
    extra, params = _where_sql(model, where)
    extra = f" AND {extra}" if extra else ""
    locking = f" FOR UPDATE OF {table}" if lock else ""
    key_columns = [f"{table}.{quote(_column(meta, key))}" for key in keys]
    if probe:
        branches = " UNION ALL ".join(
            f"(SELECT {columns} FROM {table} WHERE {key} = k.id{extra} OFFSET 0{locking})" for key in key_columns
        )
        sql = f"SELECT r.* FROM unnest(%s::uuid[]) AS k(id) CROSS JOIN LATERAL ({branches}) AS r"
        arguments = [uuid_array(ids), *(params * len(keys))]
    else:
        matches = " OR ".join(f"{key} = ANY(%s::uuid[])" for key in key_columns)
        sql = f"SELECT {columns} FROM {table} WHERE ({matches}){extra}{locking}"
        arguments = [uuid_array(ids)] * len(keys) + params
    with connection.cursor() as cursor:
        cursor.execute(sql, arguments)
        return cursor.fetchall()


def _rows_orm(model, keys: tuple, ids, fields: Sequence[str], where: Q | None, lock: bool) -> list:
    queryset = with_ids(model.objects, ids, *keys)
    if where is not None:
        queryset = queryset.filter(where)
    if lock:
        queryset = queryset.select_for_update(of=("self",))
    return list(queryset.values_list(*fields))


def _where_sql(model, where: Q | None) -> tuple[str, list]:
    """`where` (on the model's own columns) as SQL and parameters, for hand-written SQL."""
    if where is None:
        return "", []
    query = Query(model)
    sql, params = query.build_where(where).as_sql(query.get_compiler(connection=connection), connection)
    return sql, list(params)


def book_load(
    *, account_ids: Sequence, on_date: date, price_source: str = "default", lock_orders: bool = False,
    price_sources: dict | None = None, available_cash: dict | None = None, live_prices=None,
    connector_sources: frozenset = frozenset(),
) -> Book:
    """Load accounts, sub-accounts, holdings, outstanding orders, targets, instruments,
    prices and FX rates for `account_ids` in a fixed number of queries (about ten,
    plus one per distinct floating-weight start date), whatever the number of accounts.

    `book.outstanding` holds each account group's kept orders (§4.6) as the engine
    takes them. `lock_orders` (inside a transaction) also locks the groups' OPEN and
    kept orders with SELECT ... FOR UPDATE before the holdings are read, so an order
    cannot be settled or moved on between the read and the writes of a rebalance
    (one more query), and notes the OPEN ones in `book.open_orders`.

    `price_sources`: account id → its own price source (§9: an account's override is
    used): one price query per distinct source. `available_cash`: account id → its
    `available_cash` scope when not ALL_ACCOUNTS, so only the outstanding orders tied to
    the counted cash accounts change its cash (§10). `live_prices(instruments, stored,
    on_date) -> (prices, fallback ids)`: for the sources in `connector_sources`, the
    live price connector's prices over the stored ones (services/live_prices.py).
    """
    book = Book(on_date=on_date, price_source=price_source, price_sources=dict(price_sources or {}))
    scopes = available_cash or {}
    wanted = set(account_ids)
    asked = account_ids if type(account_ids) is IdTuple and len(wanted) == len(account_ids) else IdTuple(wanted)
    children = defaultdict(list)
    # The accounts and their sub-accounts (a sub-account may be asked for too: seen twice).
    seen = set()
    for row in rows_by_ids(PortfolioAccount, ("pk", "parent_id"), asked, ACCOUNT_ROW_FIELDS):
        if row[0] in seen:
            continue
        seen.add(row[0])
        account = AccountRow(*row)
        if account.parent_id in wanted:
            children[account.parent_id].append(account)
        if account.id in wanted:
            book.accounts[account.id] = account
    book.sub_accounts = {parent: [c.id for c in kids] for parent, kids in children.items()}
    every_id = IdTuple([*book.accounts, *(c for kids in book.sub_accounts.values() for c in kids)])
    root_of = {account_id: account_id for account_id in book.accounts}
    root_of.update({c: parent for parent, kids in book.sub_accounts.items() for c in kids})

    # Orders first: with lock_orders, a settlement committed before this statement is
    # in the holdings read next, and one not yet committed waits for this transaction.
    if lock_orders:
        # The OPEN ones are only locked and noted (the rebalance replaces them): ids only.
        for order_id, account_id in rows_by_ids(
            TradeOrder, "account_id", every_id, ("pk", "account_id"),
            where=Q(status=TradeOrderStatus.OPEN, portfolio_order__isnull=True), lock=True,
        ):
            book.open_orders.setdefault(root_of[account_id], []).append(order_id)
    outstanding = defaultdict(list)
    order_instruments = set()
    # A portfolio order's OPEN trade orders are a client's instruction: never replaced,
    # counted as kept orders (ACCEPTED for the engine) instead.
    kept = Q(status__in=KEPT_ORDER_STATUSES) | Q(status=TradeOrderStatus.OPEN, portfolio_order__isnull=False)
    order_cash_accounts = []  # (root, index in outstanding, cash account id): orders that may not count (§10)
    for account_id, instrument_id, side, transaction_type, units, amount, status, currency, cash_id in rows_by_ids(
        TradeOrder, "account_id", every_id,
        ("account_id", "instrument_id", "side", "transaction_type", "units", "trade_amount", "status", "currency",
         "cash_account_id"),
        where=kept, lock=lock_orders,
    ):
        order_instruments.add(instrument_id)
        root = root_of[account_id]
        if cash_id is not None and scopes.get(root, engine.AvailableCash.ALL_ACCOUNTS) != engine.AvailableCash.ALL_ACCOUNTS:
            order_cash_accounts.append((root, len(outstanding[root]), cash_id))
        outstanding[root].append(
            engine.OutstandingOrder(
                account_id, instrument_id, _SIDES[side], transaction_type, units, amount,
                engine.OrderStatus.ACCEPTED if status == TradeOrderStatus.OPEN else _ORDER_STATUSES[status], currency,
            )
        )

    # Positions are most of a chunk's rows: ids as text, one UUID per instrument.
    positions, cash, instrument_of = {}, defaultdict(list), {}
    new_position = engine_position
    for account_text, instrument_text, units in rows_by_ids(
        Position, "account_id", every_id, ("account_id", "instrument_id", "units"), probe=False,
        text=("account_id", "instrument_id"),
    ):
        instrument_id = instrument_of.get(instrument_text)
        if instrument_id is None:
            instrument_id = instrument_of[instrument_text] = uuid.UUID(instrument_text)
        held = positions.get(account_text)
        if held is None:
            held = positions[account_text] = []
        held.append(new_position(instrument_id, units))
    cash_kind = {}
    for cash_id, account_id, currency, balance, is_default, kind in rows_by_ids(
        CashAccount, "account_id", every_id, ("id", "account_id", "currency", "balance", "is_default", "kind")
    ):
        cash[account_id].append(engine.CashAccount(currency, balance, is_default, _CASH_KINDS[kind]))
        book.cash_accounts.setdefault(account_id, []).append((cash_id, currency, is_default, kind))
        cash_kind[cash_id] = (is_default, kind)
    # §10: with CASH_ACCOUNTS_ONLY or DEFAULT_ACCOUNT_ONLY, an outstanding order paid from
    # a cash account that is not counted does not change the available cash.
    for root, index, cash_id in order_cash_accounts:
        is_default, kind = cash_kind.get(cash_id, (True, engine.CashAccountKind.CASH))
        scope = scopes[root]
        counted = kind == engine.CashAccountKind.CASH if scope == engine.AvailableCash.CASH_ACCOUNTS_ONLY else is_default
        if not counted:
            orders = outstanding[root]
            orders[index] = dataclasses.replace(orders[index], counted=False)
    book.outstanding = {account_id: tuple(rows) for account_id, rows in outstanding.items()}

    def snapshot(account, sub_accounts=()):
        return engine.AccountSnapshot(
            id=account.id, base_currency=account.base_currency, locked=account.locked,
            positions=tuple(positions.get(str(account.id), ())), cash_accounts=tuple(cash[account.id]),
            sub_accounts=sub_accounts,
        )

    for account in book.accounts.values():
        book.snapshots[account.id] = snapshot(account, tuple(snapshot(c) for c in children[account.id]))

    configured = book.allocations = dict(rows_by_ids(Configuration, "account_id", asked, ("account_id", "allocation_id")))
    versions = versions_in_effect(configured.values(), on_date)
    book.restrictions, substitute_ids = restrictions_load(
        account_ids=every_id, groups={a: book.group_ids(a) for a in book.accounts}, on_date=on_date
    )
    instrument_ids = set(instrument_of.values()) | order_instruments | substitute_ids
    instrument_ids |= {line.instrument_id for v in versions.values() for line in v.lines_in_effect}
    # Every CASH instrument too (a handful): an FX order names the bought currency's (§9).
    book.instruments = {
        i.pk: i for i in Instrument.objects.filter(Q(pk__in=instrument_ids) | Q(type=InstrumentType.CASH))
    }
    sources = {price_source, *book.price_sources.values()}
    prices_by_source = {}
    for source in sorted(sources):
        stored = {key: value for key, (value, _) in latest_prices(instrument_ids, on_date, source).items()}
        if live_prices is not None and source in connector_sources:
            stored, book.price_fallbacks[source] = live_prices(book.instruments, stored, on_date)
        prices_by_source[source] = stored
    prices = prices_by_source[price_source]
    targets = targets_on(versions.values(), on_date, price_source, prices)
    for account_id, allocation_id in configured.items():
        version = versions.get(allocation_id)
        book.targets[account_id] = (
            targets[version.pk] if version else Targets(error=f"allocation {allocation_id} has no version in effect on {on_date}")
        )

    currencies = {i.currency for i in book.instruments.values()} | {a.base_currency for a in book.accounts.values()}
    currencies |= {c.currency for rows in cash.values() for c in rows}
    currencies |= {o.currency for rows in book.outstanding.values() for o in rows if o.currency}
    fx = FxTable(currencies, on_date)
    instruments = {pk: engine_instrument(i) for pk, i in book.instruments.items()}
    for base in {a.base_currency for a in book.accounts.values()}:
        rates = {}
        for currency in currencies:
            try:
                rates[currency] = fx.rate(currency, base)
            except MissingMarketData:
                rates[currency] = None
        for source, source_prices in prices_by_source.items():
            book.markets[(base, source)] = engine.Market(
                instruments=instruments, prices=source_prices, fx_rates=rates, as_of=on_date
            )
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
