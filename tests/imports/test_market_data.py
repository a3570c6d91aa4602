"""Prices and FX rates files: the API columns, dates or RFC 3339 date-times, all rows or none."""

from datetime import date
from decimal import Decimal

import pytest

from portfolios.models import FxRate, Price
from tests.factories import InstrumentFactory, PriceFactory
from tests.imports.conftest import csv_text


def post(client, path, text):
    return client.generic("POST", f"/api/v1/imports/{path}/", text.encode(), content_type="text/csv")


def test_prices_with_dates_and_date_times_the_latest_time_of_a_day_wins(api_client, worker):
    a, b = InstrumentFactory(), InstrumentFactory()
    PriceFactory(instrument=a, effective_at=date(2026, 3, 2), value=Decimal("9"))
    text = csv_text(
        ("instrument_id", "effective_at", "value", "source"),
        (a.isin, "2026-03-02T09:00:00+01:00", "10.5", ""),
        (a.isin, "2026-03-02T17:30:00Z", "10.75", ""),  # later the same UTC day: wins
        (a.isin, "2026-03-03T00:30:00+02:00", "11", ""),  # 2 March 22:30 UTC: later still
        (b.pk, "2026-03-02", "20", "vendor"),
    )
    with worker():
        response = post(api_client, "prices", text)
    assert response.status_code == 202, response.content
    job = api_client.get(f"/api/v1/imports/{response.json()['import_id']}/").json()
    assert (job["status"], job["rows"], job["rows_changed"]) == ("DONE", 4, 2)
    assert Price.objects.get(instrument=a, source="default", effective_at=date(2026, 3, 2)).value == Decimal("11")
    assert Price.objects.get(instrument=b, source="vendor").value == Decimal("20")


def test_a_bad_price_row_refuses_the_whole_file(api_client, worker):
    a = InstrumentFactory()
    text = csv_text(
        ("instrument_id", "effective_at", "value"),
        (a.isin, "2026-03-02", "10"),
        (a.isin, "2026-03-02", "11"),  # the same day, no time: which one?
        (a.isin, "2026-03-04T10:00:00", "1"),  # no offset
        (a.isin, "2026-03-05", "0"),
        ("DE000000000X", "2026-03-05", "1"),
    )
    with worker():
        response = post(api_client, "prices", text)
    job = api_client.get(f"/api/v1/imports/{response.json()['import_id']}/").json()
    assert job["status"] == "FAILED"
    assert [(e["line"], e["field"]) for e in job["errors"]] == [
        (3, "effective_at"), (4, "value"), (5, "instrument_id"),
    ]
    assert not Price.objects.exists()


def test_a_duplicate_price_day_is_named_when_the_rows_are_otherwise_good(api_client, worker):
    a = InstrumentFactory()
    text = csv_text(("instrument_id", "effective_at", "value"), (a.isin, "2026-03-02", "10"), (a.isin, "2026-03-02", "11"))
    with worker():
        response = post(api_client, "prices", text)
    job = api_client.get(f"/api/v1/imports/{response.json()['import_id']}/").json()
    assert job["errors"] == [{"line": 2, "field": "effective_at", "message": "same instrument, source and time as line 1"}]


def test_fx_rates(api_client, worker):
    text = csv_text(("base", "quote", "rate", "effective_at"), ("EUR", "USD", "1.0850", "2026-03-02"),
                    ("EUR", "CHF", "0.95", "2026-03-02T16:00:00Z"))
    with worker():
        response = post(api_client, "fx-rates", text)
    job = api_client.get(f"/api/v1/imports/{response.json()['import_id']}/").json()
    assert job["status"] == "DONE"
    assert FxRate.objects.get(base="EUR", quote="USD").rate == Decimal("1.085")
    bad = csv_text(("base", "quote", "rate", "effective_at"), ("EUR", "EUR", "1", "2026-03-02"), ("EUR", "XYZ", "1", "2026-03-02"))
    with worker():
        response = post(api_client, "fx-rates", bad)
    job = api_client.get(f"/api/v1/imports/{response.json()['import_id']}/").json()
    assert [(e["line"], e["field"]) for e in job["errors"]] == [(1, "quote"), (2, "quote")]


@pytest.mark.parametrize("path", ["holdings", "prices", "fx-rates"])
def test_uploads_need_the_permissions_of_what_they_write(user_with_perms, client_for, path):
    from tests.portfolios.api.conftest import problem

    user = user_with_perms("imports.add_importjob", "imports.view_importjob")
    problem(post(client_for(user), path, "a\n"), 403)


def test_an_upload_without_a_file_is_a_400_naming_the_field(api_client):
    from tests.portfolios.api.conftest import error_fields, problem

    body = problem(api_client.post("/api/v1/imports/holdings/", {}, format="multipart"), 400)
    assert error_fields(body) == {"file"}
    body = problem(api_client.generic("POST", "/api/v1/imports/holdings/?mode=OVERWRITE", b"x", content_type="text/csv"), 400)
    assert error_fields(body) == {"mode"}


def test_an_unknown_import_is_a_404(api_client):
    from tests.portfolios.api.conftest import problem

    problem(api_client.get("/api/v1/imports/00000000-0000-0000-0000-000000000000/"), 404)
    problem(api_client.get("/api/v1/imports/nope/"), 404)
