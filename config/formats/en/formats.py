"""Dates as operations teams read them across countries: ISO 8601 (2026-12-06 09:04:00),
never "Dec. 6, 2026, 9:04 a.m." (settings.FORMAT_MODULE_PATH). Formats not named here
keep Django's English ones."""

DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i:s"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
TIME_FORMAT = "H:i:s"
