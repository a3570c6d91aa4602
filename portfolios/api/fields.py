"""Serializer and filter fields shared by the portfolios API."""

import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pycountry
from django import forms
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.dates import (
    EARLIEST,
    FORM_MESSAGE,
    ISO_DATE,
    ISO_DATE_PATTERN,
    ISO_DATE_REGEX,
    LATEST,
    RANGE_MESSAGE,
    date_parse,
)

DATE_MESSAGE = FORM_MESSAGE


def parse_iso_date(value) -> date | None:
    """`YYYY-MM-DD` only (no date-times, week dates or compact forms), a real day,
    1900-01-01..2199-12-31."""
    return date_parse(value)[0] if isinstance(value, str) else None


DATE_SCHEMA = {
    "type": "string", "format": "date", "pattern": ISO_DATE_PATTERN,
    "description": f"YYYY-MM-DD, {EARLIEST.isoformat()}..{LATEST.isoformat()}.",
}


@extend_schema_field(DATE_SCHEMA)
class IsoDateField(serializers.DateField):
    """A date in the body: `YYYY-MM-DD`, a real calendar day, within core.dates' range;
    each refusal says which rule failed."""

    def to_internal_value(self, value):
        parsed, problem = date_parse(value if isinstance(value, str) else None)
        if problem:
            raise serializers.ValidationError(problem, code="invalid")
        return parsed


RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
QUOTE_TIME_MESSAGE = "must be a date (YYYY-MM-DD) or an RFC 3339 date-time with its offset (2026-03-31T14:30:00Z)"


# For the document: a date as DATE_SCHEMA, or a date-time whose parts are in range (hours
# 00-23, minutes and seconds 00-59, offset below 24 h). A date-time within an hour of the
# range's ends whose UTC date falls outside it is refused although it matches.
_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]+)?"
_OFFSET = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
QUOTE_TIME_PATTERN = f"^{ISO_DATE_REGEX}(?:[Tt ]{_TIME}{_OFFSET})?$"


@extend_schema_field({"type": "string", "pattern": QUOTE_TIME_PATTERN,
                      "description": "YYYY-MM-DD or an RFC 3339 date-time with offset, 1900-01-01..2199-12-31"})
class QuoteTimeField(serializers.Field):
    """A quote's `effective_at` (domain §9): a date, or an RFC 3339 date-time that counts
    for its UTC date. Gives (date, aware datetime or None)."""

    default_error_messages = {"invalid": QUOTE_TIME_MESSAGE}

    def to_internal_value(self, value):
        if isinstance(value, str) and ISO_DATE.match(value):  # a date: core.dates names the rule it breaks
            day, problem = date_parse(value)
            if problem:
                raise serializers.ValidationError(problem, code="invalid")
            return day, None
        if not isinstance(value, str) or not RFC3339.match(value):
            self.fail("invalid")
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as exc:
            raise serializers.ValidationError(f"{value} is not a valid date-time ({exc}): {QUOTE_TIME_MESSAGE}",
                                              code="invalid") from exc
        moment = moment.astimezone(UTC)  # the same instant; PostgreSQL refuses offsets beyond 15:59
        day = moment.date()
        if not EARLIEST <= day <= LATEST:
            raise serializers.ValidationError(RANGE_MESSAGE, code="invalid")
        return day, moment

    def to_representation(self, value):
        return value.isoformat()


CURRENCY_CODES = sorted(currency.alpha_3 for currency in pycountry.currencies)


@extend_schema_field({"type": "string", "enum": CURRENCY_CODES, "description": "An ISO 4217 currency code."})
class CurrencyCodeField(serializers.CharField):
    """A currency code in a body. The services check it (naming the field); the schema
    lists the codes they accept (pycountry's ISO 4217 list)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 3)
        super().__init__(**kwargs)


class DecimalString(serializers.DecimalField):
    """A decimal as a string without trailing zeros and never in exponent form ("0.6", "100").

    As input it takes any decimal; pass max_digits/decimal_places to bound it.
    """

    def __init__(self, max_digits=None, decimal_places=None, **kwargs):
        super().__init__(max_digits=max_digits, decimal_places=decimal_places, **kwargs)

    def to_representation(self, value):
        value = Decimal(value)
        if value == 0:
            return "0"
        return format(value.normalize(), "f")


class IsoDateFormField(forms.DateField):
    """A query parameter date, `YYYY-MM-DD` only."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        parsed, problem = date_parse(value)
        if problem:
            raise forms.ValidationError(problem, code="invalid")
        return parsed


class StrictBooleanFormField(forms.Field):
    """A query parameter boolean: true/false (also 1/0); anything else is an error, not ignored."""

    TRUE = {"true", "1"}
    FALSE = {"false", "0"}

    def to_python(self, value):
        if value in self.empty_values:
            return None
        lowered = str(value).strip().lower()
        if lowered in self.TRUE:
            return True
        if lowered in self.FALSE:
            return False
        raise forms.ValidationError("must be true or false", code="invalid")
