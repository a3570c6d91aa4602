"""Model portfolios from and to spreadsheets, in the admin: every line rule, per line."""

import io
from decimal import Decimal

from django.core.files.uploadedfile import SimpleUploadedFile
from openpyxl import Workbook, load_workbook

from portfolios.models import Allocation
from tests.factories import InstrumentFactory, make_allocation
from tests.imports.conftest import csv_text

URL = "/admin/imports/importjob/allocation/"


def post(admin_client, text: str | bytes, file_name="model.csv", **fields):
    data = text.encode() if isinstance(text, str) else text
    return admin_client.post(URL, {"file": SimpleUploadedFile(file_name, data), "name": "", "base_currency": "",
                                   "effective_from": "", **fields})


def test_a_new_allocation_from_csv_and_every_bad_line_named(admin_client):
    a, b = InstrumentFactory(), InstrumentFactory(tradable=False)
    response = post(admin_client, csv_text(("instrument_id", "weight"), (a.isin, "0.5"), (b.isin, "0.4"), (a.isin, "x")))
    assert response.status_code == 200
    errors = [str(e) for e in response.context["form"].non_field_errors()]
    assert errors == ["line 3.weight: 'x' is not a number"]
    response = post(admin_client, csv_text(("instrument_id", "weight"), (a.isin, "0.5"), (b.isin, "0.4")))
    errors = " | ".join(str(e) for e in response.context["form"].non_field_errors())
    assert "line 2.instrument_id" in errors and not Allocation.objects.exists()

    c = InstrumentFactory()
    response = post(admin_client, csv_text(("instrument_id", "weight", "min_weight", "max_weight"),
                                           (a.isin, "0.6", "", ""), (c.pk, "0.4", "0.3", "0.5")),
                    file_name="growth.csv", name="Growth")
    assert response.status_code == 302, [str(e) for e in response.context["form"].non_field_errors()]
    allocation = Allocation.objects.get()
    assert response.status_code == 302 and allocation.name == "Growth"
    lines = {line.instrument_id: (line.weight, line.min_weight, line.max_weight)
             for line in allocation.current_version.lines.all()}
    assert lines == {a.pk: (Decimal("0.6"), None, None), c.pk: (Decimal("0.4"), Decimal("0.3"), Decimal("0.5"))}


def test_export_then_import_back_as_a_new_version(admin_client):
    a, b = InstrumentFactory(), InstrumentFactory()
    allocation = make_allocation({a: "0.7", b: "0.3"})
    response = admin_client.get(f"/admin/imports/importjob/allocation/{allocation.pk}/export/?format=xlsx")
    sheet = load_workbook(io.BytesIO(response.content), read_only=True).worksheets[0]
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[0] == ["instrument_id", "isin", "instrument_name", "weight", "min_weight", "max_weight"]
    assert [(r[1], r[3]) for r in rows[1:]] == [(a.isin, "0.7"), (b.isin, "0.3")]

    workbook = Workbook()
    for row in [rows[0], [rows[1][0], a.isin, "A", "0.5", None, None], [rows[2][0], b.isin, "B", "0.5", None, None]]:
        workbook.active.append(row)
    data = io.BytesIO()
    workbook.save(data)
    before = allocation.current_version.version
    response = post(admin_client, data.getvalue(), file_name="model.xlsx", allocation=str(allocation.pk))
    assert response.status_code == 302, response.context["form"].errors if response.context else None
    allocation.refresh_from_db()
    assert allocation.current_version.version == before + 1
    assert sorted(line.weight for line in allocation.current_version.lines.all()) == [Decimal("0.5"), Decimal("0.5")]

    csv_response = admin_client.get(f"/admin/imports/importjob/allocation/{allocation.pk}/export/")
    assert b"".join(csv_response.streaming_content).decode().splitlines()[1].endswith(",0.5,,")


def test_allocation_import_needs_the_allocation_permissions(client, user_with_perms):
    client.force_login(user_with_perms("portfolios.view_allocation", "imports.view_importjob"))
    a = InstrumentFactory()
    response = client.post(URL, {"file": SimpleUploadedFile("m.csv", csv_text(("instrument_id", "weight"), (a.isin, "1")).encode())})
    assert response.status_code == 403 and not Allocation.objects.exists()
