"""Live price connectors (domain §9): ask a market-data provider for the latest prices.

A connector implements `PriceConnector.prices(requests, budget)`. The project ships
`HttpJsonPriceConnector`; settings.PRICE_CONNECTOR chooses and configures one:

    PRICE_CONNECTOR = {
        "CLASS": "core.price_connector.HttpJsonPriceConnector",
        "URL": "https://prices.example/v1/latest",
        "BATCH_SIZE": 200,            # instruments per HTTP request
        "TIME_BUDGET": 2.0,           # seconds for all the requests of one call
        "AUTH_HEADER": "Bearer ...",  # optional: sent as the Authorization header
    }

The HTTP JSON protocol: one POST per batch with the body
`{"instruments": [{"instrument_id", "isin", "currency"}]}`, answered by
`{"prices": [{"instrument_id" (or "isin"), "price", "currency", "quoted_at"?}]}`
(prices as strings or numbers; `quoted_at` an RFC 3339 date-time). Any answer that
is not that (an error status, bad JSON, a timeout) prices nothing in its batch; a
batch started after the time budget is spent is not sent. A connector never raises
for the provider's failures: the caller falls back to stored prices for whatever it
did not price (docs/prices.md).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from importlib import import_module

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PriceRequest:
    instrument_id: str  # the UUID as text
    isin: str | None
    currency: str


@dataclass(frozen=True)
class LivePrice:
    instrument_id: str
    price: Decimal
    currency: str
    quoted_at: datetime | None = None


class PriceConnector:
    """The interface: return the prices it could get within `budget` seconds."""

    def prices(self, requests: Sequence[PriceRequest], budget: float | None = None) -> list[LivePrice]:
        raise NotImplementedError


_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="price-connector")


class HttpJsonPriceConnector(PriceConnector):
    def __init__(self, *, url: str, batch_size: int = 200, time_budget: float = 2.0, auth_header: str | None = None):
        self.url = url
        self.batch_size = max(1, int(batch_size))
        self.time_budget = float(time_budget)
        self.auth_header = auth_header

    def prices(self, requests: Sequence[PriceRequest], budget: float | None = None) -> list[LivePrice]:
        budget = self.time_budget if budget is None else budget
        deadline = time.monotonic() + budget
        out: list[LivePrice] = []
        for start in range(0, len(requests), self.batch_size):
            left = deadline - time.monotonic()
            if left <= 0:
                logger.warning("price connector: time budget of %ss spent; %d instruments not asked",
                               budget, len(requests) - start)
                break
            batch = requests[start:start + self.batch_size]
            # In a worker thread, waited for at most what is left of the budget: a
            # provider trickling bytes cannot hold the run past it.
            future = _POOL.submit(self._fetch, batch, left)
            try:
                out.extend(future.result(timeout=left))
            except FutureTimeout:
                logger.warning("price connector: %s did not answer within the time budget", self.url)
                break
            except Exception as exc:  # a failing provider never fails a run
                logger.warning("price connector: %s failed: %r", self.url, exc)
        return out

    def _fetch(self, batch: Sequence[PriceRequest], timeout: float) -> list[LivePrice]:
        body = json.dumps(
            {"instruments": [{"instrument_id": r.instrument_id, "isin": r.isin, "currency": r.currency} for r in batch]}
        ).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.auth_header:
            headers["Authorization"] = self.auth_header
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (a configured URL)
            data = json.loads(response.read())
        by_isin = {r.isin: r.instrument_id for r in batch if r.isin}
        asked = {r.instrument_id for r in batch}
        out = []
        for row in data.get("prices", ()) if isinstance(data, dict) else ():
            if not isinstance(row, dict):
                continue
            instrument_id = row.get("instrument_id")
            if instrument_id not in asked:
                instrument_id = by_isin.get(row.get("isin"))
            if instrument_id is None:
                continue
            try:
                price = Decimal(str(row["price"]))
            except (KeyError, InvalidOperation, ValueError):
                continue
            if not price.is_finite() or price <= 0:
                continue
            out.append(LivePrice(instrument_id, price, str(row.get("currency") or ""), _moment(row.get("quoted_at"))))
        return out


def _moment(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def connector_from_settings(config: dict | None) -> PriceConnector | None:
    """The connector settings.PRICE_CONNECTOR describes, or None when none is configured."""
    if not config or not config.get("URL"):
        return None
    path = config.get("CLASS") or "core.price_connector.HttpJsonPriceConnector"
    module, _, name = path.rpartition(".")
    cls = getattr(import_module(module), name)
    if cls is HttpJsonPriceConnector:
        return cls(
            url=config["URL"], batch_size=config.get("BATCH_SIZE", 200), time_budget=config.get("TIME_BUDGET", 2.0),
            auth_header=config.get("AUTH_HEADER"),
        )
    return cls(**config.get("OPTIONS", {}))
