"""Serializer and filter fields shared by the portfolios API."""

import re
from datetime import UTC, date, datetime
from decimal import Decimal

from django import forms
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATE_MESSAGE = "must be a date in the form YYYY-MM-DD (not a date-time)"


def parse_iso_date(value) -> date | None:
    """`YYYY-MM-DD` only: no date-times, week dates or compact forms."""
    if not isinstance(value, str) or not ISO_DATE.match(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


class IsoDateField(serializers.DateField):
    default_error_messages = {"invalid": DATE_MESSAGE, "datetime": DATE_MESSAGE}

    def to_internal_value(self, value):
        parsed = parse_iso_date(value)
        if parsed is None:
            self.fail("invalid")
        return parsed


RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
QUOTE_TIME_MESSAGE = "must be a date (YYYY-MM-DD) or an RFC 3339 date-time with its offset (2026-03-31T14:30:00Z)"


@extend_schema_field({"type": "string", "description": "YYYY-MM-DD or an RFC 3339 date-time with offset"})
class QuoteTimeField(serializers.Field):
    """A quote's `effective_at` (domain §9): a date, or an RFC 3339 date-time that counts
    for its UTC date. Gives (date, aware datetime or None)."""

    default_error_messages = {"invalid": QUOTE_TIME_MESSAGE}

    def to_internal_value(self, value):
        day = parse_iso_date(value)
        if day is not None:
            return day, None
        if not isinstance(value, str) or not RFC3339.match(value):
            self.fail("invalid")
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            self.fail("invalid")
        return moment.astimezone(UTC).date(), moment

    def to_representation(self, value):
        return value.isoformat()


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

    default_error_messages = {"invalid": DATE_MESSAGE}

    def to_python(self, value):
        if value in self.empty_values:
            return None
        parsed = parse_iso_date(value)
        if parsed is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
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
