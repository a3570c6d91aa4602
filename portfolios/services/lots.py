"""The one writer of positions' units and their tax lots (spec §12, docs/tax.md).

A position's units always equal the sum of its lots' units. Every path that changes
units goes through a `LotBook`: holdings snapshots (`holdings_replace`, the holdings
import), settlement of trade orders (one book for a whole bulk settlement) and the
admin. A book loads the positions and lots of the keys it is given in two queries,
changes them in memory, and `flush()` writes positions, lots and realized gains in a
fixed number of statements (bulk create / update / delete), whatever the number of
orders or lots. Callers lock the accounts first (settlement and snapshots lock the
account row) and own the transaction.
"""

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

from django.utils import timezone

from core.errors import FieldError
from rebalancing.engine.tax import LotMethod, relief_order, term_of

from ..models import Instrument, Lot, PortfolioAccount, Position, RealizedGain
from ..models.fields import MONEY, PRICE, UNITS, is_currency_code
from ..selectors import FxTable, MissingMarketData, latest_prices

UNITS_QUANTUM = Decimal(1).scaleb(-UNITS["decimal_places"])
PRICE_QUANTUM = Decimal(1).scaleb(-PRICE["decimal_places"])
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY["decimal_places"])


@dataclass(frozen=True)
class LotInput:
    acquired_on: date
    units: Decimal
    unit_cost: Decimal | None  # None: unknown
    cost_currency: str | None = None  # None: the instrument's


def lot_inputs_errors(lots: list[LotInput], *, units: Decimal, currency: str, path: str, today: date) -> list[FieldError]:
    """What is wrong with the `lots` sent for a position of `units` in an instrument
    quoted in `currency`, each error naming its field (`positions[0].lots[1].units`)."""
    errors = []
    total = Decimal(0)
    for index, lot in enumerate(lots):
        here = f"{path}.lots[{index}]"
        if not isinstance(lot.units, Decimal) or not lot.units.is_finite() or lot.units <= 0:
            errors.append(FieldError(f"{here}.units", "must be greater than 0"))
        elif lot.units != lot.units.quantize(UNITS_QUANTUM):
            errors.append(FieldError(f"{here}.units", f"at most {UNITS['decimal_places']} decimal places"))
        else:
            total += lot.units
        if lot.unit_cost is not None:
            if lot.unit_cost < 0:
                errors.append(FieldError(f"{here}.unit_cost", "must not be negative"))
            elif lot.unit_cost != lot.unit_cost.quantize(PRICE_QUANTUM):
                errors.append(FieldError(f"{here}.unit_cost", f"at most {PRICE['decimal_places']} decimal places"))
        if lot.cost_currency is not None and lot.cost_currency != currency:
            reason = "is not an ISO 4217 currency code" if not is_currency_code(lot.cost_currency) else (
                f"must be the instrument's currency {currency} (costs are kept in the currency the instrument trades in)"
            )
            errors.append(FieldError(f"{here}.cost_currency", reason))
        if lot.acquired_on > today:
            errors.append(FieldError(f"{here}.acquired_on", "must not be in the future"))
    if not errors and total != units:
        errors.append(FieldError(f"{path}.lots", f"the lots' units add up to {total}, the position holds {units}"))
    return errors


@dataclass
class _Relief:
    account_id: object
    instrument_id: object
    lot_id: object
    acquired_on: date
    units: Decimal
    unit_cost: Decimal | None
    proceeds: Decimal | None  # instrument currency
    realized_on: date
    term: str
    trade_order_id: object


class LotBook:
    """The positions and lots of some (account id, instrument id) keys, changed in
    memory and written by `flush()`. Lots are lists of [lot_id, acquired_on, units,
    unit_cost, cost_currency]; a new lot gets its id when it is made."""

    def __init__(self, keys, *, on_date: date):
        keys = set(keys)
        self.on_date = on_date
        self.positions: dict = {}  # key → [position pk or None, units]
        self.lots: dict = defaultdict(list)
        self.original_lots: dict = {}  # lot id → units as loaded
        self.reliefs: list[_Relief] = []
        self._journal: dict | None = None
        self.rules: dict = {}  # account id → (lot_method, long_term_days), set by the caller
        self.named: dict = {}  # trade order id → [(lot id, units)] a tax-aware proposal named
        account_ids = {a for a, _ in keys}
        instrument_ids = {i for _, i in keys}
        self.currencies = dict(Instrument.objects.filter(pk__in=instrument_ids).values_list("pk", "currency"))
        rows = Position.objects.filter(account_id__in=account_ids, instrument_id__in=instrument_ids).values_list(
            "pk", "account_id", "instrument_id", "units"
        )
        by_pk = {}
        for pk, account_id, instrument_id, units in rows:
            key = (account_id, instrument_id)
            if key in keys:
                self.positions[key] = [pk, units]
                by_pk[pk] = key
        for lot_id, position_id, acquired_on, units, cost, currency in (
            Lot.objects.filter(position_id__in=list(by_pk)).order_by("acquired_on", "id")
            .values_list("id", "position_id", "acquired_on", "units", "unit_cost", "cost_currency")
        ):
            self.lots[by_pk[position_id]].append([lot_id, acquired_on, units, cost, currency])
            self.original_lots[lot_id] = units
        for key in keys:
            self.positions.setdefault(key, [None, Decimal(0)])

    # --- savepoints: a bulk settlement undoes the orders that failed ---------------

    def mark(self) -> None:
        self._journal = {"reliefs": len(self.reliefs), "keys": {}}

    def _touch(self, key) -> None:
        if self._journal is not None and key not in self._journal["keys"]:
            self._journal["keys"][key] = (list(self.positions[key]), [list(lot) for lot in self.lots.get(key, [])])

    def undo(self) -> None:
        """Forget every change since `mark()`."""
        if self._journal is None:
            return
        for key, (position, lots) in self._journal["keys"].items():
            self.positions[key] = position
            self.lots[key] = lots
        del self.reliefs[self._journal["reliefs"]:]
        self._journal = None

    # --- reads ----------------------------------------------------------------------

    def units(self, key) -> Decimal:
        return self.positions[key][1]

    def currency(self, key) -> str:
        return self.currencies[key[1]]

    # --- changes --------------------------------------------------------------------

    def add(self, key, *, units: Decimal, unit_cost: Decimal | None, acquired_on: date) -> None:
        """Add a lot (a settled buy, or units a snapshot adds without lots: cost None)."""
        if units <= 0:
            return
        self._touch(key)
        self.positions[key][1] += units
        cost = None if unit_cost is None else unit_cost.quantize(PRICE_QUANTUM, ROUND_HALF_EVEN)
        self.lots[key].append([uuid.uuid4(), acquired_on, units, cost, self.currency(key)])

    def replace(self, key, lots: list[LotInput]) -> None:
        """The position becomes exactly `lots` (a snapshot that sends them): nothing is realized."""
        self._touch(key)
        self.positions[key][1] = sum((lot.units for lot in lots), Decimal(0))
        self.lots[key] = [
            [uuid.uuid4(), lot.acquired_on, lot.units, lot.unit_cost, lot.cost_currency or self.currency(key)]
            for lot in lots
        ]

    def relieve(
        self, key, *, units: Decimal, proceeds: Decimal | None, method: str, long_term_days: int,
        trade_order_id=None, named=(),
    ) -> None:
        """Take `units` off the position's lots: first the `named` (lot id, units) pairs
        still there (a tax-aware proposal's lots), then by `method`. `proceeds` (the
        whole amount received, instrument currency; None: unknown) is spread over the
        lots in proportion to their units. The caller checks the position holds them."""
        if units <= 0:
            return
        self._touch(key)
        position = self.positions[key]
        if units > position[1]:
            raise ValueError(f"cannot relieve {units} units of a position of {position[1]}")
        position[1] -= units
        lots = self.lots[key]
        by_id = {lot[0]: lot for lot in lots}
        takes: list = []
        left = units
        for lot_id, wanted in named:
            lot = by_id.get(lot_id)
            if lot is None or left <= 0 or lot[2] <= 0:
                continue
            take = min(lot[2], Decimal(wanted), left)
            takes.append((lot, take))
            lot[2] -= take
            left -= take
        if left > 0:
            price = proceeds / units if proceeds is not None else None
            if price is None and method == LotMethod.MIN_TAX:
                method = LotMethod.FIFO  # no price, no gain to minimise: the oldest first
            on = self.on_date.toordinal()
            plain = [(lot[0], lot[1].toordinal(), lot[2], lot[3], lot) for lot in lots if lot[2] > 0]
            for _, _, held, _, lot in relief_order(plain, LotMethod(method), price, on, long_term_days):
                if left <= 0:
                    break
                take = held if held <= left else left
                takes.append((lot, take))
                lot[2] -= take
                left -= take
        self.lots[key] = [lot for lot in lots if lot[2] > 0]
        spread = Decimal(0)
        for index, (lot, take) in enumerate(takes):
            if proceeds is None:
                part = None
            elif index == len(takes) - 1:
                part = proceeds - spread
            else:
                part = (proceeds * take / units).quantize(MONEY_QUANTUM, ROUND_HALF_EVEN)
                spread += part
            self.reliefs.append(_Relief(
                key[0], key[1], lot[0], lot[1], take, lot[3], part, self.on_date,
                term_of(lot[1].toordinal(), self.on_date.toordinal(), long_term_days).value, trade_order_id,
            ))

    # --- the write ------------------------------------------------------------------

    def flush(self) -> None:
        """Write every change: positions (create / update / delete at 0 units), lots,
        realized gains (base amounts at the FX of the realization date)."""
        self._journal = None
        creating, updating, deleting = [], [], []
        for key, (pk, units) in self.positions.items():
            if pk is None and units > 0:
                creating.append(Position(account_id=key[0], instrument_id=key[1], units=units))
            elif pk is not None and units == 0:
                deleting.append(pk)
            elif pk is not None:
                updating.append(Position(pk=pk, units=units))
        if deleting:
            Position.objects.filter(pk__in=deleting).delete()  # cascades to their lots
        if updating:
            # auto_now is not applied by bulk_update: set it here.
            now = timezone.now()
            for position in updating:
                position.updated_at = now
            Position.objects.bulk_update(updating, ["units", "updated_at"], batch_size=1000)
        if creating:
            Position.objects.bulk_create(creating, batch_size=1000)
            for position in creating:
                self.positions[(position.account_id, position.instrument_id)][0] = position.pk
            if creating[0].pk is None:  # a database that returns no ids: read them back
                fresh = Position.objects.filter(
                    account_id__in={p.account_id for p in creating}, instrument_id__in={p.instrument_id for p in creating}
                ).values_list("pk", "account_id", "instrument_id")
                for pk, account_id, instrument_id in fresh:
                    if (account_id, instrument_id) in self.positions:
                        self.positions[(account_id, instrument_id)][0] = pk
        kept, changed, new = set(), [], []
        for key, lots in self.lots.items():
            pk, units = self.positions[key]
            if pk is None or units == 0:
                continue
            for lot_id, acquired_on, lot_units, cost, currency in lots:
                if lot_id not in self.original_lots:
                    new.append(Lot(pk=lot_id, position_id=pk, acquired_on=acquired_on, units=lot_units, unit_cost=cost,
                                   cost_currency=currency))
                    continue
                kept.add(lot_id)
                if self.original_lots.get(lot_id) != lot_units:
                    changed.append(Lot(pk=lot_id, units=lot_units))
        gone = [lot_id for lot_id in self.original_lots if lot_id not in kept]
        if gone:
            Lot.objects.filter(pk__in=gone).delete()
        if changed:
            Lot.objects.bulk_update(changed, ["units"], batch_size=1000)
        if new:
            Lot.objects.bulk_create(new, batch_size=1000)
        self.original_lots = {}
        self._write_reliefs()

    def _write_reliefs(self) -> None:
        if not self.reliefs:
            return
        bases = dict(
            PortfolioAccount.objects.filter(pk__in={r.account_id for r in self.reliefs}).values_list("pk", "base_currency")
        )
        tables = {}
        rows = []
        for r in self.reliefs:
            currency = self.currencies[r.instrument_id]
            base = bases[r.account_id]
            table = tables.get(r.realized_on)
            if table is None:
                wanted = set(bases.values()) | {self.currencies[x.instrument_id] for x in self.reliefs}
                table = tables[r.realized_on] = FxTable(wanted, r.realized_on)
            try:
                rate = table.rate(currency, base)
            except MissingMarketData:
                rate = None
            cost = None if r.unit_cost is None else (r.unit_cost * r.units).quantize(MONEY_QUANTUM, ROUND_HALF_EVEN)
            gain = None if cost is None or r.proceeds is None else r.proceeds - cost

            def in_base(amount):
                return None if amount is None or rate is None else (amount * rate).quantize(MONEY_QUANTUM, ROUND_HALF_EVEN)

            rows.append(RealizedGain(
                account_id=r.account_id, instrument_id=r.instrument_id, lot_id=r.lot_id,
                acquired_on=r.acquired_on, units=r.units, realized_on=r.realized_on, term=r.term, currency=currency,
                proceeds=r.proceeds, cost=cost, gain=gain, base_currency=base, fx_rate=rate,
                proceeds_base=in_base(r.proceeds), cost_base=in_base(cost),
                gain_base=None if gain is None or rate is None else in_base(r.proceeds) - in_base(cost),
                trade_order_id=r.trade_order_id,
            ))
        RealizedGain.objects.bulk_create(rows, batch_size=1000)
        self.reliefs = []


def positions_set(*, units: dict, on_date: date, lots: dict | None = None, book: LotBook | None = None) -> LotBook:
    """Set positions' units as a custodian's snapshot says: `units` maps (account id,
    instrument id) → units (0 removes the position). A key in `lots` gets exactly those
    lots (LotInputs, already checked to add up); otherwise units added become one lot of
    unknown cost dated `on_date`, and units removed are relieved by the account's
    lot_method and recorded as realized at the latest stored price at or before
    `on_date` (unknown proceeds without one). A fixed number of queries; returns the
    flushed book."""
    lots = lots or {}
    if book is None:
        book = LotBook(units, on_date=on_date)
    removed = [key for key, wanted in units.items() if key not in lots and wanted < book.units(key)]
    rules = lot_rules({a for a, _ in removed}) if removed else {}
    prices = snapshot_prices({i for _, i in removed}, on_date) if removed else {}
    for key, wanted in units.items():
        if key in lots:
            book.replace(key, lots[key])
            continue
        change = wanted - book.units(key)
        if change > 0:
            book.add(key, units=change, unit_cost=None, acquired_on=on_date)
        elif change < 0:
            price = prices.get(key[1])
            proceeds = None if price is None else (-change * price[0]).quantize(MONEY_QUANTUM, ROUND_HALF_EVEN)
            method, long_term_days = rules.get(key[0], ("FIFO", 365))
            book.relieve(key, units=-change, proceeds=proceeds, method=method, long_term_days=long_term_days)
    book.flush()
    return book


def lot_rules(account_ids) -> dict:
    """account id → (lot_method, long_term_days) of its effective preferences (two queries)."""
    from rebalancing.services.preferences import lot_rules as effective  # noqa: PLC0415 (rebalancing's services import this module)

    return effective(account_ids)


def snapshot_prices(instrument_ids, on_date: date) -> dict:
    """The latest stored price (default source) at or before `on_date` per instrument:
    the proceeds of units a snapshot removes (one query)."""
    return latest_prices(instrument_ids, on_date)
