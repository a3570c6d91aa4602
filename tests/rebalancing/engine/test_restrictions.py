"""Restrictions and substitutes in the engine (§11): examples, one rule at a time."""

from decimal import Decimal

import pytest

from rebalancing.engine import (
    Adjustment,
    Effect,
    Method,
    Preferences,
    RestrictedWeightTo,
    Restriction,
    Restrictions,
    ResultStatus,
    Rule,
    Side,
    rebalance,
    restricted_targets,
)

from .factories import D, account, by_instrument, currency, kept_order, market, stock, targets

A, B, C, X = "A", "B", "C", "X"
MARKET = market([stock(A), stock(B), stock(C), stock(X), currency("EUR")], {A: 10, B: 10, C: 20, X: 5})
MODEL = targets({A: "0.5", B: "0.5"})
PRO_RATA = Preferences(restricted_weight_to=RestrictedWeightTo.PRO_RATA)


def restricted(*entries, substitutes=None):
    return Restrictions([Restriction(i, Rule(r), "ESG") for i, r in entries], substitutes or {})


def test_no_buy_with_a_substitute_buys_the_substitute_instead():
    r = rebalance(account(balance=1000), MODEL, MARKET, restrictions=restricted((B, "NO_BUY"), substitutes={B: (C,)}))
    assert by_instrument(r) == {A: ("BUY", D(500)), C: ("BUY", D(500))}
    assert r.adjustments == (Adjustment(B, Rule.NO_BUY, Effect.SUBSTITUTED, "ESG", C),)


def test_no_buy_without_a_substitute_leaves_the_weight_in_cash_by_default():
    r = rebalance(account(balance=1000), MODEL, MARKET, restrictions=restricted((B, "NO_BUY")))
    assert by_instrument(r) == {A: ("BUY", D(500))}
    assert r.cash_after == D(500)
    assert r.adjustments == (Adjustment(B, Rule.NO_BUY, Effect.TO_CASH, "ESG"),)


def test_no_buy_with_pro_rata_spreads_the_weight_over_the_other_lines():
    r = rebalance(account(balance=1000), MODEL, MARKET, PRO_RATA, restrictions=restricted((B, "NO_BUY")))
    assert by_instrument(r) == {A: ("BUY", D(1000))}
    assert r.adjustments[0].effect == Effect.PRO_RATA


def test_a_substitute_the_account_may_not_buy_is_passed_over():
    r = rebalance(
        account(balance=1000), MODEL, MARKET,
        restrictions=restricted((B, "NO_BUY"), (C, "NO_HOLD"), substitutes={B: (C, X)}),
    )
    assert by_instrument(r) == {A: ("BUY", D(500)), X: ("BUY", D(500))}
    assert r.adjustments[0].substitute_id == X


def test_an_untradable_or_unpriced_substitute_is_passed_over():
    m = market([stock(A), stock(B), stock(C, tradable=False), stock(X), currency("EUR")], {X: None})
    r = rebalance(account(balance=1000), MODEL, m, restrictions=restricted((B, "NO_BUY"), substitutes={B: (C, X)}))
    assert by_instrument(r) == {A: ("BUY", D(500))}
    assert r.adjustments[0].effect == Effect.TO_CASH


def test_a_held_no_buy_line_may_stay_and_only_the_missing_part_moves():
    # B is held at 300 of its 500 target: it stays, the 200 it would have bought go to C.
    r = rebalance(
        account(positions={B: 30}, balance=700), MODEL, MARKET,
        restrictions=restricted((B, "NO_BUY"), substitutes={B: (C,)}),
    )
    assert by_instrument(r) == {A: ("BUY", D(500)), C: ("BUY", D(200))}


def test_an_overweight_no_buy_line_may_be_sold_and_is_not_an_adjustment():
    r = rebalance(account(positions={B: 80}, balance=200), MODEL, MARKET, restrictions=restricted((B, "NO_BUY")))
    assert by_instrument(r) == {B: ("SELL", D(300)), A: ("BUY", D(500))}
    assert r.adjustments == ()


def test_no_hold_sells_the_position_whole_and_redirects_the_weight():
    r = rebalance(account(positions={B: 20}, balance=800), MODEL, MARKET, restrictions=restricted((B, "NO_HOLD")))
    orders = by_instrument(r)
    assert orders[B] == ("SELL", D(200))
    assert [o.transaction_type for o in r.orders if o.instrument_id == B] == ["SELL_ALL"]
    assert B not in {i for i, (side, _) in orders.items() if side == "BUY"}
    assert {a.effect for a in r.adjustments} == {Effect.TO_CASH, Effect.SOLD}


@pytest.mark.parametrize("method", [Method.CONSERVATIVE, Method.EXCHANGE])
def test_no_hold_sells_whole_in_the_cash_methods_too(method):
    # X is outside the model; CONSERVATIVE would otherwise keep it.
    r = rebalance(account(positions={A: 50, B: 50, X: 7}, balance=0), MODEL, MARKET, method=method,
                  restrictions=restricted((X, "NO_HOLD")))  # fmt: skip
    assert [(o.instrument_id, o.side, o.units) for o in r.orders if o.instrument_id == X] == [(X, Side.SELL, D(7))]


def test_no_sell_keeps_an_overweight_position_and_counts_it():
    r = rebalance(account(positions={B: 80}, balance=200), MODEL, MARKET, restrictions=restricted((B, "NO_SELL")))
    # B stays at 800 of 1000; A gets what cash there is.
    assert by_instrument(r) == {A: ("BUY", D(200))}
    assert r.adjustments == (Adjustment(B, Rule.NO_SELL, Effect.HELD, "ESG"),)


def test_no_sell_outside_the_model_is_not_sold_by_full():
    r = rebalance(account(positions={X: 10}, balance=950), MODEL, MARKET, restrictions=restricted((X, "NO_SELL")))
    assert by_instrument(r) == {A: ("BUY", D(475)), B: ("BUY", D(475))}
    assert r.adjustments[0].effect == Effect.HELD


def test_no_sell_and_no_buy_freeze_a_line():
    r = rebalance(
        account(positions={B: 80}, balance=200), MODEL, MARKET,
        restrictions=Restrictions([Restriction(B, Rule.NO_SELL, "insider"), Restriction(B, Rule.NO_BUY, "ESG")]),
    )
    assert B not in by_instrument(r)
    r = rebalance(
        account(positions={B: 10}, balance=900), MODEL, MARKET,
        restrictions=Restrictions([Restriction(B, Rule.NO_SELL, "insider"), Restriction(B, Rule.NO_BUY, "ESG")]),
    )
    assert B not in by_instrument(r)


def test_no_hold_beats_no_buy_when_lists_overlap():
    r = rebalance(
        account(positions={B: 20}, balance=800), MODEL, MARKET,
        restrictions=Restrictions([Restriction(B, Rule.NO_BUY, "ESG"), Restriction(B, Rule.NO_HOLD, "Sanctions")]),
    )
    assert by_instrument(r)[B] == ("SELL", D(200))
    assert Adjustment(B, Rule.NO_HOLD, Effect.SOLD, "Sanctions") in r.adjustments


def test_locked_units_of_a_no_hold_instrument_are_not_sold():
    sub = account("sub", positions={B: 20}, locked=True)
    r = rebalance(account(balance=800, subs=(sub,)), MODEL, MARKET, restrictions=restricted((B, "NO_HOLD")))
    assert all(o.instrument_id != B for o in r.orders)


def test_a_locked_account_is_skipped_whatever_its_restrictions():
    r = rebalance(account(positions={B: 20}, locked=True), MODEL, MARKET, restrictions=restricted((B, "NO_HOLD")))
    assert r.status == ResultStatus.SKIPPED_LOCKED and r.orders == ()


def test_kept_buy_of_a_no_buy_instrument_is_not_topped_up():
    r = rebalance(
        account(balance=1000), MODEL, MARKET, outstanding_orders=[kept_order(B, "BUY", "100", "10")],
        restrictions=restricted((B, "NO_BUY")),
    )
    assert B not in by_instrument(r)


def test_min_max_band_moves_to_a_new_substitute_line():
    model = targets({A: "0.5", B: "0.5"}, bands={B: ("0.45", "0.55")})
    # C already at 480 of the 500 it takes over: inside B's band, so not traded.
    r = rebalance(
        account(positions={C: 24}, balance=520), model, MARKET, Preferences(filter_by_min_max=True),
        restrictions=restricted((B, "NO_BUY"), substitutes={B: (C,)}),
    )
    assert C not in by_instrument(r)


def test_restrictions_on_instruments_the_account_neither_holds_nor_targets_change_nothing():
    plain = rebalance(account(positions={A: 10}, balance=900), MODEL, MARKET)
    r = rebalance(account(positions={A: 10}, balance=900), MODEL, MARKET,
                  restrictions=restricted((X, "NO_HOLD"), (C, "NO_SELL")))  # fmt: skip
    assert r == plain


def test_restricted_targets_keep_the_sum_of_the_weights():
    model = targets({A: "0.3", B: "0.3", C: "0.3", "EUR": "0.1"})
    new, extra_cash, adjustments = restricted_targets(model, MARKET, PRO_RATA, restricted((B, "NO_BUY")))
    assert sum(t.weight for t in new) + extra_cash == Decimal(1)
    assert {t.instrument_id: t.weight for t in new} == {A: D("0.45"), C: D("0.45"), "EUR": D("0.1")}
