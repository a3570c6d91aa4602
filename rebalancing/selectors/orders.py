"""Reads of trade orders for the dealing desk: the aggregated blotter and CSV rows.

Both take any TradeOrder queryset (the admin passes its filtered changelist), so the
admin and any future API endpoint share one definition of the columns. Decimals are
written as the API writes them: no exponent, no trailing zeros ("0.5", "100").
"""

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, F, QuerySet, Sum

from ..models import ExecutionResult, TradeOrderStatus

# A spreadsheet runs a cell that starts with one of these as a formula ("CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_CHUNK = 2000
# The blotter's default filter: orders not yet sent anywhere.
BLOTTER_DEFAULT_STATUS = TradeOrderStatus.OPEN


def decimal_text(value) -> str:
    """A decimal as the API writes it: "0.5", "100", "0"; "" for None."""
    if value is None:
        return ""
    value = Decimal(value)
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def text_cell(value) -> str:
    """Free text for a CSV cell, defused if a spreadsheet would read it as a formula."""
    if value is None:
        return ""
    value = str(value)
    return "'" + value if value.startswith(FORMULA_STARTS) else value


# --- The blotter -----------------------------------------------------------------------


@dataclass(frozen=True)
class BlotterRow:
    """All orders of one instrument, side, currency and transaction type, summed across
    accounts. `trade_amount` is in `currency` (the instrument's). FX orders (§9) group by
    currency pair: their instrument is the bought currency, their currency the paying
    one, and `name` says "FX USD/EUR" (bought/paying; a SELL sells the first)."""

    instrument_id: object
    isin: str | None
    name: str
    side: str
    currency: str
    orders: int
    units: Decimal
    trade_amount: Decimal


def trade_order_blotter(orders: QuerySet) -> list[BlotterRow]:
    """Sum `orders` by instrument, side and currency: one GROUP BY query, ordered by
    ISIN (instruments without one last, by name), side and currency. The queryset's own
    ordering is dropped."""
    rows = (
        orders.order_by()
        .values("instrument_id", "instrument__isin", "instrument__name", "instrument__currency", "side", "currency",
                "transaction_type")
        .annotate(orders=Count("pk"), units=Sum("units"), trade_amount=Sum("trade_amount"))
        .order_by(F("instrument__isin").asc(nulls_last=True), "instrument__name", "instrument_id", "side", "currency",
                  "transaction_type")
    )
    return [
        BlotterRow(
            instrument_id=row["instrument_id"], isin=row["instrument__isin"],
            name=(
                f"FX {row['instrument__currency']}/{row['currency']}" if row["transaction_type"] == "FX"
                else f"{row['instrument__name']} ({row['transaction_type'].lower()})"
                if row["transaction_type"] == "WITHDRAWAL" else row["instrument__name"]
            ),
            side=row["side"], currency=row["currency"], orders=row["orders"],
            units=row["units"] or Decimal(0), trade_amount=row["trade_amount"] or Decimal(0),
        )
        for row in rows
    ]


def blotter_totals(rows: Iterable[BlotterRow]) -> list[dict]:
    """Per currency and side: orders and trade amount (units of different instruments
    do not add up). Sorted by currency, then side."""
    totals: dict[tuple, dict] = {}
    for row in rows:
        total = totals.setdefault((row.currency, row.side), {"currency": row.currency, "side": row.side,
                                                              "orders": 0, "trade_amount": Decimal(0)})
        total["orders"] += row.orders
        total["trade_amount"] += row.trade_amount
    return [totals[key] for key in sorted(totals)]


def blotter_estimated_gains(orders: QuerySet) -> dict:
    """instrument id → {base currency: estimated gain} of the SELL orders of `orders`
    that a tax-aware execution proposed (§12: the gains stored on its results), summed
    across accounts; instruments with none are absent. Two queries: the sells' keys and
    the tax-aware results of their executions."""
    wanted = {
        (str(e), str(a), str(i))
        for e, a, i in orders.order_by().filter(side="SELL", execution_id__isnull=False)
        .values_list("execution_id", "account_id", "instrument_id")
    }
    if not wanted:
        return {}
    gains: dict = {}
    for execution_id, currency, stored in (
        ExecutionResult.objects.filter(execution_id__in={e for e, _, _ in wanted}, estimated_realized_gain__isnull=False)
        .values_list("execution_id", "account__base_currency", "tax_orders")
    ):
        for account_id, instrument_id, gain, _ in stored or ():
            if gain is not None and (str(execution_id), account_id, instrument_id) in wanted:
                per = gains.setdefault(uuid.UUID(instrument_id), {})
                per[currency] = per.get(currency, Decimal(0)) + Decimal(gain)
    return gains


BLOTTER_HEADER = ("isin", "instrument_name", "instrument_id", "side", "currency", "orders", "units", "trade_amount")


def blotter_csv_rows(rows: Iterable[BlotterRow]) -> Iterator[tuple]:
    """The header, then one CSV row per blotter row."""
    yield BLOTTER_HEADER
    for row in rows:
        yield (
            row.isin or "", text_cell(row.name), str(row.instrument_id), row.side, row.currency, str(row.orders),
            decimal_text(row.units), decimal_text(row.trade_amount),
        )


# --- Trade orders as CSV ------------------------------------------------------------------

TRADE_ORDER_COLUMNS = (
    # (CSV header, values_list path, kind)
    ("order_id", "id", "id"),
    ("created_at", "created_at", "datetime"),
    ("account_id", "account_id", "id"),
    ("client_id", "account__client_id", "text"),
    ("instrument_id", "instrument_id", "id"),
    ("isin", "instrument__isin", "text"),
    ("instrument_name", "instrument__name", "text"),
    ("side", "side", "text"),
    ("transaction_type", "transaction_type", "text"),
    ("units", "units", "decimal"),
    ("unit_price", "unit_price", "decimal"),
    ("trade_amount", "trade_amount", "decimal"),
    ("currency", "currency", "text"),
    ("execution_method", "execution_method", "text"),
    ("status", "status", "text"),
    ("executed_units", "executed_units", "decimal"),
    ("executed_amount", "executed_amount", "decimal"),
    ("execution_id", "execution_id", "id"),
    ("portfolio_order_id", "portfolio_order_id", "id"),
    ("cash_account_id", "cash_account_id", "id"),
    ("counter_cash_account_id", "counter_cash_account_id", "id"),
)
TRADE_ORDER_HEADER = tuple(header for header, _, _ in TRADE_ORDER_COLUMNS)
_FORMAT = {
    "id": lambda v: "" if v is None else str(v),
    "datetime": lambda v: v.isoformat() if v is not None else "",
    "decimal": decimal_text,
    "text": text_cell,
}


def trade_order_csv_rows(orders: QuerySet) -> Iterator[tuple]:
    """The header, then one row per order of `orders` in its ordering. Reads with one
    query through `.iterator()` (a server-side cursor on PostgreSQL), so memory stays
    flat however many orders there are."""
    formats = [_FORMAT[kind] for _, _, kind in TRADE_ORDER_COLUMNS]
    yield TRADE_ORDER_HEADER
    for values in orders.values_list(*(path for _, path, _ in TRADE_ORDER_COLUMNS)).iterator(chunk_size=CSV_CHUNK):
        yield tuple(format_(value) for format_, value in zip(formats, values))


# --- Spreadsheets and FIX -----------------------------------------------------------------

DECIMAL_COLUMNS = {"units", "unit_price", "trade_amount", "executed_units", "executed_amount"}


def rows_xlsx(rows: Iterable[tuple], *, sheet: str) -> bytes:
    """CSV rows (the header first) as an XLSX workbook of one sheet, written by openpyxl
    in write-only mode. Decimal columns become numbers (the digits written exactly;
    Excel reads them as it reads any number), the rest stays text."""
    import io

    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    worksheet = workbook.create_sheet(sheet)
    rows = iter(rows)
    header = next(rows)
    worksheet.append(list(header))
    numeric = [name in DECIMAL_COLUMNS for name in header]
    for row in rows:
        worksheet.append([Decimal(v) if is_number and v != "" else v for is_number, v in zip(numeric, row)])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


SOH = "\x01"
FIX_SIDES = {"BUY": "1", "SELL": "2"}


def fix_message(fields: list[tuple[int, str]], *, begin: str = "FIX.4.4") -> str:
    """One FIX tag=value message, SOH-separated, with BodyLength (9) and CheckSum (10)."""
    body = "".join(f"{tag}={value}{SOH}" for tag, value in fields)
    head = f"8={begin}{SOH}9={len(body.encode())}{SOH}"
    checksum = sum((head + body).encode()) % 256
    return f"{head}{body}10={checksum:03d}{SOH}"


def blotter_fix_lines(rows: Iterable[BlotterRow], *, now, sender: str = "BALLAST", target: str = "DESK") -> Iterator[str]:
    """One FIX 4.4 NewOrderSingle (35=D) per blotter row, a message per line
    (docs/imports.md): ClOrdID 11 = sending time and row number, Symbol 55 and
    SecurityID 48 (ISIN, 22=4) or the instrument id (22=8), Side 54, OrderQty 38,
    OrdType 40=1 (market), Currency 15, HandlInst 21=1, TransactTime 60."""
    stamp = now.strftime("%Y%m%d-%H:%M:%S")
    for number, row in enumerate(rows, start=1):
        security = (row.isin, "4") if row.isin else (str(row.instrument_id), "8")
        yield fix_message([
            (35, "D"), (49, sender), (56, target), (34, str(number)), (52, stamp),
            (11, f"{now:%Y%m%d%H%M%S}-{number}"), (21, "1"), (55, security[0]), (48, security[0]), (22, security[1]),
            (54, FIX_SIDES.get(row.side, row.side)), (60, stamp), (38, decimal_text(row.units)), (40, "1"),
            (15, row.currency),
        ]) + "\n"


__all__ = [
    "BLOTTER_DEFAULT_STATUS",
    "BLOTTER_HEADER",
    "TRADE_ORDER_HEADER",
    "BlotterRow",
    "blotter_csv_rows",
    "blotter_fix_lines",
    "blotter_totals",
    "fix_message",
    "rows_xlsx",
    "decimal_text",
    "trade_order_blotter",
    "trade_order_csv_rows",
]
