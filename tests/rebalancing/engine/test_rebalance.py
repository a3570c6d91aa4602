"""§4 rebalancing rules: methods, buffers, cash range, min/max filter, sell-all,
cash from sells, futures, the cash line, result statuses."""

from decimal import Decimal

import pytest

from rebalancing.engine import (
    ExecutionMethod,
    FuturesCost,
    Method,
    Preferences,
    ResultStatus,
    Side,
    rebalance,
)

from .factories import D, account, by_instrument, cash, currency, future, market, stock, targets

M = market([stock("A"), stock("B"), stock("C"), stock("D"), stock("X"), currency("EUR")], {})
FILTER = Preferences(filter_by_min_max=True)
CONSERVATIVE, EXCHANGE, FULL, FIO = (
    Method.CONSERVATIVE,
    Method.EXCHANGE,
    Method.FULL,
    Method.FULL_INCLUDING_ORDERS,
)


def run(positions, balance, weights, method=FULL, prefs=None, bands=None, m=M, **kw):
    return rebalance(account(positions=positions, balance=balance, **kw), targets(weights, bands), m,
                     prefs or Preferences(), method)  # fmt: skip


# ---------------------------------------------------------------- §4.1 methods


def test_conservative_invests_excess_cash_in_underweight_lines_only():
    r = run({"A": 300, "B": 500, "C": 100}, 100, {"A": "0.4", "B": "0.4", "C": "0.2"}, CONSERVATIVE)
    assert by_instrument(r) == {"A": ("BUY", D(50)), "C": ("BUY", D(50))}
    assert r.status == ResultStatus.PROPOSED and r.excess_cash == 100 and r.cash_after == 0


def test_excess_cash_is_spent_in_proportion_to_shortfall():
    # A is 150 under, C 50 under: 100 of cash goes 75 / 25
    r = run({"A": 250, "B": 500, "C": 150}, 100, {"A": "0.4", "B": "0.4", "C": "0.2"}, CONSERVATIVE)
    assert by_instrument(r) == {"A": ("BUY", D(75)), "C": ("BUY", D(25))}


def test_excess_cash_never_buys_past_a_lines_target():
    r = run({"A": 100, "B": 400}, 500, {"A": "0.5", "B": "0.5"}, CONSERVATIVE)
    assert by_instrument(r) == {"A": ("BUY", D(400)), "B": ("BUY", D(100))}
    r = run({"A": 100, "B": 800}, 100, {"A": "0.5", "B": "0.5"}, CONSERVATIVE)
    assert by_instrument(r) == {"A": ("BUY", D(100))} and r.cash_after == 0


def test_conservative_covers_a_shortfall_by_selling_overweight_lines_in_proportion():
    r = run({"A": 600, "B": 300, "C": 200}, -100, {"A": "0.3", "B": "0.2", "C": "0.5"}, CONSERVATIVE)
    assert by_instrument(r) == {"A": ("SELL", D(75)), "B": ("SELL", D(25))}
    assert r.cash_after == 0


def test_shortfall_beyond_overweight_lines_sells_all_lines_by_target_weight():
    # E = -100 - 300 (buffer) = -400; overweights give 60 + 40, the other 300
    # comes from all lines by weight: 150 / 90 / 60.
    prefs = Preferences(negative_cash_buffer_amount=D(300))
    r = run({"A": 560, "B": 340, "C": 200}, -100, {"A": "0.5", "B": "0.3", "C": "0.2"}, CONSERVATIVE, prefs)
    assert r.excess_cash == -400
    assert by_instrument(r) == {"A": ("SELL", D(210)), "B": ("SELL", D(130)), "C": ("SELL", D(60))}


def test_shortfall_by_target_weight_spreads_what_a_line_cannot_give():
    # T 800, E = -10 - 300 = -310. Overweights give A 110 + B 50; the other 150
    # by weight would take 30 from C, which holds 10: A and B share the rest.
    prefs = Preferences(negative_cash_buffer_amount=D(300))
    r = run({"A": 510, "B": 290, "C": 10}, -10, {"A": "0.5", "B": "0.3", "C": "0.2"}, CONSERVATIVE, prefs)
    assert by_instrument(r) == {"A": ("SELL", D("197.5")), "B": ("SELL", D("102.5")), "C": ("SELL", D(10))}


def test_exchange_sells_overweight_lines_only_to_fund_buys():
    # B sits inside its band (filter on), so only C's 50 needs funding
    bands = {"B": ("0.2", "0.4")}
    prefs = Preferences(filter_by_min_max=True)
    weights = {"A": "0.3", "B": "0.3", "C": "0.4"}
    ex = run({"A": 400, "B": 250, "C": 350}, 0, weights, EXCHANGE, prefs, bands)
    assert by_instrument(ex) == {"A": ("SELL", D(50)), "C": ("BUY", D(50))}
    full = run({"A": 400, "B": 250, "C": 350}, 0, weights, FULL, prefs, bands)
    assert by_instrument(full) == {"A": ("SELL", D(100)), "C": ("BUY", D(50))}


def test_exchange_never_sells_when_cash_covers_the_buys():
    r = run({"A": 100, "B": 500}, 400, {"A": "0.5", "B": "0.5"}, EXCHANGE)
    assert by_instrument(r) == {"A": ("BUY", D(400))}


def test_exchange_sells_in_proportion_to_excess():
    # A +300, B +100 over; C 100 under; D under but inside its band
    r = run({"A": 600, "B": 300, "C": 100, "D": 0}, 0, {"A": "0.3", "B": "0.2", "C": "0.2", "D": "0.3"},
            EXCHANGE, FILTER, {"D": ("0", "0.5")})  # fmt: skip
    assert by_instrument(r) == {"A": ("SELL", D(75)), "B": ("SELL", D(25)), "C": ("BUY", D(100))}


def test_full_sells_all_overweight_and_buys_all_underweight():
    r = run({"A": 600, "B": 300, "C": 100}, 0, {"A": "0.3", "B": "0.2", "C": "0.5"}, FULL)
    assert by_instrument(r) == {"A": ("SELL", D(300)), "B": ("SELL", D(100)), "C": ("BUY", D(400))}


def test_full_brings_cash_to_its_target():
    r = run({"A": 500}, 500, {"A": "0.9", "EUR": "0.1"}, FULL)
    assert by_instrument(r) == {"A": ("BUY", D(400))} and r.cash_after == 100


def test_full_scales_buys_down_together_when_cash_is_short():
    # T 300: A 150 over target 80; B 120 and C 30 under. 80 % of A's 80 plus
    # 70 of cash = 134 for 150 of buys: both × 134 / 150.
    prefs = Preferences(cash_from_sells_pct=D(80))
    r = run({"A": 230, "B": 0, "C": 0}, 70, {"A": "0.5", "B": "0.4", "C": "0.1"}, FULL, prefs)
    assert by_instrument(r) == {"A": ("SELL", D(80)), "B": ("BUY", D("107.2")), "C": ("BUY", D("26.8"))}


def test_full_including_orders_without_orders_is_full():
    args = ({"A": 600, "B": 300, "C": 100}, 0, {"A": "0.3", "B": "0.2", "C": "0.5"})
    assert run(*args, FIO).orders == run(*args, FULL).orders


def test_cash_line_sets_the_cash_target():
    r = run({"A": 1000}, 0, {"A": "0.75", "EUR": "0.25"}, FULL)
    assert by_instrument(r) == {"A": ("SELL", D(250))} and r.cash_after == 250


def test_no_cash_line_means_a_cash_target_of_zero():
    r = run({"A": 0}, 250, {"A": "1"}, FULL)
    assert by_instrument(r) == {"A": ("BUY", D(250))} and r.cash_after == 0


# ---------------------------------------------------------------- §4.3 buffers


def test_buffer_negative_cash_uses_larger_of_pct_and_amount():
    prefs = Preferences(negative_cash_buffer_pct=D(5), negative_cash_buffer_amount=D(15))
    r = run({"A": 1200}, -200, {"A": 1}, CONSERVATIVE, prefs)
    assert r.excess_cash == D(-215)  # max(10, 15)
    assert by_instrument(r) == {"A": ("SELL", D(215))}
    r = run({"A": 3000}, -1000, {"A": 1}, CONSERVATIVE, prefs)
    assert r.excess_cash == D(-1050)  # max(50, 15)


def test_buffer_positive_cash_uses_larger_of_pct_and_amount():
    prefs = Preferences(positive_cash_buffer_pct=D(5), positive_cash_buffer_amount=D(15))
    r = run({}, 400, {"A": 1}, CONSERVATIVE, prefs)
    assert r.excess_cash == 380 and by_instrument(r) == {"A": ("BUY", D(380))}  # max(20, 15)
    r = run({}, 100, {"A": 1}, CONSERVATIVE, prefs)
    assert r.excess_cash == 85  # max(5, 15)


def test_positive_buffer_never_turns_cash_into_a_shortfall():
    prefs = Preferences(positive_cash_buffer_amount=D(15))
    r = run({"A": 100}, 10, {"A": 1}, FULL, prefs)
    assert r.excess_cash == 0 and r.status == ResultStatus.NO_TRADES


def test_buffers_apply_to_full_too():
    prefs = Preferences(positive_cash_buffer_pct=D(10))
    r = run({"A": 0}, 1000, {"A": 1}, FULL, prefs)
    assert by_instrument(r) == {"A": ("BUY", D(900))}


# ---------------------------------------------------------------- cash range


def test_cash_range_skips_conservative_and_exchange_when_excess_is_inside():
    prefs = Preferences(cash_range_min=D(-50), cash_range_max=D(100))
    for method in (CONSERVATIVE, EXCHANGE):
        r = run({"A": 900, "B": 0}, 100, {"A": "0.5", "B": "0.5"}, method, prefs)
        assert r.status == ResultStatus.SKIPPED_WITHIN_RANGE and r.orders == () and r.excess_cash == 100
    r = run({"A": 900, "B": 0}, 101, {"A": "0.5", "B": "0.5"}, CONSERVATIVE, prefs)
    assert r.status == ResultStatus.PROPOSED


def test_cash_range_does_not_apply_to_full_methods():
    prefs = Preferences(cash_range_min=D(-50), cash_range_max=D(100))
    for method in (FULL, FIO):
        r = run({"A": 900, "B": 0}, 100, {"A": "0.5", "B": "0.5"}, method, prefs)
        assert r.status == ResultStatus.PROPOSED


def test_cash_range_missing_bound_counts_as_zero():
    prefs = Preferences(cash_range_max=D(100))
    assert run({"A": 900}, 50, {"A": 1}, CONSERVATIVE, prefs).status == ResultStatus.SKIPPED_WITHIN_RANGE
    # a shortfall is never inside [0, 100]
    assert run({"A": 900}, -50, {"A": 1}, CONSERVATIVE, prefs).status == ResultStatus.PROPOSED
    prefs = Preferences(cash_range_min=D(-100))
    assert run({"A": 900}, -50, {"A": 1}, CONSERVATIVE, prefs).status == ResultStatus.SKIPPED_WITHIN_RANGE
    assert run({"A": 900}, 50, {"A": 1}, CONSERVATIVE, prefs).status == ResultStatus.PROPOSED


# ---------------------------------------------------------------- §4.4 min/max filter


def test_min_max_filter_skips_lines_inside_their_band():
    # A at 0.45 within [0.4, 0.6]; B at 0.55 within [0.4, 0.6]
    r = run({"A": 450, "B": 550}, 0, {"A": "0.5", "B": "0.5"}, FULL, FILTER,
            {"A": ("0.4", "0.6"), "B": ("0.4", "0.6")})  # fmt: skip
    assert r.status == ResultStatus.NO_TRADES


def test_min_max_filter_orders_lines_outside_their_band_back_to_target():
    r = run({"A": 350, "B": 650}, 0, {"A": "0.5", "B": "0.5"}, FULL, FILTER,
            {"A": ("0.4", "0.6"), "B": ("0.4", "0.6")})  # fmt: skip
    # smallest allowed buy (0.5 - 0.4) × 1000 = 100 ≤ 150
    assert by_instrument(r) == {"A": ("BUY", D(150)), "B": ("SELL", D(150))}


def test_min_max_filter_missing_min_counts_as_zero():
    # A at 1 % is inside [0, 60 %]: no order; with a min of 2 % it is outside
    r = run({"A": 10, "B": 990}, 0, {"A": "0.5", "B": "0.5"}, FULL, FILTER, {"A": (None, "0.6"), "B": ("0", "0.6")})
    assert by_instrument(r) == {"B": ("SELL", D(490))}
    r = run({"A": 10, "B": 990}, 0, {"A": "0.5", "B": "0.5"}, FULL, FILTER, {"A": ("0.02", "0.6")})
    assert by_instrument(r) == {"A": ("BUY", D(490)), "B": ("SELL", D(490))}


def test_min_max_filter_does_not_filter_lines_without_max():
    r = run({"A": 490, "B": 510}, 0, {"A": "0.5", "B": "0.5"}, FULL, FILTER, {"A": ("0.4", None)})
    assert by_instrument(r) == {"A": ("BUY", D(10)), "B": ("SELL", D(10))}


def test_min_max_filter_is_off_by_default():
    r = run({"A": 450, "B": 550}, 0, {"A": "0.5", "B": "0.5"}, FULL, None,
            {"A": ("0.4", "0.6"), "B": ("0.4", "0.6")})  # fmt: skip
    assert by_instrument(r) == {"A": ("BUY", D(50)), "B": ("SELL", D(50))}


# ---------------------------------------------------------------- §4.5 sell all


def test_holding_outside_the_model_is_sold_whole_unrounded():
    r = run({"A": 100, "X": "12.345"}, 0, {"A": 1}, FULL)
    (sell_x,) = [o for o in r.orders if o.instrument_id == "X"]
    assert sell_x.units == D("12.345") and sell_x.side == Side.SELL
    assert sell_x.execution_method == ExecutionMethod.UNITS and sell_x.transaction_type == "SELL_ALL"
    assert sell_x.trade_amount == D("12.345") and sell_x.unit_price == 1
    # its proceeds are reinvested (rounded down to whole units of A)
    assert by_instrument(r)["A"] == ("BUY", D("12.345"))


def test_line_with_target_zero_is_sold_whole():
    r = run({"A": 100, "B": "7.5"}, 0, {"A": 1, "B": 0}, FULL)
    assert [(o.instrument_id, o.units, o.transaction_type) for o in r.orders if o.side == Side.SELL] == [
        ("B", D("7.5"), "SELL_ALL")
    ]


def test_sell_all_is_never_cut_by_min_trade_amount():
    prefs = Preferences(min_trade_amount=D(1000))
    r = run({"A": 100, "X": "0.5"}, 0, {"A": 1}, FULL, prefs)
    assert [(o.instrument_id, o.units) for o in r.orders] == [("X", D("0.5"))]


def test_sell_all_uses_the_configured_transaction_type():
    prefs = Preferences(sell_all_transaction_type="CLOSE")
    r = run({"A": 100, "X": 5}, 0, {"A": 1}, FULL, prefs)
    assert r.orders[0].transaction_type == "CLOSE"


def test_conservative_does_not_sell_whole_positions_without_a_shortfall():
    r = run({"A": 100, "X": 50}, 100, {"A": 1}, CONSERVATIVE)
    assert by_instrument(r) == {"A": ("BUY", D(100))}


def test_conservative_sells_a_whole_position_that_fits_the_shortfall_first():
    r = run({"A": 1000, "X": 40}, -50, {"A": 1}, CONSERVATIVE)
    # X (40) fits in the 50 to raise: sold whole, then 10 from overweight A
    assert by_instrument(r) == {"X": ("SELL", D(40)), "A": ("SELL", D(10))}


def test_conservative_sells_the_smallest_whole_position_covering_a_remaining_shortfall():
    # T 1530: A is under target, nothing is overweight; B (500, target 0) and
    # X (80) are both too big to fit the 50 to raise: X, the smaller, covers it.
    r = run({"A": 1000, "X": 80, "B": 500}, -50, {"A": 1, "B": 0}, CONSERVATIVE)
    assert by_instrument(r) == {"X": ("SELL", D(80))}


def test_exchange_sells_a_whole_position_to_fund_buys_when_it_fits():
    r = run({"A": 0, "X": 40}, 100, {"A": 1}, EXCHANGE)
    assert by_instrument(r) == {"X": ("SELL", D(40)), "A": ("BUY", D(140))}


def test_exchange_keeps_a_whole_position_larger_than_what_the_buys_need():
    # T 1000; A 100 under; B 50 under but inside its band; X (100) outside the
    # model. Buys need 100 - 50 of cash = 50 of sells: X does not fit.
    bands = {"B": ("0.4", "0.6")}
    positions = {"A": 400, "B": 450, "X": 100}
    r = run(positions, 50, {"A": "0.5", "B": "0.5"}, EXCHANGE, FILTER, bands)
    assert by_instrument(r) == {"A": ("BUY", D(50))}
    r = run(positions, 50, {"A": "0.5", "B": "0.5"}, FULL, FILTER, bands)
    assert by_instrument(r) == {"X": ("SELL", D(100)), "A": ("BUY", D(100))}


# ---------------------------------------------------------------- §4.7 cash from sells


def test_cash_from_sells_100_pct_sells_80_buys_150():
    r = run({"A": 180, "B": 0}, 70, {"A": "0.4", "B": "0.6"}, FULL, Preferences(cash_from_sells_pct=D(100)))
    assert by_instrument(r) == {"A": ("SELL", D(80)), "B": ("BUY", D(150))}


def test_cash_from_sells_80_pct_buys_134():
    r = run({"A": 180, "B": 0}, 70, {"A": "0.4", "B": "0.6"}, FULL, Preferences(cash_from_sells_pct=D(80)))
    assert by_instrument(r) == {"A": ("SELL", D(80)), "B": ("BUY", D(134))}


def test_cash_from_sells_zero_pct_buys_with_cash_only():
    r = run({"A": 180, "B": 0}, 70, {"A": "0.4", "B": "0.6"}, FULL, Preferences(cash_from_sells_pct=D(0)))
    assert by_instrument(r) == {"A": ("SELL", D(80)), "B": ("BUY", D(70))}


def test_cash_from_sells_applies_to_exchange():
    prefs = Preferences(cash_from_sells_pct=D(50))
    r = run({"A": 180, "B": 0}, 70, {"A": "0.4", "B": "0.6"}, EXCHANGE, prefs)
    # EXCHANGE wants 160 of sells for the missing 80 but A has 80 over: buys 70 + 40
    assert by_instrument(r) == {"A": ("SELL", D(80)), "B": ("BUY", D(110))}


# ---------------------------------------------------------------- §4.8 futures

FM = market([stock("A"), future("FL"), future("FI", FuturesCost.IMMEDIATE), currency("EUR")], {"FL": 10, "FI": 10})
FM2 = market([stock("A"), stock("B"), future("FI", FuturesCost.IMMEDIATE)], {"FI": 10})


def test_future_target_exposure_is_weight_times_total():
    r = run({"A": 1000}, 0, {"A": 1, "FL": "0.5"}, FULL, m=FM)
    assert by_instrument(r) == {"FL": ("BUY", D(500))}
    assert r.orders[0].units == 50


def test_future_with_cost_later_uses_no_cash():
    r = run({"A": 1000}, 0, {"A": 1, "FL": "0.5"}, FULL, m=FM)
    assert r.cash_after == 0


def test_future_with_cost_immediate_uses_only_its_fees():
    # A sits inside its band (no order): the 10 of cash only pays FI's fee
    prefs = Preferences(futures_fee_pct=D("0.1"), filter_by_min_max=True)
    r = run({"A": 990}, 10, {"A": 1, "FI": "0.5"}, FULL, prefs, {"A": ("0.9", "1")}, m=FM)
    assert by_instrument(r) == {"FI": ("BUY", D(500))}
    assert r.cash_after == D("9.5")  # 10 - 0.1 % × 500


def test_future_immediate_buy_is_scaled_down_when_fees_exceed_cash():
    prefs = Preferences(futures_fee_pct=D(1), filter_by_min_max=True)
    assert run({"A": 1000}, 0, {"A": 1, "FI": "0.5"}, FULL, prefs, m=FM).orders == ()
    r = run({"A": 998}, 2, {"A": 1, "FI": "0.5"}, FULL, prefs, {"A": ("0.9", "1")}, m=FM)
    assert by_instrument(r) == {"FI": ("BUY", D(200))}  # 2 of fees buy 200 of the 500


def test_future_with_cost_immediate_and_no_fee_is_never_scaled_down():
    # cash is short for A (B's surplus sits in a locked account), not for FI
    locked = account("vault", positions={"B": 1000}, locked=True)
    r = rebalance(account(positions={"A": 0}, subs=[locked], balance=100),
                  targets({"A": "0.5", "B": "0.5", "FI": "0.5"}), FM2)  # fmt: skip
    assert by_instrument(r) == {"A": ("BUY", D(100)), "FI": ("BUY", D(550))}


def test_future_sell_adds_no_cash():
    r = run({"A": 1000, "FL": 80}, 0, {"A": 1, "FL": "0.5"}, FULL, m=FM)
    assert by_instrument(r) == {"FL": ("SELL", D(300))} and r.cash_after == 0
    r = run({"A": 1000, "FL": 80}, 0, {"A": 1}, FULL, m=FM)  # no longer in the model: closed whole
    assert [(o.instrument_id, o.units, o.transaction_type) for o in r.orders] == [("FL", D(80), "SELL_ALL")]
    assert r.cash_after == 0


def test_cash_methods_leave_futures_alone():
    for method in (CONSERVATIVE, EXCHANGE):
        r = run({"A": 1000, "FL": 80}, -10, {"A": 1, "FL": "0.1"}, method, m=FM)
        assert {o.instrument_id for o in r.orders} == {"A"}


def test_futures_positions_are_not_part_of_the_total():
    r = run({"A": 1000, "FL": 50}, 0, {"A": 1, "FL": "0.5"}, FULL, m=FM)
    assert r.total_value == 1000 and r.status == ResultStatus.NO_TRADES


# ---------------------------------------------------------------- statuses and failures


def test_balanced_account_yields_no_trades():
    r = run({"A": 500, "B": 500}, 0, {"A": "0.5", "B": "0.5"}, FULL)
    assert r.status == ResultStatus.NO_TRADES and r.orders == ()
    assert (r.total_value, r.cash_before, r.cash_after) == (1000, 0, 0)


def test_empty_account_yields_no_trades():
    assert run({}, 0, {"A": 1}).status == ResultStatus.NO_TRADES


def test_account_without_target_lines_fails():
    r = run({"A": 1}, 0, {})
    assert r.status == ResultStatus.FAILED and "no target lines" in r.reason


def test_negative_total_value_fails():
    r = run({"A": 1}, -10, {"A": 1})
    assert r.status == ResultStatus.FAILED and "negative" in r.reason


def test_unknown_instrument_fails():
    r = run({"Z": 1}, 0, {"A": 1})
    assert r.status == ResultStatus.FAILED and r.reason == "unknown instrument Z"


def test_duplicate_target_line_fails():
    from rebalancing.engine import TargetLine

    r = rebalance(account(balance=10), (TargetLine("A", D("0.5")), TargetLine("A", D("0.5"))), M)
    assert r.status == ResultStatus.FAILED and "twice" in r.reason


@pytest.mark.parametrize(
    "prefs",
    [
        Preferences(cash_from_sells_pct=D(101)),
        Preferences(negative_cash_buffer_pct=D(-1)),
        Preferences(min_trade_amount=D(-1)),
    ],
)
def test_invalid_preferences_fail(prefs):
    r = run({"A": 1}, 0, {"A": 1}, FULL, prefs)
    assert r.status == ResultStatus.FAILED and "preference" in r.reason


def test_unknown_method_fails():
    r = run({"A": 1}, 0, {"A": 1}, "SOMETIMES")
    assert r.status == ResultStatus.FAILED


def test_methods_accept_plain_strings():
    a = run({"A": 600, "B": 300, "C": 100}, 0, {"A": "0.3", "B": "0.2", "C": "0.5"}, "FULL")
    b = run({"A": 600, "B": 300, "C": 100}, 0, {"A": "0.3", "B": "0.2", "C": "0.5"}, FULL)
    assert a == b


def test_untradable_instruments_are_never_traded():
    m = market([stock("A"), stock("N", tradable=False)], {})
    r = run({"A": 100, "N": 900}, 0, {"A": "0.5", "N": "0.5"}, FULL, m=m)
    assert r.status == ResultStatus.NO_TRADES


def test_data_problems_never_raise():
    r = rebalance(account(positions={"A": D("1e40")}), targets({"A": 1}), M)
    assert r.status == ResultStatus.FAILED


def test_result_carries_decimals_only():
    r = run({"A": 600, "B": 300, "C": 100}, 0, {"A": "0.3", "B": "0.2", "C": "0.5"}, FULL)
    for value in (r.total_value, r.cash_before, r.cash_after, r.excess_cash):
        assert type(value) is Decimal
    for o in r.orders:
        assert all(type(v) is Decimal for v in (o.units, o.unit_price, o.trade_amount))


def test_multi_currency_cash_counts_in_base():
    m = market([stock("A")], {}, fx={"USD": "0.5"})
    r = rebalance(account(cash_accounts=[cash(100, "USD"), cash(50, "EUR", default=False)]), targets({"A": 1}), m)
    assert by_instrument(r) == {"A": ("BUY", D(100))}
