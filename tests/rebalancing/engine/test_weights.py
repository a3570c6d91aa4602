"""§2.1 target weights on a date: STATIC, FLOATING, PERIODICAL."""

from datetime import date
from decimal import Decimal

import pytest

from rebalancing.engine import (
    InvalidInputError,
    MissingPriceError,
    PeriodType,
    TargetLine,
    WeightType,
    drift_start,
    floating_weights,
    target_lines_on,
)

from .factories import D

F = date(2022, 1, 5)
LINES = (TargetLine("A", D("0.6")), TargetLine("B", D("0.4")))


def test_floating_weights_worked_example():
    w = floating_weights({"A": D("0.6"), "B": D("0.4")}, {"A": D(10), "B": D(20)}, {"A": D(12), "B": D(15)})
    assert w == {"A": D("0.705882352941"), "B": D("0.294117647059")}
    assert round(w["A"] * 100, 2) == D("70.59")
    assert round(w["B"] * 100, 2) == D("29.41")


def test_floating_weights_sum_to_one_after_rounding():
    w = floating_weights(
        {"A": D("0.3"), "B": D("0.3"), "C": D("0.4")},
        {"A": D(3), "B": D(7), "C": D(11)},
        {"A": D(5), "B": D(13), "C": D(17)},
    )
    assert sum(w.values()) == 1
    assert all(-w[k].as_tuple().exponent <= 12 for k in w)


def test_floating_weights_start_at_effective_from():
    assert drift_start(WeightType.FLOATING, F, date(2022, 3, 1)) == F


def test_static_weights_are_the_versions_weights():
    assert drift_start(WeightType.STATIC, F, date(2030, 1, 1)) is None
    assert target_lines_on(LINES, WeightType.STATIC) == LINES


def test_periodical_weights_drift_from_effective_from_until_first_reset():
    t0 = drift_start(WeightType.PERIODICAL, F, date(2022, 1, 12), PeriodType.WEEKLY, 3)
    assert t0 == F
    lines = target_lines_on(
        LINES,
        WeightType.PERIODICAL,
        prices_at_t0={"A": D(10), "B": D(20)},
        prices_at_d={"A": D(12), "B": D(15)},
    )
    assert [line.weight for line in lines] == [D("0.705882352941"), D("0.294117647059")]


def test_periodical_weights_are_the_versions_again_on_a_reset_date():
    t0 = drift_start(WeightType.PERIODICAL, F, date(2022, 1, 26), PeriodType.WEEKLY, 3)
    assert t0 == date(2022, 1, 26)
    prices_26_jan = {"A": D(12), "B": D(15)}
    lines = target_lines_on(LINES, WeightType.PERIODICAL, prices_at_t0=prices_26_jan, prices_at_d=prices_26_jan)
    assert [line.weight for line in lines] == [D("0.6"), D("0.4")]


def test_periodical_weights_drift_from_the_last_reset_prices():
    t0 = drift_start(WeightType.PERIODICAL, F, date(2022, 2, 1), PeriodType.WEEKLY, 3)
    assert t0 == date(2022, 1, 26)
    # From the 26 Jan prices (12, 15): A +25 %, B unchanged.
    w = floating_weights({"A": D("0.6"), "B": D("0.4")}, {"A": D(12), "B": D(15)}, {"A": D(15), "B": D(15)})
    assert w == {"A": D("0.652173913043"), "B": D("0.347826086957")}


def test_periodical_without_period_is_refused():
    with pytest.raises(InvalidInputError):
        drift_start(WeightType.PERIODICAL, F, date(2022, 2, 1))


def test_drift_start_before_effective_from_is_refused():
    with pytest.raises(InvalidInputError):
        drift_start(WeightType.FLOATING, F, date(2022, 1, 4))


def test_floating_weights_cash_line_has_a_constant_price():
    w = floating_weights({"A": D("0.5"), "EUR": D("0.5")}, {"A": D(10)}, {"A": D(30)}, cash={"EUR"})
    assert w == {"A": D("0.75"), "EUR": D("0.25")}


def test_floating_weights_futures_drift_but_are_left_out_of_the_sum():
    # A doubles: the portfolio grows by 1.5; the future F (+50 %) keeps
    # 0.2 × 1.5 / 1.5 of it; non-futures still sum to 1.
    w = floating_weights(
        {"A": D("0.5"), "B": D("0.5"), "F": D("0.2")},
        {"A": D(10), "B": D(10), "F": D(100)},
        {"A": D(20), "B": D(10), "F": D(150)},
        futures={"F"},
    )
    assert w["A"] + w["B"] == 1
    assert w == {"A": D("0.666666666667"), "B": D("0.333333333333"), "F": D("0.2")}


def test_floating_weights_missing_price_names_instrument_and_date():
    with pytest.raises(MissingPriceError, match=r"no price for US0378331005 at or before 2026-03-02"):
        floating_weights(
            {"A": D(1)},
            {"A": D(1)},
            {},
            d=date(2026, 3, 2),
            labels={"A": "US0378331005"},
        )


def test_floating_weights_band_moves_with_its_weight():
    lines = (TargetLine("A", D("0.6"), D("0.55"), D("0.65")), TargetLine("B", D("0.4"), None, D("0.5")))
    out = target_lines_on(
        lines,
        WeightType.FLOATING,
        prices_at_t0={"A": D(10), "B": D(20)},
        prices_at_d={"A": D(12), "B": D(15)},
    )
    a, b = out
    assert a.weight - a.min_weight == D("0.05") and a.max_weight - a.weight == D("0.05")
    assert b.min_weight is None and b.max_weight == D("0.394117647059")


def test_floating_weights_do_not_depend_on_input_order():
    args = ({"B": D("0.4"), "A": D("0.6")}, {"B": D(20), "A": D(10)}, {"B": D(15), "A": D(12)})
    assert floating_weights(*args) == floating_weights(
        {"A": D("0.6"), "B": D("0.4")}, {"A": D(10), "B": D(20)}, {"A": D(12), "B": D(15)}
    )


def test_floating_weights_are_decimal():
    w = floating_weights({"A": D("0.6"), "B": D("0.4")}, {"A": D(10), "B": D(20)}, {"A": D(12), "B": D(15)})
    assert all(type(v) is Decimal for v in w.values())
