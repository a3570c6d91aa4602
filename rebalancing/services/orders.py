"""Trade order transitions and settlement (spec §5), portfolio orders (spec §6).

The rules and every choice made where the spec is open are in docs/orders.md.
"""

from dataclasses import replace
from decimal import ROUND_HALF_EVEN, Decimal

from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from portfolios.errors import (
    BusinessRuleViolation,
    Conflict,
    DomainError,
    FieldError,
    InvalidInput,
    NotFound,
    raise_if_errors,
)
from portfolios.models import (
    AccountStatus,
    CashAccount,
    CashKind,
    Configuration,
    InstrumentType,
    PortfolioAccount,
    Position,
)
from portfolios.models.fields import MONEY, PRICE, UNITS, is_currency_code
from rebalancing import engine
from webhooks import events
from webhooks.payloads import portfolio_order_payload, trade_order_payload

from ..models import (
    Initiation,
    PortfolioOrder,
    PortfolioOrderStatus,
    Side,
    TradeOrder,
    TradeOrderStatus,
)
from ..selectors import book_load
from .preferences import account_preferences

S = TradeOrderStatus
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY["decimal_places"])
UNITS_QUANTUM = Decimal(1).scaleb(-UNITS["decimal_places"])
PRICE_QUANTUM = Decimal(1).scaleb(-PRICE["decimal_places"])

# --- Trade order status flow ------------------------------------------------------

# Each status → the statuses it may move to (docs/orders.md). PARTIALLY_EXECUTED may
# repeat (another fill) and may be skipped; CANCELLED and REJECTED end an order that is
# not executing yet.
TRANSITIONS: dict[str, frozenset] = {
    S.OPEN: frozenset({S.ACCEPTED, S.CANCELLED, S.REJECTED, S.REPLACED}),
    S.ACCEPTED: frozenset({S.EXECUTABLE, S.CANCELLED, S.REJECTED}),
    S.EXECUTABLE: frozenset({S.SENT_TO_EXECUTION, S.CANCELLED, S.REJECTED}),
    S.SENT_TO_EXECUTION: frozenset({S.IN_EXECUTION, S.CANCELLED, S.REJECTED}),
    S.IN_EXECUTION: frozenset({S.PARTIALLY_EXECUTED, S.EXECUTED_IN_MARKET}),
    S.PARTIALLY_EXECUTED: frozenset({S.PARTIALLY_EXECUTED, S.EXECUTED_IN_MARKET}),
    S.EXECUTED_IN_MARKET: frozenset({S.SETTLED_IN_MARKET}),
    S.SETTLED_IN_MARKET: frozenset({S.SETTLED}),
    S.SETTLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.REPLACED: frozenset(),
}
# Made by a rebalance only (spec §4.6), never by a person or a partner.
SYSTEM_TRANSITIONS = frozenset({(S.OPEN, S.REPLACED)})
ENDED = frozenset({S.SETTLED, S.CANCELLED, S.REJECTED, S.REPLACED})
# Not settled and not ended: their cash and units are still on the way.
LIVE = tuple(s for s in S.values if s not in ENDED)
FILL_STATUSES = frozenset({S.PARTIALLY_EXECUTED, S.EXECUTED_IN_MARKET})


def _text(value: Decimal) -> str:
    """A decimal as the API writes it: no exponent, no trailing zeros ("0.5", "100")."""
    return format(value.normalize(), "f") if value else "0"


def allowed_transitions(status: str, *, system: bool = False) -> list[str]:
    """The statuses an order in `status` may move to, in flow order."""
    return [s for s in S.values if s in TRANSITIONS[status] and (system or (status, s) not in SYSTEM_TRANSITIONS)]


def _decimal_errors(field: str, value, quantum: Decimal, max_digits: int) -> list[FieldError]:
    if not isinstance(value, Decimal) or not value.is_finite():
        return [FieldError(field, "must be a number")]
    if value <= 0:
        return [FieldError(field, "must be greater than 0")]
    places = -quantum.as_tuple().exponent
    if value.adjusted() >= max_digits - places:
        return [FieldError(field, f"at most {max_digits - places} digits before the decimal point")]
    if value != value.quantize(quantum, rounding=ROUND_HALF_EVEN):
        return [FieldError(field, f"at most {places} decimal places")]
    return []


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
        errors += _decimal_errors("executed_units", executed_units, UNITS_QUANTUM, UNITS["max_digits"])
    if executed_price is not None:
        errors += _decimal_errors("executed_price", executed_price, PRICE_QUANTUM, PRICE["max_digits"])
    return errors


def _record_fill(order: TradeOrder, status: str, executed_units, executed_price) -> None:
    """Add this fill to the order's executed units and amount (instrument currency)."""
    if executed_units is not None:
        total = order.executed_units + executed_units
        if total > order.units:
            raise InvalidInput([FieldError(
                "executed_units",
                f"{_text(executed_units)} more would make {_text(total)} executed of the order's "
                f"{_text(order.units)} units ({_text(order.executed_units)} executed so far)",
            )])
        price = executed_price if executed_price is not None else order.unit_price
        amount = executed_units * price
        if amount.adjusted() >= MONEY["max_digits"] - MONEY["decimal_places"]:
            raise InvalidInput([FieldError("executed_price", f"the fill's amount {_text(amount)} is too large")])
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


def _settlement_cash_account(order: TradeOrder) -> CashAccount:
    """The cash account a settlement books into, locked: the account's default cash
    account when it is in the order's currency, else its CASH account in that currency
    (created with a zero balance when missing)."""
    # of=self and an explicit order: the default ordering joins the account, which
    # FOR UPDATE would lock too.
    accounts = list(
        CashAccount.objects.select_for_update(of=("self",))
        .filter(account_id=order.account_id, currency=order.currency)
        .order_by("pk")
    )
    for candidate in accounts:
        if candidate.is_default:
            return candidate
    for candidate in accounts:
        if candidate.kind == CashKind.CASH:
            return candidate
    return CashAccount.objects.create(
        account_id=order.account_id, currency=order.currency, kind=CashKind.CASH, balance=Decimal(0), is_default=False
    )


def _settle(order: TradeOrder) -> None:
    """Book what was executed and not yet booked into the position and the cash account."""
    if not order.executed_units:
        _fill_the_rest(order)
    units = order.executed_units - order.settled_units
    amount = order.executed_amount - order.settled_amount
    if units <= 0 and amount == 0:
        return
    # One settlement per account at a time, and none during a holdings snapshot (which
    # locks the account too); NO KEY UPDATE lets other transactions insert orders meanwhile.
    list(PortfolioAccount.objects.select_for_update(no_key=True).filter(pk=order.account_id).values_list("pk"))
    instrument = order.instrument
    position = (
        Position.objects.select_for_update(of=("self",))
        .filter(account_id=order.account_id, instrument=instrument)
        .order_by("pk")
        .first()
    )
    held = position.units if position else Decimal(0)
    if order.side == Side.BUY:
        new_units, cash_change = held + units, -amount
    else:
        if units > held:
            raise Conflict(
                f"cannot settle trade order {order.pk}: it sells {_text(units)} units of {instrument.label} but "
                f"account {order.account_id} holds only {_text(held)}; correct the holdings first"
            )
        new_units, cash_change = held - units, amount
    if position is None:
        Position.objects.create(account_id=order.account_id, instrument=instrument, units=new_units)
    elif new_units == 0:
        position.delete()
    else:
        position.units = new_units
        position.save(update_fields=["units", "updated_at"])
    # A future's notional never moves cash (spec §4.8): its fees and margin arrive with
    # the custodian's cash balances.
    if instrument.type != InstrumentType.FUTURE and cash_change:
        cash = _settlement_cash_account(order)
        cash.balance += cash_change
        cash.save(update_fields=["balance", "updated_at"])
    order.settled_units += units
    order.settled_amount += amount


@transaction.atomic
def trade_order_transition(
    *, order: TradeOrder, status: str, executed_units: Decimal | None = None,
    executed_price: Decimal | None = None, user=None, system: bool = False,
) -> TradeOrder:
    """Move `order` to `status` and return it, reloaded and locked for this transaction.

    `executed_units` / `executed_price` report one fill (PARTIALLY_EXECUTED, or the last
    fill with EXECUTED_IN_MARKET); the price is per unit in the order's currency and
    defaults to the order's unit price. Reaching SETTLED books the executed units and
    amount into the account's position and cash in this same transaction. Then the
    order's portfolio order, if any, takes its status from its trade orders.
    `system=True` allows the transitions only a rebalance makes (OPEN → REPLACED).
    `user` is who asked (the order keeps no such field yet).

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
    if status not in TRANSITIONS[current] or ((current, status) in SYSTEM_TRANSITIONS and not system):
        allowed = allowed_transitions(current, system=system)
        raise Conflict(
            f"trade order {order.pk} cannot go from {current} to {status}; from {current} it may go to "
            + (", ".join(allowed) if allowed else f"nothing ({current} is final)")
        )
    if status in FILL_STATUSES:
        _record_fill(order, status, executed_units, executed_price)
    if status == S.SETTLED:
        _settle(order)
    order.status = status
    order.updated_at = timezone.now()
    order.save(update_fields=[
        "status", "executed_units", "executed_amount", "settled_units", "settled_amount", "updated_at"
    ])
    events.record("trade_order.status_changed", lambda: trade_order_payload(order, previous_status=current))
    if order.portfolio_order_id is not None:
        portfolio_order_status_refresh(portfolio_order=PortfolioOrder(pk=order.portfolio_order_id))
    return order


@transaction.atomic
def trade_orders_transition(*, order_ids, status: str, user=None) -> tuple[int, list[str]]:
    """Move each of `order_ids` to `status` (no fill reported), each in its own savepoint.

    Returns how many moved and one message per order that did not, naming it; an order
    that fails changes nothing, the others still move.
    """
    orders = {o.pk: o for o in TradeOrder.objects.filter(pk__in=list(order_ids))}
    done, errors = 0, []
    for order_id in sorted(set(order_ids), key=str):  # a fixed order: no deadlocks between two bulk calls
        order = orders.get(order_id)
        if order is None:
            errors.append(f"{order_id}: no such trade order")
            continue
        try:
            with transaction.atomic():
                trade_order_transition(order=order, status=status, user=user)
        except DomainError as exc:
            errors.append(f"{order_id}: {exc.detail}")
        else:
            done += 1
    return done, errors


# --- Portfolio orders -------------------------------------------------------------


def portfolio_order_status_derive(statuses) -> str:
    """A portfolio order's status from its trade orders' statuses (docs/orders.md)."""
    statuses = list(statuses)
    if not statuses:
        return PortfolioOrderStatus.OPEN
    if all(s in ENDED for s in statuses):
        if all(s == S.SETTLED for s in statuses):
            return PortfolioOrderStatus.COMPLETED
        if all(s in (S.CANCELLED, S.REPLACED) for s in statuses):
            return PortfolioOrderStatus.CANCELLED
        return PortfolioOrderStatus.FAILED
    if all(s == S.OPEN for s in statuses):
        return PortfolioOrderStatus.OPEN
    return PortfolioOrderStatus.IN_PROGRESS


@transaction.atomic
def portfolio_order_status_refresh(*, portfolio_order: PortfolioOrder) -> str:
    """Set the portfolio order's status from its trade orders; return it.

    Locks the portfolio order first, so two of its trade orders moving at once cannot
    leave it on a status derived from a stale view of the other.
    """
    locked = PortfolioOrder.objects.select_for_update().get(pk=portfolio_order.pk)
    status = portfolio_order_status_derive(
        TradeOrder.objects.filter(portfolio_order_id=locked.pk).values_list("status", flat=True)
    )
    if status != locked.status:
        events.record("portfolio_order.status_changed",
                      lambda: portfolio_order_payload(locked, status=status, previous_status=locked.status))
        locked.status = status
        locked.save(update_fields=["status", "updated_at"])
    portfolio_order.status = status
    return status


def _counted(cash_account: CashAccount, scope: str) -> bool:
    """Whether the available-cash preference (spec §4.2) counts this cash account."""
    if scope == engine.AvailableCash.CASH_ACCOUNTS_ONLY:
        return cash_account.kind == CashKind.CASH
    if scope == engine.AvailableCash.DEFAULT_ACCOUNT_ONLY:
        return cash_account.is_default
    return True


def _reserved_by_buys(account: PortfolioAccount) -> dict:
    """Currency → the cash the account's live buy orders will still take at settlement."""
    rows = (
        TradeOrder.objects.filter(account=account, side=Side.BUY, status__in=LIVE)
        .exclude(instrument__type=InstrumentType.FUTURE)
        .values("currency")
        .annotate(reserved=Sum(F("trade_amount") - F("settled_amount")))
    )
    return {row["currency"]: row["reserved"] or Decimal(0) for row in rows}


def _sells_in_flight(snapshot: engine.AccountSnapshot, market: engine.Market) -> list:
    """The group's live sells as kept orders for the engine, so their units are not sold
    twice. OPEN ones count too: a portfolio order never replaces orders."""
    group_ids, stack = [], [snapshot]
    while stack:
        node = stack.pop()
        group_ids.append(node.id)
        stack.extend(node.sub_accounts)
    rows = TradeOrder.objects.filter(account_id__in=group_ids, side=Side.SELL, status__in=LIVE).values_list(
        "account_id", "instrument_id", "transaction_type", "units", "settled_units", "trade_amount", "status", "currency"
    )
    return [
        engine.OutstandingOrder(
            account_id=account_id, instrument_id=instrument_id, side=engine.Side.SELL, transaction_type=transaction_type,
            units=units - settled_units, trade_amount=trade_amount,
            status=engine.OrderStatus.ACCEPTED if status == S.OPEN else engine.OrderStatus(status), currency=currency,
        )
        for account_id, instrument_id, transaction_type, units, settled_units, trade_amount, status, currency in rows
        if instrument_id in market.instruments
    ]


def _without_cash(snapshot: engine.AccountSnapshot, cash_ids: set, cash=()) -> engine.AccountSnapshot:
    """The group's positions with its cash replaced by `cash` (in the root account only)."""
    return replace(
        snapshot,
        positions=tuple(p for p in snapshot.positions if p.instrument_id not in cash_ids),
        cash_accounts=tuple(cash),
        sub_accounts=tuple(_without_cash(sub, cash_ids) for sub in snapshot.sub_accounts),
    )


def _invested_targets(lines, instruments: dict) -> tuple:
    """The target lines without the cash line, the others scaled to sum to 1: the order's
    amount is invested (or raised) whole, in the model's proportions (docs/orders.md)."""
    kinds = {pk: instrument.type for pk, instrument in instruments.items()}
    invested = [line for line in lines if kinds.get(line.instrument_id) != InstrumentType.CASH]
    total = sum((line.weight for line in invested if kinds.get(line.instrument_id) != InstrumentType.FUTURE), Decimal(0))
    if total <= 0:
        raise BusinessRuleViolation(
            "the account's allocation holds nothing but cash: a portfolio order has nothing to buy or sell",
            [FieldError("account_id", "the allocation has no instrument lines")],
        )
    if total == 1:
        return tuple(engine.TargetLine(line.instrument_id, line.weight) for line in invested)
    return tuple(
        engine.TargetLine(
            line.instrument_id,
            line.weight if kinds.get(line.instrument_id) == InstrumentType.FUTURE else line.weight / total,
        )
        for line in invested
    )


def _refuse(account: PortfolioAccount, detail: str, message: str):
    raise BusinessRuleViolation(f"account {account.pk}: {detail}", [FieldError("account_id", message)])


def _account_rules(account: PortfolioAccount) -> None:
    if account.status != AccountStatus.ACTIVE:
        _refuse(account, f"is {account.status}; only ACTIVE accounts take portfolio orders", "must be ACTIVE")
    if account.parent_id is not None:
        _refuse(
            account, f"is a sub-portfolio; place the order on its parent {account.parent_id}",
            "must not be a sub-portfolio",
        )
    if account.locked:
        _refuse(account, "is locked: it never receives trade orders", "must not be locked")
    if not Configuration.objects.filter(account=account).exists():
        _refuse(account, "has no configuration: no allocation to invest by", "must be configured")


def _input_errors(side, cash_amount, currency) -> list[FieldError]:
    errors = []
    if side not in Side.values:
        errors.append(FieldError("side", f"must be one of {', '.join(Side.values)}"))
    errors += _decimal_errors("cash_amount", cash_amount, MONEY_QUANTUM, MONEY["max_digits"])
    if not is_currency_code(currency or ""):
        errors.append(FieldError("currency", f"{currency} is not an ISO 4217 currency code"))
    return errors


def _check_cash(account, needs: dict, available: dict, reserved: dict, what: str) -> None:
    """422 unless, per currency, the available cash less the reserved covers the need."""
    for currency, need in sorted(needs.items()):
        free = available.get(currency, Decimal(0)) - reserved.get(currency, Decimal(0))
        if need > free:
            _refuse(
                account,
                f"lacks the cash: {what} {_text(need)} {currency}, but only {_text(max(free, Decimal(0)))} "
                f"{currency} is free ({_text(available.get(currency, Decimal(0)))} available, "
                f"{_text(reserved.get(currency, Decimal(0)))} reserved by buy orders not yet settled)",
                f"not enough {currency} cash",
            )


@transaction.atomic
def portfolio_order_create(
    *, account: PortfolioAccount, side: str, cash_amount: Decimal, currency: str,
    initiation: str = Initiation.API, user=None,
) -> PortfolioOrder:
    """Split a client's cash order into OPEN trade orders with the engine (spec §6).

    BUY invests `cash_amount` into the underweight lines (CONSERVATIVE on the holdings
    with that amount as the only cash); SELL raises it from the overweight lines first
    (CONSERVATIVE with that amount as a cash shortfall). Locks the account for the
    transaction, so two orders of one account are checked one after the other.

    Raises InvalidInput (400: side, cash_amount ≤ 0 or too precise, currency not the
    account's base currency nor one it holds cash in) and BusinessRuleViolation (422:
    account not ACTIVE, a sub-portfolio, locked, not configured; a BUY without the free
    cash; a SELL above the holdings' value; no trade order possible, with the reason).
    """
    raise_if_errors(_input_errors(side, cash_amount, currency))
    account = PortfolioAccount.objects.select_for_update(no_key=True).get(pk=account.pk)
    cash_accounts = list(CashAccount.objects.filter(account=account))
    if currency != account.base_currency and currency not in {c.currency for c in cash_accounts}:
        held = sorted({account.base_currency, *(c.currency for c in cash_accounts)})
        raise InvalidInput([FieldError(
            "currency", f"must be the account's base currency or one it holds cash in: {', '.join(held)}"
        )])
    _account_rules(account)

    preferences = account_preferences(account)
    scope = preferences.values["available_cash"]
    book = book_load(account_ids=[account.pk], on_date=timezone.localdate(), price_source=preferences.values["price_source"])
    targets = book.targets.get(account.pk)
    if targets is None:
        _refuse(account, "has no configuration: no allocation to invest by", "must be configured")
    if targets.error:
        _refuse(account, f"cannot compute its targets: {targets.error}", "targets unavailable")
    lines = _invested_targets(targets.lines, book.instruments)
    market = book.markets[account.base_currency]
    cash_ids = {pk for pk, instrument in book.instruments.items() if instrument.type == InstrumentType.CASH}

    available: dict = {}
    for cash_account in cash_accounts:
        if _counted(cash_account, scope):
            available[cash_account.currency] = available.get(cash_account.currency, Decimal(0)) + cash_account.balance
    reserved = _reserved_by_buys(account) if side == Side.BUY else {}
    if side == Side.BUY:
        _check_cash(account, {currency: cash_amount}, available, reserved, "the order invests")

    holdings = _without_cash(book.snapshots[account.pk], cash_ids)
    kept = []
    if side == Side.SELL:
        try:
            worth = engine.value_account(holdings, lines, market, engine.AvailableCash(scope)).total_value
        except engine.DataError as exc:
            _refuse(account, f"cannot be valued: {exc}", "cannot be valued")
        rate = market.fx_rates.get(currency) if currency != account.base_currency else Decimal(1)
        if rate is not None and cash_amount * rate > worth:
            _refuse(
                account,
                f"cannot raise {_text(cash_amount)} {currency}: its holdings are worth "
                f"{_text(worth)} {account.base_currency}",
                "the holdings are worth less than the amount",
            )
        kept = _sells_in_flight(holdings, market)
    amount = cash_amount if side == Side.BUY else -cash_amount
    snapshot = replace(holdings, cash_accounts=(engine.CashAccount(currency, amount, True, engine.CashAccountKind.CASH),))
    engine_preferences = replace(
        preferences.for_engine(),
        cash_range_min=None, cash_range_max=None, filter_by_min_max=False,
        negative_cash_buffer_pct=Decimal(0), negative_cash_buffer_amount=Decimal(0),
        positive_cash_buffer_pct=Decimal(0), positive_cash_buffer_amount=Decimal(0),
    )
    result = engine.rebalance(snapshot, lines, market, engine_preferences, engine.Method.CONSERVATIVE, kept)
    if result.status == engine.ResultStatus.FAILED:
        _refuse(account, f"cannot split the order: {result.reason}", "cannot split the order")
    proposals = [o for o in result.orders if o.side == side]
    if not proposals:
        _refuse(
            account,
            f"{_text(cash_amount)} {currency} is too small to {'buy' if side == Side.BUY else 'sell'} "
            "a whole block of any line (or every order falls below the minimum trade amount)",
            "no trade order possible",
        )
    if side == Side.BUY:
        # Cash settles in each instrument's currency (no FX conversion here).
        needs: dict = {}
        for proposal in proposals:
            if proposal.currency != currency and book.instruments[proposal.instrument_id].type != InstrumentType.FUTURE:
                needs[proposal.currency] = needs.get(proposal.currency, Decimal(0)) + proposal.trade_amount
        _check_cash(account, needs, available, reserved, "its buys in another currency need")

    portfolio_order = PortfolioOrder.objects.create(
        account=account, side=side, cash_amount=cash_amount, currency=currency, initiation=initiation,
        requested_by=user if user is not None and user.is_authenticated else None,
    )
    now = timezone.now()
    TradeOrder.objects.bulk_create(
        TradeOrder(
            account_id=p.account_id, instrument_id=p.instrument_id, side=p.side, transaction_type=p.transaction_type,
            units=p.units, unit_price=p.unit_price, trade_amount=p.trade_amount, currency=p.currency,
            execution_method=p.execution_method, status=S.OPEN, portfolio_order=portfolio_order,
            created_at=now, updated_at=now,
        )
        for p in proposals
    )
    return portfolio_order
