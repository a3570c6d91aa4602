"""Instruments, prices and FX rates."""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import FieldError, InvalidInput, raise_if_errors

from . import alerts
from ..models import FuturesCost, FxRate, Instrument, InstrumentType, Price
from ..models.fields import is_currency_code
from ..selectors import instruments_by_reference

MAX_PRICE_ROWS = 10_000
IMMUTABLE_INSTRUMENT_FIELDS = ("type", "currency")


def _model_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    return [
        FieldError(f"{prefix}{field}" if field != "__all__" else prefix.rstrip("."), message)
        for field, messages in exc.message_dict.items()
        for message in messages
    ]


def _check_instrument_rules(instrument: Instrument) -> None:
    errors: list[FieldError] = []
    if instrument.type == InstrumentType.FUTURE and not instrument.futures_cost:
        instrument.futures_cost = FuturesCost.LATER
    if instrument.type != InstrumentType.FUTURE and instrument.futures_cost:
        errors.append(FieldError("futures_cost", "only a FUTURE has a futures cost mode"))
    if instrument.type == InstrumentType.CASH and instrument.isin:
        errors.append(FieldError("isin", "a CASH instrument has no ISIN; its currency is its code"))
    if instrument.block_size is not None and instrument.block_size <= 0:
        errors.append(FieldError("block_size", "must be greater than 0"))
    if instrument.type == InstrumentType.CASH:
        duplicate = Instrument.objects.filter(type=InstrumentType.CASH, currency=instrument.currency)
        if duplicate.exclude(pk=instrument.pk).exists():
            errors.append(FieldError("currency", f"a CASH instrument for {instrument.currency} already exists"))
    try:
        instrument.full_clean(validate_constraints=False)
    except ValidationError as exc:
        errors.extend(_model_errors(exc))
    raise_if_errors(errors)


@transaction.atomic
def cash_instrument_ensure(*, currency: str) -> Instrument:
    """The CASH instrument of `currency`, created (named by its code) when missing: a
    withdrawal or an FX order names it (domain §9, §10)."""
    instrument = Instrument.objects.filter(type=InstrumentType.CASH, currency=currency).first()
    if instrument is None:
        instrument, _ = Instrument.objects.get_or_create(
            type=InstrumentType.CASH, currency=currency, defaults={"name": currency, "tradable": True}
        )
    return instrument


def instrument_create(
    *,
    name: str,
    type: str,
    currency: str,
    isin: str | None = None,
    tradable: bool = True,
    block_size: Decimal | None = None,
    futures_cost: str | None = None,
) -> Instrument:
    """Create an instrument. A CASH instrument's currency is its code and its default name."""
    instrument = Instrument(
        name=name or (currency if type == InstrumentType.CASH else ""),
        type=type,
        currency=currency,
        isin=isin.upper() if isin else None,
        tradable=tradable,
        block_size=block_size,
        futures_cost=futures_cost,
    )
    _check_instrument_rules(instrument)
    was_tradable = Instrument.objects.filter(pk=instrument.pk).values_list("tradable", flat=True).first()
    instrument.save()
    if was_tradable is not None and was_tradable != instrument.tradable:
        # The models holding it need (or no longer need) attention at once.
        alerts.allocation_alerts_refresh(allocation_ids=alerts.allocations_with_instruments([instrument.pk]))
    return instrument


@transaction.atomic
def instrument_update(*, instrument: Instrument, **changes) -> Instrument:
    """Change an instrument. Its type and currency are fixed at creation, since
    allocations and holdings already depend on them."""
    errors = [
        FieldError(field, "cannot be changed after creation")
        for field in IMMUTABLE_INSTRUMENT_FIELDS
        if field in changes and changes[field] != getattr(instrument, field)
    ]
    raise_if_errors(errors)
    for field, value in changes.items():
        if field == "isin" and value:
            value = value.upper()
        setattr(instrument, field, value)
    _check_instrument_rules(instrument)
    was_tradable = Instrument.objects.filter(pk=instrument.pk).values_list("tradable", flat=True).first()
    instrument.save()
    if was_tradable is not None and was_tradable != instrument.tradable:
        # The models holding it need (or no longer need) attention at once.
        alerts.allocation_alerts_refresh(allocation_ids=alerts.allocations_with_instruments([instrument.pk]))
    return instrument


@dataclass(frozen=True)
class PriceRow:
    instrument_id: str  # ISIN or UUID
    effective_at: date
    value: Decimal
    source: str = "default"
    quoted_at: datetime | None = None  # the quote's time (its UTC date is effective_at)


def _latest_quotes(rows: list, key_of, seen: dict, errors: list, field: str, what: str) -> list:
    """Keep, of the rows sharing a key, the one with the latest time (domain §9); two
    rows of one key without distinct times are an error naming the second."""
    kept: dict = {}
    for index, row in enumerate(rows):
        key = key_of(row)
        if key is None:
            continue
        if key in kept:
            first_index, first = kept[key]
            if row.quoted_at is None or first.quoted_at is None or row.quoted_at == first.quoted_at:
                errors.append(FieldError(f"{field}[{index}].effective_at", f"same {what} as {field}[{first_index}]"))
                continue
            if row.quoted_at < first.quoted_at:
                continue
        kept[key] = (index, row)
    return [row for _, row in sorted(kept.values(), key=lambda item: item[0])]


def _older_than_stored(model, rows: list, key_fields: tuple, key_of) -> set:
    """The keys of the timed rows for which a later quote is already stored (one query)."""
    timed = {key_of(row): row.quoted_at for row in rows if row.quoted_at is not None}
    if not timed:
        return set()
    query = Q()
    for key in timed:
        query |= Q(**dict(zip(key_fields, key)))
    stored = model.objects.filter(query, quoted_at__isnull=False).values_list(*key_fields, "quoted_at")
    return {tuple(row[:-1]) for row in stored if row[-1] > timed[tuple(row[:-1])]}


@transaction.atomic
def prices_upsert(*, rows: list[PriceRow]) -> int:
    """Insert or replace prices keyed by (instrument, source, effective_at): all rows or
    none. A row with a time (`quoted_at`) replaces a stored quote of its day only when
    that one has no later time; of several rows of one key, the latest time is kept."""
    if len(rows) > MAX_PRICE_ROWS:
        raise InvalidInput([FieldError("prices", f"at most {MAX_PRICE_ROWS} rows per request, got {len(rows)}")])
    instruments = instruments_by_reference(row.instrument_id for row in rows)
    errors: list[FieldError] = []
    for index, row in enumerate(rows):
        if row.instrument_id not in instruments:
            errors.append(FieldError(f"prices[{index}].instrument_id", f"no instrument with ISIN or UUID {row.instrument_id}"))
        elif row.value <= 0:
            errors.append(FieldError(f"prices[{index}].value", "must be greater than 0"))

    def key_of(row):
        instrument = instruments.get(row.instrument_id)
        return (instrument.pk, row.source, row.effective_at) if instrument is not None else None

    rows = _latest_quotes(rows, key_of, {}, errors, "prices", "instrument, source and date")
    raise_if_errors(errors)
    older = _older_than_stored(Price, rows, ("instrument_id", "source", "effective_at"), key_of)
    prices = [
        Price(instrument=instruments[row.instrument_id], source=row.source, effective_at=row.effective_at,
              value=row.value, quoted_at=row.quoted_at)
        for row in rows if key_of(row) not in older
    ]  # fmt: skip
    now = timezone.now()
    for price in prices:
        price.created_at = price.updated_at = now
    Price.objects.bulk_create(
        prices,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["instrument", "source", "effective_at"],
        update_fields=["value", "quoted_at", "updated_at"],
    )
    # A price may end a NO_PRICE alert (one query when none is open).
    waiting = alerts.allocations_with_price_alerts({price.instrument_id for price in prices})
    if waiting:
        alerts.allocation_alerts_refresh(allocation_ids=waiting)
    return len(prices)


@dataclass(frozen=True)
class FxRateRow:
    base: str
    quote: str
    rate: Decimal
    effective_at: date
    quoted_at: datetime | None = None  # the rate's time (its UTC date is effective_at)


@transaction.atomic
def fx_rates_upsert(*, rows: list[FxRateRow]) -> int:
    """Insert or replace FX rates keyed by (base, quote, effective_at): all rows or none;
    with times, the latest rate of a day is kept (as prices_upsert)."""
    if len(rows) > MAX_PRICE_ROWS:
        raise InvalidInput([FieldError("rates", f"at most {MAX_PRICE_ROWS} rows per request, got {len(rows)}")])
    errors: list[FieldError] = []
    rates = []
    now = timezone.now()
    for index, row in enumerate(rows):
        for field in ("base", "quote"):
            if not is_currency_code(getattr(row, field)):
                errors.append(FieldError(f"rates[{index}].{field}", f"{getattr(row, field)} is not an ISO 4217 currency code"))
        if row.base == row.quote:
            errors.append(FieldError(f"rates[{index}].quote", "must differ from base"))
        if row.rate <= 0:
            errors.append(FieldError(f"rates[{index}].rate", "must be greater than 0"))

    def key_of(row):
        return (row.base, row.quote, row.effective_at)

    rows = _latest_quotes(rows, key_of, {}, errors, "rates", "pair and date")
    raise_if_errors(errors)
    older = _older_than_stored(FxRate, rows, ("base", "quote", "effective_at"), key_of)
    rates = [
        FxRate(base=row.base, quote=row.quote, rate=row.rate, effective_at=row.effective_at, quoted_at=row.quoted_at,
               created_at=now, updated_at=now)
        for row in rows if key_of(row) not in older
    ]
    FxRate.objects.bulk_create(
        rates,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["base", "quote", "effective_at"],
        update_fields=["rate", "quoted_at", "updated_at"],
    )
    return len(rates)
