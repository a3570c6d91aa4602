"""Orders out for a trading desk: the blotter as XLSX and as a FIX 4.4 order list, the
filtered trade orders as XLSX."""

import io
from datetime import datetime, timezone
from decimal import Decimal

from openpyxl import load_workbook

from rebalancing.selectors import orders as selectors_orders

from .conftest import url
from .test_trade_orders import book  # noqa: F401


def sheet_rows(response) -> list[tuple]:
    workbook = load_workbook(io.BytesIO(response.content), read_only=True)
    return [tuple(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]


def test_the_blotter_as_xlsx_has_the_csv_columns_with_numbers(admin_client, book):  # noqa: F811
    a = book["instruments"][0]
    response = admin_client.get(url("tradeorder", "blotter_xlsx") + "?status__exact=OPEN")
    assert response.status_code == 200 and response["Content-Disposition"].endswith('.xlsx"')
    header, first, *_ = sheet_rows(response)
    assert header == selectors_orders.BLOTTER_HEADER
    assert first == (a.isin, "Alpha ETF", str(a.pk), "BUY", "EUR", "2", 12.5, 125)


def test_the_blotter_as_a_fix_order_list(admin_client, book):  # noqa: F811
    a, b, c = book["instruments"]
    response = admin_client.get(url("tradeorder", "blotter_fix") + "?status__exact=OPEN")
    lines = response.content.decode().splitlines()
    assert len(lines) == 4  # one NewOrderSingle per blotter row
    fields = [dict(field.split("=", 1) for field in line.rstrip("\x01").split("\x01")) for line in lines]
    assert [(f["35"], f["55"], f["22"], f["54"], f["38"], f["15"], f["40"]) for f in fields] == [
        ("D", a.isin, "4", "1", "12.5", "EUR", "1"),
        ("D", a.isin, "4", "2", "1", "EUR", "1"),
        ("D", b.isin, "4", "2", "5", "EUR", "1"),
        ("D", str(c.pk), "8", "1", "3", "USD", "1"),  # no ISIN: the instrument id
    ]
    for line in lines:  # BodyLength and CheckSum as FIX defines them
        body = line[line.index("\x01", line.index("9=")) + 1:line.index("10=")]
        assert int(line.split("\x01")[1][2:]) == len(body.encode())
        assert int(line[-4:-1]) == sum(line[:line.index("10=")].encode()) % 256


def test_fix_message_checksum_of_a_known_message():
    message = selectors_orders.fix_message([(35, "0")])
    assert message == "8=FIX.4.4\x019=5\x0135=0\x0110=" + f"{sum(b'8=FIX.4.4' + bytes([1]) + b'9=5' + bytes([1]) + b'35=0' + bytes([1])) % 256:03d}" + "\x01"


def test_the_filtered_trade_orders_as_xlsx(admin_client, book):  # noqa: F811
    response = admin_client.get(url("tradeorder", "export_xlsx") + "?status__exact=OPEN")
    header, *rows = sheet_rows(response)
    assert header == selectors_orders.TRADE_ORDER_HEADER
    assert len(rows) == 5 and all(isinstance(row[header.index("units")], (int, float)) for row in rows)


def test_order_exports_need_the_view_permission(client, book, user_with_perms):  # noqa: F811
    client.force_login(user_with_perms("rebalancing.view_execution"))
    for view in ("export_xlsx", "blotter_xlsx", "blotter_fix"):
        assert client.get(url("tradeorder", view) + "?status__exact=OPEN").status_code == 403, view


def test_fix_lines_name_the_sending_time():
    row = selectors_orders.BlotterRow(instrument_id="x", isin="DE0000000017", name="A", side="SELL", currency="EUR",
                                      orders=2, units=Decimal("10.50"), trade_amount=Decimal("1"))
    [line] = selectors_orders.blotter_fix_lines([row], now=datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc))
    assert "\x0152=20260302-09:30:00\x01" in line and "\x0111=20260302093000-1\x01" in line and "\x0138=10.5\x01" in line
