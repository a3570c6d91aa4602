"""§3 valuation: values, cash scope, sub-accounts, locked accounts, missing data."""

from datetime import date

import pytest

from rebalancing.engine import (
    AvailableCash,
    CashAccountKind,
    InstrumentType,
    Method,
    MissingFxRateError,
    MissingPriceError,
    Preferences,
    ResultStatus,
    drift_exceeds,
    rebalance,
    value_account,
)

from .factories import D, account, by_instrument, cash, currency, future, market, stock, targets


def test_position_value_is_units_times_price_times_fx():
    m = market([stock("A", "USD")], {"A": 5}, fx={"USD": "0.9"})
    v = value_account(account(positions={"A": 10}), targets({"A": 1}), m)
    assert v.total_value == D(45)
    (line,) = v.lines
    assert line.value == D(45) and line.weight == 1 and line.price == D(5)


def test_cash_is_converted_with_fx():
    m = market([stock("A")], {}, fx={"USD": "0.5"})
    v = value_account(account(cash_accounts=[cash(100, "USD"), cash(10, "EUR", default=False)]), targets({"A": 1}), m)
    assert v.cash == D(60) and v.total_value == D(60)


CASH_ACCOUNTS = [
    cash(100, default=True),
    cash(20, default=False, kind=CashAccountKind.SETTLEMENT),
    cash(3, default=False, kind=CashAccountKind.MARGIN),
    cash(1000, default=False, kind=CashAccountKind.CASH),
]


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (AvailableCash.ALL_ACCOUNTS, 1123),
        (AvailableCash.CASH_ACCOUNTS_ONLY, 1100),
        (AvailableCash.DEFAULT_ACCOUNT_ONLY, 100),
    ],
)
def test_available_cash_scope_decides_which_cash_accounts_count(scope, expected):
    m = market([stock("A")], {})
    v = value_account(account(cash_accounts=CASH_ACCOUNTS), targets({"A": 1}), m, scope)
    assert v.cash == expected and v.total_value == expected
    r = rebalance(account(cash_accounts=CASH_ACCOUNTS), targets({"A": 1}), m, Preferences(available_cash=scope))
    assert by_instrument(r) == {"A": ("BUY", D(expected))}


def test_missing_price_is_an_error_naming_isin_and_date():
    m = market([stock("A", isin="US0378331005")], {"A": None}, as_of=date(2026, 3, 2))
    with pytest.raises(MissingPriceError, match=r"^no price for US0378331005 at or before 2026-03-02$"):
        value_account(account(positions={"A": 1}), targets({"A": 1}), m)
    r = rebalance(account(positions={"A": 1}), targets({"A": 1}), m)
    assert r.status == ResultStatus.FAILED
    assert r.reason == "no price for US0378331005 at or before 2026-03-02"
    assert r.orders == ()


def test_missing_price_of_a_targeted_instrument_not_held_is_an_error():
    m = market([stock("A"), stock("B", isin="DE0007164600")], {"B": None}, as_of=date(2026, 3, 2))
    r = rebalance(account(positions={"A": 10}), targets({"A": "0.5", "B": "0.5"}), m)
    assert r.status == ResultStatus.FAILED and "DE0007164600" in r.reason


def test_missing_price_of_a_held_instrument_outside_the_model_is_an_error():
    m = market([stock("A"), stock("X")], {"X": None})
    r = rebalance(account(positions={"A": 10, "X": 1}), targets({"A": 1}), m)
    assert r.status == ResultStatus.FAILED and r.reason == "no price for X"


def test_missing_fx_rate_is_an_error():
    m = market([stock("A", "USD")], {"A": 5}, as_of=date(2026, 3, 2))
    with pytest.raises(MissingFxRateError, match=r"^no FX rate for USD/EUR at or before 2026-03-02$"):
        value_account(account(positions={"A": 1}), targets({"A": 1}), m)
    r = rebalance(account(balance=100), targets({"A": 1}), m)
    assert r.status == ResultStatus.FAILED and r.reason.startswith("no FX rate for USD/EUR")


def test_missing_fx_rate_of_counted_cash_is_an_error():
    m = market([stock("A")], {})
    r = rebalance(account(cash_accounts=[cash(5, "CHF")]), targets({"A": 1}), m)
    assert r.status == ResultStatus.FAILED and "CHF" in r.reason


def test_total_includes_sub_accounts_and_weights_use_it():
    m = market([stock("A"), stock("B")], {})
    sub = account("sub", positions={"B": 300}, balance=100)
    v = value_account(account(positions={"A": 600}, subs=[sub]), targets({"A": "0.5", "B": "0.5"}), m)
    assert v.total_value == 1000 and v.cash == 100
    assert [(ln.instrument_id, ln.weight, ln.drift) for ln in v.lines] == [
        ("A", D("0.6"), D("0.1")),
        ("B", D("0.3"), D("-0.2")),
    ]


def test_nested_sub_accounts_count():
    m = market([stock("A")], {})
    inner = account("inner", positions={"A": 5})
    middle = account("middle", positions={"A": 3}, subs=[inner])
    v = value_account(account(positions={"A": 2}, subs=[middle]), targets({"A": 1}), m)
    assert v.total_value == 10 and v.lines[0].units == 10


def test_locked_sub_account_counts_in_total_but_is_never_traded():
    m = market([stock("A"), stock("B")], {})
    locked = account("vault", positions={"A": 500}, locked=True)
    a = account(positions={"A": 100, "B": 100}, subs=[locked], balance=0)
    v = value_account(a, targets({"A": "0.5", "B": "0.5"}), m)
    assert v.total_value == 700 and v.lines[0].locked_units == 500
    r = rebalance(a, targets({"A": "0.5", "B": "0.5"}), m, method=Method.FULL)
    # A is 250 over target but only the 100 unlocked units can be sold
    assert by_instrument(r) == {"A": ("SELL", D(100)), "B": ("BUY", D(100))}
    assert all(o.account_id == "acc" for o in r.orders)


def test_locked_sub_account_cash_is_never_invested():
    m = market([stock("A")], {})
    locked = account("vault", balance=1000, locked=True)
    a = account(positions={"A": 0}, subs=[locked], balance=50)
    r = rebalance(a, targets({"A": 1}), m, method=Method.FULL)
    assert r.total_value == 1050
    assert by_instrument(r) == {"A": ("BUY", D(50))}


def test_locked_cash_counts_toward_the_cash_target():
    m = market([stock("A"), currency("EUR")], {})
    locked = account("vault", balance=100, locked=True)
    a = account(positions={"A": 800}, subs=[locked], balance=100)
    # cash target 20 % of 1000 = 200: locked 100 + unlocked 100 meet it
    r = rebalance(a, targets({"A": "0.8", "EUR": "0.2"}), m, method=Method.FULL)
    assert r.status == ResultStatus.NO_TRADES and r.excess_cash == 0


def test_rebalancing_a_locked_account_is_skipped():
    m = market([stock("A")], {})
    r = rebalance(account(positions={"A": 1}, balance=1000, locked=True), targets({"A": 1}), m)
    assert r.status == ResultStatus.SKIPPED_LOCKED and r.orders == ()
    assert r.total_value == 1001


def test_sub_account_of_a_locked_sub_account_is_locked():
    m = market([stock("A"), stock("B")], {})
    inner = account("inner", positions={"A": 100})
    outer = account("outer", subs=[inner], locked=True)
    r = rebalance(account(subs=[outer], balance=0), targets({"A": "0.5", "B": "0.5"}), m, method=Method.FULL)
    # A is 50 over target but sits in a locked account: nothing to sell, no cash for B
    assert r.status == ResultStatus.NO_TRADES and r.total_value == 100


def test_futures_add_exposure_not_value():
    m = market([stock("A"), future("F")], {"F": 100})
    v = value_account(account(positions={"A": 1000, "F": 3}), targets({"A": 1, "F": "0.5"}), m)
    assert v.total_value == 1000
    f = next(ln for ln in v.lines if ln.instrument_id == "F")
    assert f.value == 300 and f.weight == D("0.3") and f.drift == D("-0.2")


def test_position_in_a_currency_instrument_counts_as_cash():
    m = market([stock("A"), currency("USD")], {}, fx={"USD": "0.5"})
    v = value_account(account(positions={"USD": 100}), targets({"A": 1}), m)
    assert v.cash == 50 and v.total_value == 50 and v.lines[0].instrument_id == "A"


def test_valuation_reports_cash_weight_and_drift():
    m = market([stock("A"), currency("EUR")], {})
    v = value_account(account(positions={"A": 700}, balance=300), targets({"A": "0.9", "EUR": "0.1"}), m)
    assert (v.cash_weight, v.cash_target_weight, v.cash_drift) == (D("0.3"), D("0.1"), D("0.2"))


def test_drift_exceeds_absolute_and_relative_thresholds():
    m = market([stock("A"), stock("B")], {})
    v = value_account(account(positions={"A": 55, "B": 45}), targets({"A": "0.5", "B": "0.5"}), m)
    assert drift_exceeds(v, absolute_drift=D("0.04"))
    assert not drift_exceeds(v, absolute_drift=D("0.05"))  # exactly at the threshold
    assert drift_exceeds(v, relative_drift=D("0.09"))
    assert not drift_exceeds(v, relative_drift=D("0.1"))
    assert not drift_exceeds(v)


def test_drift_exceeds_for_a_holding_outside_the_model():
    m = market([stock("A"), stock("X")], {})
    v = value_account(account(positions={"A": 999, "X": 1}), targets({"A": 1}), m)
    assert drift_exceeds(v, relative_drift=D("100"))


def test_valuation_of_an_empty_account_is_zero():
    v = value_account(account(), targets({"A": 1}), market([stock("A")], {}))
    assert v.total_value == 0 and v.lines[0].weight == 0


def test_instrument_types_default_decimals_cover_every_type():
    assert set(Preferences().default_decimals) == set(InstrumentType)
