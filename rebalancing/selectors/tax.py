"""What the tax-aware step (engine/tax.py) is given for the accounts of a run, as plain data (§12).

Loaded only for the accounts whose effective preferences have `tax_aware` on, in a
fixed number of queries for the whole chunk or preview (lots; this year's realized
gains; recent loss sales; substitutes; the substitutes' instruments and prices the
book lacks). Lots are compact tuples `(lot_id, acquired_ordinal, units, unit_cost)`,
on PostgreSQL made only when the engine reads them (TextLots).
"""

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from datetime import date, timedelta
from operator import itemgetter

from django.db import connection
from django.db.models import Max, Sum

from core.ids import IdTuple, uuid_array
from portfolios.models import Instrument, Lot, Position, RealizedGain, Substitute
from portfolios.selectors import latest_prices
from rebalancing.engine.tax import AcquiredLots

from .book import Book, engine_instrument

_BY_DATE_THEN_ID = itemgetter(1, 0)
# A position's lots as one text "id ordinal units cost;…" in (acquired, id) order (a uuid
# sorts as its text), cost "-" when unknown, the ordinal computed by the database: one
# aggregate per position probed (no sort or grouping of the whole result), TextLots.
_LOTS_TEXT = (
    "SELECT string_agg(l.id::text || ' ' || ((l.acquired_on - DATE '0001-01-01') + 1)::text || ' ' || "
    "l.units::text || ' ' || coalesce(l.unit_cost::text, '-'), ';' ORDER BY l.acquired_on, l.id) AS lots"
)


@dataclass
class TaxBook:
    on_date: date
    lots: dict = field(default_factory=dict)  # root account id → {(account id, instrument id): lots, (acquired, id) order}
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

    Lots: of every position by default; with `sold` ((account id, instrument id) pairs,
    sub-portfolios' included; fastest when an account's pairs come together) only of
    those positions, and of every position of the groups of `whole` (roots). The
    substitutes are read for the instruments a wash-sale buy or a harvest may replace:
    those of the loss sales and of the positions read whole. `gains` False: this year's
    realized gains are not read (no account has a gain budget, the only rule that needs
    them)."""
    tax = TaxBook(book.on_date)
    root_of = {}
    subs = []  # the sub-portfolios among the members
    sub_accounts = book.sub_accounts
    for root in account_ids:
        root_of[root] = root
        for member in sub_accounts.get(root, ()):  # book.group_ids without a list per account
            root_of[member] = root
            subs.append(member)
    if not root_of:
        return tax
    members = list(root_of)
    lots = defaultdict(dict)
    held = set()  # the instruments whose substitutes a wash-sale buy or a harvest may need
    if sold is None:
        read = _lots_by_position(members, book)
    else:
        whole_roots = set(whole or ())
        everything = [member for root in whole_roots for member in book.group_ids(root) if member in root_of]
        read = _lots_by_position(everything, book) if everything else {}
        # The sold positions of the other accounts: a sell only names lots (its
        # instrument's substitutes serve no rule), so `held` is not extended.
        pairs, owners = [], []
        last = owner = None
        for pair in sold:  # a chunk's sells come account by account: one lookup per account
            account_id = pair[0]
            if account_id is not last:
                last = account_id
                root = root_of.get(account_id)
                owner = None if root is None or root in whole_roots else lots[root]
            if owner is not None:
                pairs.append(pair)
                owners.append(owner)
        if pairs:
            for n, rows in _lots_of_positions(pairs, book):
                owners[n][pairs[n]] = rows
    for (account_id, instrument_id), rows in read.items():
        lots[root_of[account_id]][(account_id, instrument_id)] = rows
        held.add(instrument_id)
    tax.lots = {root: found for root, found in lots.items() if found}
    postgres = connection.vendor == "postgresql"
    members_sent = None  # one array literal for both queries
    if postgres:
        # The chunk's own ids (an IdTuple: every account tax-aware) are formatted once per
        # chunk already; the sub-portfolios are added to them (a repeated id is harmless).
        members_sent = uuid_array(account_ids if type(account_ids) is IdTuple else [*account_ids, *subs])
        if type(account_ids) is IdTuple and subs:
            members_sent = members_sent[:-1] + "," + ",".join(map(str, subs)) + "}"
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


class TextLots(AcquiredLots):
    """A position's lots as PostgreSQL sends them: one text "id ordinal units cost;…" in
    (acquired, id) order, cost "-" when unknown. A lot (its int and Decimals) is made
    only when the engine reads it: a FIFO sell reads the lots it reaches, no more."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __iter__(self):
        for part in self.text.split(";"):
            lot_id, acquired, units, cost = part.split(" ")
            yield (lot_id, int(acquired), Decimal(units), None if cost == "-" else Decimal(cost))

    def __len__(self):
        return self.text.count(";") + 1

    def __getitem__(self, index):
        return tuple(self)[index]

    def __repr__(self):
        return f"TextLots({self.text!r})"


def _lots_by_position(account_ids: list, book: Book) -> dict:
    """(account id, instrument id) → the position's lots in (acquired, id) order: a tuple
    of (lot id, acquired ordinal, units, unit cost), or on PostgreSQL a TextLots; one
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
        return {key: tuple(sorted(rows, key=_BY_DATE_THEN_ID)) for key, rows in grouped.items()}
    lot, position = (connection.ops.quote_name(m._meta.db_table) for m in (Lot, Position))
    with connection.cursor() as cursor:
        # One row per position, its lots as one text "id ordinal units cost;…" in (acquired,
        # id) order (a uuid sorts as its text), parsed only when the engine asks for that
        # position: three times fewer rows and objects.
        cursor.execute(
            f"SELECT k.id::text, p.instrument_id::text, t.lots FROM unnest(%s::uuid[]) AS k(id) CROSS JOIN LATERAL "
            f"(SELECT p.id, p.instrument_id FROM {position} p WHERE p.account_id = k.id OFFSET 0) p "
            f"CROSS JOIN LATERAL ({_LOTS_TEXT} FROM {lot} l WHERE l.position_id = p.id) t WHERE t.lots IS NOT NULL",
            [uuid_array(account_ids)],
        )
        for account_id, instrument_id, text in cursor.fetchall():
            grouped[(account_id, instrument_id)] = TextLots(text)
    accounts = {str(a): a for a in account_ids}
    instruments = {str(i): i for i in book.instruments}
    out = {}
    for (account_id, instrument_id), rows in grouped.items():
        instrument = instruments.get(instrument_id)
        if instrument is None:
            instrument = instruments[instrument_id] = uuid.UUID(instrument_id)
        out[(accounts[account_id], instrument)] = rows
    return out


def _lots_of_positions(pairs: list, book: Book) -> list:
    """(index in `pairs`, lots) of the positions (account id, instrument id) of `pairs`
    that have lots, as _lots_by_position gives them: one query, each position probed by
    its unique (account, instrument) index."""
    if connection.vendor != "postgresql":
        grouped = _lots_by_position(list({account_id for account_id, _ in pairs}), book)
        return [(n, grouped[pair]) for n, pair in enumerate(pairs) if pair in grouped]
    # Each id is sent once, as text, and a pair as two 1-based places in those arrays:
    # a tenth of the bytes of two id arrays of the pairs' length, and no hashing per
    # pair for the accounts (an account's pairs come together: a new place when it changes).
    accounts, instruments = [], []
    account_at, instrument_at = [], []
    place_of = {}  # instrument id → its place
    last = None
    for a, i in pairs:
        if a is not last:
            last = a
            accounts.append(str(a))
        account_at.append(len(accounts))
        place = place_of.get(i)
        if place is None:
            instruments.append(str(i))
            place = place_of[i] = len(instruments)
        instrument_at.append(place)
    lot, position = (connection.ops.quote_name(m._meta.db_table) for m in (Lot, Position))
    with connection.cursor() as cursor:
        cursor.execute(  # a row names its pair by its place in the arrays: no id is parsed back
            f"SELECT k.n, t.lots FROM unnest(%s::int[], %s::int[]) WITH ORDINALITY AS k(a, i, n) CROSS JOIN LATERAL "
            f"(SELECT p.id FROM {position} p WHERE p.account_id = (%s::uuid[])[k.a] "
            f"AND p.instrument_id = (%s::uuid[])[k.i] OFFSET 0) p "
            f"CROSS JOIN LATERAL ({_LOTS_TEXT} FROM {lot} l WHERE l.position_id = p.id) t WHERE t.lots IS NOT NULL",
            [
                "{" + ",".join(map(str, account_at)) + "}", "{" + ",".join(map(str, instrument_at)) + "}",
                "{" + ",".join(accounts) + "}", "{" + ",".join(instruments) + "}",
            ],
        )
        return [(n - 1, TextLots(text)) for n, text in cursor.fetchall()]


__all__ = ["TaxBook", "tax_book_load"]
