"""rows_by_ids: the reads of a chunk, one index probe per id on PostgreSQL, the ORM
elsewhere; the same rows either way."""

from decimal import Decimal

import pytest
from django.db.models import Q

from core.ids import IdTuple, uuid_array
from portfolios.models import PortfolioAccount, Position
from rebalancing.selectors.book import rows_by_ids
from tests.factories import AccountFactory, InstrumentFactory, PositionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def family():
    parent, other = AccountFactory(), AccountFactory()
    child = AccountFactory(parent=parent)
    AccountFactory()  # not asked for, not a child: never returned
    return parent, child, other


@pytest.mark.parametrize("probe", [True, False])
def test_any_of_several_keys(family, probe):
    parent, child, other = family
    rows = rows_by_ids(PortfolioAccount, ("pk", "parent_id"), [parent.pk, other.pk], ("id", "parent_id"), probe=probe)
    assert sorted(rows, key=str) == sorted([(parent.pk, None), (child.pk, parent.pk), (other.pk, None)], key=str)


@pytest.mark.parametrize("probe", [True, False])
def test_where_and_text(family, probe):
    parent, child, other = family
    a, b = InstrumentFactory(), InstrumentFactory()
    PositionFactory(account=parent, instrument=a, units=Decimal(3))
    PositionFactory(account=parent, instrument=b, units=Decimal(0))
    PositionFactory(account=other, instrument=a, units=Decimal(5))
    PositionFactory(account=child, instrument=a, units=Decimal(7))
    rows = rows_by_ids(
        Position, "account_id", [parent.pk, other.pk], ("account_id", "instrument_id", "units"),
        where=Q(units__gt=0), probe=probe, text=("instrument_id",),
    )
    assert sorted(rows) == sorted([(parent.pk, str(a.pk), Decimal(3)), (other.pk, str(a.pk), Decimal(5))])


def test_an_id_tuple_formats_its_array_once(family):
    parent, child, _ = family
    ids = IdTuple([parent.pk, child.pk])
    assert uuid_array(ids) == f"{{{parent.pk},{child.pk}}}"
    assert ids.literal == uuid_array(ids)
    assert uuid_array(ids) is uuid_array(ids)
