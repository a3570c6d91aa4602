"""CSV exports of the admin (realized gains, §12)."""

import csv

from django.http import HttpResponse

COLUMNS = (
    "client_id", "account_id", "isin", "instrument_id", "lot_id", "acquired_on", "realized_on", "term", "units",
    "currency", "proceeds", "cost", "gain", "base_currency", "fx_rate", "proceeds_base", "cost_base", "gain_base",
    "trade_order_id",
)


def realized_gains_csv(rows) -> HttpResponse:
    """The rows (a RealizedGain queryset) as a CSV download; decimals exactly as stored,
    unknown amounts empty, and a totals line per term in the base currency."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="realized-gains.csv"'
    writer = csv.writer(response)
    writer.writerow(COLUMNS)
    totals = {}
    for r in rows.select_related("account", "instrument").order_by("account__client_id", "realized_on", "id"):
        writer.writerow([
            r.account.client_id, r.account_id, r.instrument.isin or "", r.instrument_id, r.lot_id, r.acquired_on,
            r.realized_on, r.term, r.units, r.currency, _text(r.proceeds), _text(r.cost), _text(r.gain),
            r.base_currency, _text(r.fx_rate), _text(r.proceeds_base), _text(r.cost_base), _text(r.gain_base),
            r.trade_order_id or "",
        ])
        if r.gain_base is not None:
            key = (r.account.client_id, r.base_currency, r.term)
            totals[key] = totals.get(key, 0) + r.gain_base
    for (client_id, currency, term), total in sorted(totals.items()):
        writer.writerow([client_id, "", "", "", "", "", "", f"total {term}", "", "", "", "", "", currency, "", "", "",
                         total, ""])
    return response


def _text(value) -> str:
    return "" if value is None else str(value)
