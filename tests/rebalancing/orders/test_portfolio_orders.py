"""portfolio_order_create and the status a portfolio order takes from its trade orders.

The model is A 0.5, B 0.3, C 0.2, each at 10 EUR, tradable in hundredths (conftest)."""

from datetime import date
from decimal import Decimal

import pytest

from core.errors import BusinessRuleViolation, InvalidInput
from portfolios.models import AccountStatus, CashAccount, CashKind
from rebalancing.models import (
    Initiation,
    PortfolioOrder,
    PortfolioOrderStatus,
    Side,
    TradeOrder,
    TradeOrderStatus,
)
from rebalancing.services import portfolio_order_create, preferences_replace, trade_order_transition
from rebalancing.services.orders import portfolio_order_status_derive
from tests.factories import (
    AccountFactory,
    CashAccountFactory,
    CashInstrumentFactory,
    FxRateFactory,
    InstrumentFactory,
    PositionFactory,
    PriceFactory,
    make_allocation,
    make_configuration,
)

from .conftest import D, balances, units_held

pytestmark = pytest.mark.django_db
S = TradeOrderStatus
P = PortfolioOrderStatus


def order_lines(portfolio_order) -> dict:
    """instrument name → (side, units, unit price, trade amount), as plain strings; the
    securities only (a SELL's WITHDRAWAL is checked by its own tests)."""
    return {
        o.instrument.name: (o.side, f"{o.units.normalize():f}", f"{o.unit_price.normalize():f}",
                            f"{o.trade_amount.normalize():f}")
        for o in portfolio_order.trade_orders.select_related("instrument").exclude(transaction_type="WITHDRAWAL")
    }


def buy(account, amount, currency="EUR", **kwargs):
    return portfolio_order_create(account=account, side=Side.BUY, cash_amount=Decimal(amount), currency=currency, **kwargs)


def sell(account, amount, currency="EUR"):
    return portfolio_order_create(account=account, side=Side.SELL, cash_amount=Decimal(amount), currency=currency)


# --- BUY -------------------------------------------------------------------------------


def test_buy_invests_into_the_underweight_lines_in_proportion_to_their_shortfall(configured):
    # Held: C 100 units (1000 EUR). BUY 1000 → total 2000: targets A 1000, B 600, C 400.
    # Shortfalls A 1000, B 600 (C is 600 over and is not touched); 1000 of cash covers
    # 1000/1600 = 62.5 % of each: A 625, B 375.
    account = configured(units=(0, 0, 100), cash="1000")
    order = buy(account, "1000")
    assert (order.side, order.cash_amount, order.currency, order.status, order.initiation) == (
        Side.BUY, Decimal("1000"), "EUR", P.OPEN, Initiation.API,
    )
    assert order_lines(order) == {
        "Alpha ETF": ("BUY", "62.5", "10", "625"),
        "Beta ETF": ("BUY", "37.5", "10", "375"),
    }
    trade_orders = list(order.trade_orders.all())
    assert {(o.status, o.execution_id, o.account_id, o.transaction_type) for o in trade_orders} == {
        (S.OPEN, None, account.pk, "BUY")
    }
    # Nothing moves until the trade orders settle.
    assert balances(account) == {("EUR", CashKind.CASH): Decimal("1000")}


def test_buy_scales_the_shortfalls_down_together(configured):
    # Held: A 0, B 10 (100), C 140 (1400); BUY 500 → total 2000: A short 1000, B short 500,
    # C 1000 over (gets nothing). 500 is a third of the 1500 short: A 333.33333333 and
    # B 166.66666666 (rounded down to 8 places); units rounded down to the block of 0.01;
    # TRADE_AMOUNT basis keeps the amount: unit price = amount ÷ units (10 places).
    account = configured(units=(0, 10, 140), cash="500")
    lines = order_lines(buy(account, "500"))
    assert lines["Alpha ETF"] == ("BUY", "33.33", "10.0010000999", "333.33333333")
    assert lines["Beta ETF"] == ("BUY", "16.66", "10.0040016002", "166.66666666")
    assert "Gamma ETF" not in lines


def test_the_cash_target_does_not_shrink_the_investment(abc):
    # A model with a 10 % cash line: A 0.45, B 0.27, C 0.18, EUR 0.10. The client asked to
    # invest 1000, so all of it goes into the instruments, in the model's proportions.
    eur = CashInstrumentFactory(currency="EUR")
    account = AccountFactory()
    CashAccountFactory(account=account, balance=Decimal("1000"))
    PositionFactory(account=account, instrument=abc[2], units=Decimal("100"))
    weights = {abc[0]: "0.45", abc[1]: "0.27", abc[2]: "0.18", eur: "0.10"}
    make_configuration(account, make_allocation(weights, effective_from=date(2026, 1, 1)))
    assert order_lines(buy(account, "1000")) == {
        "Alpha ETF": ("BUY", "62.5", "10", "625"),
        "Beta ETF": ("BUY", "37.5", "10", "375"),
    }


def test_buy_of_a_balanced_account_follows_the_weights(configured):
    account = configured(units=(50, 30, 20), cash="100")
    assert order_lines(buy(account, "100")) == {
        "Alpha ETF": ("BUY", "5", "10", "50"),
        "Beta ETF": ("BUY", "3", "10", "30"),
        "Gamma ETF": ("BUY", "2", "10", "20"),
    }


def test_buy_needs_the_free_cash(configured, make_order, abc):
    account = configured(units=(0, 0, 100), cash="1000")
    with pytest.raises(BusinessRuleViolation) as caught:
        buy(account, "1000.01")
    assert "lacks the cash" in caught.value.detail
    assert [e.field for e in caught.value.errors] == ["account_id"]
    # A buy not yet settled holds its cash: 1000 − 300 = 700 free.
    make_order(account, abc[0], units="30", unit_price="10", status=S.EXECUTABLE)
    with pytest.raises(BusinessRuleViolation, match=r"only 700 EUR is free \(1000 available, 300 reserved"):
        buy(account, "701")
    assert buy(account, "700").trade_orders.count() == 2
    # … and so do the OPEN buys of that portfolio order: nothing is free now.
    with pytest.raises(BusinessRuleViolation, match="only 0 EUR is free"):
        buy(account, "1")
    assert PortfolioOrder.objects.count() == 1


def test_settled_and_ended_buys_hold_no_cash(configured, make_order, abc):
    account = configured(units=(0, 0, 100), cash="1000")
    for status in (S.SETTLED, S.CANCELLED, S.REJECTED, S.REPLACED):
        make_order(account, abc[0], units="30", unit_price="10", status=status)
    make_order(account, abc[0], side=Side.SELL, units="30", unit_price="10", status=S.ACCEPTED)
    assert buy(account, "1000").trade_orders.count() == 2


def test_buy_counts_only_the_cash_the_preferences_make_available(configured):
    account = configured(units=(0, 0, 100), cash="100")
    CashAccountFactory(account=account, kind=CashKind.SETTLEMENT, is_default=False, balance=Decimal("900"))
    assert buy(account, "1000").trade_orders.count() == 2
    preferences_replace(account=account, values={"available_cash": "CASH_ACCOUNTS_ONLY"})
    with pytest.raises(BusinessRuleViolation, match="only 0 EUR is free"):
        buy(account, "1000")


def test_buy_of_less_than_a_block_is_refused(configured, abc):
    account = configured(units=(0, 0, 100), cash="1000")
    with pytest.raises(BusinessRuleViolation, match="too small"):
        buy(account, "0.05")
    assert not PortfolioOrder.objects.exists() and not TradeOrder.objects.exists()


# --- SELL ------------------------------------------------------------------------------


def test_sell_raises_the_amount_from_the_overweight_lines(configured):
    # Held: A 60 (600), B 32 (320), C 8 (80). SELL 100 → total 900: targets A 450, B 270,
    # C 180. A is 150 over, B 50 over (C is short and not sold): A 75, B 25.
    account = configured(units=(60, 32, 8), cash="0")
    order = sell(account, "100")
    assert order.side == Side.SELL
    assert order_lines(order) == {
        "Alpha ETF": ("SELL", "7.5", "10", "75"),
        "Beta ETF": ("SELL", "2.5", "10", "25"),
    }


def test_sell_raises_from_every_line_by_weight_once_none_is_overweight(configured):
    # Balanced: A 50, B 30, C 20 (1000). SELL 100 → total 900: each line is over by its
    # weight × 100.
    account = configured(units=(50, 30, 20), cash="0")
    assert order_lines(sell(account, "100")) == {
        "Alpha ETF": ("SELL", "5", "10", "50"),
        "Beta ETF": ("SELL", "3", "10", "30"),
        "Gamma ETF": ("SELL", "2", "10", "20"),
    }


def test_sell_sells_a_holding_outside_the_model_whole_first(configured):
    # Held: A 51 (510), B 30.2 (302), C 18.8 (188) and D 4 (40, not in the model): 1040.
    # SELL 100 → total 940: targets A 470, B 282, C 188. D fits in the 100: sold whole
    # (SELL_ALL, by units), then the other 60 from the overweight lines: A 40 over, B 20.
    account = configured(units=(51, "30.2", "18.8"), cash="0")
    outside = InstrumentFactory(name="Delta ETF", block_size=Decimal("0.01"))
    PriceFactory(instrument=outside, effective_at=D, value=Decimal("10"))
    PositionFactory(account=account, instrument=outside, units=Decimal("4"))
    order = sell(account, "100")
    assert order_lines(order) == {
        "Delta ETF": ("SELL", "4", "10", "40"),
        "Alpha ETF": ("SELL", "4", "10", "40"),
        "Beta ETF": ("SELL", "2", "10", "20"),
    }
    assert order.trade_orders.get(instrument=outside).transaction_type == "SELL_ALL"


def test_sell_never_sells_units_already_being_sold(configured, abc):
    # A 80 (800), B 20 (200) on a model of A 0.5, B 0.5 (C 0). SELL 500 → A 50 units.
    # While those are in flight, SELL 400: without them A looks 500 over (40 more units,
    # 90 of 80 held); with them A is on target, so the 400 come from both lines by weight.
    account = configured(units=(80, 20, 0), cash="0", weights=("0.5", "0.5", None))
    first = sell(account, "500")
    assert order_lines(first) == {"Alpha ETF": ("SELL", "50", "10", "500")}
    second = sell(account, "400")
    assert order_lines(second) == {
        "Alpha ETF": ("SELL", "20", "10", "200"),
        "Beta ETF": ("SELL", "20", "10", "200"),
    }
    # Every order settles: A 80 − 50 − 20 = 10 left, B sold out, 900 raised and paid out
    # by the two withdrawals (§10).
    a, b, _ = abc
    for trade_order in TradeOrder.objects.all():
        for status in (S.ACCEPTED, S.EXECUTABLE, S.SENT_TO_EXECUTION, S.IN_EXECUTION, S.EXECUTED_IN_MARKET,
                       S.SETTLED_IN_MARKET, S.SETTLED):
            trade_order = trade_order_transition(order=trade_order, status=status)
    assert (units_held(account, a), units_held(account, b)) == (Decimal("10"), None)
    assert balances(account) == {("EUR", CashKind.CASH): Decimal("0")}


def test_sell_of_more_than_the_holdings_is_refused(configured):
    account = configured(units=(10, 0, 0), cash="5000")
    with pytest.raises(BusinessRuleViolation, match="cannot raise 100.01 EUR: its holdings are worth 100 EUR"):
        sell(account, "100.01")


def test_sell_needs_no_cash(configured):
    account = configured(units=(50, 30, 20), cash="-50")
    assert sell(account, "100").trade_orders.exclude(transaction_type="WITHDRAWAL").count() == 3


def test_sell_pays_out_by_one_withdrawal_from_its_cash_account(configured):
    account = configured(units=(60, 32, 8), cash="0")
    order = sell(account, "100")
    [withdrawal] = order.trade_orders.filter(transaction_type="WITHDRAWAL").select_related("instrument")
    assert (withdrawal.side, withdrawal.units, withdrawal.trade_amount, withdrawal.currency) == ("SELL", 100, 100, "EUR")
    assert withdrawal.instrument.type == "CASH" and withdrawal.instrument.currency == "EUR"
    assert withdrawal.cash_account == account.cash_accounts.get()


def test_an_outstanding_withdrawal_holds_its_cash_and_settling_it_debits_the_account(configured):
    from rebalancing.services import trade_order_transition

    account = configured(units=(60, 32, 8), cash="100")
    withdrawal = sell(account, "100").trade_orders.get(transaction_type="WITHDRAWAL")
    # The 100 EUR of cash are promised to the withdrawal: a BUY of 100 finds no free cash.
    with pytest.raises(BusinessRuleViolation, match="lacks the cash"):
        buy(account, "100")
    for status in ("ACCEPTED", "EXECUTABLE", "SENT_TO_EXECUTION", "IN_EXECUTION", "EXECUTED_IN_MARKET",
                   "SETTLED_IN_MARKET", "SETTLED"):
        trade_order_transition(order=withdrawal, status=status)
    assert account.cash_accounts.get().balance == 0


# --- The account and the input ---------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": AccountStatus.PENDING}, "is PENDING; only ACTIVE"),
        ({"status": AccountStatus.CLOSED}, "is CLOSED; only ACTIVE"),
        ({"locked": True}, "is locked"),
    ],
)
def test_the_account_must_be_active_and_unlocked(configured, change, message):
    account = configured(units=(0, 0, 100), cash="1000", **change)
    for side in Side.values:
        with pytest.raises(BusinessRuleViolation, match=message):
            portfolio_order_create(account=account, side=side, cash_amount=Decimal("10"), currency="EUR")
    assert not PortfolioOrder.objects.exists()


def test_the_account_must_be_configured(db):
    account = AccountFactory()
    CashAccountFactory(account=account, balance=Decimal("1000"))
    with pytest.raises(BusinessRuleViolation, match="has no configuration") as caught:
        buy(account, "10")
    assert caught.value.status == 422


def test_a_sub_portfolio_takes_no_portfolio_order(configured):
    parent = configured(units=(0, 0, 100))
    child = AccountFactory(parent=parent)
    CashAccountFactory(account=child, balance=Decimal("1000"))
    with pytest.raises(BusinessRuleViolation, match=f"sub-portfolio; place the order on its parent {parent.pk}"):
        buy(child, "10")


@pytest.mark.parametrize(
    ("side", "amount", "currency", "field", "message"),
    [
        ("BUY", "0", "EUR", "cash_amount", "greater than 0"),
        ("SELL", "-5", "EUR", "cash_amount", "greater than 0"),
        ("BUY", "1.000000001", "EUR", "cash_amount", "at most 8 decimal places"),
        ("BUY", "10", "eur", "currency", "not an ISO 4217"),
        ("BUY", "10", "XYZ", "currency", "not an ISO 4217"),
        ("BUY", "10", "USD", "currency", "base currency or one it holds cash in: EUR"),
        ("HOLD", "10", "EUR", "side", "must be one of BUY, SELL"),
    ],
)
def test_bad_input_is_invalid_input_naming_the_field(configured, side, amount, currency, field, message):
    account = configured(units=(0, 0, 100), cash="1000")
    with pytest.raises(InvalidInput) as caught:
        portfolio_order_create(account=account, side=side, cash_amount=Decimal(amount), currency=currency)
    assert [e.field for e in caught.value.errors] == [field]
    assert message in caught.value.errors[0].message


def test_a_held_foreign_currency_may_be_used(configured):
    account = configured(units=(0, 0, 100), cash="0")
    CashAccountFactory(account=account, currency="USD", is_default=False, balance=Decimal("2000"))
    FxRateFactory(base="EUR", quote="USD", rate=Decimal("1.25"), effective_at=D)
    # 1250 USD = 1000 EUR: the same split as the EUR case, bought in EUR (the instruments'
    # currency), so the EUR cash account must cover it too: it holds 0.
    with pytest.raises(BusinessRuleViolation, match="its buys in another currency need 1000 EUR"):
        buy(account, "1250", currency="USD")
    CashAccount.objects.filter(account=account, currency="EUR").update(balance=Decimal("1000"))
    assert order_lines(buy(account, "1250", currency="USD")) == {
        "Alpha ETF": ("BUY", "62.5", "10", "625"),
        "Beta ETF": ("BUY", "37.5", "10", "375"),
    }


def test_the_requesting_user_and_initiation_are_kept(configured, superuser):
    account = configured(units=(0, 0, 100), cash="1000")
    order = buy(account, "100", initiation=Initiation.SAVINGS_PLAN, user=superuser)
    assert (order.initiation, order.requested_by) == (Initiation.SAVINGS_PLAN, superuser)


# --- Status from the trade orders -------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([S.OPEN, S.OPEN], P.OPEN),
        ([S.OPEN, S.ACCEPTED], P.IN_PROGRESS),
        ([S.OPEN, S.CANCELLED], P.IN_PROGRESS),
        ([S.SETTLED, S.IN_EXECUTION], P.IN_PROGRESS),
        ([S.SETTLED, S.SETTLED], P.COMPLETED),
        ([S.CANCELLED, S.REPLACED], P.CANCELLED),
        ([S.CANCELLED, S.REJECTED], P.FAILED),
        ([S.SETTLED, S.CANCELLED], P.FAILED),
        ([S.REJECTED, S.REJECTED], P.FAILED),
    ],
)
def test_status_derived_from_the_trade_orders(statuses, expected):
    assert portfolio_order_status_derive(statuses) == expected


def test_status_follows_the_trade_orders_through_their_transitions(configured):
    account = configured(units=(0, 0, 100), cash="1000")
    order = buy(account, "1000")
    a, b = order.trade_orders.order_by("instrument__name")

    def status():
        order.refresh_from_db()
        return order.status

    trade_order_transition(order=a, status=S.ACCEPTED)
    assert status() == P.IN_PROGRESS
    for step in (S.EXECUTABLE, S.SENT_TO_EXECUTION, S.IN_EXECUTION, S.EXECUTED_IN_MARKET, S.SETTLED_IN_MARKET, S.SETTLED):
        trade_order_transition(order=a, status=step)
    assert status() == P.IN_PROGRESS
    for step in (S.ACCEPTED, S.EXECUTABLE, S.SENT_TO_EXECUTION, S.IN_EXECUTION):
        trade_order_transition(order=b, status=step)
    trade_order_transition(order=b, status=S.PARTIALLY_EXECUTED, executed_units=Decimal("20"))
    for step in (S.EXECUTED_IN_MARKET, S.SETTLED_IN_MARKET, S.SETTLED):
        trade_order_transition(order=b, status=step)
    assert status() == P.COMPLETED
    assert units_held(account, a.instrument) == Decimal("62.5")
    assert units_held(account, b.instrument) == Decimal("37.5")
    assert balances(account) == {("EUR", CashKind.CASH): Decimal("0")}


def test_cancelling_every_trade_order_cancels_the_portfolio_order(configured):
    account = configured(units=(0, 0, 100), cash="1000")
    order = buy(account, "1000")
    for trade_order in order.trade_orders.all():
        trade_order_transition(order=trade_order, status=S.CANCELLED)
    order.refresh_from_db()
    assert order.status == P.CANCELLED


def test_a_rejected_trade_order_fails_the_portfolio_order(configured):
    account = configured(units=(0, 0, 100), cash="1000")
    order = buy(account, "1000")
    a, b = order.trade_orders.all()
    trade_order_transition(order=a, status=S.REJECTED)
    order.refresh_from_db()
    assert order.status == P.IN_PROGRESS
    trade_order_transition(order=b, status=S.CANCELLED)
    order.refresh_from_db()
    assert order.status == P.FAILED


def test_a_rebalance_never_replaces_a_portfolio_orders_trade_orders_it_counts_them():
    """A client's cash order is an instruction, not a proposal: an execution keeps its
    OPEN trade orders and nets them like kept orders (§4.6)."""
    from decimal import Decimal

    from django.utils import timezone

    from rebalancing.models import ExecutionChunk, TradeOrder
    from rebalancing.services import execution_chunk_process, execution_create, portfolio_order_create
    from tests.factories import (
        AccountFactory,
        CashAccountFactory,
        InstrumentFactory,
        PriceFactory,
        make_allocation,
        make_configuration,
    )

    a, b = InstrumentFactory(), InstrumentFactory()
    today = timezone.localdate()
    for instrument in (a, b):
        PriceFactory(instrument=instrument, effective_at=today, value=Decimal("10"))
    account = AccountFactory()
    CashAccountFactory(account=account, balance=Decimal("1000"))
    make_configuration(account, make_allocation({a: "0.5", b: "0.5"}, effective_from=today))
    order = portfolio_order_create(account=account, side="BUY", cash_amount=Decimal("400"), currency="EUR")
    client_orders = set(order.trade_orders.values_list("pk", flat=True))
    assert client_orders

    execution = execution_create(method="FULL", trigger="API", account_ids=[account.pk])
    for chunk in ExecutionChunk.objects.filter(execution=execution):
        execution_chunk_process(chunk_id=chunk.pk)

    assert set(TradeOrder.objects.filter(pk__in=client_orders).values_list("status", flat=True)) == {"OPEN"}
    bought = sum(o.trade_amount for o in TradeOrder.objects.filter(account=account, side="BUY"))
    assert bought <= Decimal("1000")  # the rebalance netted the client's buys instead of doubling them
