"""Prices and FX rates files (api.md "Additions: bulk imports"): the columns of the JSON
rows, any number of rows, validated whole, then one upsert from a staging table.

`effective_at` is a date (2026-03-02) or an RFC 3339 date-time
(2026-03-02T16:30:00+01:00), which counts for its UTC date. Of several rows of the
file for one key and date, the one with the latest time wins; two rows with the same
key and the same time (or two plain dates) are an error naming both lines. A stored
quote of that key and date is replaced (the store keeps one value per day).
"""

from datetime import UTC, date, datetime

from django.db import transaction
from django.utils import timezone

from portfolios.models import FxRate, Price
from portfolios.models.fields import PRICE, RATE, is_currency_code

from ..models import ImportJob, ImportKind, ImportStatus
from . import staging as db
from .holdings import InstrumentRefs
from .jobs import MAX_ERRORS, ErrorList, FileRows, header_index, import_fail, import_finish, import_progress

STAGE = "imp_quotes"
NULL = "\\N"
PROGRESS_EVERY = 200_000


def parse_effective_at(text: str) -> tuple[date | None, str | None, str | None]:
    """(UTC date, the instant as ISO text or None for a plain date, error)."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text), None, None
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None, None, f"{text!r} is neither a date (YYYY-MM-DD) nor an RFC 3339 date-time"
    if moment.tzinfo is None:
        return None, None, f"{text!r} has no UTC offset (RFC 3339 date-times end in Z or ±hh:mm)"
    moment = moment.astimezone(UTC)
    return moment.date(), moment.isoformat(), None


def _stage(job: ImportJob, errors: ErrorList) -> int:
    prices = job.kind == ImportKind.PRICES
    db.temp_table(STAGE, f"line bigint, k1 text, k2 text, effective_at date, quoted_at text, value numeric")
    stager = db.Stager(STAGE, ("line", "k1", "k2", "effective_at", "quoted_at", "value"))
    if prices:
        required, optional = ("instrument_id", "effective_at", "value"), ("source",)
        places, digits = PRICE["decimal_places"], PRICE["max_digits"]
        instruments = InstrumentRefs()
    else:
        required, optional = ("base", "quote", "rate", "effective_at"), ()
        places, digits = RATE["decimal_places"], RATE["max_digits"]
    value_field = "value" if prices else "rate"
    with FileRows(job) as source, stager:  # no query inside: on PostgreSQL the COPY holds the connection
        rows = iter(source)
        header = next(rows, None)
        if header is None:
            errors.add(0, "", "the file is empty (a header row is required)")
            return 0
        columns = header_index(header, required=required, optional=optional, errors=errors)
        if errors:
            return 0
        width = max(columns.values()) + 1
        i_when, i_value = columns["effective_at"], columns[value_field]
        dates: dict[str, tuple] = {}
        total_size, line = max(job.size, 1), 0
        for row in rows:
            line += 1
            if len(row) < width:
                if not any(cell.strip() for cell in row):
                    continue
                row = row + [""] * (width - len(row))
            bad = False
            if prices:
                ref = row[columns["instrument_id"]].strip()
                k1, _, message = instruments.resolve(ref) if ref else (None, None, "required")
                if message:
                    errors.add(line, "instrument_id", message)
                    bad = True
                k2 = row[columns["source"]].strip() if "source" in columns else ""
                k2 = k2 or "default"
                if len(k2) > 50:
                    errors.add(line, "source", "at most 50 characters")
                    bad = True
            else:
                k1, k2 = row[columns["base"]].strip(), row[columns["quote"]].strip()
                for field, code in (("base", k1), ("quote", k2)):
                    if not is_currency_code(code):
                        errors.add(line, field, f"{code!r} is not an ISO 4217 currency code")
                        bad = True
                if k1 == k2 and not bad:
                    errors.add(line, "quote", "must differ from base")
                    bad = True
            when = row[i_when].strip()
            parsed = dates.get(when)
            if parsed is None:
                parsed = dates[when] = parse_effective_at(when) if when else (None, None, "required")
                if len(dates) > 10_000:
                    dates.clear()
            effective_at, quoted_at, message = parsed
            if message:
                errors.add(line, "effective_at", message)
                bad = True
            value, message = db.decimal_of(row[i_value].strip() or "?", places=places, max_digits=digits, negative=False)
            if message:
                errors.add(line, value_field, message if row[i_value].strip() else "required")
                bad = True
            elif value <= 0:
                errors.add(line, value_field, "must be greater than 0")
                bad = True
            if not bad:
                stager.add(f"{line}\t{k1}\t{db.copy_escape(k2)}\t{effective_at.isoformat()}\t"
                           f"{quoted_at or NULL}\t{value}\n")
            if line % PROGRESS_EVERY == 0:
                import_progress(job, 80 * min(source.position(), total_size) / total_size, live=True)
    return line


def market_data_import_run(*, job: ImportJob) -> ImportJob:
    """Run a claimed prices or FX rates import: FAILED with every error, or DONE with
    every row upserted in one statement."""
    errors = ErrorList()
    prices = job.kind == ImportKind.PRICES
    try:
        rows = _stage(job, errors)
        if not errors:
            db.analyze(STAGE)
            key_name = "instrument, source" if prices else "pair"
            for line, first in db.fetchall(
                f"SELECT line, first FROM (SELECT line, min(line) OVER (PARTITION BY k1, k2, effective_at, "
                f"coalesce(quoted_at, '')) AS first FROM {STAGE}) d WHERE line > first ORDER BY line LIMIT {MAX_ERRORS}"
            ):
                errors.add(line, "effective_at", f"same {key_name} and time as line {first}")
        if errors:
            import_fail(job, errors=errors.sorted(), error_count=errors.count, rows=rows)
            return job
        import_progress(job, 85)
        now = timezone.now()
        latest = (f"(SELECT k1, k2, effective_at, value, row_number() OVER (PARTITION BY k1, k2, effective_at "
                  f"ORDER BY quoted_at DESC NULLS LAST) AS rank FROM {STAGE}) q WHERE rank = 1")
        if not db.is_postgres():
            latest = latest.replace(" NULLS LAST", "")  # SQLite sorts NULL first, so last when descending
        with transaction.atomic():
            if prices:
                written = db.execute(
                    f"INSERT INTO {Price._meta.db_table} (instrument_id, source, effective_at, value, created_at, updated_at) "
                    f"SELECT {'CAST(k1 AS uuid)' if db.is_postgres() else 'k1'}, k2, effective_at, value, %(now)s, %(now)s "
                    f"FROM {latest} ON CONFLICT (instrument_id, source, effective_at) DO UPDATE SET value = excluded.value, "
                    f"updated_at = excluded.updated_at", {"now": now},
                )
            else:
                written = db.execute(
                    f"INSERT INTO {FxRate._meta.db_table} (base, quote, effective_at, rate, created_at, updated_at) "
                    f"SELECT k1, k2, effective_at, value, %(now)s, %(now)s FROM {latest} "
                    f"ON CONFLICT (base, quote, effective_at) DO UPDATE SET rate = excluded.rate, "
                    f"updated_at = excluded.updated_at", {"now": now},
                )
            import_finish(job, status=ImportStatus.DONE, rows=rows, rows_changed=written, accounts_changed=0)
        return job
    finally:
        db.drop(STAGE)
