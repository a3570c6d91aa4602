"""Serializer and filter fields shared by the portfolios API."""

import re
from datetime import date
from decimal import Decimal

from django import forms
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
