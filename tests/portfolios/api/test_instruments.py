from datetime import date
from decimal import Decimal

import pytest

from portfolios.models import FxRate, Instrument, Price
from tests.factories import FxRateFactory, InstrumentFactory, PriceFactory, make_isin

from .conftest import error_fields, message_for, problem

URL = "/api/v1/instruments/"
PRICES = "/api/v1/prices/"
FX = "/api/v1/fx-rates/"
UNKNOWN = "0b5f2b8e-8f5e-4c39-9d0e-3f4f0c2d9a11"


# --- Instruments -----------------------------------------------------------------------

def test_create_instrument(api_client, db):
    isin = make_isin("US")
    response = api_client.post(
        URL, {"isin": isin, "name": "World ETF", "type": "ETF", "currency": "USD", "block_size": "0.01"}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {
        "instrument_id", "isin", "name", "type", "currency", "tradable", "block_size", "futures_cost",
        "created_at", "updated_at",
    }
    assert (body["isin"], body["type"], body["currency"], body["tradable"], body["block_size"]) == (
        isin, "ETF", "USD", True, "0.01"
    )
    assert Instrument.objects.get(pk=body["instrument_id"]).name == "World ETF"


def test_create_cash_instrument_its_currency_is_its_code(api_client, db):
    response = api_client.post(URL, {"type": "CASH", "currency": "CHF"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["currency"], body["isin"]) == ("CHF", "CHF", None)
    body = problem(api_client.post(URL, {"type": "CASH", "currency": "CHF"}, format="json"), 400)
    assert "currency" in error_fields(body)


def test_create_future_defaults_to_later(api_client, db):
    response = api_client.post(URL, {"name": "Bund future", "type": "FUTURE", "currency": "EUR"}, format="json")
    assert response.status_code == 201
    assert response.json()["futures_cost"] == "LATER"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "x", "type": "ETF", "currency": "EUR", "isin": "US0378331006"}, "isin"),  # bad check digit
        ({"name": "x", "type": "STOCK", "currency": "EUR"}, "type"),
        ({"name": "x", "type": "ETF", "currency": "EURO"}, "currency"),
        ({"name": "x", "type": "ETF", "currency": "ABC"}, "currency"),
        ({"name": "x", "type": "ETF", "currency": "EUR", "futures_cost": "LATER"}, "futures_cost"),
        ({"name": "x", "type": "ETF", "currency": "EUR", "block_size": "0"}, "block_size"),
        ({"type": "ETF", "currency": "EUR"}, "name"),
    ],
)
def test_create_instrument_refused(api_client, db, payload, field):
    body = problem(api_client.post(URL, payload, format="json"), 400)
    assert field in error_fields(body), body
    assert not Instrument.objects.exists()


def test_list_and_filters(api_client, db):
    etf = InstrumentFactory(name="A ETF")
    bond = InstrumentFactory(name="B bond", type="BOND", tradable=False)

    def ids(params):
        response = api_client.get(URL, params)
        assert response.status_code == 200, response.json()
        return [row["instrument_id"] for row in response.json()["data"]]

    assert ids({}) == [str(etf.pk), str(bond.pk)]
    assert ids({"isin": bond.isin.lower()}) == [str(bond.pk)]
    assert ids({"type": "ETF"}) == [str(etf.pk)]
    assert ids({"tradable": "false"}) == [str(bond.pk)]
    assert error_fields(problem(api_client.get(URL, {"type": "STOCK"}), 400)) == {"type"}
    assert error_fields(problem(api_client.get(URL, {"tradable": "yes please"}), 400)) == {"tradable"}


def test_get_by_uuid_or_isin(api_client, db):
    instrument = InstrumentFactory()
    assert api_client.get(f"{URL}{instrument.pk}/").json()["instrument_id"] == str(instrument.pk)
    assert api_client.get(f"{URL}{instrument.isin}/").json()["instrument_id"] == str(instrument.pk)
    problem(api_client.get(f"{URL}{UNKNOWN}/"), 404)
    problem(api_client.get(f"{URL}US0378331005/"), 404)


def test_patch(api_client, db):
    instrument = InstrumentFactory()
    response = api_client.patch(f"{URL}{instrument.pk}/", {"tradable": False, "name": "Renamed"}, format="json")
    assert response.status_code == 200, response.json()
    instrument.refresh_from_db()
    assert (instrument.tradable, instrument.name) == (False, "Renamed")


@pytest.mark.parametrize(("payload", "field"), [
    ({"type": "BOND"}, "type"), ({"currency": "USD"}, "currency"), ({"instrument_id": UNKNOWN}, "instrument_id"),
])
def test_patch_refused(api_client, db, payload, field):
    instrument = InstrumentFactory()
    body = problem(api_client.patch(f"{URL}{instrument.pk}/", payload, format="json"), 400)
    assert error_fields(body) == {field}


def test_patch_unknown_is_404(api_client, db):
    problem(api_client.patch(f"{URL}{UNKNOWN}/", {"name": "x"}, format="json"), 404)


# --- Prices ---------------------------------------------------------------------------

def test_prices_upsert_by_isin_and_uuid(api_client, db):
    a, b = InstrumentFactory(), InstrumentFactory()
    PriceFactory(instrument=a, effective_at=date(2026, 3, 2), value=Decimal("1"))
    response = api_client.post(
        PRICES,
        {"prices": [
            {"instrument_id": a.isin, "effective_at": "2026-03-02", "value": "101.5"},
            {"instrument_id": str(b.id), "effective_at": "2026-03-02", "value": "20", "source": "vendor"},
        ]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json() == {"upserted": 2}
    assert Price.objects.get(instrument=a).value == Decimal("101.5")  # replaced, not duplicated
    assert Price.objects.get(instrument=b).source == "vendor"


def test_prices_all_rows_or_none(api_client, db):
    a = InstrumentFactory()
    body = problem(
        api_client.post(
            PRICES,
            {"prices": [
                {"instrument_id": a.isin, "effective_at": "2026-03-02", "value": "101.5"},
                {"instrument_id": "US0378331005", "effective_at": "2026-03-02", "value": "1"},
                {"instrument_id": a.isin, "effective_at": "2026-03-03", "value": "-1"},
            ]},
            format="json",
        ),
        400,
    )
    assert error_fields(body) == {"prices[1].instrument_id", "prices[2].value"}
    assert not Price.objects.exists()


@pytest.mark.parametrize("effective_at", ["2026-03-02T10:00:00", "2026-03-02T25:00:00Z", "20260302", "02.03.2026"])
def test_prices_effective_at_must_be_a_date_or_an_rfc3339_time(api_client, db, effective_at):
    a = InstrumentFactory()
    body = problem(api_client.post(PRICES, {"prices": [
        {"instrument_id": a.isin, "effective_at": "2026-03-01", "value": "1"},
        {"instrument_id": a.isin, "effective_at": effective_at, "value": "1"},
    ]}, format="json"), 400)
    assert error_fields(body) == {"prices[1].effective_at"}
    assert "YYYY-MM-DD" in message_for(body, "prices[1].effective_at")
    assert "RFC 3339" in message_for(body, "prices[1].effective_at")
    assert not Price.objects.exists()


def test_a_quote_with_a_time_counts_for_its_utc_date_and_the_latest_time_is_kept(api_client, db):
    a = InstrumentFactory()
    rows = [
        {"instrument_id": a.isin, "effective_at": "2026-03-02T16:00:00Z", "value": "11"},
        {"instrument_id": a.isin, "effective_at": "2026-03-03T00:30:00+02:00", "value": "12"},  # 22:30 UTC on the 2nd
        {"instrument_id": a.isin, "effective_at": "2026-03-02T09:00:00Z", "value": "10"},
    ]
    assert api_client.post(PRICES, {"prices": rows}, format="json").json() == {"upserted": 1}
    price = Price.objects.get()
    assert (price.effective_at.isoformat(), price.value, price.quoted_at.isoformat()) == (
        "2026-03-02", Decimal("12"), "2026-03-02T22:30:00+00:00")
    # An earlier quote of that day sent later does not replace it; a later one does.
    api_client.post(PRICES, {"prices": [{"instrument_id": a.isin, "effective_at": "2026-03-02T20:00:00Z",
                                         "value": "9"}]}, format="json")  # fmt: skip
    assert Price.objects.get().value == Decimal("12")
    api_client.post(PRICES, {"prices": [{"instrument_id": a.isin, "effective_at": "2026-03-02T23:00:00Z",
                                         "value": "13"}]}, format="json")  # fmt: skip
    assert Price.objects.get().value == Decimal("13")
    listed = api_client.get(PRICES, {"instrument_id": str(a.pk)}).json()["data"]
    assert listed[0]["quoted_at"].startswith("2026-03-02T23:00:00")


def test_fx_rates_with_times_keep_the_latest_of_a_day(api_client, db):
    rows = [
        {"base": "EUR", "quote": "USD", "rate": "1.10", "effective_at": "2026-03-02T09:00:00Z"},
        {"base": "EUR", "quote": "USD", "rate": "1.12", "effective_at": "2026-03-02T17:00:00Z"},
    ]
    assert api_client.post("/api/v1/fx-rates/", {"rates": rows}, format="json").json() == {"upserted": 1}
    rate = FxRate.objects.get()
    assert (rate.rate, rate.effective_at.isoformat()) == (Decimal("1.12"), "2026-03-02")


def test_prices_shape_errors(api_client, db):
    a = InstrumentFactory()
    body = problem(api_client.post(PRICES, {"prices": [{"instrument_id": a.isin, "value": "x"}]}, format="json"), 400)
    assert error_fields(body) == {"prices[0].effective_at", "prices[0].value"}
    assert error_fields(problem(api_client.post(PRICES, {}, format="json"), 400)) == {"prices"}


def test_prices_at_most_10000_rows(api_client, db):
    a = InstrumentFactory()
    rows = [{"instrument_id": a.isin, "effective_at": "2026-03-02", "value": "1"}] * 10_001
    body = problem(api_client.post(PRICES, {"prices": rows}, format="json"), 400)
    assert error_fields(body) == {"prices"}


def test_prices_10000_rows_are_accepted(api_client, db):
    instruments = [InstrumentFactory() for _ in range(10)]
    rows = [
        {"instrument_id": instrument.isin, "effective_at": date.fromordinal(date(2000, 1, 1).toordinal() + day).isoformat(),
         "value": "1.5"}
        for instrument in instruments
        for day in range(1000)
    ]
    response = api_client.post(PRICES, {"prices": rows}, format="json")
    assert response.json() == {"upserted": 10_000}
    assert Price.objects.count() == 10_000


def test_prices_list_and_filters(api_client, db):
    a, b = InstrumentFactory(), InstrumentFactory()
    for day in (1, 2, 3):
        PriceFactory(instrument=a, effective_at=date(2026, 3, day), value=Decimal(day))
    PriceFactory(instrument=b, effective_at=date(2026, 3, 2))
    body = api_client.get(PRICES, {"instrument_id": a.isin, "start": "2026-03-02", "end": "2026-03-03"}).json()
    assert [(row["effective_at"], row["value"]) for row in body["data"]] == [("2026-03-03", "3"), ("2026-03-02", "2")]
    assert body["data"][0]["instrument_id"] == str(a.id) and body["data"][0]["isin"] == a.isin
    assert api_client.get(PRICES, {"instrument_id": str(b.id)}).json()["meta"]["total_count"] == 1
    assert api_client.get(PRICES).json()["meta"]["total_count"] == 4
    assert error_fields(problem(api_client.get(PRICES, {"instrument_id": "US0378331005"}), 400)) == {"instrument_id"}
    assert error_fields(problem(api_client.get(PRICES, {"start": "2026-03-02T00:00"}), 400)) == {"start"}


# --- FX rates ------------------------------------------------------------------------

def test_fx_rates_upsert(api_client, db):
    FxRateFactory(base="EUR", quote="USD", effective_at=date(2026, 3, 2), rate=Decimal("1"))
    response = api_client.post(FX, {"rates": [
        {"base": "EUR", "quote": "USD", "rate": "1.0842", "effective_at": "2026-03-02"},
        {"base": "EUR", "quote": "CHF", "rate": "0.94", "effective_at": "2026-03-02"},
    ]}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"upserted": 2}
    assert FxRate.objects.get(quote="USD").rate == Decimal("1.0842")
    assert FxRate.objects.count() == 2


def test_fx_rates_all_or_none(api_client, db):
    body = problem(api_client.post(FX, {"rates": [
        {"base": "EUR", "quote": "USD", "rate": "1.08", "effective_at": "2026-03-02"},
        {"base": "EUR", "quote": "EUR", "rate": "1", "effective_at": "2026-03-02"},
        {"base": "EUR", "quote": "XYZ", "rate": "0", "effective_at": "2026-03-02"},
        {"base": "EUR", "quote": "GBP", "rate": "0.8", "effective_at": "2026-03-02T00:00:00"},  # a time needs its offset
    ]}, format="json"), 400)
    assert "rates[3].effective_at" in error_fields(body)
    body = problem(api_client.post(FX, {"rates": [
        {"base": "EUR", "quote": "USD", "rate": "1.08", "effective_at": "2026-03-02"},
        {"base": "EUR", "quote": "EUR", "rate": "1", "effective_at": "2026-03-02"},
        {"base": "EUR", "quote": "XYZ", "rate": "0", "effective_at": "2026-03-02"},
    ]}, format="json"), 400)
    assert error_fields(body) == {"rates[1].quote", "rates[2].quote", "rates[2].rate"}
    assert not FxRate.objects.exists()


def test_fx_rates_list(api_client, db):
    FxRateFactory(base="EUR", quote="USD", effective_at=date(2026, 3, 1))
    FxRateFactory(base="EUR", quote="USD", effective_at=date(2026, 3, 2))
    FxRateFactory(base="EUR", quote="CHF", effective_at=date(2026, 3, 2))
    body = api_client.get(FX, {"base": "eur", "quote": "USD", "start": "2026-03-02"}).json()
    assert [(r["base"], r["quote"], r["effective_at"]) for r in body["data"]] == [("EUR", "USD", "2026-03-02")]
    assert api_client.get(FX, {"end": "2026-03-01"}).json()["meta"]["total_count"] == 1


def test_an_unknown_instrument_reference_with_a_percent_sign_is_named_not_a_500(api_client):
    response = api_client.get("/api/v1/trade-orders/", {"instrument_id": "%h"})
    assert response.status_code == 400, response.content
    assert "%h" in response.content.decode()
