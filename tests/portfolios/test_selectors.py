from datetime import date
from decimal import Decimal

import pytest

from portfolios.models import CashKind
from portfolios.selectors import account_valuations, instruments_by_reference
from tests.factories import (
    AccountFactory,
    CashAccountFactory,
    FxRateFactory,
    InstrumentFactory,
    PositionFactory,
    PriceFactory,
    make_allocation,
    make_configuration,
)

pytestmark = pytest.mark.django_db
D = date(2026, 3, 2)


def test_instruments_by_reference_accepts_isins_and_uuids_mixed():
    a, b = InstrumentFactory(), InstrumentFactory()
    found = instruments_by_reference([a.isin.lower(), str(b.id), "DE0000000000", "nonsense"])
    assert found == {a.isin.lower(): a, str(b.id): b}


def test_valuation_uses_latest_price_at_or_before_date_and_fx():
    eur_etf = InstrumentFactory(currency="EUR")
    usd_stock = InstrumentFactory(currency="USD")
    account = AccountFactory(base_currency="EUR")
    PositionFactory(account=account, instrument=eur_etf, units=Decimal("10"))
    PositionFactory(account=account, instrument=usd_stock, units=Decimal("2"))
    CashAccountFactory(account=account, currency="EUR", balance=Decimal("100"))
    PriceFactory(instrument=eur_etf, effective_at=date(2026, 2, 27), value=Decimal("50"))
    PriceFactory(instrument=eur_etf, effective_at=date(2026, 3, 3), value=Decimal("999"))  # after the date
    PriceFactory(instrument=usd_stock, effective_at=D, value=Decimal("110"))
    FxRateFactory(base="EUR", quote="USD", rate=Decimal("1.10"), effective_at=date(2026, 1, 1))
    make_configuration(account, make_allocation({eur_etf: "0.5", usd_stock: "0.5"}, effective_from=date(2026, 1, 1)))

    valuation = account_valuations(accounts=[account], on_date=D)[account.pk]

    assert valuation.error is None
    # 10 × 50 + 2 × 110 / 1.10 + 100 = 500 + 200 + 100
    assert valuation.total_value == Decimal("800")
    assert valuation.cash_value == Decimal("100")
    lines = {line.instrument.pk: line for line in valuation.lines}
    assert lines[eur_etf.pk].actual_weight == Decimal("0.625")
    assert lines[eur_etf.pk].drift == Decimal("0.125")
    assert lines[usd_stock.pk].actual_weight == Decimal("0.25")
    assert lines[usd_stock.pk].drift == Decimal("-0.25")


def test_sub_portfolios_locked_included_count_toward_parent():
    etf = InstrumentFactory()
    PriceFactory(instrument=etf, effective_at=D, value=Decimal("10"))
    parent = AccountFactory()
    child = AccountFactory(parent=parent, locked=True)
    PositionFactory(account=parent, instrument=etf, units=Decimal("5"))
    PositionFactory(account=child, instrument=etf, units=Decimal("5"))
    CashAccountFactory(account=child, balance=Decimal("50"))

    valuation = account_valuations(accounts=[parent], on_date=D)[parent.pk]

    assert valuation.total_value == Decimal("150")
    assert {p.account_id for p in valuation.positions} == {parent.pk, child.pk}


def test_missing_price_is_a_named_error_never_zero():
    etf = InstrumentFactory(isin="US0378331005")
    account = AccountFactory()
    PositionFactory(account=account, instrument=etf)
    PriceFactory(instrument=etf, effective_at=date(2026, 3, 5))  # only after the date

    valuation = account_valuations(accounts=[account], on_date=D)[account.pk]

    assert valuation.total_value is None
    assert valuation.error == "no price for US0378331005 at or before 2026-03-02"


def test_missing_price_of_a_targeted_instrument_is_an_error():
    held, targeted = InstrumentFactory(), InstrumentFactory()
    PriceFactory(instrument=held, effective_at=D)
    account = AccountFactory()
    PositionFactory(account=account, instrument=held)
    make_configuration(account, make_allocation({held: "0.5", targeted: "0.5"}, effective_from=date(2026, 1, 1)))

    assert account_valuations(accounts=[account], on_date=D)[account.pk].error == (
        f"no price for {targeted.isin} at or before 2026-03-02"
    )


def test_missing_fx_rate_is_a_named_error_and_inverse_rates_are_derived():
    account = AccountFactory(base_currency="USD")
    CashAccountFactory(account=account, currency="CHF", balance=Decimal("10"))
    assert account_valuations(accounts=[account], on_date=D)[account.pk].error == (
        "no FX rate CHF/USD at or before 2026-03-02"
    )
    FxRateFactory(base="USD", quote="CHF", rate=Decimal("0.8"), effective_at=D)
    assert account_valuations(accounts=[account], on_date=D)[account.pk].total_value == Decimal("12.5")


def test_available_cash_scope_counts_only_the_chosen_cash_accounts():
    account = AccountFactory()
    CashAccountFactory(account=account, kind=CashKind.CASH, balance=Decimal("100"), is_default=False)
    CashAccountFactory(account=account, kind=CashKind.MARGIN, balance=Decimal("40"), is_default=True)
    value = {
        scope: account_valuations(accounts=[account], on_date=D, available_cash=scope)[account.pk].cash_value
        for scope in ("ALL_ACCOUNTS", "CASH_ACCOUNTS_ONLY", "DEFAULT_ACCOUNT_ONLY")
    }
    assert value == {"ALL_ACCOUNTS": Decimal("140"), "CASH_ACCOUNTS_ONLY": Decimal("100"), "DEFAULT_ACCOUNT_ONLY": Decimal("40")}


def _book(n):
    accounts = []
    allocation = make_allocation({InstrumentFactory(): "0.6", InstrumentFactory(): "0.4"}, effective_from=date(2026, 1, 1))
    instruments = [line.instrument for line in allocation.current_version.lines.all()]
    for instrument in instruments:
        PriceFactory(instrument=instrument, effective_at=D)
    for _ in range(n):
        account = AccountFactory()
        AccountFactory(parent=account)
        for instrument in instruments:
            PositionFactory(account=account, instrument=instrument)
        CashAccountFactory(account=account)
        make_configuration(account, allocation)
        accounts.append(account)
    return accounts


@pytest.mark.parametrize("size", [1, 25])
def test_valuation_query_count_does_not_grow_with_accounts(size, django_assert_num_queries):
    accounts = _book(size)
    with django_assert_num_queries(7):  # the eighth, FX, runs only with several currencies
        valuations = account_valuations(accounts=accounts, on_date=D)
    assert all(v.error is None and v.total_value == Decimal("3000") for v in valuations.values())


def test_a_future_shows_its_exposure_but_does_not_add_to_the_total():
    from portfolios.models import FuturesCost, InstrumentType

    future = InstrumentFactory(type=InstrumentType.FUTURE, futures_cost=FuturesCost.LATER)
    PriceFactory(instrument=future, effective_at=D, value=Decimal("50"))
    account = AccountFactory()
    PositionFactory(account=account, instrument=future, units=Decimal("2"))
    CashAccountFactory(account=account, balance=Decimal("1000"))
    valuation = account_valuations(accounts=[account], on_date=D)[account.pk]
    assert valuation.total_value == Decimal("1000")
    [line] = [line for line in valuation.lines if line.instrument.pk == future.pk]
    assert (line.value, line.actual_weight) == (Decimal("100"), Decimal("0.1"))
