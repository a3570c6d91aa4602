"""What the tax-aware step (engine/tax.py) is given for the accounts of a run, as plain data (§12).

Loaded only for the accounts whose effective preferences have `tax_aware` on, in a
fixed number of queries for the whole chunk or preview (lots; this year's realized
gains; recent loss sales; substitutes; the substitutes' instruments and prices the
book lacks). Lots are compact tuples `(lot_id, acquired_ordinal, units, unit_cost)`.
"""

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db import connection
from django.db.models import Max, Sum

from core.ids import uuid_array
from portfolios.models import Instrument, Lot, Position, RealizedGain, Substitute
from portfolios.selectors import latest_prices

from .book import Book, engine_instrument


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


def tax_book_load(*, book: Book, account_ids, wash_sale_days: int, price_source: str = "default") -> TaxBook:
    """The tax data of `account_ids` (roots of the run, tax-aware ones only) and their
    sub-portfolios. At most six queries whatever the number of accounts; none when
    `account_ids` is empty."""
    tax = TaxBook(book.on_date)
    root_of = {}
    for root in account_ids:
        for member in book.group_ids(root):
            root_of[member] = root
    if not root_of:
        return tax
    members = list(root_of)
    lots = defaultdict(lambda: defaultdict(list))
    held = set()
    for account_id, instrument_id, lot_id, acquired, units, cost in _lot_rows(members, book):
        lots[root_of[account_id]][(account_id, instrument_id)].append((lot_id, acquired, units, cost))
        held.add(instrument_id)
    tax.lots = {root: {key: tuple(rows) for key, rows in per.items()} for root, per in lots.items()}
    realized = defaultdict(int)
    for account_id, total in (
        RealizedGain.objects.filter(
            account_id__in=members, realized_on__year=book.on_date.year, realized_on__lte=book.on_date,
            gain_base__isnull=False,
        ).values_list("account_id").annotate(total=Sum("gain_base")).values_list("account_id", "total")
    ):
        realized[root_of[account_id]] += total
    tax.realized = dict(realized)
    if wash_sale_days:
        losses = defaultdict(dict)
        since = book.on_date - timedelta(days=wash_sale_days)
        for account_id, instrument_id, last in (
            RealizedGain.objects.filter(
                account_id__in=members, gain__lt=0, realized_on__gt=since, realized_on__lte=book.on_date
            ).values_list("account_id", "instrument_id").annotate(last=Max("realized_on"))
            .values_list("account_id", "instrument_id", "last")
        ):
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


def _lot_rows(account_ids: list, book: Book):
    """(account id, instrument id, lot id, acquired ordinal, units, unit cost) of the
    accounts' lots, oldest first (then by id): one query. On PostgreSQL the ids come as
    text and are mapped back to the book's UUID objects, the ordinal is computed by the
    database: no uuid.UUID or date is built per lot."""
    if connection.vendor != "postgresql":
        for account_id, instrument_id, lot_id, acquired_on, units, cost in (
            Lot.objects.filter(position__account_id__in=account_ids).order_by("acquired_on", "id")
            .values_list("position__account_id", "position__instrument_id", "id", "acquired_on", "units", "unit_cost")
        ):
            yield account_id, instrument_id, lot_id, acquired_on.toordinal(), units, cost
        return
    accounts = {str(a): a for a in account_ids}
    instruments = {str(i): i for i in book.instruments}
    lot, position = (connection.ops.quote_name(m._meta.db_table) for m in (Lot, Position))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT p.account_id::text, p.instrument_id::text, l.id::text, (l.acquired_on - DATE '0001-01-01') + 1, "
            f"l.units, l.unit_cost FROM unnest(%s::uuid[]) AS k(id) JOIN {position} p ON p.account_id = k.id "
            f"JOIN {lot} l ON l.position_id = p.id ORDER BY l.acquired_on, l.id",
            [uuid_array(account_ids)],
        )
        for account_id, instrument_id, lot_id, acquired, units, cost in cursor.fetchall():
            instrument = instruments.get(instrument_id)
            if instrument is None:
                instrument = instruments[instrument_id] = uuid.UUID(instrument_id)
            yield accounts[account_id], instrument, lot_id, acquired, units, cost  # lot ids stay text: opaque here


__all__ = ["TaxBook", "tax_book_load"]
