"""The drift a rebalance gives (`rebalance(..., drift=True)`, what an execution stores)
is `account_drift`'s, and agrees with `value_account` and `drift_exceeds` line by line,
over the generated groups of test_properties (kept orders, locks, sub-accounts, every
method and cash scope)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from rebalancing.engine import DataError, ResultStatus, account_drift, drift_exceeds, rebalance, value_account

from .test_properties import scenarios

WEIGHT = Decimal("1e-12")  # lines whose drifts differ by less may rank either way (valuation.group_drift)


@given(scenarios(), st.sampled_from([None, Decimal("0.01"), Decimal("0.05")]),
       st.sampled_from([None, Decimal("0.1"), Decimal("0.5")]))
def test_the_rebalance_drift_is_the_valuation_drift(s, absolute, relative):
    scope = s.prefs.available_cash
    result = rebalance(s.account, s.targets, s.market, s.prefs, s.method, s.orders, drift=True)
    try:
        expected = account_drift(s.account, s.targets, s.market, scope)
        valuation = value_account(s.account, s.targets, s.market, scope)
    except DataError:
        assert result.drift is None and result.status in (ResultStatus.FAILED, ResultStatus.SKIPPED_LOCKED)
        return
    if result.status == ResultStatus.FAILED:  # a rule the valuation does not check (a negative total...)
        assert result.drift in (None, expected)
        return
    assert result.drift == expected
    drifts = [(abs(ln.drift), ln.target_weight, ln.instrument_id) for ln in valuation.lines]
    drifts.append((abs(valuation.cash_drift), valuation.cash_target_weight, None))
    largest = max(size for size, _, _ in drifts)
    assert abs(expected.max_drift - largest) <= WEIGHT
    assert expected.total_value == valuation.total_value
    relatives = [size / target for size, target, _ in drifts if target > 0]
    if relatives:
        smallest = min(target for _, target, _ in drifts if target > 0)
        assert abs(expected.max_relative_drift - max(relatives)) <= WEIGHT / smallest
    else:
        assert expected.max_relative_drift is None
    untargeted = any(size and not target for size, target, _ in drifts)
    if expected.max_drift == largest and expected.max_relative_drift == (max(relatives) if relatives else None) and (
        expected.untargeted == untargeted
    ):  # no near tie: the band is judged exactly as drift_exceeds judges the valuation
        assert expected.exceeds(absolute, relative) == drift_exceeds(valuation, absolute, relative)
