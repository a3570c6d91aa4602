"""Fills files (issue #19, item 5): the desk's executed units and prices, back into the
trade orders through the order transitions (docs/imports.md "Fills file").

A line is one fill of one aggregated order of the blotter: the orders of one execution,
instrument and side (the FIX order list's ClOrdID is not stored by Ballast, so it
cannot name the orders back). Its units are shared between the orders still open
(SENT_TO_EXECUTION, IN_EXECUTION, PARTIALLY_EXECUTED) pro rata to their open units,
each share rounded down to the instrument's block size; the remainder goes to the
largest order (by ordered units), then, when that one is full, to the next largest.

The file is read whole and every line checked on its own; then, in one transaction,
the aggregated orders one after the other: its orders locked, its lines shared and
checked against them, and (while no line has failed) every share applied by
`trade_orders_fill`, the order transitions' rules and records written in bulk
(PARTIALLY_EXECUTED, or EXECUTED_IN_MARKET when it completes the order; a
SENT_TO_EXECUTION order first goes to IN_EXECUTION). Any error refuses the file: the
rest is still checked, and the transaction's rollback leaves every order as it was.
"""

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal, localcontext

from django.db import transaction

from core.errors import DomainError
from portfolios.models import Instrument
from portfolios.models.fields import MONEY, PRICE, UNITS, is_currency_code
from rebalancing.models import Side, TradeOrder, TradeOrderStatus
from rebalancing.services.orders import trade_orders_fill

from ..models import ImportJob, ImportStatus
from . import staging as db
from .jobs import ErrorList, FileRows, header_index, import_fail, import_finish, import_progress

REQUIRED = ("execution_id", "instrument_id", "side", "units", "price")
OPTIONAL = ("currency",)
S = TradeOrderStatus
FILLABLE = (S.SENT_TO_EXECUTION, S.IN_EXECUTION, S.PARTIALLY_EXECUTED)
UNITS_QUANTUM = Decimal(1).scaleb(-UNITS["decimal_places"])


@dataclass
class FillLine:
    line: int
    execution_id: uuid.UUID
    instrument: Instrument
    side: str
    units: Decimal
    price: Decimal
    currency: str


@dataclass
class OrderState:
    """An order of an aggregated order while the file is planned: what is still open."""

    order: TradeOrder
    open: Decimal
    status: str
    steps: list = field(default_factory=list)  # (line, status, units, price)


def fill_shares(opens: list[Decimal], ordered: list[Decimal], units: Decimal, block: Decimal | None) -> list[Decimal]:
    """Share `units` between orders with these open units, pro rata to them, each share
    rounded down to `block` (None: the units precision); the remainder to the order with
    the most ordered units, then the next (ties: the first listed). `units` must not
    exceed the sum of `opens`. Exact: no float anywhere."""
    total = sum(opens, Decimal(0))
    step = block or UNITS_QUANTUM
    shares = []
    with localcontext() as context:
        context.prec = 60
        for open_ in opens:
            exact = open_ * units / total if total else Decimal(0)
            share = (exact / step).to_integral_value(rounding=ROUND_FLOOR) * step
            shares.append(min(share, open_).quantize(UNITS_QUANTUM))
    rest = units - sum(shares, Decimal(0))
    for index in sorted(range(len(opens)), key=lambda i: -ordered[i]):
        if rest <= 0:
            break
        extra = min(rest, opens[index] - shares[index])
        shares[index] += extra
        rest -= extra
    return shares


class InstrumentLookup:
    """ISIN or UUID → Instrument (any type: FX orders trade cash instruments), cached."""

    def __init__(self):
        self.cache: dict[str, tuple] = {}

    def resolve(self, ref: str) -> tuple[Instrument | None, str | None]:
        if ref not in self.cache:
            self.cache[ref] = self._resolve(ref)
        return self.cache[ref]

    @staticmethod
    def _resolve(ref: str) -> tuple[Instrument | None, str | None]:
        try:
            found = Instrument.objects.filter(pk=uuid.UUID(ref)).first()
            return (found, None) if found else (None, f"no instrument with UUID {ref}")
        except ValueError:
            found = Instrument.objects.filter(isin=ref.upper()).first() if len(ref) == 12 else None
            return (found, None) if found else (None, f"no instrument with ISIN {ref!r}")


def _read_lines(job: ImportJob, errors: ErrorList) -> tuple[list[FillLine], int]:
    """Every line checked on its own (the file is small: lines of aggregated orders)."""
    instruments = InstrumentLookup()
    lines: list[FillLine] = []
    count = 0
    with FileRows(job) as source:
        rows = iter(source)
        header = next(rows, None)
        if header is None:
            errors.add(0, "", "the file is empty (a header row is required)")
            return lines, 0
        columns = header_index(header, required=REQUIRED, optional=OPTIONAL, errors=errors)
        if errors:
            return lines, 0
        width = max(columns.values()) + 1
        for row in rows:
            count += 1
            if not any(cell.strip() for cell in row):
                continue
            row = row + [""] * (width - len(row))
            cell = {name: row[index].strip() for name, index in columns.items()}
            bad = False
            try:
                execution_id = uuid.UUID(cell["execution_id"])
            except ValueError:
                errors.add(count, "execution_id", "required" if not cell["execution_id"]
                           else f"{cell['execution_id']!r} is not a UUID")
                bad, execution_id = True, None
            instrument, message = instruments.resolve(cell["instrument_id"]) if cell["instrument_id"] else (None, "required")
            if message:
                errors.add(count, "instrument_id", message)
                bad = True
            side = cell["side"].upper()
            if side not in Side.values:
                errors.add(count, "side", f"must be one of {', '.join(Side.values)}")
                bad = True
            numbers = {}
            for name, spec in (("units", UNITS), ("price", PRICE)):
                value, message = db.decimal_of(cell[name] or "?", places=spec["decimal_places"],
                                               max_digits=spec["max_digits"], negative=False)
                if not cell[name]:
                    message = "required"
                elif message is None and value <= 0:
                    message = "must be greater than 0"
                if message:
                    errors.add(count, name, message)
                    bad = True
                numbers[name] = value
            currency = cell.get("currency", "").upper()
            if currency and not is_currency_code(currency):
                errors.add(count, "currency", f"{currency} is not an ISO 4217 currency code")
                bad = True
            if not bad:
                lines.append(FillLine(count, execution_id, instrument, side, numbers["units"], numbers["price"], currency))
    return lines, count


def _plan(key: tuple, lines: list[FillLine], errors: ErrorList) -> list[OrderState]:
    """Lock the orders of one aggregated order (execution, instrument id, side) and share
    its lines between them, in file order; errors for lines that name no open order,
    exceed the open units or do not fit the orders."""
    execution_id, instrument_id, side = key
    instrument = lines[0].instrument
    cache_instrument = TradeOrder.instrument.field.set_cached_value
    states = []
    for order in (TradeOrder.objects.filter(execution_id=execution_id, instrument_id=instrument_id, side=side,
                                            status__in=FILLABLE)
                  .select_for_update(of=("self",)).order_by("pk")):
        cache_instrument(order, instrument)  # one object for all its orders
        states.append(OrderState(order=order, open=order.units - order.executed_units, status=order.status))
    for fill in lines:
        what = f"{fill.side} {fill.instrument.isin or fill.instrument.pk} in execution {fill.execution_id}"
        if not states:
            errors.add(fill.line, "instrument_id",
                       f"no trade order {what} is in execution ({', '.join(FILLABLE)})")
            continue
        currencies = {state.order.currency for state in states}
        if fill.currency and fill.currency not in currencies:
            errors.add(fill.line, "currency", f"the orders {what} are in {', '.join(sorted(currencies))}")
            continue
        if not fill.currency and len(currencies) > 1:
            errors.add(fill.line, "currency", f"the orders {what} are in several currencies "
                                              f"({', '.join(sorted(currencies))}): name one in the currency column")
            continue
        # The line fills the orders of its currency (all of them when they share one).
        sharing = [state for state in states if state.order.currency == fill.currency] if fill.currency else states
        opens = [state.open for state in sharing]
        open_total = sum(opens, Decimal(0))
        if fill.units > open_total:
            errors.add(fill.line, "units", f"{fill.units} is more than the {open_total.normalize():f} units of {what} "
                                           "still open (earlier lines of the file included)")
            continue
        shares = fill_shares(opens, [state.order.units for state in sharing], fill.units, fill.instrument.block_size)
        for state, share in zip(sharing, shares):
            if not share:
                continue
            amount = share * fill.price
            if amount.adjusted() >= MONEY["max_digits"] - MONEY["decimal_places"]:
                errors.add(fill.line, "price", f"the fill's amount {amount:f} is too large")
                break
            state.open -= share
            state.steps.append((fill.line, S.EXECUTED_IN_MARKET if state.open == 0 else S.PARTIALLY_EXECUTED,
                                share, fill.price))
    return [state for state in states if state.steps]


class _Refused(Exception):
    """Rolls the planning transaction back (it wrote nothing) to fail the import."""


def fills_import_run(*, job: ImportJob) -> ImportJob:
    """Run a claimed fills import: FAILED with every error (nothing written), or DONE
    with every fill applied, in one transaction. The aggregated orders are taken one
    after the other (in a fixed order: two imports of one execution wait for each
    other), each planned and, while no line of the file has failed, applied at once by
    `trade_orders_fill` (the order transitions' rules and records, written in bulk), so
    memory holds one aggregated order's trade orders. After a bad line the rest is only
    checked, every error is reported, and the transaction rolls back whatever was applied."""
    errors = ErrorList()
    lines, rows = _read_lines(job, errors)
    import_progress(job, 30)
    user = job.created_by
    by_key: dict[tuple, list[FillLine]] = defaultdict(list)
    for fill in lines:
        by_key[(fill.execution_id, fill.instrument.pk, fill.side)].append(fill)
    fills = orders_filled = 0
    accounts = set()
    try:
        with transaction.atomic():
            for done, key in enumerate(sorted(by_key, key=lambda k: (str(k[0]), str(k[1]), k[2])), start=1):
                planned = _plan(key, by_key[key], errors)
                if errors:
                    continue
                try:
                    fills += trade_orders_fill(fills=[
                        (state.order, [(status, units, price) for _, status, units, price in state.steps])
                        for state in planned
                    ], user=user)
                except DomainError as exc:  # the plan checked the rules: a bug or a race, named
                    errors.add(by_key[key][0].line, "units", str(exc.detail))
                    continue
                orders_filled += len(planned)
                accounts.update(state.order.account_id for state in planned)
                import_progress(job, 30 + 70 * done / len(by_key), live=True)  # the row waits for the commit
            if errors:
                raise _Refused
            import_finish(job, status=ImportStatus.DONE, rows=rows, rows_changed=fills, accounts_changed=len(accounts),
                          orders_filled=orders_filled)
    except _Refused:
        import_fail(job, errors=errors.sorted(), error_count=errors.count, rows=rows)
    return job


__all__ = ["fill_shares", "fills_import_run"]
