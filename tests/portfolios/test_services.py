from datetime import date
from decimal import Decimal

import pytest

from core.errors import BusinessRuleViolation, Conflict, InvalidInput
from portfolios import services
from portfolios.models import (
    AccountType,
    Allocation,
    AllocationLine,
    AllocationVersion,
    CashAccount,
    FuturesCost,
    InstrumentType,
    Position,
    Price,
    WeightType,
)
from tests.factories import AccountFactory, InstrumentFactory, PositionFactory, make_allocation, make_configuration

pytestmark = pytest.mark.django_db


def line(instrument, weight, **kw):
    return services.LineInput(instrument_id=instrument.isin or str(instrument.id), weight=Decimal(weight), **kw)


def fields_of(exc_info):
    return [e.field for e in exc_info.value.errors]


def create(lines, **kw):
    return services.allocation_create(data=services.AllocationInput(lines=lines, **kw))


class TestAllocationRules:
    def test_valid_allocation_stores_version_one_with_its_lines(self):
        a, b = InstrumentFactory(), InstrumentFactory()
        allocation = create([line(a, "0.7"), line(b, "0.3")], name="Core")
        version = allocation.current_version
        assert version.version == 1
        assert sorted((l.instrument_id, l.weight) for l in version.lines.all()) == sorted(
            [(a.pk, Decimal("0.7")), (b.pk, Decimal("0.3"))]
        )
        assert version.change_summary.startswith("Created with")

    def test_at_least_one_line(self):
        with pytest.raises(InvalidInput) as exc:
            create([])
        assert fields_of(exc) == ["allocation"]

    def test_every_weight_positive_names_each_line(self):
        a, b, c = InstrumentFactory(), InstrumentFactory(), InstrumentFactory()
        with pytest.raises(InvalidInput) as exc:
            create([line(a, "1"), line(b, "0"), line(c, "-0.1")])
        assert fields_of(exc) == ["allocation[1].weight", "allocation[2].weight"]

    def test_no_instrument_twice_isin_and_uuid_of_the_same_count_as_twice(self):
        a = InstrumentFactory()
        with pytest.raises(InvalidInput) as exc:
            create([line(a, "0.5"), services.LineInput(instrument_id=str(a.id), weight=Decimal("0.5"))])
        assert fields_of(exc) == ["allocation[1].instrument_id"]
        assert "already in allocation[0]" in exc.value.errors[0].message

    def test_only_tradable_instruments(self):
        closed = InstrumentFactory(tradable=False)
        with pytest.raises(InvalidInput) as exc:
            create([line(closed, "1")])
        assert fields_of(exc) == ["allocation[0].instrument_id"]
        assert "not tradable" in exc.value.errors[0].message

    def test_unknown_instrument_is_named(self):
        with pytest.raises(InvalidInput) as exc:
            create([services.LineInput(instrument_id="US0378331005", weight=Decimal(1))])
        assert exc.value.errors[0].message == "no instrument with ISIN or UUID US0378331005"

    def test_non_future_weights_must_sum_to_exactly_one(self):
        a, b = InstrumentFactory(), InstrumentFactory()
        with pytest.raises(InvalidInput) as exc:
            create([line(a, "0.6"), line(b, "0.3")])
        assert fields_of(exc) == ["allocation"]
        assert "sum to 0.9" in exc.value.errors[0].message

    def test_futures_are_leverage_outside_the_sum(self):
        a = InstrumentFactory()
        future = InstrumentFactory(type=InstrumentType.FUTURE, futures_cost=FuturesCost.LATER)
        allocation = create([line(a, "1"), line(future, "0.3")])
        assert allocation.current_version.lines.count() == 2

    def test_normalize_scales_to_exactly_one_including_bands(self):
        a, b, c = InstrumentFactory(), InstrumentFactory(), InstrumentFactory()
        allocation = create(
            [line(a, "1", min_weight=Decimal("0.5"), max_weight=Decimal("2")), line(b, "1"), line(c, "1")],
            normalize=True,
        )
        lines = {l.instrument_id: l for l in allocation.current_version.lines.all()}
        assert sum(l.weight for l in lines.values()) == Decimal(1)
        assert lines[b.pk].weight == Decimal("0.333333333333")
        assert lines[a.pk].min_weight == Decimal("0.166666666667")

    @pytest.mark.parametrize(
        "band, field",
        [
            ({"min_weight": Decimal("0.7")}, "allocation[0].min_weight"),
            ({"min_weight": Decimal("-0.1")}, "allocation[0].min_weight"),
            ({"max_weight": Decimal("0.5")}, "allocation[0].max_weight"),
            ({"max_weight": Decimal("1.1")}, "allocation[0].max_weight"),
        ],
    )
    def test_band_must_hold_0_min_weight_max_1(self, band, field):
        a, b = InstrumentFactory(), InstrumentFactory()
        with pytest.raises(InvalidInput) as exc:
            create([line(a, "0.6", **band), line(b, "0.4")])
        assert fields_of(exc) == [field]

    def test_periodical_needs_a_period_and_others_refuse_one(self):
        a = InstrumentFactory()
        with pytest.raises(InvalidInput) as exc:
            create([line(a, "1")], weight_type=WeightType.PERIODICAL)
        assert fields_of(exc) == ["period_type", "period_count"]
        with pytest.raises(InvalidInput) as exc:
            create([line(a, "1")], period_type="MONTHLY")
        assert fields_of(exc) == ["period_type"]

    def test_a_refused_request_changes_nothing(self):
        a = InstrumentFactory()
        with pytest.raises(InvalidInput):
            create([line(a, "0.5")])
        assert (Allocation.objects.count(), AllocationVersion.objects.count(), AllocationLine.objects.count()) == (0, 0, 0)


class TestAllocationVersions:
    def test_update_creates_a_new_version_and_keeps_the_old_one(self, superuser):
        a, b, c = InstrumentFactory(), InstrumentFactory(), InstrumentFactory()
        allocation = make_allocation({a: "0.6", b: "0.4"}, effective_from=date(2026, 1, 1))
        first = allocation.current_version
        services.allocation_update(
            allocation=allocation,
            data=services.AllocationInput(lines=[line(a, "0.5"), line(c, "0.5")], effective_from=date(2026, 2, 1)),
            user=superuser,
        )
        allocation.refresh_from_db()
        assert allocation.current_version.version == 2
        assert allocation.current_version.created_by == superuser
        assert sorted(l.weight for l in first.lines.all()) == [Decimal("0.4"), Decimal("0.6")]
        summary = allocation.current_version.change_summary
        assert f"{a.isin} 0.6 → 0.5" in summary and f"added {c.isin} 0.5" in summary and f"removed {b.isin}" in summary

    def test_new_version_cannot_take_effect_before_the_current_one(self):
        a = InstrumentFactory()
        allocation = make_allocation({a: "1"}, effective_from=date(2026, 3, 1))
        with pytest.raises(InvalidInput) as exc:
            services.allocation_update(
                allocation=allocation, data=services.AllocationInput(lines=[line(a, "1")], effective_from=date(2026, 2, 1))
            )
        assert fields_of(exc) == ["effective_from"]

    def test_delete_refused_while_configured(self):
        configuration = make_configuration()
        with pytest.raises(Conflict):
            services.allocation_delete(allocation=configuration.allocation)
        configuration.delete()
        services.allocation_delete(allocation=configuration.allocation)
        assert not Allocation.objects.exists() and not AllocationVersion.objects.exists()


class TestAccountsAndHoldings:
    def test_sub_portfolios_are_one_level_deep(self):
        parent = AccountFactory()
        child = services.account_create(client_id="C", base_currency="EUR", parent=parent)
        with pytest.raises(InvalidInput) as exc:
            services.account_create(client_id="G", base_currency="EUR", parent=child)
        assert fields_of(exc) == ["parent_id"]
        with pytest.raises(InvalidInput):
            services.account_update(account=parent, parent=AccountFactory(), set_parent=True)

    def test_closed_account_cannot_reopen(self):
        account = AccountFactory(status="CLOSED")
        with pytest.raises(BusinessRuleViolation):
            services.account_update(account=account, status="ACTIVE")

    def test_holdings_replace_is_a_full_snapshot(self):
        account = AccountFactory()
        old = PositionFactory(account=account)
        new = InstrumentFactory()
        services.holdings_replace(
            account=account,
            positions=[services.PositionInput(instrument_id=str(new.id), units=Decimal("3"))],
            cash=[services.CashInput(currency="USD", balance=Decimal("-5.5"), is_default=True)],
        )
        assert list(account.positions.values_list("instrument_id", "units")) == [(new.pk, Decimal("3"))]
        assert not Position.objects.filter(pk=old.pk).exists()
        assert list(account.cash_accounts.values_list("currency", "balance")) == [("USD", Decimal("-5.5"))]

    def test_holdings_with_a_bad_row_leave_the_old_snapshot(self):
        account = AccountFactory()
        old = PositionFactory(account=account)
        with pytest.raises(InvalidInput) as exc:
            services.holdings_replace(
                account=account,
                positions=[services.PositionInput(instrument_id=old.instrument.isin, units=Decimal("-1"))],
                cash=[services.CashInput(currency="EUR", balance=Decimal(1), is_default=True),
                      services.CashInput(currency="USD", balance=Decimal(1), is_default=True)],
            )
        assert fields_of(exc) == ["positions[0].units", "cash[1].is_default"]
        assert list(account.positions.all()) == [old] and not CashAccount.objects.exists()


class TestConfigurations:
    def test_only_portfolio_accounts(self):
        with pytest.raises(BusinessRuleViolation) as exc:
            services.configuration_create(account=AccountFactory(account_type=AccountType.CUSTODY), allocation=make_allocation())
        assert exc.value.status == 422

    def test_one_configuration_per_account(self):
        configuration = make_configuration()
        with pytest.raises(Conflict):
            services.configuration_create(account=configuration.account, allocation=make_allocation())

    def test_sub_portfolio_follows_its_parent(self):
        with pytest.raises(BusinessRuleViolation):
            services.configuration_create(account=AccountFactory(parent=AccountFactory()), allocation=make_allocation())


class TestMarketData:
    def test_prices_upsert_replaces_the_same_key(self):
        instrument = InstrumentFactory()
        row = services.PriceRow(instrument_id=instrument.isin, effective_at=date(2026, 3, 2), value=Decimal("10"))
        assert services.prices_upsert(rows=[row]) == 1
        services.prices_upsert(rows=[services.PriceRow(instrument_id=str(instrument.id), effective_at=row.effective_at, value=Decimal("11"))])
        assert list(Price.objects.values_list("value", flat=True)) == [Decimal("11")]

    def test_prices_upsert_is_all_or_nothing(self):
        instrument = InstrumentFactory()
        rows = [
            services.PriceRow(instrument_id=instrument.isin, effective_at=date(2026, 3, 2), value=Decimal("10")),
            services.PriceRow(instrument_id="DE0000000000", effective_at=date(2026, 3, 2), value=Decimal("10")),
            services.PriceRow(instrument_id=instrument.isin, effective_at=date(2026, 3, 3), value=Decimal("0")),
        ]
        with pytest.raises(InvalidInput) as exc:
            services.prices_upsert(rows=rows)
        assert fields_of(exc) == ["prices[1].instrument_id", "prices[2].value"]
        assert not Price.objects.exists()

    def test_instrument_rules(self):
        with pytest.raises(InvalidInput) as exc:
            services.instrument_create(name="x", type="ETF", currency="EUR", isin="US0378331006")
        assert fields_of(exc) == ["isin"]
        future = services.instrument_create(name="F", type="FUTURE", currency="EUR")
        assert future.futures_cost == FuturesCost.LATER
        with pytest.raises(InvalidInput) as exc:
            services.instrument_update(instrument=future, currency="USD")
        assert fields_of(exc) == ["currency"]
        services.instrument_create(name="", type="CASH", currency="EUR")
        with pytest.raises(InvalidInput) as exc:
            services.instrument_create(name="", type="CASH", currency="EUR")
        assert fields_of(exc) == ["currency"]


def test_out_of_range_weights_are_named_not_crashed():
    a, future = InstrumentFactory(), InstrumentFactory(type=InstrumentType.FUTURE, futures_cost=FuturesCost.LATER)
    with pytest.raises(InvalidInput) as exc:
        create([line(a, "1"), line(future, "1e30")])
    assert fields_of(exc) == ["allocation[1].weight"]
    with pytest.raises(InvalidInput) as exc:
        create([line(a, "0.5000000000001"), line(future, "0.1")])
    assert "allocation[0].weight" in fields_of(exc)
