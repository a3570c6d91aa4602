"""The lots' one writer (portfolios/services/lots.py) under every holdings snapshot:
the API/admin service (holdings_replace), the bulk holdings import, and the book
itself (relief methods, undo). Settlement is in tests/rebalancing/orders/test_lots.py."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum

from core.errors import InvalidInput
from portfolios import services
from portfolios.models import Lot, Position, RealizedGain
from portfolios.services.lots import LotBook, LotInput
from rebalancing.engine.tax import LotMethod, relieve
from rebalancing.services import preferences_replace
from tests.factories import AccountFactory, FxRateFactory, InstrumentFactory, PositionFactory, PriceFactory

TODAY = date(2026, 6, 1)


def assert_units_equal_lots():
    """The rule: every position's units are the sum of its lots' units."""
    for position in Position.objects.all():
        total = Lot.objects.filter(position=position).aggregate(t=Sum("units"))["t"]
        assert total == position.units, f"{position}: lots {total}"


def lots_of(account, instrument) -> list[tuple]:
    return list(
        Lot.objects.filter(position__account=account, position__instrument=instrument)
        .order_by("acquired_on").values_list("acquired_on", "units", "unit_cost")
    )


@pytest.fixture
def held(db):
    """An EUR account holding 30 of an ETF in three lots: 10 @ 10 (2 years ago), 10 @ 30
    (2 months ago), 10 of unknown cost (last year); the price is 20."""
    account = AccountFactory(base_currency="EUR")
    etf = InstrumentFactory(currency="EUR")
    PriceFactory(instrument=etf, effective_at=TODAY, value=Decimal("20"))
    PositionFactory(account=account, instrument=etf, units=Decimal("30"), lots=[
        (TODAY - timedelta(days=730), Decimal("10"), Decimal("10")),
        (TODAY - timedelta(days=60), Decimal("10"), Decimal("30")),
        (TODAY - timedelta(days=400), Decimal("10"), None),
    ])
    return account, etf


def snapshot(account, instrument, units, lots=None):
    services.holdings_replace(
        account=account, cash=[], on_date=TODAY,
        positions=[services.PositionInput(str(instrument.pk), Decimal(units), lots)] if units is not None else [],
    )


class TestSnapshotWithoutLots:
    def test_units_added_become_one_lot_of_unknown_cost_dated_the_snapshot(self, held):
        account, etf = held
        snapshot(account, etf, "35")
        assert lots_of(account, etf)[-1] == (TODAY, Decimal("5"), None)
        assert len(lots_of(account, etf)) == 4
        assert not RealizedGain.objects.exists()
        assert_units_equal_lots()

    def test_a_new_position_gets_one_lot(self, held):
        account, _ = held
        other = InstrumentFactory()
        services.holdings_replace(account=account, cash=[], on_date=TODAY, positions=[
            services.PositionInput(str(other.pk), Decimal("4")),
        ])
        assert lots_of(account, other) == [(TODAY, Decimal("4"), None)]
        assert_units_equal_lots()

    def test_units_removed_are_relieved_fifo_and_realized_at_the_latest_price(self, held):
        account, etf = held
        snapshot(account, etf, "18")  # 12 removed: the 10 of 2 years ago, then 2 of last year's unknown lot
        assert [u for _, u, _ in lots_of(account, etf)] == [Decimal("8"), Decimal("10")]
        rows = list(RealizedGain.objects.order_by("acquired_on").values_list("units", "gain", "term", "trade_order_id"))
        assert rows == [(Decimal("10"), Decimal("100"), "LONG", None), (Decimal("2"), None, "LONG", None)]
        assert_units_equal_lots()

    def test_hifo_account_relieves_the_dearest_lot(self, held):
        account, etf = held
        preferences_replace(account=account, values={"lot_method": "HIFO"})
        snapshot(account, etf, "25")
        gain = RealizedGain.objects.get()
        assert (gain.units, gain.gain, gain.term) == (Decimal("5"), Decimal("-50"), "SHORT")
        assert_units_equal_lots()

    def test_a_position_left_out_is_relieved_whole_and_its_lots_go(self, held):
        account, etf = held
        snapshot(account, etf, None)
        assert not Lot.objects.exists() and not Position.objects.exists()
        assert RealizedGain.objects.aggregate(u=Sum("units"))["u"] == Decimal("30")


class TestSnapshotWithLots:
    def test_the_lots_sent_replace_the_positions_lots_and_realize_nothing(self, held):
        account, etf = held
        snapshot(account, etf, "12", [
            LotInput(date(2025, 1, 2), Decimal("5"), Decimal("11.5")), LotInput(date(2026, 2, 3), Decimal("7"), None),
        ])
        assert lots_of(account, etf) == [
            (date(2025, 1, 2), Decimal("5"), Decimal("11.5")), (date(2026, 2, 3), Decimal("7"), None),
        ]
        assert not RealizedGain.objects.exists()
        assert_units_equal_lots()

    @pytest.mark.parametrize(("lots", "field"), [
        ([LotInput(date(2025, 1, 2), Decimal("5"), None)], "positions[0].lots"),
        ([LotInput(date(2025, 1, 2), Decimal("0"), None), LotInput(date(2025, 1, 2), Decimal("12"), None)],
         "positions[0].lots[0].units"),
        ([LotInput(date(2025, 1, 2), Decimal("12"), Decimal("-1"))], "positions[0].lots[0].unit_cost"),
        ([LotInput(date(2025, 1, 2), Decimal("12"), Decimal("1"), "USD")], "positions[0].lots[0].cost_currency"),
        ([LotInput(TODAY + timedelta(days=1), Decimal("12"), Decimal("1"))], "positions[0].lots[0].acquired_on"),
    ])
    def test_bad_lots_are_refused_naming_the_field_and_change_nothing(self, held, lots, field):
        account, etf = held
        before = lots_of(account, etf)
        with pytest.raises(InvalidInput) as caught:
            snapshot(account, etf, "12", lots)
        assert [e.field for e in caught.value.errors] == [field]
        assert lots_of(account, etf) == before


class TestLotBook:
    def test_undo_forgets_the_changes_since_the_mark(self, held):
        account, etf = held
        key = (account.pk, etf.pk)
        book = LotBook({key}, on_date=TODAY)
        book.relieve(key, units=Decimal("4"), proceeds=Decimal("80"), method="FIFO", long_term_days=365)
        book.mark()
        book.relieve(key, units=Decimal("20"), proceeds=Decimal("400"), method="FIFO", long_term_days=365)
        book.undo()
        book.flush()
        assert Position.objects.get().units == Decimal("26")
        assert RealizedGain.objects.get().units == Decimal("4")
        assert_units_equal_lots()

    def test_base_amounts_use_the_fx_of_the_realization_date(self, db):
        account = AccountFactory(base_currency="EUR")
        usd = InstrumentFactory(currency="USD")
        FxRateFactory(base="EUR", quote="USD", rate=Decimal("1.25"), effective_at=TODAY)
        PositionFactory(account=account, instrument=usd, units=Decimal("2"), lots=[(date(2020, 1, 1), Decimal("2"), Decimal("5"))])
        book = LotBook({(account.pk, usd.pk)}, on_date=TODAY)
        book.relieve((account.pk, usd.pk), units=Decimal("2"), proceeds=Decimal("30"), method="FIFO", long_term_days=365)
        book.flush()
        gain = RealizedGain.objects.get()
        assert (gain.gain, gain.currency, gain.gain_base, gain.base_currency) == (
            Decimal("20"), "USD", Decimal("16"), "EUR"
        )


class TestReliefOrder:
    LOTS = [  # (id, acquired ordinal, units, unit cost)
        ("old", 1000, Decimal("10"), Decimal("10")),
        ("new", 1670, Decimal("10"), Decimal("30")),
        ("mid", 1500, Decimal("10"), Decimal("15")),
        ("unk", 1200, Decimal("10"), None),
    ]

    @pytest.mark.parametrize(("method", "order"), [
        (LotMethod.FIFO, ["old", "unk", "mid", "new"]),
        (LotMethod.LIFO, ["new", "mid", "unk", "old"]),
        (LotMethod.HIFO, ["new", "mid", "old", "unk"]),
        # At 20: "new" is a loss (−10); "old" a long-term gain of 10, "mid" a short-term gain of 5.
        (LotMethod.MIN_TAX, ["new", "old", "mid", "unk"]),
    ])
    def test_each_method(self, method, order):
        taken = relieve(self.LOTS, Decimal("40"), method, Decimal("20"), on=1700, long_term_days=365)
        assert [lot[0] for lot, _ in taken] == order
        assert sum(t for _, t in taken) == Decimal("40")
