"""What the tax-aware step (engine/tax.py) is given for the accounts of a run, as plain data (§12).

Loaded only for the accounts whose effective preferences have `tax_aware` on, in a
fixed number of queries for the whole chunk or preview (lots; this year's realized
gains; recent loss sales; substitutes; the substitutes' instruments and prices the
book lacks). Lots are compact tuples `(lot_id, acquired_ordinal, units, unit_cost)`.
"""

import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from datetime import date, timedelta
from operator import itemgetter

from django.db import connection
from django.db.models import Max, Sum

from core.ids import uuid_array
from portfolios.models import Instrument, Lot, Position, RealizedGain, Substitute
from portfolios.selectors import latest_prices

from .book import Book, engine_instrument

_BY_DATE_THEN_ID = itemgetter(1, 0)


@dataclass
class TaxBook:
    on_date: date
    lots: dict = field(default_factory=dict)  # root account id → {(account id, instrument id): (lot, ...)}
    realized: dict = field(default_factory=dict)  # root account id → net known gain this year (base)
    loss_sales: dict = field(default_factory=dict)  # root account id → {instrument id: latest loss sale ordinal}
    substitutes: dict = field(default_factory=dict)  # instrument id → (substitute ids in order)
    instruments: dict = field(default_factory=dict)  # engine.Instrument of substitutes the book lacks
    prices: dict = field(default_factory=dict)  # and their latest prices
    rows: dict = field(default_factory=dict)  # and their portfolios Instrument rows (ISINs in answers)


def tax_book_load(
    *, book: Book, account_ids, wash_sale_days: int, price_source: str = "default", sold=None, whole=None,
    gains: bool = True,
) -> TaxBook:
    """The tax data of `account_ids` (roots of the run, tax-aware ones only) and their
    sub-portfolios. At most seven queries whatever the number of accounts; none when
    `account_ids` is empty.

    Lots: of every position by default; with `sold` (a set of (account id, instrument
    id), sub-portfolios' included) only of those positions, and of every position of
    the groups of `whole` (roots). `gains` False: this year's realized gains are not
    read (no account has a gain budget, the only rule that needs them)."""
    tax = TaxBook(book.on_date)
    root_of = {}
    for root in account_ids:
        for member in book.group_ids(root):
            root_of[member] = root
    if not root_of:
        return tax
    members = list(root_of)
    lots = defaultdict(dict)
    held = set()
    if sold is None:
        read = _lots_by_position(members, book)
    else:
        everything = [member for root in whole or () for member in book.group_ids(root) if member in root_of]
        read = _lots_by_position(everything, book) if everything else {}
        everything = set(everything)
        pairs = [pair for pair in sold if pair[0] in root_of and pair[0] not in everything]
        if pairs:
            read.update(_lots_of_positions(pairs, book))
    for (account_id, instrument_id), rows in read.items():
        lots[root_of[account_id]][(account_id, instrument_id)] = rows
        held.add(instrument_id)
    tax.lots = {root: LazyLots(raw) for root, raw in lots.items()}
    postgres = connection.vendor == "postgresql"
    members_sent = uuid_array(members) if postgres else None  # one array literal for both queries
    gain_table = connection.ops.quote_name(RealizedGain._meta.db_table)
    if gains:
        realized = defaultdict(int)
        if postgres:  # the ORM would adapt one parameter per member
            rows = _fetch(
                f"SELECT account_id, SUM(gain_base) FROM {gain_table} WHERE account_id = ANY(%s::uuid[]) AND realized_on "
                f">= %s AND realized_on <= %s AND gain_base IS NOT NULL GROUP BY account_id",
                [members_sent, date(book.on_date.year, 1, 1), book.on_date],
            )
        else:
            rows = (
                RealizedGain.objects.filter(
                    account_id__in=members, realized_on__year=book.on_date.year, realized_on__lte=book.on_date,
                    gain_base__isnull=False,
                ).values_list("account_id").annotate(total=Sum("gain_base")).values_list("account_id", "total")
            )
        for account_id, total in rows:
            realized[root_of[account_id]] += total
        tax.realized = dict(realized)
    if wash_sale_days:
        losses = defaultdict(dict)
        since = book.on_date - timedelta(days=wash_sale_days)
        if postgres:
            rows = _fetch(
                f"SELECT account_id, instrument_id, MAX(realized_on) FROM {gain_table} WHERE account_id = ANY(%s::uuid[]) "
                f"AND gain < 0 AND realized_on > %s AND realized_on <= %s GROUP BY account_id, instrument_id",
                [members_sent, since, book.on_date],
            )
        else:
            rows = (
                RealizedGain.objects.filter(
                    account_id__in=members, gain__lt=0, realized_on__gt=since, realized_on__lte=book.on_date
                ).values_list("account_id", "instrument_id").annotate(last=Max("realized_on"))
                .values_list("account_id", "instrument_id", "last")
            )
        for account_id, instrument_id, last in rows:
            per = losses[root_of[account_id]]
            per[instrument_id] = max(per.get(instrument_id, 0), last.toordinal())
            held.add(instrument_id)
        tax.loss_sales = dict(losses)
    if held:
        substitutes = defaultdict(list)
        for instrument_id, substitute_id in (
            Substitute.objects.filter(instrument_id__in=held).order_by("instrument_id", "rank")
            .values_list("instrument_id", "substitute_id")
        ):
            substitutes[instrument_id].append(substitute_id)
        tax.substitutes = {k: tuple(v) for k, v in substitutes.items()}
        missing = {s for rows in tax.substitutes.values() for s in rows} - set(book.instruments)
        if missing:
            tax.rows = {i.pk: i for i in Instrument.objects.filter(pk__in=missing)}
            tax.instruments = {pk: engine_instrument(i) for pk, i in tax.rows.items()}
            tax.prices = {iid: price for iid, (price, _) in latest_prices(missing, book.on_date, price_source).items()}
    return tax


def _fetch(sql: str, params: list) -> list:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


class LazyLots(Mapping):
    """(account id, instrument id) → lots as the engine takes them, sorted by (acquired,
    id), their numbers made Decimals on first use (in place: one dict lookup a read):
    the engine looks at the positions sold (and, when harvesting, at all of them)."""

    __slots__ = ("raw",)

    def __init__(self, raw: dict):
        self.raw = raw

    def __getitem__(self, key):
        rows = self.raw[key]
        if type(rows) is tuple:  # done
            return rows
        if type(rows) is str:  # PostgreSQL: "id ordinal units cost;…" in (acquired, id) order, cost "-" when unknown
            found = tuple([
                (lot_id, int(acquired), Decimal(units), None if cost == "-" else Decimal(cost))
                for lot_id, acquired, units, cost in (part.split(" ") for part in rows.split(";"))
            ])
        else:
            found = tuple(sorted(rows, key=_BY_DATE_THEN_ID))
        self.raw[key] = found
        return found

    def get(self, key, default=None):  # the engine's one read per sell: no KeyError raised and caught
        return self[key] if key in self.raw else default

    def __iter__(self):
        return iter(self.raw)

    def __len__(self):
        return len(self.raw)

    def __contains__(self, key):
        return key in self.raw


def _lots_by_position(account_ids: list, book: Book) -> dict:
    """(account id, instrument id) → the position's lots as read: [(lot id, acquired
    ordinal, units, unit cost)], or on PostgreSQL one text that LazyLots parses; one
    query. On PostgreSQL the ids come as text (mapped once per position to the book's
    UUID objects), the ordinal is computed by the database, and the positions are
    probed by account (a LATERAL join: the planner would otherwise hash the whole
    position table): no uuid.UUID, date or Decimal is built per lot until the engine
    asks for its position, and lot ids stay text (opaque to the engine)."""
    grouped = defaultdict(list)
    if connection.vendor != "postgresql":
        for account_id, instrument_id, lot_id, acquired_on, units, cost in (
            Lot.objects.filter(position__account_id__in=account_ids)
            .values_list("position__account_id", "position__instrument_id", "id", "acquired_on", "units", "unit_cost")
        ):
            grouped[(account_id, instrument_id)].append((lot_id, acquired_on.toordinal(), units, cost))
        return grouped
    lot, position = (connection.ops.quote_name(m._meta.db_table) for m in (Lot, Position))
    with connection.cursor() as cursor:
        # One row per position, its lots as one text "id ordinal units cost;…" in (acquired,
        # id) order (a uuid sorts as its text), parsed only when the engine asks for that
        # position: three times fewer rows and objects.
        cursor.execute(
            f"SELECT k.id::text, p.instrument_id::text, string_agg(l.id::text || ' ' || "
            f"((l.acquired_on - DATE '0001-01-01') + 1)::text || ' ' || l.units::text || ' ' || "
            f"coalesce(l.unit_cost::text, '-'), ';' ORDER BY l.acquired_on, l.id) FROM unnest(%s::uuid[]) AS k(id) CROSS JOIN LATERAL "
            f"(SELECT p.id, p.instrument_id FROM {position} p WHERE p.account_id = k.id OFFSET 0) p "
            f"JOIN {lot} l ON l.position_id = p.id GROUP BY k.id, p.id, p.instrument_id",
            [uuid_array(account_ids)],
        )
        for account_id, instrument_id, text in cursor.fetchall():
            grouped[(account_id, instrument_id)] = text
    accounts = {str(a): a for a in account_ids}
    instruments = {str(i): i for i in book.instruments}
    out = {}
    for (account_id, instrument_id), rows in grouped.items():
        instrument = instruments.get(instrument_id)
        if instrument is None:
            instrument = instruments[instrument_id] = uuid.UUID(instrument_id)
        out[(accounts[account_id], instrument)] = rows
    return out


def _lots_of_positions(pairs: list, book: Book) -> dict:
    """As _lots_by_position, for the positions (account id, instrument id) of `pairs`
    only: one query, the pairs sent as two id arrays and each position probed by its
    unique (account, instrument) index."""
    if connection.vendor != "postgresql":
        wanted = set(pairs)
        grouped = _lots_by_position(list({account_id for account_id, _ in pairs}), book)
        return {key: rows for key, rows in grouped.items() if key in wanted}
    text_of = {}  # one str() per distinct id: a chunk's pairs share their accounts and instruments
    accounts, instruments = [], []
    for a, i in pairs:
        accounts.append(text_of.get(a) or text_of.setdefault(a, str(a)))
        instruments.append(text_of.get(i) or text_of.setdefault(i, str(i)))
    lot, position = (connection.ops.quote_name(m._meta.db_table) for m in (Lot, Position))
    with connection.cursor() as cursor:
        cursor.execute(  # a row names its pair by its place in the arrays: no id is parsed back
            f"SELECT k.n, string_agg(l.id::text || ' ' || "
            f"((l.acquired_on - DATE '0001-01-01') + 1)::text || ' ' || l.units::text || ' ' || "
            f"coalesce(l.unit_cost::text, '-'), ';' ORDER BY l.acquired_on, l.id) "
            f"FROM unnest(%s::uuid[], %s::uuid[]) WITH ORDINALITY AS k(a, i, n) CROSS JOIN LATERAL "
            f"(SELECT p.id FROM {position} p WHERE p.account_id = k.a AND p.instrument_id = k.i OFFSET 0) p "
            f"JOIN {lot} l ON l.position_id = p.id GROUP BY k.n, p.id",
            ["{" + ",".join(accounts) + "}", "{" + ",".join(instruments) + "}"],
        )
        return {pairs[n - 1]: text for n, text in cursor.fetchall()}


__all__ = ["TaxBook", "tax_book_load"]
