"""Decimal column sizes used everywhere, and validators for codes.

The engine's output precision (docs/engine.md) fits these columns.
"""

from functools import lru_cache

import pycountry
from django.core.exceptions import ValidationError
from stdnum import isin as stdnum_isin
from stdnum.exceptions import ValidationError as StdnumValidationError

MONEY = {"max_digits": 24, "decimal_places": 8}
UNITS = {"max_digits": 28, "decimal_places": 10}
PRICE = {"max_digits": 28, "decimal_places": 10}
RATE = {"max_digits": 24, "decimal_places": 12}
WEIGHT = {"max_digits": 13, "decimal_places": 12}


@lru_cache(maxsize=512)
def is_currency_code(code: str) -> bool:
    return len(code) == 3 and code.isupper() and pycountry.currencies.get(alpha_3=code) is not None


def validate_currency(value: str) -> None:
    if not is_currency_code(value or ""):
        raise ValidationError(
            "%(value)s is not an ISO 4217 currency code (three capital letters, e.g. EUR).",
            code="invalid_currency",
            params={"value": value},
        )


def validate_isin(value: str) -> None:
    try:
        stdnum_isin.validate(value)
    except StdnumValidationError as exc:
        raise ValidationError(
            "%(value)s is not a valid ISIN (%(reason)s).",
            code="invalid_isin",
            params={"value": value, "reason": str(exc).rstrip(".").lower()},
        ) from exc
