"""Live prices (domain §9): the configured connector's prices over the stored ones,
each one it returns stored as a quote of source `connector`: docs/prices.md."""

from datetime import UTC, date

from django.conf import settings
from django.utils import timezone

from core.price_connector import PriceRequest, connector_from_settings
from portfolios.models import InstrumentType, Price

CONNECTOR_SOURCE = "connector"


def connector():
    """The connector of settings.PRICE_CONNECTOR, or None."""
    return connector_from_settings(getattr(settings, "PRICE_CONNECTOR", None))


def live_prices_merge(instruments: dict, stored: dict, on_date: date) -> tuple[dict, tuple]:
    """(prices, fallbacks): `stored` (instrument id → latest stored price) with every
    price the connector returned in the instrument's own currency put over it, and the
    ids of the instruments it did not price (they keep their stored price, or none).

    The connector is asked only for a rebalance dated today or later (it knows only the
    latest prices) and for at most its time budget; its failures only add fallbacks.
    Accepted prices are upserted as quotes (source `connector`, the UTC date of their
    time, `quoted_at` their time) in one statement.
    """
    wanted = {pk: i for pk, i in instruments.items() if i.type != InstrumentType.CASH}
    if not wanted:
        return stored, ()
    live = {}
    source = connector()
    if source is not None and on_date >= timezone.localdate():
        requests = [PriceRequest(str(pk), i.isin, i.currency) for pk, i in sorted(wanted.items(), key=lambda kv: str(kv[0]))]
        by_text = {str(pk): pk for pk in wanted}
        now = timezone.now()
        for row in source.prices(requests):
            pk = by_text.get(row.instrument_id)
            if pk is None or row.currency != wanted[pk].currency:
                continue  # another currency than the instrument's: refused
            live[pk] = (row.price, row.quoted_at or now)
    if live:
        _store(live)
    prices = dict(stored)
    prices.update({pk: price for pk, (price, _) in live.items()})
    fallbacks = tuple(sorted((pk for pk in wanted if pk not in live), key=str))
    return prices, fallbacks


def _store(live: dict) -> None:
    rows = [
        Price(instrument_id=pk, source=CONNECTOR_SOURCE, effective_at=moment.astimezone(UTC).date(),
              value=price, quoted_at=moment)
        for pk, (price, moment) in live.items()
    ]
    Price.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["instrument", "source", "effective_at"],
        update_fields=["value", "quoted_at", "updated_at"],
    )
