"""Dates as the API and the services take them: `YYYY-MM-DD`, a real calendar day, and
within the years the product has any use for (EARLIEST..LATEST). A price, an allocation
version, an execution or a strategy's anchor dated 9999-12-31 is a typo, not a plan."""

import re
from datetime import date

EARLIEST = date(1900, 1, 1)
LATEST = date(2199, 12, 31)
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# For the OpenAPI document: exactly the days date_parse takes, EARLIEST..LATEST (ASCII
# digits, real months and days, 29 February in leap years only: 1900 and 2100 are not).
_YEAR = "(?:19|20|21)[0-9]{2}"
_MONTH_DAY = "(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
_LEAP_DAY = "(?:(?:19|20|21)(?:0[48]|[2468][048]|[13579][26])|2000)-02-29"
ISO_DATE_REGEX = f"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_DAY})"
ISO_DATE_PATTERN = f"^{ISO_DATE_REGEX}$"
FORM_MESSAGE = "must be a date in the form YYYY-MM-DD"
RANGE_MESSAGE = f"must be between {EARLIEST.isoformat()} and {LATEST.isoformat()}"


def date_parse(value) -> tuple[date | None, str | None]:
    """(the date, None), or (None, why not): not `YYYY-MM-DD`, not a calendar day
    ("2026-02-30 is not a valid date: day is out of range for month"), out of range."""
    if isinstance(value, date):
        parsed = value
    elif not isinstance(value, str) or not ISO_DATE.match(value):
        return None, FORM_MESSAGE
    else:
        try:
            parsed = date.fromisoformat(value)
        except ValueError as exc:
            return None, f"{value} is not a valid date: {exc}"
    if not EARLIEST <= parsed <= LATEST:
        return None, RANGE_MESSAGE
    return parsed, None
