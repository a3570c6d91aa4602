from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask
from stdnum import isin

from config.schedules import SCHEDULES
from portfolios.models import (
    Allocation,
    Configuration,
    FxRate,
    Instrument,
    PortfolioAccount,
    Position,
    Price,
)
from portfolios.selectors import account_valuations
from portfolios.services.demo import demo_book_load

pytestmark = pytest.mark.django_db
TODAY = date(2026, 3, 31)


def test_demo_book_has_what_the_demo_promises():
    summary = demo_book_load(accounts=60, today=TODAY)

    instruments = Instrument.objects.exclude(isin=None)
    assert instruments.count() >= 30 and all(isin.is_valid(i.isin) for i in instruments)
    assert Price.objects.filter(instrument=instruments.first()).count() == 90
    assert FxRate.objects.filter(base="EUR", quote="USD").count() == 90
    assert 3 <= Allocation.objects.count() <= 5
    assert summary.accounts == PortfolioAccount.objects.count() > 60  # sub-portfolios on top
    assert PortfolioAccount.objects.filter(locked=True).exists()
    assert PortfolioAccount.objects.filter(parent__isnull=False).exists()
    assert Configuration.objects.count() > 40 and Position.objects.count() > 300

    valuations = account_valuations(accounts=list(PortfolioAccount.objects.filter(parent=None)), on_date=TODAY)
    assert all(v.error is None and v.total_value > 0 for v in valuations.values())

    # Lots (§12): every position's units are its lots' units; costs both above and below
    # today's price, dated over years, some unknown.
    from django.db.models import Sum  # noqa: PLC0415

    from portfolios.models import Lot  # noqa: PLC0415

    sums = dict(Lot.objects.values("position").annotate(t=Sum("units")).values_list("position", "t"))
    assert all(sums[p.pk] == p.units for p in Position.objects.all())
    prices = {p.instrument_id: p.value for p in Price.objects.filter(effective_at=TODAY)}
    lots = list(Lot.objects.select_related("position"))
    assert any(lot.unit_cost is None for lot in lots)
    assert any(lot.unit_cost is not None and lot.unit_cost < prices[lot.position.instrument_id] for lot in lots)
    assert any(lot.unit_cost is not None and lot.unit_cost > prices[lot.position.instrument_id] for lot in lots)
    assert {(TODAY - lot.acquired_on).days > 365 for lot in lots} == {True, False}


def test_demo_book_is_deterministic_and_loads_accounts_only_once():
    demo_book_load(accounts=10, today=TODAY, seed=3)
    first = sorted(Position.objects.values_list("account__client_id", "instrument__name", "units"))
    assert demo_book_load(accounts=10, today=TODAY, seed=3).accounts == 0
    assert sorted(Position.objects.values_list("account__client_id", "instrument__name", "units")) == first
    assert all(units > Decimal(0) for *_, units in first)


def test_load_demo_command_prints_an_admin_login(capsys):
    call_command("load_demo", "--accounts", "5")
    out = capsys.readouterr().out
    assert "Admin login: admin / " in out
    password = out.split("Admin login: admin / ")[1].split()[0]
    from django.contrib.auth import authenticate

    assert authenticate(username="admin", password=password).is_superuser


def test_install_schedules_installs_each_declared_task_once_and_keeps_operator_changes():
    call_command("install_schedules")
    task = PeriodicTask.objects.get(name=next(iter(SCHEDULES)))
    task.enabled = False
    task.save()
    call_command("install_schedules")
    assert PeriodicTask.objects.filter(name__in=SCHEDULES).count() == len(SCHEDULES)
    assert not PeriodicTask.objects.get(pk=task.pk).enabled


@pytest.mark.parametrize("bulk", [False, True], ids=["row-by-row", "keys-checked-once"])
def test_demo_lots_get_their_cost_and_date_from_the_position_id(settings, bulk):
    """Every demo position has one lot: one in twenty (id divisible by 20) of unknown cost
    dated the load's day (as a file's units added), the others at 60 %–140 % of today's price (60 + id·7919 mod 81 %) dated
    30 + 130·(id mod 12) days ago. PostgreSQL writes them so as the holdings load inserts
    them (both ways of that load: foreign keys checked row by row, or once), SQLite by an
    UPDATE afterwards: the same values."""
    from datetime import timedelta  # noqa: PLC0415

    from django.utils import timezone  # noqa: PLC0415

    from portfolios.models import Lot  # noqa: PLC0415

    if bulk:
        settings.IMPORTS_BULK_FOREIGN_KEY_ROWS = 1
    demo_book_load(accounts=30, days=5, seed=11, today=TODAY)
    prices = {p.instrument_id: p.value for p in Price.objects.filter(effective_at=TODAY)}
    lots = list(Lot.objects.select_related("position"))
    assert len(lots) == Position.objects.count() > 100
    for lot in lots:
        position = lot.position
        assert lot.units == position.units
        if position.pk % 20 == 0:
            assert (lot.unit_cost, lot.acquired_on) == (None, timezone.localdate())
        else:
            assert lot.unit_cost == prices[position.instrument_id] * (60 + position.pk * 7919 % 81) / 100
            assert lot.acquired_on == TODAY - timedelta(days=30 + 130 * (position.pk % 12))
    assert any(lot.position.pk % 20 == 0 for lot in lots)
