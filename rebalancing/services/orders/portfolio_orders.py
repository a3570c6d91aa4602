"""Portfolio orders (spec §6): cash in and out turned into trade orders by the
engine, and their status derived from those orders: docs/orders.md."""

from dataclasses import replace
from decimal import Decimal

from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from audit.services import audit_records
from core.errors import BusinessRuleViolation, FieldError, InvalidInput, raise_if_errors
from portfolios.models import AccountStatus, CashAccount, CashKind, Configuration, InstrumentType, PortfolioAccount
from portfolios.models.fields import MONEY, is_currency_code
from portfolios.services.instruments import cash_instrument_ensure
from rebalancing import engine
from webhooks import events
from webhooks.payloads import portfolio_order_created_payload, portfolio_order_payload

from ...models import Initiation, PortfolioOrder, PortfolioOrderStatus, Side, TradeOrder
from ...selectors.book import book_load
from ...selectors.orders import decimal_text
from ..preferences import account_preferences, book_options
from ..preview import order_cash_accounts
from .flow import ENDED, LIVE, MONEY_QUANTUM, S, decimal_errors

WITHDRAWAL = engine.TransactionType.WITHDRAWAL.value
FX = engine.TransactionType.FX.value

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
    """Currency → the cash the account's live buy, FX buy and withdrawal orders will
    still take at settlement (§4.6, §10: a withdrawal counts like a buy)."""
    rows = (
        TradeOrder.objects.filter(Q(side=Side.BUY) | Q(transaction_type=WITHDRAWAL), account=account, status__in=LIVE)
        .exclude(instrument__type=InstrumentType.FUTURE)
        .values("currency")
        .annotate(reserved=Sum(F("trade_amount") - F("settled_amount")))
    )
    return {row["currency"]: row["reserved"] or Decimal(0) for row in rows}


def _sells_in_flight(snapshot: engine.AccountSnapshot, market: engine.Market) -> list:
    """The group's live sells as kept orders for the engine, so their units are not sold
    twice. OPEN ones count too: a portfolio order never replaces orders; so do those
    PENDING_APPROVAL (an execution's sells waiting for approval may still trade)."""
    group_ids, stack = [], [snapshot]
    while stack:
        node = stack.pop()
        group_ids.append(node.id)
        stack.extend(node.sub_accounts)
    rows = TradeOrder.objects.filter(account_id__in=group_ids, side=Side.SELL, status__in=LIVE).exclude(
        transaction_type__in=(WITHDRAWAL, FX)  # cash movements: the order's own cash check covers them
    ).values_list(
        "account_id", "instrument_id", "transaction_type", "units", "settled_units", "trade_amount", "status", "currency"
    )
    return [
        engine.OutstandingOrder(
            account_id=account_id, instrument_id=instrument_id, side=engine.Side.SELL, transaction_type=transaction_type,
            units=units - settled_units, trade_amount=trade_amount,
            status=engine.OrderStatus.ACCEPTED if status in (S.OPEN, S.PENDING_APPROVAL) else engine.OrderStatus(status),
            currency=currency,
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
    errors += decimal_errors("cash_amount", cash_amount, MONEY_QUANTUM, MONEY["max_digits"])
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
                f"lacks the cash: {what} {decimal_text(need)} {currency}, but only {decimal_text(max(free, Decimal(0)))} "
                f"{currency} is free ({decimal_text(available.get(currency, Decimal(0)))} available, "
                f"{decimal_text(reserved.get(currency, Decimal(0)))} reserved by buy orders not yet settled)",
                f"not enough {currency} cash",
            )


@transaction.atomic
def portfolio_order_create(
    *, account: PortfolioAccount, side: str, cash_amount: Decimal, currency: str,
    initiation: str = Initiation.API, user=None, user_id: str = "",
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
    book = book_load(account_ids=[account.pk], on_date=timezone.localdate(), **book_options(preferences, {}))
    targets = book.targets.get(account.pk)
    if targets is None:
        _refuse(account, "has no configuration: no allocation to invest by", "must be configured")
    if targets.error:
        _refuse(account, f"cannot compute its targets: {targets.error}", "targets unavailable")
    lines = _invested_targets(targets.lines, book.instruments)
    market = book.market_of(account.pk)
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
                f"cannot raise {decimal_text(cash_amount)} {currency}: its holdings are worth "
                f"{decimal_text(worth)} {account.base_currency}",
                "the holdings are worth less than the amount",
            )
        kept = _sells_in_flight(holdings, market)
    amount = cash_amount if side == Side.BUY else -cash_amount
    snapshot = replace(holdings, cash_accounts=(engine.CashAccount(currency, amount, True, engine.CashAccountKind.CASH),))
    explicit = preferences.values["fx_mode"] == engine.FxMode.EXPLICIT
    engine_preferences = replace(
        preferences.for_engine(),
        cash_range_min=None, cash_range_max=None, filter_by_min_max=False,
        negative_cash_buffer_pct=Decimal(0), negative_cash_buffer_amount=Decimal(0),
        positive_cash_buffer_pct=Decimal(0), positive_cash_buffer_amount=Decimal(0),
        # A SELL pays out in its own currency: under EXPLICIT, proceeds in another
        # currency are sold back into it by FX orders (docs/orders.md).
        fx_repatriate=side == Side.SELL or preferences.values["fx_repatriate"],
    )
    result = engine.rebalance(snapshot, lines, market, engine_preferences, engine.Method.CONSERVATIVE, kept)
    if result.status == engine.ResultStatus.FAILED:
        _refuse(account, f"cannot split the order: {result.reason}", "cannot split the order")
    proposals = [o for o in result.orders if o.side == side]
    if not proposals:
        _refuse(
            account,
            f"{decimal_text(cash_amount)} {currency} is too small to {'buy' if side == Side.BUY else 'sell'} "
            "a whole block of any line (or every order falls below the minimum trade amount)",
            "no trade order possible",
        )
    if side == Side.BUY and not explicit:
        # AUTO (§9): a buy in a currency the account holds cash in is paid from that
        # cash; in a currency it lacks, the custodian converts from the default account
        # (within the amount checked above). Under EXPLICIT the FX orders bring it.
        held_currencies = {c.currency for c in cash_accounts}
        needs: dict = {}
        for proposal in proposals:
            if (proposal.currency != currency and proposal.currency in held_currencies
                    and book.instruments[proposal.instrument_id].type != InstrumentType.FUTURE):
                needs[proposal.currency] = needs.get(proposal.currency, Decimal(0)) + proposal.trade_amount
        _check_cash(account, needs, available, reserved, "its buys in another currency need")

    portfolio_order = PortfolioOrder.objects.create(
        account=account, side=side, cash_amount=cash_amount, currency=currency, initiation=initiation,
        requested_by=user if user is not None and user.is_authenticated else None, user_id=user_id or "",
    )
    now = timezone.now()
    rows = []
    for p in proposals:
        cash_id, counter_id = order_cash_accounts(book, p)
        rows.append(TradeOrder(
            account_id=p.account_id, instrument_id=p.instrument_id, side=p.side, transaction_type=p.transaction_type,
            units=p.units, unit_price=p.unit_price, trade_amount=p.trade_amount, currency=p.currency,
            execution_method=p.execution_method, status=S.OPEN, portfolio_order=portfolio_order,
            cash_account_id=cash_id, counter_cash_account_id=counter_id, created_at=now, updated_at=now,
        ))
    if side == Side.SELL:
        # §10: the cash leaves by a WITHDRAWAL trade order, counted like a buy until settled.
        rows.append(TradeOrder(
            account_id=account.pk, instrument=cash_instrument_ensure(currency=currency), side=Side.SELL,
            transaction_type=WITHDRAWAL, units=cash_amount, unit_price=Decimal(1), trade_amount=cash_amount,
            currency=currency, execution_method=engine.ExecutionMethod.UNITS, status=S.OPEN,
            portfolio_order=portfolio_order, cash_account_id=book.cash_account_in(account.pk, currency),
            created_at=now, updated_at=now,
        ))
    orders = TradeOrder.objects.bulk_create(rows)
    # Written in bulk, so no signal sees them: one audit entry per order, in one INSERT.
    audit_records(
        ((order, {name: (None, getattr(order, name)) for name in ("status", "side", "units", "trade_amount", "currency")})
         for order in orders),
        "create", actor=user, portfolio_order=portfolio_order.pk,
    )
    events.record("portfolio_order.created", lambda: portfolio_order_created_payload(portfolio_order, orders))
    return portfolio_order
