from datetime import date
from decimal import Decimal

import pytest

from core.errors import InvalidInput
from portfolios.models import WeightType
from rebalancing.selectors.book import book_load
from rebalancing.services import preferences_replace, rebalance_preview
from tests.factories import (
    AccountFactory,
    CashAccountFactory,
    InstrumentFactory,
    PositionFactory,
    PriceFactory,
    make_allocation,
    make_configuration,
)

pytestmark = pytest.mark.django_db
D = date(2026, 3, 2)


def account_with(allocation, cash="1000", **fields):
    account = AccountFactory(**fields)
    CashAccountFactory(account=account, balance=Decimal(cash))
    make_configuration(account, allocation)
    return account


def test_full_invests_cash_towards_the_target(fifty_fifty):
    a, b, allocation = fifty_fifty
    account = account_with(allocation)
    [result] = rebalance_preview(account_ids=[account.pk], rebalance_date=D).results
    assert result.status == "PROPOSED"
    assert sorted((o.instrument_id, o.side, o.units, o.trade_amount) for o in result.orders) == sorted(
        [(a.pk, "BUY", Decimal(50), Decimal(500)), (b.pk, "BUY", Decimal(50), Decimal(500))]
    )


def test_locked_sub_portfolio_counts_but_is_never_traded(fifty_fifty):
    a, b, allocation = fifty_fifty
    parent = account_with(allocation, cash="0")
    child = AccountFactory(parent=parent, locked=True)
    PositionFactory(account=child, instrument=a, units=Decimal("100"))
    PositionFactory(account=parent, instrument=b, units=Decimal("0.5"))
    [result] = rebalance_preview(account_ids=[parent.pk], rebalance_date=D).results
    assert result.total_value == Decimal("1005")
    assert all(order.account_id == parent.pk for order in result.orders)


def test_sub_portfolios_and_inactive_accounts_fail_with_a_reason(fifty_fifty):
    *_, allocation = fifty_fifty
    parent = account_with(allocation)
    child = AccountFactory(parent=parent)
    pending = account_with(allocation, status="PENDING")
    unconfigured = AccountFactory()
    results = rebalance_preview(account_ids=[child.pk, pending.pk, unconfigured.pk], rebalance_date=D).results
    assert [r.status for r in results] == ["FAILED"] * 3
    assert "is a sub-portfolio" in results[0].reason
    assert "is PENDING" in results[1].reason
    assert "has no configuration" in results[2].reason


def test_account_preferences_override_the_global_ones(fifty_fifty):
    *_, allocation = fifty_fifty
    plain, picky = account_with(allocation), account_with(allocation)
    preferences_replace(values={"min_trade_amount": Decimal("600")}, account=picky)
    results = rebalance_preview(account_ids=[plain.pk, picky.pk], rebalance_date=D).results
    assert [len(r.orders) for r in results] == [2, 0]


def test_bad_ids_are_named():
    with pytest.raises(InvalidInput) as exc:
        rebalance_preview(account_ids=["nope", "3fa85f64-5717-4562-b3fc-2c963f66afa6"])
    assert [e.field for e in exc.value.errors] == ["accounts[0]"]
    with pytest.raises(InvalidInput) as exc:
        rebalance_preview(account_ids=["3fa85f64-5717-4562-b3fc-2c963f66afa6"])
    assert exc.value.errors[0].message == "no account with id 3fa85f64-5717-4562-b3fc-2c963f66afa6"


def test_floating_targets_drift_with_prices():
    a, b = InstrumentFactory(), InstrumentFactory()
    PriceFactory(instrument=a, effective_at=date(2022, 1, 5), value=Decimal("10"))
    PriceFactory(instrument=b, effective_at=date(2022, 1, 5), value=Decimal("20"))
    PriceFactory(instrument=a, effective_at=date(2022, 1, 12), value=Decimal("12"))
    PriceFactory(instrument=b, effective_at=date(2022, 1, 12), value=Decimal("15"))
    allocation = make_allocation({a: "0.6", b: "0.4"}, weight_type=WeightType.PERIODICAL,
                                 period_type="WEEKLY", period_count=3, effective_from=date(2022, 1, 5))
    account = account_with(allocation)
    targets = book_load(account_ids=[account.pk], on_date=date(2022, 1, 12)).targets[account.pk]
    assert targets.reset_date == date(2022, 1, 5)
    assert {line.instrument_id: line.weight for line in targets.lines} == {
        a.pk: Decimal("0.705882352941"), b.pk: Decimal("0.294117647059")
    }


@pytest.mark.parametrize("size", [1, 30])
def test_book_loads_in_a_fixed_number_of_queries(size, fifty_fifty, django_assert_num_queries):
    *_, allocation = fifty_fifty
    ids = []
    for _ in range(size):
        account = account_with(allocation)
        AccountFactory(parent=account, locked=True)
        ids.append(account.pk)
    # plus one for FX with several currencies; two of them load the restrictions
    with django_assert_num_queries(13):
        preview = rebalance_preview(account_ids=ids, rebalance_date=D)
    assert {r.status for r in preview.results} == {"PROPOSED"}
