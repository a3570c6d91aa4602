"""The stored drift an execution writes (from each account's rebalance, no second
valuation) is the drift the daily refresh computes, row for row, whatever the
account: locked, with sub-portfolios, restricted, with kept orders, with a strategy
band, with model min/max weights, in another currency, or not valuable at all."""

from decimal import Decimal

import pytest
from django.utils import timezone

from portfolios.models import (
    AccountRestrictionList,
    Configuration,
    RestrictionEntry,
    RestrictionList,
    Substitute,
)
from portfolios.services import AllocationInput, LineInput, allocation_create
from rebalancing.models import AccountDrift, Strategy, TradeOrder
from rebalancing.services import execution_create
from rebalancing.services.drift import account_drifts_refresh
from tests.factories import (
    AccountFactory,
    CashAccountFactory,
    CashInstrumentFactory,
    FxRateFactory,
    InstrumentFactory,
    PositionFactory,
    PriceFactory,
)
from tests.rebalancing.executions.conftest import run_chunks

pytestmark = pytest.mark.django_db

FIELDS = ("as_of", "currency", "total_value", "max_drift", "max_drift_line", "max_relative_drift", "outside_band",
          "band", "error")


def stored() -> dict:
    return {row["account_id"]: row for row in AccountDrift.objects.values("account_id", *FIELDS)}


@pytest.fixture
def varied_book():
    today = timezone.localdate()
    a, b, c = InstrumentFactory(name="Alpha ETF"), InstrumentFactory(name="Beta ETF"), InstrumentFactory(name="Gamma ETF")
    usd = InstrumentFactory(name="US Equity", currency="USD")
    unpriced = InstrumentFactory(name="No Price Fund")
    for instrument in (a, b, c, usd):
        PriceFactory(instrument=instrument, effective_at=today, value=Decimal("10"))
    FxRateFactory(base="EUR", quote="USD", effective_at=today, rate=Decimal("1.25"))

    def allocation(weights: dict, name: str, limits: dict | None = None):
        limits = limits or {}
        lines = [
            LineInput(instrument_id=str(i.pk), weight=Decimal(w), min_weight=limits.get(i, (None, None))[0],
                      max_weight=limits.get(i, (None, None))[1])
            for i, w in weights.items()
        ]
        return allocation_create(data=AllocationInput(lines=lines, name=name))

    plain = allocation({a: "0.6", b: "0.4"}, "Plain 60/40")
    banded = allocation({a: "0.5", b: "0.5"}, "Banded", limits={a: (Decimal("0.49"), Decimal("0.51"))})
    foreign = allocation({a: "0.5", usd: "0.5"}, "With USD")
    broken = allocation({a: "0.5", b: "0.5"}, "Broken")
    accounts = {}

    def account(name, model, positions, cash="100", **fields):
        acc = AccountFactory(**fields)
        Configuration.objects.create(account=acc, allocation=model)
        for instrument, units in positions.items():
            PositionFactory(account=acc, instrument=instrument, units=Decimal(units))
        CashAccountFactory(account=acc, balance=Decimal(cash), is_default=True)
        accounts[name] = acc
        return acc

    account("drifted", plain, {a: "100"})
    account("balanced", plain, {a: "60", b: "40"}, cash="0")
    account("locked", plain, {a: "30", b: "70"}, locked=True)
    parent = account("with collateral", plain, {a: "50"})
    child = AccountFactory(parent=parent, locked=True)
    PositionFactory(account=child, instrument=b, units=Decimal("20"))
    PositionFactory(account=child, instrument=c, units=Decimal("5"))  # outside the model
    account("banded", banded, {a: "52", b: "48"}, cash="0")
    account("foreign", foreign, {a: "20", usd: "50"}, cash="500")
    kept = account("kept withdrawal", plain, {a: "40", b: "40"}, cash="300")
    TradeOrder.objects.create(account=kept, instrument=b, transaction_type="BUY", side="BUY", units="5",
                              unit_price="10", trade_amount="50", currency="EUR", execution_method="UNITS",
                              status="EXECUTABLE")
    TradeOrder.objects.create(account=kept, instrument=CashInstrumentFactory(currency="EUR"), transaction_type="WITHDRAWAL", side="SELL",
                              units="100", unit_price="1", trade_amount="100", currency="EUR",
                              execution_method="NET_TRADE_AMOUNT", status="EXECUTABLE")
    restricted = account("restricted", plain, {a: "60", b: "10"}, cash="200")
    own = RestrictionList.objects.create(name="ESG", scope="ACCOUNT")
    RestrictionEntry.objects.create(restriction_list=own, instrument=b, rule="NO_BUY")
    Substitute.objects.create(instrument=b, substitute=c, rank=1)
    AccountRestrictionList.objects.create(account=restricted, restriction_list=own)
    with_strategy = account("strategy band", plain, {a: "65", b: "35"}, cash="0")
    Strategy.objects.create(configuration=Configuration.objects.get(account=with_strategy), type="THRESHOLD",
                            absolute_drift=Decimal("0.02"), relative_drift=Decimal("0.1"))
    account("not valued", broken, {a: "10"})
    # The broken model's second line loses its price: the account cannot be valued.
    broken.current_version.lines.filter(instrument=b).update(instrument=unpriced)
    return accounts


def test_an_execution_stores_the_drift_the_refresh_computes(varied_book):
    today = timezone.localdate()
    ids = [str(a.pk) for a in varied_book.values()]
    execution = execution_create(account_ids=ids, method="FULL", rebalance_date=today)
    run_chunks(execution)
    execution.refresh_from_db()
    assert execution.status in ("COMPLETED", "PARTIALLY_FAILED")
    after_execution = stored()
    assert set(after_execution) == {a.pk for a in varied_book.values()}

    AccountDrift.objects.all().delete()
    assert account_drifts_refresh(account_ids=[a.pk for a in varied_book.values()], on_date=today) == len(varied_book)
    assert stored() == after_execution

    row = {name: after_execution[a.pk] for name, a in varied_book.items()}
    # 1000 in Alpha and 100 cash of 1100: Beta's whole 40 % target is the largest drift.
    assert (row["drifted"]["max_drift"], row["drifted"]["max_drift_line"], row["drifted"]["outside_band"]) == (
        Decimal("0.4"), "Beta ETF", True
    )
    assert (row["balanced"]["max_drift"], row["balanced"]["outside_band"]) == (Decimal("0"), False)
    # Against the plain model, not the one the restriction rewrote (Gamma ETF taking Beta's weight):
    # Beta 100 of 900 against 40 %.
    assert (row["restricted"]["max_drift_line"], row["restricted"]["max_drift"]) == ("Beta ETF", Decimal("0.288888888889"))
    # 2 points off, inside the default band of 5, but Alpha's 52 % is above its model maximum of 51 %.
    assert (row["banded"]["max_drift"], row["banded"]["outside_band"]) == (Decimal("0.02"), True)
    assert "strategy threshold" in row["strategy band"]["band"] and row["strategy band"]["outside_band"]
    assert row["not valued"]["error"] and row["not valued"]["max_drift"] is None
    # 200 EUR of Alpha, 500 USD of the US equity at 1.25 USD per EUR, 500 EUR cash.
    assert row["foreign"]["total_value"] == Decimal("1100")
    # Valued as held: the kept withdrawal and buy do not change the stored total (800 + 300 cash).
    assert row["kept withdrawal"]["total_value"] == Decimal("1100")


def test_a_finished_execution_sends_one_drift_summary_rebuild(varied_book, monkeypatch, django_capture_on_commit_callbacks):
    from core import dispatch
    from rebalancing.models import DriftSummary
    from rebalancing.services.drift import SUMMARY_TASK
    from rebalancing.tasks import drift_summary_refresh_task

    sent = []
    monkeypatch.setattr(dispatch, "task_try_send", lambda name, *args, **options: sent.append(name) or True)
    execution = execution_create(account_ids=[str(a.pk) for a in varied_book.values()], method="FULL",
                                 rebalance_date=timezone.localdate())
    with django_capture_on_commit_callbacks(execute=True):
        run_chunks(execution)
    assert sent.count(SUMMARY_TASK) == 1
    assert not DriftSummary.objects.exists()  # the execution itself does not wait for it

    drift_summary_refresh_task()
    counted = DriftSummary.objects.order_by()
    assert sum(row.accounts for row in counted) == AccountDrift.objects.count() == len(varied_book)
    assert sum(row.accounts for row in counted if row.outside_band) == AccountDrift.objects.filter(outside_band=True).count()
