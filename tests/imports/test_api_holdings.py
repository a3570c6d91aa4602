"""The black box of issue #19: a holdings file through /api/v1/imports/."""

from decimal import Decimal

import pytest

from portfolios.models import CashAccount, Position
from tests.factories import AccountFactory, CashAccountFactory, InstrumentFactory, PositionFactory
from tests.imports.conftest import HEADER, csv_text
from tests.portfolios.api.conftest import problem

URL = "/api/v1/imports/holdings/"


@pytest.fixture
def book(db):
    """Two accounts with a position each and EUR cash; a third instrument nobody holds."""
    a, b, c = (InstrumentFactory(currency="EUR") for _ in range(3))
    first, second = AccountFactory(), AccountFactory()
    PositionFactory(account=first, instrument=a, units=Decimal("10"))
    PositionFactory(account=second, instrument=b, units=Decimal("5"))
    CashAccountFactory(account=first, balance=Decimal("100"))
    CashAccountFactory(account=second, balance=Decimal("200"))
    return a, b, c, first, second


def holdings(account):
    return (
        {p.instrument.isin: p.units for p in Position.objects.filter(account=account).select_related("instrument")},
        {c.currency: c.balance for c in CashAccount.objects.filter(account=account)},
    )


def post_csv(client, text, **query):
    url = URL + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    return client.generic("POST", url, text.encode(), content_type="text/csv",
                          HTTP_CONTENT_DISPOSITION='attachment; filename="custody-2026-03-02.csv"')


def test_a_bad_check_digit_refuses_the_whole_file_then_the_corrected_file_loads_then_reconcile_and_accept_one(
    api_client, book, worker
):
    a, b, c, first, second = book
    before = holdings(first), holdings(second)
    bad_isin = c.isin[:-1] + str((int(c.isin[-1]) + 1) % 10)
    rows = [
        (first.pk, a.isin, "12", "", ""),
        (first.pk, c.isin, "3", "", ""),
        (first.pk, "", "", "EUR", "150.50"),
        (second.pk, b.isin, "5", "", ""),
        (second.pk, bad_isin, "1", "", ""),  # line 5
        (second.pk, "", "", "EUR", "200"),
    ]
    with worker():
        response = post_csv(api_client, csv_text(HEADER, *rows))
    assert response.status_code == 202, response.content
    created = response.json()
    assert created["status"] == "PENDING" and created["file_name"] == "custody-2026-03-02.csv"

    job = api_client.get(f"/api/v1/imports/{created['import_id']}/").json()
    assert job["status"] == "FAILED"
    assert job["errors"] == [{"line": 5, "field": "instrument_id",
                              "message": f"{bad_isin} is not a valid ISIN (the number's checksum or check digit is invalid)"}]
    assert (holdings(first), holdings(second)) == before  # nothing written, not even line 1

    rows[4] = (second.pk, c.isin, "1", "", "")
    with worker():
        response = post_csv(api_client, csv_text(HEADER, *rows))
    job = api_client.get(f"/api/v1/imports/{response.json()['import_id']}/").json()
    assert (job["status"], job["rows"], job["accounts_changed"], job["errors"]) == ("DONE", 6, 2, []), holdings(first)
    assert holdings(first) == ({a.isin: Decimal("12"), c.isin: Decimal("3")}, {"EUR": Decimal("150.5")})
    assert holdings(second) == ({b.isin: Decimal("5"), c.isin: Decimal("1")}, {"EUR": Decimal("200")})

    # The custodian's next file differs in two rows: a's units and second's cash.
    rows[0] = (first.pk, a.isin, "13", "", "")
    rows[5] = (second.pk, "", "", "EUR", "180")
    with worker():
        response = post_csv(api_client, csv_text(HEADER, *rows), mode="RECONCILE")
    job = api_client.get(f"/api/v1/imports/{response.json()['import_id']}/").json()
    assert job["status"] == "AWAITING_ACCEPTANCE"
    breaks = {(b_["account_id"], b_.get("isin") or b_.get("currency")): b_ for b_ in job["breaks"]}
    assert set(breaks) == {(str(first.pk), a.isin), (str(second.pk), "EUR")}
    units_break = breaks[(str(first.pk), a.isin)]
    assert (units_break["book"], units_break["file"], units_break["difference"]) == ("12.0000000000", "13.0000000000", "1.0000000000")
    assert holdings(first)[0][a.isin] == Decimal("12")  # a reconciliation writes nothing
    report = api_client.get(f"/api/v1/imports/{job['import_id']}/breaks/")
    assert report["Content-Type"] == "text/csv"
    header, *lines = b"".join(report.streaming_content).decode().splitlines()
    assert header == "break_id,account_id,client_id,instrument_id,isin,currency,kind,book,file,difference,accepted"
    assert sorted(line.split(",")[7:10] for line in lines) == [["12", "13", "1"], ["200", "180", "-20"]]

    response = api_client.post(f"/api/v1/imports/{job['import_id']}/accept/",
                               {"break_ids": [units_break["break_id"]]}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["accounts_changed"]) == ("DONE", 1)
    assert holdings(first)[0][a.isin] == Decimal("13")  # the accepted break
    assert holdings(second)[1]["EUR"] == Decimal("200")  # the other one is left alone

    body = problem(api_client.post(f"/api/v1/imports/{job['import_id']}/accept/", {}, format="json"), 409)
    assert "DONE" in body["detail"]


def test_a_file_with_lot_columns_gives_the_positions_their_lots_as_the_lots_endpoint_shows(api_client, book, worker):
    """§13's optional lot columns, one row per lot, through the API door; the lots then
    answer GET .../lots/ (§12) like lots sent with PUT .../holdings/."""
    a, _, c, first, _ = book
    header = HEADER + ("acquired_on", "unit_cost")
    rows = [(first.pk, a.isin, "4", "", "", "2024-05-02", "10.5"), (first.pk, a.isin, "6", "", "", "2026-02-02", ""),
            (first.pk, c.isin, "1", "", "", "", ""), (first.pk, "", "", "EUR", "100", "", "")]
    with worker():
        response = post_csv(api_client, csv_text(header, *rows))
    job = api_client.get(f"/api/v1/imports/{response.json()['import_id']}/").json()
    assert (job["status"], job["rows"], job["errors"]) == ("DONE", 4, [])
    lots = api_client.get(f"/api/v1/portfolios/accounts/{first.pk}/lots/?limit=100").json()["data"]
    found = sorted((lot["instrument_id"], lot["acquired_on"], lot["units"], lot["unit_cost"]) for lot in lots)
    from django.utils import timezone  # noqa: PLC0415

    assert found == sorted([
        (str(a.pk), "2024-05-02", "4", "10.5"), (str(a.pk), "2026-02-02", "6", None),
        (str(c.pk), timezone.localdate().isoformat(), "1", None),
    ])


@pytest.mark.parametrize("key", ["k" * 256, "   "], ids=["too-long", "blank"])
def test_an_upload_with_a_bad_idempotency_key_is_a_400_naming_the_header_and_creates_nothing(api_client, book, key):
    from imports.models import ImportJob  # noqa: PLC0415

    a, _, _, first, _ = book
    response = api_client.generic("POST", URL, csv_text(HEADER, (first.pk, a.isin, "1", "", "")).encode(),
                                  content_type="text/csv", HTTP_IDEMPOTENCY_KEY=key)
    assert problem(response, 400)["errors"] == [{"field": "Idempotency-Key",
                                            "message": "must be a non-blank string of at most 255 characters"}]
    assert not ImportJob.objects.exists()
