"""§9 cash per currency, the cash band, fx_mode AUTO/EXPLICIT, fx_repatriate, and
§10 instrument_ids: worked examples and properties."""

from dataclasses import replace
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from rebalancing.engine import (
    ExecutionMethod,
    FxMode,
    Method,
    Preferences,
    ResultStatus,
    Side,
    minor_unit,
    rebalance,
)

from .factories import D, account, cash, currency, market, stock, targets

# Base EUR; 1 USD = 0.5 EUR, 1 GBP = 1.25 EUR (rates are base per unit).
M = market(
    [stock("EU"), stock("US", "USD"), stock("UK", "GBP"), currency("EUR"), currency("USD"), currency("GBP")],
    {"EU": 10, "US": 10, "UK": 10},
    fx={"EUR": 1, "USD": "0.5", "GBP": "1.25"},
)
AUTO = Preferences()
EXPLICIT = Preferences(fx_mode=FxMode.EXPLICIT)
REPATRIATE = Preferences(fx_mode=FxMode.EXPLICIT, fx_repatriate=True)


def fx_of(result):
    return [o for o in result.orders if o.transaction_type == "FX"]


def settle(result, cash_by_currency: dict, m=M) -> dict:
    """Cash per currency after every order of ``result`` settles at its trade amount."""
    out = dict(cash_by_currency)
    for o in result.orders:
        if o.transaction_type == "FX":
            bought = m.instruments[o.instrument_id].currency
            sign = 1 if o.side == Side.BUY else -1
            out[bought] = out.get(bought, 0) + sign * o.units
            out[o.currency] = out.get(o.currency, 0) - sign * o.trade_amount
        else:
            sign = -1 if o.side == Side.BUY else 1
            out[o.currency] = out.get(o.currency, 0) + sign * o.trade_amount
    return out


# ---------------------------------------------------------------- worked examples


def test_eur_1_pct_and_usd_1_pct_are_two_targets_reached_with_one_fx_order():
    # EUR 10,000 only. Model: EU 49 %, US 49 %, EUR cash 1 %, USD cash 1 %.
    t = targets({"EU": "0.49", "US": "0.49", "EUR": "0.01", "USD": "0.01"})
    acc = account(cash_accounts=(cash(10000, "EUR"),))
    r = rebalance(acc, t, M, EXPLICIT, Method.FULL)
    # EU: 4,900 EUR; US: 4,900 EUR = 9,800 USD; USD cash target 100 EUR = 200 USD.
    [fx] = fx_of(r)
    assert (fx.instrument_id, fx.side, fx.units, fx.currency) == ("USD", Side.BUY, D(10000), "EUR")
    assert fx.unit_price == D("0.5") and fx.trade_amount == D(5000) and fx.execution_method == ExecutionMethod.UNITS
    after = settle(r, {"EUR": D(10000)})
    assert after == {"EUR": D(100), "USD": D(200)}  # 1 % each of the 10,000 EUR
    # FX orders come before the buys they fund.
    assert [o.transaction_type for o in r.orders] == ["FX", "BUY", "BUY"]


def test_auto_mode_makes_no_fx_order_and_spends_the_same():
    t = targets({"EU": "0.49", "US": "0.49", "EUR": "0.01", "USD": "0.01"})
    acc = account(cash_accounts=(cash(10000, "EUR"),))
    auto = rebalance(acc, t, M, AUTO, Method.FULL)
    explicit = rebalance(acc, t, M, EXPLICIT, Method.FULL)
    assert fx_of(auto) == []
    assert [o for o in auto.orders] == [o for o in explicit.orders if o.transaction_type != "FX"]


def test_fx_buy_is_rounded_up_to_the_cent_and_its_trade_amount_too():
    m = market([stock("US", "USD"), currency("EUR"), currency("USD")], {"US": 7}, fx={"USD": "0.9"})
    acc = account(cash_accounts=(cash(1000, "EUR"),))
    r = rebalance(acc, targets({"US": 1}), m, EXPLICIT, Method.FULL)
    [buy] = [o for o in r.orders if o.transaction_type == "BUY"]
    assert buy.trade_amount == D("1111.11111111")  # 1,000 EUR at 0.9
    [fx] = fx_of(r)
    assert fx.units == D("1111.12")  # rounded UP to the cent
    assert fx.trade_amount == D("1000.01")  # 1111.12 × 0.9 = 1000.008, up to the cent
    assert settle(r, {"EUR": D(1000)}, m)["USD"] >= 0


def test_usd_surplus_with_eur_shortfall_auto_spends_it_at_the_latest_rate():
    # USD 10,000 (= 5,000 EUR), no EUR; model EU 99 %, EUR cash 1 %.
    acc = account(cash_accounts=(cash(0, "EUR"), cash(10000, "USD", default=False)))
    t = targets({"EU": "0.99", "EUR": "0.01"})
    r = rebalance(acc, t, M, AUTO, Method.FULL)
    assert [(o.instrument_id, o.side, o.trade_amount) for o in r.orders] == [("EU", Side.BUY, D(4950))]


def test_usd_surplus_with_eur_shortfall_explicit_keeps_it_without_repatriation():
    acc = account(cash_accounts=(cash(0, "EUR"), cash(10000, "USD", default=False)))
    t = targets({"EU": "0.99", "EUR": "0.01"})
    r = rebalance(acc, t, M, EXPLICIT, Method.FULL)
    # No FX order may bring USD into EUR: the buy would overdraw the EUR account.
    assert r.orders == () and r.status == ResultStatus.NO_TRADES


def test_usd_surplus_with_eur_shortfall_explicit_repatriates_it():
    acc = account(cash_accounts=(cash(0, "EUR"), cash(10000, "USD", default=False)))
    t = targets({"EU": "0.99", "EUR": "0.01"})
    r = rebalance(acc, t, M, REPATRIATE, Method.FULL)
    [fx] = fx_of(r)
    assert (fx.instrument_id, fx.side, fx.units, fx.trade_amount, fx.currency) == ("USD", Side.SELL, D(10000), D(5000), "EUR")
    assert settle(r, {"EUR": D(0), "USD": D(10000)}) == {"EUR": D(50), "USD": D(0)}


def test_usd_surplus_funds_usd_buys_first_under_explicit():
    # USD 4,000 (2,000 EUR) and EUR 2,000; model EU 50 %, US 50 %: the USD buy is paid in USD.
    acc = account(cash_accounts=(cash(2000, "EUR"), cash(4000, "USD", default=False)))
    r = rebalance(acc, targets({"EU": "0.5", "US": "0.5"}), M, EXPLICIT, Method.FULL)
    assert fx_of(r) == []
    assert settle(r, {"EUR": D(2000), "USD": D(4000)}) == {"EUR": D(0), "USD": D(0)}


def test_cash_inside_its_band_is_not_moved_with_the_filter_on():
    # EUR cash line 2 % with band 1..5 %; cash 300 of 10,000 (3 %).
    t = targets({"EU": "0.98", "EUR": "0.02"}, bands={"EUR": ("0.01", "0.05")})
    acc = account(positions={"EU": 970}, balance=300)
    assert rebalance(acc, t, M, Preferences(), Method.FULL).orders[0].trade_amount == D(100)
    r = rebalance(acc, t, M, Preferences(filter_by_min_max=True), Method.FULL)
    assert r.status == ResultStatus.NO_TRADES


def test_cash_outside_its_band_is_brought_to_its_target():
    t = targets({"EU": "0.98", "EUR": "0.02"}, bands={"EUR": ("0.01", "0.05")})
    acc = account(positions={"EU": 940}, balance=600)  # 6 %
    r = rebalance(acc, t, M, Preferences(filter_by_min_max=True), Method.FULL)
    assert [(o.side, o.trade_amount) for o in r.orders] == [(Side.BUY, D(400))]


def test_fx_order_needs_a_cash_instrument():
    m = market([stock("US", "USD"), currency("EUR")], {"US": 10}, fx={"USD": "0.5"})
    r = rebalance(account(balance=1000), targets({"US": 1}), m, EXPLICIT, Method.FULL)
    assert r.status == ResultStatus.FAILED and "no CASH instrument for USD" in r.reason


def test_kept_fx_order_counts_as_cash_moved():
    from rebalancing.engine import OrderStatus, OutstandingOrder

    acc = account(cash_accounts=(cash(1000, "EUR"),))
    t = targets({"US": 1})
    first = rebalance(acc, t, M, EXPLICIT, Method.FULL)
    kept = tuple(
        OutstandingOrder("acc", o.instrument_id, o.side, o.transaction_type, o.units, o.trade_amount,
                         OrderStatus.ACCEPTED, o.currency)
        for o in first.orders
    )  # fmt: skip
    again = rebalance(acc, t, M, EXPLICIT, Method.FULL, kept)
    assert again.orders == ()


def test_instrument_ids_limit_the_orders_but_not_the_total():
    acc = account(positions={"EU": 100, "UK": 100}, balance=1000)  # 1,000 + 1,250 + 1,000
    t = targets({"EU": "0.5", "UK": "0.5"})
    r = rebalance(acc, t, M, AUTO, Method.FULL, instrument_ids=frozenset({"EU"}))
    assert r.total_value == D(3250)
    assert [(o.instrument_id, o.side, o.trade_amount) for o in r.orders] == [("EU", Side.BUY, D(625))]


def test_minor_units():
    assert minor_unit("EUR") == D("0.01") and minor_unit("JPY") == D(1) and minor_unit("KWD") == D("0.001")


# ---------------------------------------------------------------- properties

amounts = st.integers(min_value=0, max_value=10**6).map(lambda n: Decimal(n) / 100)


@given(eur=amounts, usd=amounts, gbp=amounts, held=st.integers(0, 500),
       w=st.sampled_from(["0.1", "0.2", "0.3"]), method=st.sampled_from(list(Method)),
       repatriate=st.booleans())  # fmt: skip
def test_explicit_never_overdraws_a_currency_that_had_cash(eur, usd, gbp, held, w, method, repatriate):
    acc = account(
        positions={"EU": held},
        cash_accounts=(cash(eur, "EUR"), cash(usd, "USD", default=False), cash(gbp, "GBP", default=False)),
    )
    t = targets({"US": w, "UK": w, "EU": D(1) - 2 * D(w) - D("0.02"), "EUR": "0.01", "USD": "0.01"})
    prefs = REPATRIATE if repatriate else EXPLICIT
    r = rebalance(acc, t, M, prefs, method)
    assert r.status != ResultStatus.FAILED, r.reason
    after = settle(r, {"EUR": eur, "USD": usd, "GBP": gbp})
    for cur in ("USD", "GBP"):
        assert after[cur] >= 0, (cur, after)
    for o in fx_of(r):
        q = minor_unit(M.instruments[o.instrument_id].currency)
        assert o.units == o.units.quantize(q) and o.units > 0 and o.currency == "EUR"
    # AUTO trades the same securities, and no FX.
    auto = rebalance(acc, t, M, Preferences(fx_repatriate=repatriate), method)
    assert fx_of(auto) == []


def test_outstanding_orders_of_uncounted_cash_accounts_change_no_cash():
    # §10 (FA 3.10): a kept buy of 300 paid from a cash account the scope leaves out.
    from rebalancing.engine import AvailableCash, OrderStatus, OutstandingOrder

    acc = account(positions={"EU": 50}, balance=500)
    t = targets({"EU": "0.5", "UK": "0.5"})
    kept = OutstandingOrder("acc", "UK", Side.BUY, "BUY", D(10), D(300), OrderStatus.ACCEPTED, "GBP")
    prefs = Preferences(available_cash=AvailableCash.CASH_ACCOUNTS_ONLY)
    counted = rebalance(acc, t, M, prefs, Method.CONSERVATIVE, (kept,))
    uncounted = rebalance(acc, t, M, prefs, Method.CONSERVATIVE, (replace(kept, counted=False),))
    # Counted: 500 − 300 × 1.25 = 125 of cash left; not counted: all 500 (the netting still applies:
    # UK needs 500 − 375 = 125 either way).
    assert uncounted.excess_cash == D(500) and counted.excess_cash == D(125)
    assert [o.trade_amount for o in uncounted.orders] == [D(100)]  # 10 units at 12.5 EUR
