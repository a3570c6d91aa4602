"""Trade order transitions, fills and settlement (spec §5): docs/orders.md."""

import uuid
from decimal import ROUND_HALF_EVEN, Decimal

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import audit_record, audit_records
from core.errors import Conflict, DomainError, FieldError, InvalidInput, NotFound, raise_if_errors
from portfolios.models import CashAccount, CashKind, InstrumentType, PortfolioAccount
from portfolios.services.lots import LotBook, lot_rules
from portfolios.models.fields import MONEY, PRICE, UNITS
from portfolios.selectors import FxTable, MissingMarketData
from webhooks import events
from webhooks.payloads import trade_order_payload

from ...models import EXECUTION_ENDED, AccountLease, ExecutionResult, PortfolioOrder, Side, TradeOrder
from ...selectors.orders import decimal_text
from .flow import (
    FILL_STATUSES,
    MONEY_QUANTUM,
    PRICE_QUANTUM,
    SYSTEM_TRANSITIONS,
    TRANSITIONS,
    UNITS_QUANTUM,
    S,
    allowed_transitions,
    decimal_errors,
)
from .portfolio_orders import portfolio_order_status_refresh

TRANSACTION_FX = "FX"
CASH_MOVEMENTS = (TRANSACTION_FX, "WITHDRAWAL")  # settled into cash accounts only, no position
# What a transition may change besides the status, for its audit entry.
ORDER_AMOUNTS = ("executed_units", "executed_amount", "settled_units", "settled_amount")


def _fill_errors(status: str, executed_units, executed_price) -> list[FieldError]:
    errors = []
    if status not in FILL_STATUSES:
        for name, value in (("executed_units", executed_units), ("executed_price", executed_price)):
            if value is not None:
                errors.append(FieldError(name, "only with PARTIALLY_EXECUTED or EXECUTED_IN_MARKET"))
        return errors
    if executed_units is None:
        if status == S.PARTIALLY_EXECUTED:
            errors.append(FieldError("executed_units", "is required for PARTIALLY_EXECUTED: the units of this fill"))
        if executed_price is not None:
            errors.append(FieldError("executed_price", "needs executed_units: it is the price of one fill"))
    else:
        errors += decimal_errors("executed_units", executed_units, UNITS_QUANTUM, UNITS["max_digits"])
    if executed_price is not None:
        errors += decimal_errors("executed_price", executed_price, PRICE_QUANTUM, PRICE["max_digits"])
    return errors


def _record_fill(order: TradeOrder, status: str, executed_units, executed_price) -> None:
    """Add this fill to the order's executed units and amount (instrument currency)."""
    if executed_units is not None:
        total = order.executed_units + executed_units
        if total > order.units:
            raise InvalidInput([FieldError(
                "executed_units",
                f"{decimal_text(executed_units)} more would make {decimal_text(total)} executed of the order's "
                f"{decimal_text(order.units)} units ({decimal_text(order.executed_units)} executed so far)",
            )])
        price = executed_price if executed_price is not None else order.unit_price
        amount = executed_units * price
        if amount.adjusted() >= MONEY["max_digits"] - MONEY["decimal_places"]:
            raise InvalidInput([FieldError("executed_price", f"the fill's amount {decimal_text(amount)} is too large")])
        order.executed_units = total
        order.executed_amount += amount.quantize(MONEY_QUANTUM, ROUND_HALF_EVEN)
    elif status == S.EXECUTED_IN_MARKET:
        _fill_the_rest(order)


def _fill_the_rest(order: TradeOrder) -> None:
    """Execute the units still open at the order's own price; an order with no fill at
    all executes exactly as proposed (its units for its trade amount)."""
    if not order.executed_units:
        order.executed_units, order.executed_amount = order.units, order.trade_amount
        return
    rest = order.units - order.executed_units
    order.executed_units = order.units
    order.executed_amount += (rest * order.unit_price).quantize(MONEY_QUANTUM, ROUND_HALF_EVEN)


def _settlement_cash_account(order: TradeOrder, currency: str | None = None, cash_account_id=None) -> CashAccount:
    """The cash account a settlement books `currency` (default: the order's) into,
    locked: the order's own cash account (§10) when it is in that currency, else the
    account's default cash account when it is, else its CASH account in that currency
    (created with a zero balance when missing)."""
    currency = currency or order.currency
    # of=self and an explicit order: the default ordering joins the account, which
    # FOR UPDATE would lock too.
    accounts = list(
        CashAccount.objects.select_for_update(of=("self",))
        .filter(account_id=order.account_id, currency=currency)
        .order_by("pk")
    )
    for candidate in accounts:
        if cash_account_id is not None and candidate.pk == cash_account_id:
            return candidate
    for candidate in accounts:
        if candidate.is_default:
            return candidate
    for candidate in accounts:
        if candidate.kind == CashKind.CASH:
            return candidate
    return CashAccount.objects.create(
        account_id=order.account_id, currency=currency, kind=CashKind.CASH, balance=Decimal(0), is_default=False
    )


def _converting_cash_account(order: TradeOrder) -> CashAccount | None:
    """The order's cash account, locked, when it is in another currency than the order
    (fx_mode AUTO: a buy in a currency the account lacks is paid from its default
    account) and the account still has no cash account in the order's currency."""
    if order.cash_account_id is None:
        return None
    cash = (
        CashAccount.objects.select_for_update(of=("self",))
        .filter(pk=order.cash_account_id, account_id=order.account_id).order_by().first()
    )
    if cash is None or cash.currency == order.currency:
        return None
    if CashAccount.objects.filter(account_id=order.account_id, currency=order.currency).exists():
        return None
    return cash


def _converted(order: TradeOrder, cash: CashAccount, amount: Decimal) -> Decimal:
    """`amount` in the order's currency as `cash`'s currency at the latest FX rate
    (Conflict when there is none), rounded to the money precision."""
    try:
        rate = FxTable({order.currency, cash.currency}, timezone.localdate()).rate(order.currency, cash.currency)
    except MissingMarketData as exc:
        raise Conflict(f"cannot settle trade order {order.pk} from the {cash.currency} cash account: {exc}") from None
    return (amount * rate).quantize(MONEY_QUANTUM, ROUND_HALF_EVEN)


def _book_cash(order: TradeOrder, currency: str, change: Decimal, cash_account_id=None) -> CashAccount:
    cash = _settlement_cash_account(order, currency, cash_account_id)
    cash.balance += change
    cash.save(update_fields=["balance", "updated_at"])
    return cash


def _settle_cash_movement(order: TradeOrder, units: Decimal, amount: Decimal) -> None:
    """FX (§9) and WITHDRAWAL (§10) orders move cash only. An FX BUY adds the executed
    units of the bought currency (the instrument's) to its cash account (created when
    missing) and takes the executed amount from the paying one (the order's currency);
    a SELL the other way. A WITHDRAWAL debits its amount from its cash account."""
    list(PortfolioAccount.objects.select_for_update(no_key=True).filter(pk=order.account_id).values_list("pk"))
    changes = {}
    if order.transaction_type == TRANSACTION_FX:
        sign = 1 if order.side == Side.BUY else -1
        bought = _book_cash(order, order.instrument.currency, sign * units, order.counter_cash_account_id)
        paying = _book_cash(order, order.currency, -sign * amount, order.cash_account_id)
        for cash, change in ((bought, sign * units), (paying, -sign * amount)):
            changes[f"cash {cash.currency} {cash.kind}"] = (cash.balance - change, cash.balance)
    else:
        cash = _book_cash(order, order.currency, -amount, order.cash_account_id)
        changes[f"cash {cash.currency} {cash.kind}"] = (cash.balance + amount, cash.balance)
    account = PortfolioAccount.objects.only("pk", "client_id").get(pk=order.account_id)
    audit_record(account, "settle", changes, trade_order=order.pk)
    order.settled_units += units
    order.settled_amount += amount


def settlement_book(orders) -> LotBook:
    """The lots of the positions `orders` settle into (portfolios/services/lots.py),
    with each account's lot_method and long_term_days (`book.rules`) and the lots a
    tax-aware execution named for its sells (`book.named`, order id → [(lot id,
    units)]): a fixed number of queries for any number of orders, so a bulk settlement
    relieves its lots in one set of writes."""
    orders = [o for o in orders if o.transaction_type not in CASH_MOVEMENTS]
    book = LotBook({(o.account_id, o.instrument_id) for o in orders}, on_date=timezone.localdate())
    accounts = {o.account_id for o in orders}
    book.rules = lot_rules(accounts) if accounts else {}
    book.named = _named_lots([o for o in orders if o.side == Side.SELL and o.execution_id is not None])
    return book


def _named_lots(orders) -> dict:
    """order id → the (lot id, units) its tax-aware execution proposed it to relieve
    (ExecutionResult.tax_orders; the result is the account's or its parent's)."""
    if not orders:
        return {}
    accounts = {o.account_id for o in orders}
    accounts |= set(PortfolioAccount.objects.filter(pk__in=accounts, parent__isnull=False).values_list("parent_id", flat=True))
    wanted = {(str(o.execution_id), str(o.account_id), str(o.instrument_id)): o.pk for o in orders}
    named = {}
    rows = ExecutionResult.objects.filter(
        execution_id__in={o.execution_id for o in orders}, account_id__in=accounts, estimated_realized_gain__isnull=False,
    ).values_list("execution_id", "tax_orders")
    for execution_id, tax_orders in rows:  # stored by services/tax.py tax_orders_json
        for account_id, instrument_id, _, lots in tax_orders or ():
            order_id = wanted.get((str(execution_id), account_id, instrument_id))
            if order_id is not None:
                named[order_id] = [(uuid.UUID(lot_id), Decimal(units)) for lot_id, units in lots]
    return named


def _settle(order: TradeOrder, book: LotBook | None = None) -> None:
    """Book what was executed and not yet booked into the position (through its lots:
    `book`, or a book of its own written at once) and the cash account."""
    if not order.executed_units:
        _fill_the_rest(order)
    units = order.executed_units - order.settled_units
    amount = order.executed_amount - order.settled_amount
    if units <= 0 and amount == 0:
        return
    if order.transaction_type in CASH_MOVEMENTS:
        _settle_cash_movement(order, units, amount)
        return
    # One settlement per account at a time, and none during a holdings snapshot (which
    # locks the account too); NO KEY UPDATE lets other transactions insert orders meanwhile.
    list(PortfolioAccount.objects.select_for_update(no_key=True).filter(pk=order.account_id).values_list("pk"))
    instrument = order.instrument
    own_book = book is None
    if own_book:
        book = settlement_book([order])
    key = (order.account_id, instrument.pk)
    held = book.units(key)
    if order.side == Side.BUY:
        new_units, cash_change = held + units, -amount
        # The lot costs what was paid, fees included (§12), per unit.
        book.add(key, units=units, unit_cost=amount / units, acquired_on=book.on_date)
    else:
        if units > held:
            raise Conflict(
                f"cannot settle trade order {order.pk}: it sells {decimal_text(units)} units of {instrument.label} but "
                f"account {order.account_id} holds only {decimal_text(held)}; correct the holdings first"
            )
        new_units, cash_change = held - units, amount
        method, long_term_days = book.rules.get(order.account_id, ("FIFO", 365))
        book.relieve(
            key, units=units, proceeds=amount, method=method, long_term_days=long_term_days,
            trade_order_id=order.pk, named=book.named.get(order.pk, ()),
        )
    if own_book:
        book.flush()
    # A future's notional never moves cash (spec §4.8): its fees and margin arrive with
    # the custodian's cash balances.
    cash = None
    if instrument.type != InstrumentType.FUTURE and cash_change:
        cash = _converting_cash_account(order)
        if cash is not None:  # AUTO FX (§9): the custodian converts at the latest rate
            cash_change = _converted(order, cash, cash_change)
        else:
            cash = _settlement_cash_account(order, cash_account_id=order.cash_account_id)
        cash.balance += cash_change
        cash.save(update_fields=["balance", "updated_at"])
    _audit_settlement(order, held, new_units, cash, cash_change)
    order.settled_units += units
    order.settled_amount += amount


def _audit_settlement(order: TradeOrder, held, new_units, cash: CashAccount | None, cash_change) -> None:
    """The account's audit entry for what a settlement booked into its holdings: the
    position and the cash account, before → after (one SELECT, one INSERT)."""
    changes = {f"position {order.instrument.label}": (held, new_units)}
    if cash is not None:
        changes[f"cash {cash.currency} {cash.kind}"] = (cash.balance - cash_change, cash.balance)
    account = PortfolioAccount.objects.only("pk", "client_id").get(pk=order.account_id)
    audit_record(account, "settle", changes, trade_order=order.pk)


def _audit_transition(order: TradeOrder, previous: str, before: dict, user) -> None:
    """The order's audit entry: status and the amounts that moved, before → after."""
    audit_record(order, "settle" if order.status == S.SETTLED else "transition", _transition_changes(order, previous, before),
                 actor=user)


def _refuse_while_held(order: TradeOrder) -> None:
    """Conflict (409) when a held execution (approval thresholds) leases the order's
    account group: its proposal replaces these OPEN orders when it is activated, so an
    OPEN order accepted meanwhile would trade next to its replacement (both buys, say,
    on the same cash). Cancelling or rejecting it stays allowed: it goes either way.
    One query (the account's parent in a subquery)."""
    parent = PortfolioAccount.objects.filter(pk=order.account_id).values("parent_id")
    lease = (
        AccountLease.objects.filter(Q(account_id=order.account_id) | Q(account_id__in=parent), execution__held=True)
        .exclude(execution__status__in=EXECUTION_ENDED).values_list("execution_id", "execution__status").first()
    )
    if lease is not None:
        raise Conflict(
            f"trade order {order.pk} is OPEN in an account that execution {lease[0]} ({lease[1]}) will rebalance "
            "once approved, replacing its OPEN orders: approve, reject or cancel that execution first"
        )


@transaction.atomic
def trade_order_transition(
    *, order: TradeOrder, status: str, executed_units: Decimal | None = None,
    executed_price: Decimal | None = None, user=None, system: bool = False, lot_book: LotBook | None = None,
) -> TradeOrder:
    """Move `order` to `status` and return it, reloaded and locked for this transaction.

    `executed_units` / `executed_price` report one fill (PARTIALLY_EXECUTED, or the last
    fill with EXECUTED_IN_MARKET); the price is per unit in the order's currency and
    defaults to the order's unit price. Reaching SETTLED books the executed units and
    amount into the account's position and cash in this same transaction. Then the
    order's portfolio order, if any, takes its status from its trade orders.
    `system=True` allows the transitions only a rebalance makes (OPEN → REPLACED).
    `user` is who asked (the order keeps no such field yet). `lot_book`: a bulk
    settlement's shared book of lots (written by the caller); None: its own.

    Raises InvalidInput (400) naming a bad field or a fill beyond the order's units,
    Conflict (409) for a transition the flow does not allow or a sell of more units than
    the account holds, NotFound if the order is gone.
    """
    if status not in S.values:
        raise InvalidInput([FieldError("status", f"must be one of {', '.join(S.values)}")])
    raise_if_errors(_fill_errors(status, executed_units, executed_price))
    try:
        order = TradeOrder.objects.select_for_update(of=("self",)).select_related("instrument").get(pk=order.pk)
    except TradeOrder.DoesNotExist:
        raise NotFound(f"no trade order with id {order.pk}") from None
    current = order.status
    before = {name: getattr(order, name) for name in ORDER_AMOUNTS}
    _check_transition(order, current, status, system)
    if current == S.OPEN and status == S.ACCEPTED and order.portfolio_order_id is None:
        _refuse_while_held(order)
    if status in FILL_STATUSES:
        _record_fill(order, status, executed_units, executed_price)
    if status == S.SETTLED:
        _settle(order, lot_book)
    order.status = status
    order.updated_at = timezone.now()
    order.save(update_fields=[
        "status", "executed_units", "executed_amount", "settled_units", "settled_amount", "updated_at"
    ])
    events.record("trade_order.status_changed", lambda: trade_order_payload(order, previous_status=current))
    _audit_transition(order, current, before, user)
    if order.portfolio_order_id is not None:
        portfolio_order_status_refresh(portfolio_order=PortfolioOrder(pk=order.portfolio_order_id))
    return order


def _check_transition(order: TradeOrder, current: str, status: str, system: bool) -> None:
    """Conflict (409) unless the flow allows `order` to go from `current` to `status`."""
    if status in TRANSITIONS[current] and not ((current, status) in SYSTEM_TRANSITIONS and not system):
        return
    if current == S.PENDING_APPROVAL:
        raise Conflict(
            f"trade order {order.pk} cannot go from {current} to {status}; it waits for the approval of "
            f"execution {order.execution_id}, and moves only when that execution is approved (to OPEN), "
            "rejected or cancelled"
        )
    allowed = allowed_transitions(current, system=system)
    raise Conflict(
        f"trade order {order.pk} cannot go from {current} to {status}; from {current} it may go to "
        + (", ".join(allowed) if allowed else f"nothing ({current} is final)")
    )


def _transition_changes(order: TradeOrder, previous: str, before: dict) -> dict:
    changes = {"status": (previous, order.status)}
    changes.update((name, (before[name], getattr(order, name))) for name in ORDER_AMOUNTS if before[name] != getattr(order, name))
    return changes


FILL_BATCH = 2000  # orders per batch of a bulk fill (one UPDATE, one INSERT of audit entries)


def _fills_write(orders: list, now) -> None:
    """The orders' new status, executed units and amount: on PostgreSQL one UPDATE from
    arrays (Django's bulk_update builds a CASE per field and row, about a second per
    thousand orders), elsewhere one UPDATE per order."""
    table = connection.ops.quote_name(TradeOrder._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            ops = connection.ops
            cursor.executemany(
                f"UPDATE {table} SET status = %s, executed_units = %s, executed_amount = %s, updated_at = %s "
                f"WHERE id = %s",
                [(o.status, ops.adapt_decimalfield_value(o.executed_units), ops.adapt_decimalfield_value(o.executed_amount),
                  ops.adapt_datetimefield_value(now), o.pk.hex) for o in orders],
            )
            return
        cursor.execute(
            f"UPDATE {table} t SET status = v.status, executed_units = v.units, executed_amount = v.amount, "
            f"updated_at = %s FROM unnest(%s::uuid[], %s::text[], %s::numeric[], %s::numeric[]) "
            f"AS v(id, status, units, amount) WHERE t.id = v.id",
            [now, [o.pk for o in orders], [o.status for o in orders], [o.executed_units for o in orders],
             [o.executed_amount for o in orders]],
        )


@transaction.atomic
def trade_orders_fill(*, fills, user=None) -> int:
    """Report many fills at once (a fills file, docs/imports.md): `fills` are (order,
    steps) pairs, each order loaded and locked by the caller (`SELECT … FOR UPDATE`),
    `steps` its fills in order as (status, executed_units, executed_price) with status
    PARTIALLY_EXECUTED or EXECUTED_IN_MARKET; a SENT_TO_EXECUTION order first goes to
    IN_EXECUTION. Every move follows the rules of `trade_order_transition` and leaves
    the same records (the order's audit entry, showing the order as it was then; a
    `trade_order.status_changed` event), written in bulk FILL_BATCH orders at a time
    (one UPDATE, one INSERT of audit entries, one set of events), so memory holds one
    batch of records; then each portfolio order touched takes its status once. Raises
    as `trade_order_transition` does, naming the order (the transaction then writes
    nothing). Returns the fills applied (the moves to IN_EXECUTION not counted)."""
    wanted = events.wanted("trade_order.status_changed")
    now = timezone.now()
    applied = 0
    portfolio_orders = set()
    batch = []
    for order, steps in fills:
        batch.append((order, steps))
        if len(batch) >= FILL_BATCH:
            applied += _fills_apply(batch, now, wanted, user)
            batch = []
        if order.portfolio_order_id is not None:
            portfolio_orders.add(order.portfolio_order_id)
    if batch:
        applied += _fills_apply(batch, now, wanted, user)
    for portfolio_order_id in sorted(portfolio_orders, key=str):
        portfolio_order_status_refresh(portfolio_order=PortfolioOrder(pk=portfolio_order_id))
    return applied


def _fills_apply(fills: list, now, wanted: bool, user) -> int:
    """One batch of `trade_orders_fill`."""
    entries, payloads, applied = [], [], 0
    for order, steps in fills:
        moves = [(S.IN_EXECUTION, None, None)] if order.status == S.SENT_TO_EXECUTION else []
        for status, executed_units, executed_price in [*moves, *steps]:
            if status not in FILL_STATUSES and status != S.IN_EXECUTION:
                raise InvalidInput([FieldError("status", f"a fill moves an order to {', '.join(sorted(FILL_STATUSES))}")])
            raise_if_errors(_fill_errors(status, executed_units, executed_price))
            current = order.status
            before = {name: getattr(order, name) for name in ORDER_AMOUNTS}
            _check_transition(order, current, status, False)
            if status in FILL_STATUSES:
                _record_fill(order, status, executed_units, executed_price)
                applied += 1
            order.status = status
            order.updated_at = now
            entries.append((order, _transition_changes(order, current, before), str(order)))
            if wanted:
                payloads.append(trade_order_payload(order, previous_status=current))
    _fills_write([order for order, _ in fills], now)
    audit_records(entries, "transition", actor=user)
    if payloads:
        events.record_many("trade_order.status_changed", payloads)
    return applied


@transaction.atomic
def trade_orders_transition(*, order_ids, status: str, user=None) -> tuple[int, list[str]]:
    """Move each of `order_ids` to `status` (no fill reported), each in its own savepoint.

    Returns how many moved and one message per order that did not, naming it; an order
    that fails changes nothing, the others still move.
    """
    orders = {o.pk: o for o in TradeOrder.objects.filter(pk__in=list(order_ids))}
    book = None
    if status == S.SETTLED and orders:
        # Lock the accounts first (in a fixed order), then read their lots once: every
        # settlement below relieves from this book, written in one set of statements.
        account_ids = sorted({o.account_id for o in orders.values()}, key=str)
        list(PortfolioAccount.objects.select_for_update(no_key=True).filter(pk__in=account_ids).order_by("pk")
             .values_list("pk"))
        book = settlement_book(orders.values())
    done, errors = 0, []
    for order_id in sorted(set(order_ids), key=str):  # a fixed order: no deadlocks between two bulk calls
        order = orders.get(order_id)
        if order is None:
            errors.append(f"{order_id}: no such trade order")
            continue
        if book is not None:
            book.mark()
        try:
            with transaction.atomic():
                trade_order_transition(order=order, status=status, user=user, lot_book=book)
        except DomainError as exc:
            if book is not None:
                book.undo()
            errors.append(f"{order_id}: {exc.detail}")
        else:
            done += 1
    if book is not None:
        book.flush()
    return done, errors
