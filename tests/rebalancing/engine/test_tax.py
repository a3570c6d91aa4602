"""The tax-aware step (engine/tax.py, §12): worked examples per rule, and properties.

Lots are (lot_id, acquired ordinal, units, unit cost). The rebalance date is day
ON = 10_000; a lot from day 9_000 is long-term (held > 365 days), from day 9_900 short.
"""

from dataclasses import replace
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from rebalancing.engine import Restriction, Restrictions, Rule, Side, rebalance
from rebalancing.engine.tax import AcquiredLots, TaxData, TaxPreferences, tax_adjust

from .factories import D, account, market, stock, targets

ON = 10_000
OLD, NEW = 9_000, 9_900  # long-term and short-term acquisition days
X, Z, Y = "X", "Z", "Y"  # Y is X's substitute


def book(x_units=20, cash=0):
    m = market([stock(X), stock(Z), stock(Y)], {X: 20, Z: 10, Y: 50})
    acc = account(positions={X: x_units} if x_units else {}, balance=cash)
    return m, acc


def data(lots, **kw):
    base = {"substitutes": {X: (Y,)}, "base_currency": "EUR"}
    return TaxData(lots={("acc", X): tuple(lots)}, on=ON, **(base | kw))


TWO_LOTS = [("cheap", OLD, D(10), D(10)), ("dear", NEW, D(10), D(30))]


def plain(weights, **kw):
    m, acc = book(**kw)
    return m, rebalance(acc, targets(weights), m)


def sells(outcome):
    return [o for o in outcome.result.orders if o.side == Side.SELL]


def test_sells_name_their_lots_and_estimated_gain_by_lot_method():
    m, result = plain({X: "0.5", Z: "0.5"})  # sell 10 X, buy 20 Z
    fifo = tax_adjust(result, m, TaxPreferences(tax_aware=True), data(TWO_LOTS))
    [s] = fifo.sells
    assert (s.lots, s.estimated_gain) == ((("cheap", D(10)),), D(100))
    assert (fifo.long, fifo.short) == (D(100), 0)
    hifo = tax_adjust(result, m, TaxPreferences(tax_aware=True, lot_method="HIFO"), data(TWO_LOTS))
    assert (hifo.sells[0].lots, hifo.short) == ((("dear", D(10)),), D(-100))
    assert fifo.result.orders == result.orders  # naming lots changes no order


def test_the_gain_budget_cuts_the_sell_and_the_buys_shrink_with_its_cash():
    m, result = plain({X: "0.5", Z: "0.5"})
    out = tax_adjust(result, m, TaxPreferences(tax_aware=True, max_realized_gain=D(40)), data(TWO_LOTS))
    [sell] = sells(out)
    assert sell.units == D(4) and out.sells[0].estimated_gain == D(40)  # 4 units × 10 of gain
    [buy] = [o for o in out.result.orders if o.side == Side.BUY]
    assert buy.trade_amount <= D(80)  # the 80 the sell still raises
    # This year's gains count against the budget: 30 realized leaves 10 → 1 unit.
    out = tax_adjust(result, m, TaxPreferences(tax_aware=True, max_realized_gain=D(40)),
                     data(TWO_LOTS, realized_this_year=D(30)))
    assert sells(out)[0].units == D(1)


def test_the_budget_cuts_the_sells_with_most_gain_per_unit_of_drift_first():
    m = market([stock(X), stock(Z), stock(Y)], {X: 20, Z: 10, Y: 50})
    acc = account(positions={X: 20, Z: 40})  # 400 + 400: model all Y → sell both
    result = rebalance(acc, targets({Y: "1"}), m)
    lots = {("acc", X): (("x", OLD, D(20), D(10)),),  # gain 10 per 20 of value: 0.5
            ("acc", Z): (("z", OLD, D(40), D(9)),)}  # gain 1 per 10 of value: 0.1
    prefs = TaxPreferences(tax_aware=True, max_realized_gain=D(40), sell_removed_lines_regardless=False)
    out = tax_adjust(result, m, prefs, TaxData(lots=lots, on=ON, base_currency="EUR"))
    by = {o.instrument_id: o.units for o in sells(out)}
    assert by == {Z: D(40)}  # Z's 40 of gain fits; X's 200 is cut whole


def test_avoid_short_term_gains_skips_short_term_gain_lots():
    m, result = plain({X: "0.5", Z: "0.5"})
    lots = [("new-gain", NEW, D(10), D(5)), ("old-loss", OLD, D(10), D(25))]
    out = tax_adjust(result, m, TaxPreferences(tax_aware=True, avoid_short_term_gains=True), data(lots))
    assert out.sells[0].lots == (("old-loss", D(10)),)
    lots = [("new-gain", NEW, D(20), D(5))]
    out = tax_adjust(result, m, TaxPreferences(tax_aware=True, avoid_short_term_gains=True), data(lots))
    assert sells(out) == [] and [o for o in out.result.orders if o.side == Side.BUY] == []


def test_a_line_leaving_the_model_is_sold_regardless():
    m, result = plain({Z: "1"})  # X is no longer in the model
    lots = [("new-gain", NEW, D(20), D(5))]
    prefs = TaxPreferences(tax_aware=True, avoid_short_term_gains=True)
    out = tax_adjust(result, m, prefs, data(lots, must_sell=frozenset({X})))
    assert sells(out)[0].units == D(20)
    out = tax_adjust(result, m, prefs, data(lots))  # sell_removed_lines_regardless off (no must_sell)
    assert sells(out) == []


def test_loss_harvesting_sells_the_loss_lot_into_the_substitute():
    m, result = plain({X: "1"})  # balanced: no orders
    assert result.orders == ()
    lots = [("loss", NEW, D(20), D(30))]  # −200, −33 %
    out = tax_adjust(result, m, TaxPreferences(tax_aware=True, harvest_losses=True), data(lots))
    [sell] = sells(out)
    [buy] = [o for o in out.result.orders if o.side == Side.BUY]
    assert (sell.units, buy.instrument_id, buy.units) == (D(20), Y, D(8))
    assert out.sells[0].estimated_gain == D(-200)
    # Below either threshold, or with no substitute, or bought within the wash-sale window: nothing.
    for prefs, lots_, subs in (
        (TaxPreferences(tax_aware=True, harvest_losses=True, harvest_min_loss_amount=D(250)), lots, {X: (Y,)}),
        (TaxPreferences(tax_aware=True, harvest_losses=True, harvest_min_loss_pct=D(40)), lots, {X: (Y,)}),
        (TaxPreferences(tax_aware=True, harvest_losses=True), lots, {}),
        (TaxPreferences(tax_aware=True, harvest_losses=True), [("loss", ON - 10, D(20), D(30))], {X: (Y,)}),
    ):
        assert tax_adjust(result, m, prefs, data(lots_, substitutes=subs)).result.orders == ()


def test_no_buy_back_in_the_wash_sale_window():
    m, result = plain({X: "1"}, x_units=0, cash=200)  # buy 10 X
    out = tax_adjust(result, m, TaxPreferences(tax_aware=True), data([], loss_sales={X: ON - 10}))
    [buy] = out.result.orders
    assert (buy.instrument_id, buy.units) == (Y, D(4))  # the substitute instead
    out = tax_adjust(result, m, TaxPreferences(tax_aware=True), data([], loss_sales={X: ON - 10}, substitutes={}))
    assert out.result.orders == ()  # no substitute: the weight stays cash
    out = tax_adjust(result, m, TaxPreferences(tax_aware=True), data([], loss_sales={X: ON - 31}))
    assert out.result.orders == result.orders  # outside the 30 days


def test_a_restricted_substitute_is_skipped():
    m, result = plain({X: "1"}, x_units=0, cash=200)
    restricted = Restrictions([Restriction(Y, Rule.NO_BUY, "list")])
    out = tax_adjust(result, m, TaxPreferences(tax_aware=True), data([], loss_sales={X: ON - 10}), restricted)
    assert out.result.orders == ()


# --- Properties ------------------------------------------------------------------------

lot_st = st.tuples(
    st.integers(ON - 1000, ON), st.integers(1, 30), st.one_of(st.none(), st.integers(1, 40).map(Decimal)),
)


@st.composite
def scenario(draw):
    x_lots = draw(st.lists(lot_st, min_size=1, max_size=5))
    z_lots = draw(st.lists(lot_st, min_size=1, max_size=5))
    lots = {
        ("acc", X): tuple((f"x{i}", d, D(u), c) for i, (d, u, c) in enumerate(x_lots)),
        ("acc", Z): tuple((f"z{i}", d, D(u), c) for i, (d, u, c) in enumerate(z_lots)),
    }
    units = {X: sum(lot[2] for lot in lots[("acc", X)]), Z: sum(lot[2] for lot in lots[("acc", Z)])}
    wx = draw(st.integers(0, 10))
    weights = {X: Decimal(wx) / 10, Z: Decimal(10 - wx) / 20, Y: Decimal(10 - wx) / 20}
    m = market([stock(X), stock(Z), stock(Y)], {X: draw(st.integers(5, 40)), Z: draw(st.integers(5, 40)), Y: 50})
    acc = account(positions=units, balance=draw(st.integers(0, 100)))
    result = rebalance(acc, targets(weights), m)
    losses = draw(st.dictionaries(st.sampled_from([X, Z, Y]), st.integers(ON - 60, ON), max_size=2))
    tax = TaxData(lots=lots, on=ON, loss_sales=losses, substitutes={X: (Y,), Z: (Y,)}, base_currency="EUR",
                  realized_this_year=Decimal(draw(st.integers(-50, 50))))
    return m, result, tax


prefs_st = st.builds(
    TaxPreferences, tax_aware=st.just(True), lot_method=st.sampled_from(["FIFO", "LIFO", "HIFO", "MIN_TAX"]),
    max_realized_gain=st.one_of(st.none(), st.integers(-20, 200).map(Decimal)),
    avoid_short_term_gains=st.booleans(), harvest_losses=st.booleans(), sell_removed_lines_regardless=st.booleans(),
    wash_sale_days=st.sampled_from([0, 30]),
)


@settings(max_examples=150, deadline=None)
@given(scenario(), prefs_st)
def test_the_budget_is_never_exceeded_and_lots_add_up_to_the_units_sold(case, prefs):
    m, result, tax = case
    out = tax_adjust(result, m, prefs, tax)
    estimate = out.short + out.long
    if prefs.max_realized_gain is not None:
        assert estimate <= max(prefs.max_realized_gain - tax.realized_this_year, 0)
    orders = {(o.account_id, o.instrument_id): o for o in sells(out)}
    assert set(orders) == {(s.account_id, s.instrument_id) for s in out.sells}
    for s in out.sells:
        relieved = sum((u for _, u in s.lots), Decimal(0)) + s.unlotted_units
        assert relieved == orders[(s.account_id, s.instrument_id)].units
        held = {lot[0]: lot[2] for lot in tax.lots[(s.account_id, s.instrument_id)]}
        assert all(u <= held[lot_id] for lot_id, u in s.lots)
    # No buy in the wash-sale window of a loss sale.
    if prefs.wash_sale_days:
        washed = {i for i, day in tax.loss_sales.items() if ON - day < prefs.wash_sale_days}
        assert not [o for o in out.result.orders if o.side == Side.BUY and o.instrument_id in washed]


@settings(max_examples=100, deadline=None)
@given(scenario(), st.sampled_from(["FIFO", "LIFO", "HIFO", "MIN_TAX"]))
def test_tax_aware_with_every_limit_off_proposes_the_plain_orders(case, method):
    m, result, tax = case
    off = TaxPreferences(tax_aware=True, lot_method=method, wash_sale_days=0)
    out = tax_adjust(result, m, off, tax)
    assert out.result == result


class CountedLots(AcquiredLots):
    """Lots in (acquired, id) order, counting the lots made (as a lazy source would)."""

    def __init__(self, lots):
        self.lots, self.made = tuple(lots), 0

    def __iter__(self):
        for lot in self.lots:
            self.made += 1
            yield lot

    def __len__(self):
        return len(self.lots)

    def __getitem__(self, index):
        return tuple(self)[index]


def test_a_fifo_sell_reads_only_the_lots_it_reaches_from_an_ordered_source():
    m, result = plain({X: "0.5", Z: "0.5"})  # sell 10 X: the first lot holds 10
    lots = CountedLots([*TWO_LOTS, ("later", NEW + 1, D(10), D(40))])
    out = tax_adjust(result, m, TaxPreferences(tax_aware=True), TaxData(lots={("acc", X): lots}, on=ON))
    assert (out.sells[0].lots, lots.made) == ((("cheap", D(10)),), 1)
    lifo = CountedLots(lots.lots)  # every other method sorts: all lots are read
    lifo_prefs = TaxPreferences(tax_aware=True, lot_method="LIFO")
    out = tax_adjust(result, m, lifo_prefs, TaxData(lots={("acc", X): lifo}, on=ON))
    assert (out.sells[0].lots, lifo.made) == ((("later", D(10)),), 3)


@settings(max_examples=300, deadline=None)
@given(scenario(), prefs_st)
def test_lots_from_an_ordered_source_give_the_same_outcome_as_a_tuple(case, prefs):
    m, result, tax = case
    ordered = {key: CountedLots(sorted(lots, key=lambda lot: (lot[1], lot[0]))) for key, lots in tax.lots.items()}
    assert tax_adjust(result, m, prefs, replace(tax, lots=ordered)) == tax_adjust(result, m, prefs, tax)
