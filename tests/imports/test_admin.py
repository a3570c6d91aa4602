"""The imports admin: upload, progress and errors, accept some breaks, the break report."""

from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from imports.models import ImportJob
from portfolios.models import Position
from tests.factories import AccountFactory, InstrumentFactory, PositionFactory
from tests.imports.conftest import HEADER, csv_text

ADD = "/admin/imports/importjob/add/"
QUERIES = 6  # the changelist of imports, whatever their number


def upload(admin_client, text, **fields):
    data = {"kind": "HOLDINGS", "mode": "APPLY", "match": "account_id", "tolerance": "0", **fields,
            "file": SimpleUploadedFile("custody.csv", text.encode(), content_type="text/csv")}
    return admin_client.post(ADD, data)


def test_upload_shows_the_errors_then_reconcile_and_accept_one_break(admin_client, worker):
    a, b = InstrumentFactory(), InstrumentFactory()
    account = AccountFactory()
    PositionFactory(account=account, instrument=a, units=Decimal("1"))
    PositionFactory(account=account, instrument=b, units=Decimal("2"))
    assert admin_client.get(ADD).status_code == 200

    with worker():
        response = upload(admin_client, csv_text(HEADER, (account.pk, a.isin, "x", "", "")))
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response.url.endswith(f"/admin/imports/importjob/{job.pk}/change/")
    page = admin_client.get(response.url).content.decode()
    assert "nothing of the file was written" in page and "&#x27;x&#x27; is not a number" in page

    with worker():
        response = upload(admin_client, csv_text(HEADER, (account.pk, a.isin, "5", "", ""), (account.pk, b.isin, "3", "", "")),
                          mode="RECONCILE")
    job = ImportJob.objects.filter(mode="RECONCILE").get()
    page = admin_client.get(response.url).content.decode()
    assert 'value="100"' in page and "Accept all 2 breaks" in page
    first = job.breaks.get(instrument=a)
    response = admin_client.post(f"/admin/imports/importjob/{job.pk}/accept/", {"break_id": [str(first.pk)]})
    assert response.status_code == 302
    assert {p.instrument_id: p.units for p in Position.objects.filter(account=account)} == {a.pk: 5, b.pk: 2}

    report = admin_client.get(f"/admin/imports/importjob/{job.pk}/breaks.csv")
    lines = b"".join(report.streaming_content).decode().splitlines()
    assert lines[0].startswith("break_id,account_id,client_id,instrument_id,isin")
    assert sorted(line.split(",")[4] for line in lines[1:]) == sorted([a.isin, b.isin])
    assert sorted(line.split(",")[-1] for line in lines[1:]) == ["False", "True"]


def test_a_running_import_refreshes_its_page(admin_client):
    job = ImportJob.objects.create(kind="HOLDINGS", file_name="x.csv", sha256="0" * 64, status="RUNNING", progress=40)
    page = admin_client.get(f"/admin/imports/importjob/{job.pk}/change/").content.decode()
    assert 'http-equiv="refresh"' in page and 'value="40"' in page


@pytest.mark.parametrize("count", [1, 20])
def test_the_changelist_runs_a_fixed_number_of_queries(admin_client, django_assert_num_queries, count):
    for n in range(count):
        ImportJob.objects.create(kind="PRICES", file_name=f"{n}.csv", sha256="0" * 64)
    admin_client.get("/admin/imports/importjob/")  # the session and user are cached from here on
    with django_assert_num_queries(QUERIES):
        response = admin_client.get("/admin/imports/importjob/")
    assert response.status_code == 200 and f"{count - 1}.csv".encode() in response.content


def test_uploading_holdings_needs_the_holdings_permissions(client, user_with_perms):
    user = user_with_perms("imports.add_importjob", "imports.view_importjob")
    client.force_login(user)
    response = upload(client, "account_id\n")
    assert response.status_code == 403
    assert not ImportJob.objects.exists()
