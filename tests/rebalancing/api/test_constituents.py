"""GET /api/v1/portfolios/allocations/{allocation_id}/constituents/ (spec §2.1), and the
"Floating weights" panel of the allocation's admin page, which shows the same numbers."""

import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from portfolios.models import WeightType
from tests.factories import InstrumentFactory, PriceFactory, make_allocation

from .conftest import error_fields, problem


def url(allocation, effective_at=None) -> str:
    path = f"/api/v1/portfolios/allocations/{getattr(allocation, 'pk', allocation)}/constituents/"
    return path if effective_at is None else f"{path}?effective_at={effective_at}"


def ok(response) -> dict:
    assert response.status_code == 200, response.content[:2000]
    return response.json()


@pytest.fixture
def worked_example(db):
    """§2.1: F = Wed 5 Jan 2022, WEEKLY 3; 60/40 on A and B; A 10 → 12, B 20 → 15 by 12 Jan."""
    a, b = InstrumentFactory(name="A"), InstrumentFactory(name="B")
    for instrument, day, value in [
        (a, date(2022, 1, 5), "10"), (b, date(2022, 1, 5), "20"),
        (a, date(2022, 1, 12), "12"), (b, date(2022, 1, 12), "15"),
        (a, date(2022, 1, 26), "11"), (b, date(2022, 1, 26), "16"),
    ]:
        PriceFactory(instrument=instrument, effective_at=day, value=Decimal(value))
    allocation = make_allocation(
        {a: "0.6", b: "0.4"}, weight_type=WeightType.PERIODICAL, period_type="WEEKLY", period_count=3,
        effective_from=date(2022, 1, 5),
    )
    return a, b, allocation


def test_the_worked_example_drifts_and_resets(api_client, worked_example):
    a, b, allocation = worked_example
    assert ok(api_client.get(url(allocation, "2022-01-12"))) == {
        "effective_at": "2022-01-12",
        "reset_date": "2022-01-05",
        "constituents": [
            {"instrument_id": str(a.pk), "isin": a.isin, "weight": "0.6", "floating_weight": "0.705882352941"},
            {"instrument_id": str(b.pk), "isin": b.isin, "weight": "0.4", "floating_weight": "0.294117647059"},
        ],
    }
    # 26 Jan is a reset date: the weights are the version's again.
    body = ok(api_client.get(url(allocation, "2022-01-26")))
    assert body["reset_date"] == "2022-01-26"
    assert [(c["weight"], c["floating_weight"]) for c in body["constituents"]] == [("0.6", "0.6"), ("0.4", "0.4")]
    # ...and the drift restarts from the 26 Jan prices (no newer price: still 0.6 / 0.4).
    body = ok(api_client.get(url(allocation, "2022-02-02")))
    assert body["reset_date"] == "2022-01-26"
    assert [c["floating_weight"] for c in body["constituents"]] == ["0.6", "0.4"]


def test_static_floating_weight_is_the_weight(api_client, db):
    a, b = InstrumentFactory(), InstrumentFactory()
    allocation = make_allocation({a: "0.7", b: "0.3"}, effective_from=date(2022, 1, 5))
    PriceFactory(instrument=a, effective_at=date(2022, 1, 5), value=Decimal("10"))
    body = ok(api_client.get(url(allocation)))  # default: today
    assert body == {
        "effective_at": timezone.localdate().isoformat(),
        "reset_date": None,
        "constituents": [
            {"instrument_id": str(a.pk), "isin": a.isin, "weight": "0.7", "floating_weight": "0.7"},
            {"instrument_id": str(b.pk), "isin": b.isin, "weight": "0.3", "floating_weight": "0.3"},
        ],
    }


def test_no_version_in_effect_yet(api_client, db):
    allocation = make_allocation(effective_from=timezone.localdate() + timedelta(days=5))
    body = ok(api_client.get(url(allocation)))
    assert (body["reset_date"], body["constituents"]) == (None, [])


def test_a_missing_price_is_a_422_naming_it(api_client, db):
    a, b = InstrumentFactory(), InstrumentFactory()
    PriceFactory(instrument=a, effective_at=date(2022, 1, 5), value=Decimal("10"))
    PriceFactory(instrument=a, effective_at=date(2022, 1, 12), value=Decimal("12"))
    allocation = make_allocation({a: "0.5", b: "0.5"}, weight_type=WeightType.FLOATING, effective_from=date(2022, 1, 5))
    body = problem(api_client.get(url(allocation, "2022-01-12")), 422)
    assert b.isin in body["detail"] and "2022-01" in body["detail"]


def test_unknown_allocation_and_bad_date(api_client, worked_example):
    *_, allocation = worked_example
    problem(api_client.get(url(uuid.uuid4())), 404)
    problem(api_client.get(url("nope")), 404)
    for bad in ("2022-01-12T00:00:00", "20220112", "2022-W02"):
        assert error_fields(problem(api_client.get(url(allocation, bad)), 400)) == {"effective_at"}


def test_needs_view_allocation(client_for, user_with_perms, worked_example):
    *_, allocation = worked_example
    assert ok(client_for(user_with_perms("portfolios.view_allocation", username="pm")).get(url(allocation, "2022-01-12")))
    problem(client_for(user_with_perms("portfolios.view_portfolioaccount", username="ops")).get(url(allocation)), 403)


# --- The admin panel ----------------------------------------------------------------------

def admin_page(admin_client, allocation, effective_at=None):
    path = reverse("admin:portfolios_allocation_change", args=[allocation.pk])
    response = admin_client.get(path, {"effective_at": effective_at} if effective_at else {})
    assert response.status_code == 200
    return response.content.decode()


def test_admin_panel_shows_the_same_floating_weights(admin_client, api_client, worked_example):
    a, b, allocation = worked_example
    content = admin_page(admin_client, allocation, "2022-01-12")
    assert 'id="floating-weights"' in content
    assert "<strong data-reset-date>2022-01-05</strong>" in content
    for constituent in ok(api_client.get(url(allocation, "2022-01-12")))["constituents"]:
        assert f'<td data-floating-weight>{constituent["floating_weight"]}</td>' in content
    assert "70.59 %" in content and "29.41 %" in content
    content = admin_page(admin_client, allocation, "2022-01-26")
    assert "<strong data-reset-date>2022-01-26</strong>" in content
    assert "<td data-floating-weight>0.6</td>" in content


def test_admin_panel_shows_a_missing_price_or_a_bad_date(admin_client, db):
    a, b = InstrumentFactory(), InstrumentFactory()
    PriceFactory(instrument=a, effective_at=date(2022, 1, 5), value=Decimal("10"))
    allocation = make_allocation({a: "0.5", b: "0.5"}, weight_type=WeightType.FLOATING, effective_from=date(2022, 1, 5))
    content = admin_page(admin_client, allocation, "2022-01-12")
    assert "data-floating-error" in content and b.isin in content
    assert "must be a date in the form YYYY-MM-DD" in admin_page(admin_client, allocation, "12/01/2022")
    assert 'id="floating-weights"' in admin_page(admin_client, allocation)  # today by default
