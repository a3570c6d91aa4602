"""Properties of restrictions and substitutes over generated account groups (§11)."""

from __future__ import annotations

import random
from dataclasses import replace
from decimal import Decimal, localcontext

from hypothesis import given
from hypothesis import strategies as st

from rebalancing.engine import (
    ENGINE_CONTEXT,
    Effect,
    InstrumentType,
    RestrictedWeightTo,
    Restriction,
    Restrictions,
    ResultStatus,
    Rule,
    Side,
    rebalance,
    restricted_targets,
)

from .test_properties import _walk, scenarios


@st.composite
def restricted_scenarios(draw, **kwargs):
    """A scenario of test_properties with random rules on its instruments and substitutes."""
    s = draw(scenarios(**kwargs))
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    ids = [i for i, inst in s.market.instruments.items() if inst.type != InstrumentType.CASH]
    entries = []
    for iid in ids:
        for rule in Rule:
            if rnd.random() < 0.2:
                entries.append(Restriction(iid, rule, rnd.choice(["ESG", "Firm", "Insider"])))
    substitutes = {iid: tuple(rnd.sample(ids, rnd.randint(0, min(2, len(ids))))) for iid in ids if rnd.random() < 0.5}
    substitutes = {k: tuple(v for v in vs if v != k) for k, vs in substitutes.items()}
    prefs = replace(s.prefs, restricted_weight_to=rnd.choice(list(RestrictedWeightTo)))
    return replace(s, prefs=prefs), Restrictions(entries, substitutes)


def run(s, r):
    return rebalance(s.account, s.targets, s.market, s.prefs, s.method, s.orders, restrictions=r)


@given(restricted_scenarios())
def test_no_order_buys_what_may_not_be_bought_nor_sells_what_may_not_be_sold(case):
    s, r = case
    result = run(s, r)
    for o in result.orders:
        if o.side == Side.BUY:
            assert r.may_buy(o.instrument_id), o
        else:
            assert r.may_sell(o.instrument_id), o


@given(restricted_scenarios(orders=False))
def test_a_no_hold_position_is_always_sold_whole(case):
    s, r = case
    result = run(s, r)
    if result.status == ResultStatus.FAILED or s.account.locked:
        return
    sold = {(o.account_id, o.instrument_id): o.units for o in result.orders if o.side == Side.SELL}
    for acc, locked in _walk(s.account):
        if locked:
            continue
        held = {}
        for p in acc.positions:
            held[p.instrument_id] = held.get(p.instrument_id, Decimal(0)) + p.units
        for iid, units in held.items():
            rules = r.rules.get(iid, {})
            inst = s.market.instruments[iid]
            if Rule.NO_HOLD in rules and Rule.NO_SELL not in rules and inst.tradable and units:
                assert sold.get((acc.id, iid)) == units, (acc.id, iid, units, result)
                assert any(a.instrument_id == iid and a.effect == Effect.SOLD for a in result.adjustments)


@given(restricted_scenarios(futures=False), st.dictionaries(st.sampled_from(["I0", "I1", "I2"]),
                                                          st.decimals("0", "1", places=4)))
def test_weights_after_substitution_still_add_up_to_one(case, held):
    s, r = case
    out = restricted_targets(s.targets, s.market, s.prefs, r, held)
    if out is None:
        return
    lines, extra_cash, adjustments = out
    # Pro-rata shares of a weight are 34-digit quotients: their sum may differ from the
    # weight in the last digit, far below anything the engine rounds to (DUST = 1e-8).
    with localcontext(ENGINE_CONTEXT):
        new = sum((t.weight for t in lines), Decimal(0)) + extra_cash
        assert abs(new - sum((t.weight for t in s.targets), Decimal(0))) <= Decimal("1e-30")
    assert all(t.weight > 0 for t in lines)
    assert all(r.may_buy(t.instrument_id) or t.weight <= held.get(t.instrument_id, 0)
               for t in lines if s.market.instruments[t.instrument_id].type != InstrumentType.CASH)  # fmt: skip
    assert adjustments


@given(restricted_scenarios())
def test_restrictions_on_instruments_outside_the_group_and_model_change_nothing(case):
    s, r = case
    elsewhere = Restrictions([Restriction(f"Z{e.instrument_id}", e.rule, e.list_name) for e in r.entries])
    assert run(s, elsewhere) == run(s, None)


@given(restricted_scenarios())
def test_every_buy_of_a_substitute_is_explained(case):
    s, r = case
    result = run(s, r)
    model = {t.instrument_id for t in s.targets}
    substituted = {a.substitute_id for a in result.adjustments if a.effect == Effect.SUBSTITUTED}
    for o in result.orders:
        if o.side == Side.BUY and o.instrument_id not in model:
            assert o.instrument_id in substituted, o
