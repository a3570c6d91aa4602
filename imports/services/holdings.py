"""Holdings files (domain.md §13): validate whole, then apply the snapshot or reconcile.

The path of a file, whatever its size (docs/imports.md):

1. one streaming pass in Python checks every row on its own (identifiers, numbers,
   which columns a position or a cash row may fill) and stages the good rows in a
   temporary table (COPY on PostgreSQL); the file is never held in memory;
2. set-based checks on the staged rows: accounts that do not exist (or, matched by
   client_id, are ambiguous), a cash account twice;
3. any error: the import is FAILED with every error (line, field, rule), nothing of
   the book written;
4. otherwise the differences between the file and the book of the accounts it names
   are computed in the database (`imp_diff`), then either applied (APPLY) in one
   transaction or kept as breaks (RECONCILE) for an operator to accept.
"""

import uuid
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from stdnum import isin as stdnum_isin
from stdnum.exceptions import ValidationError as IsinError

from core.errors import Conflict, FieldError, InvalidInput

from portfolios.models import CashAccount, CashKind, Instrument, InstrumentType, PortfolioAccount, Position
from portfolios.models.fields import MONEY, UNITS, is_currency_code

from ..models import AccountMatch, ImportBreak, ImportJob, ImportMode, ImportStatus
from . import staging as db
from .jobs import MAX_ERRORS, ErrorList, FileRows, header_index, import_fail, import_finish, import_progress

REQUIRED = ("account_id", "instrument_id", "units", "currency", "balance")
OPTIONAL = ("kind", "acquired_on", "unit_cost")
LOT_COLUMNS = ("acquired_on", "unit_cost")
STAGE, ACCOUNTS, FILE_POSITIONS, FILE_CASH, DIFF = "imp_stage", "imp_accounts", "imp_file_positions", "imp_file_cash", "imp_diff"
PROGRESS_EVERY = 200_000


def _table(model) -> str:
    return model._meta.db_table


class InstrumentRefs:
    """ISIN or UUID → (instrument id as staged, currency) or an error; one query for
    all instruments (a few thousand), then a dict."""

    def __init__(self):
        self.known = {}
        pg = db.is_postgres()
        for pk, isin, type_, currency in Instrument.objects.values_list("id", "isin", "type", "currency"):
            value = (str(pk) if pg else pk.hex, currency, type_)
            self.known[str(pk)] = self.known[pk.hex] = value
            if isin:
                self.known[isin] = value
        self.cache: dict[str, tuple] = {}

    def resolve(self, ref: str) -> tuple:
        """(staged id, currency, None) or (None, None, message)."""
        hit = self.cache.get(ref)
        if hit is None:
            hit = self.cache[ref] = self._resolve(ref)
        return hit

    def _resolve(self, ref: str) -> tuple:
        try:
            found = self.known.get(str(uuid.UUID(ref)))
            if found is None:
                return None, None, f"no instrument with UUID {ref}"
        except ValueError:
            if len(ref) != 12:
                return None, None, f"{ref!r} is neither an ISIN nor a UUID"
            try:
                stdnum_isin.validate(ref)
            except IsinError as exc:
                return None, None, f"{ref} is not a valid ISIN ({str(exc).rstrip('.').lower()})"
            found = self.known.get(ref.upper())
            if found is None:
                return None, None, f"no instrument with ISIN {ref}"
        staged, currency, type_ = found
        if type_ == InstrumentType.CASH:
            return None, None, f"{ref} is a CASH instrument: report cash in a cash row (currency, balance)"
        return staged, currency, None


def _stage_file(job: ImportJob, errors: ErrorList) -> int:
    """Pass 1: check every row on its own and stage the good ones. Returns the number of
    data rows. Progress goes to 70 % by the bytes read."""
    db.temp_table(STAGE, f"line bigint, ref text, instrument_id {db.uuid_type()}, currency text, kind text, "
                         f"units numeric, balance numeric")
    stager = db.Stager(STAGE, ("line", "ref", "instrument_id", "currency", "kind", "units", "balance"))
    with FileRows(job) as source:
        return _stage_rows(job, source, stager, errors)


def _stage_rows(job: ImportJob, source: FileRows, stager: db.Stager, errors: ErrorList) -> int:
    pg = db.is_postgres()
    rows = iter(source)
    header = next(rows, None)
    if header is None:
        errors.add(0, "", "the file is empty (a header row is required)")
        return 0
    columns = header_index(header, required=REQUIRED, optional=OPTIONAL, errors=errors)
    if errors:
        return 0
    width = max(columns.values()) + 1
    i_acc, i_inst, i_units, i_cur, i_bal = (columns[c] for c in REQUIRED)
    i_kind = columns.get("kind")
    lot_columns = [(name, columns[name]) for name in LOT_COLUMNS if name in columns]
    by_id = job.match == AccountMatch.ACCOUNT_ID
    instruments = InstrumentRefs()
    units_places, units_digits = UNITS["decimal_places"], UNITS["max_digits"]
    money_places, money_digits = MONEY["decimal_places"], MONEY["max_digits"]
    kinds = set(CashKind.values)
    last_ref, last_staged = None, None
    total_size = max(job.size, 1)
    line = 0
    add, decimal_of = stager.add, db.decimal_of
    for row in rows:
        line += 1
        if len(row) < width:
            if not any(cell.strip() for cell in row):
                continue  # a blank line (often the last one): not a row
            row = row + [""] * (width - len(row))
        elif len(row) > width and any(cell.strip() for cell in row[width:]):
            errors.add(line, "", f"{len(row)} cells, the header has {width}")
            continue
        bad = False
        ref = row[i_acc].strip()
        if ref == last_ref:
            staged_ref = last_staged
        elif not ref:
            errors.add(line, "account_id", "required")
            bad, staged_ref = True, None
        elif by_id:
            try:
                parsed = uuid.UUID(ref)
                staged_ref = str(parsed) if pg else parsed.hex
                last_ref, last_staged = ref, staged_ref
            except ValueError:
                errors.add(line, "account_id", f"{ref!r} is not a UUID (use match=client_id for client references)")
                bad, staged_ref = True, None
        else:
            staged_ref = last_ref = last_staged = ref
        for name, position in lot_columns:
            if row[position].strip():
                errors.add(line, name, "tax lots are not supported yet: leave the lot columns empty")
                bad = True
        instrument_ref = row[i_inst].strip()
        units_text, currency, balance_text = row[i_units].strip(), row[i_cur].strip(), row[i_bal].strip()
        kind = row[i_kind].strip().upper() if i_kind is not None else ""
        if instrument_ref:  # a position
            instrument_id, instrument_currency, message = instruments.resolve(instrument_ref)
            if message:
                errors.add(line, "instrument_id", message)
                bad = True
            elif currency and currency != instrument_currency:
                errors.add(line, "currency", f"{instrument_ref} trades in {instrument_currency}, not {currency}")
                bad = True
            if balance_text:
                errors.add(line, "balance", "a position row has no balance (cash goes in a row without instrument_id)")
                bad = True
            if kind:
                errors.add(line, "kind", "only a cash row has a kind")
                bad = True
            if not units_text:
                errors.add(line, "units", "required for a position")
                continue
            units, message = decimal_of(units_text, places=units_places, max_digits=units_digits, negative=False)
            if message:
                errors.add(line, "units", message)
                continue
            if not bad:
                add((line, staged_ref, instrument_id, None, None, units, None))
        else:  # cash
            if units_text:
                errors.add(line, "units", "a cash row has no units (set instrument_id for a position)")
                bad = True
            if not currency:
                errors.add(line, "currency", "required for a cash row (or set instrument_id for a position)")
                bad = True
            elif not is_currency_code(currency):
                errors.add(line, "currency", f"{currency} is not an ISO 4217 currency code")
                bad = True
            if kind and kind not in kinds:
                errors.add(line, "kind", f"must be one of {', '.join(CashKind.values)}")
                bad = True
            if not balance_text:
                errors.add(line, "balance", "required for a cash row")
                continue
            balance, message = decimal_of(balance_text, places=money_places, max_digits=money_digits, negative=True)
            if message:
                errors.add(line, "balance", message)
                continue
            if not bad:
                add((line, staged_ref, None, currency, kind or CashKind.CASH, None, balance))
        if stager.full():
            stager.flush()
        if line % PROGRESS_EVERY == 0:
            import_progress(job, 70 * min(source.position(), total_size) / total_size)
    stager.flush()
    return line


def _resolve_accounts(job: ImportJob, errors: ErrorList) -> None:
    """Pass 2: every staged account reference → one account, set-based."""
    accounts = _table(PortfolioAccount)
    db.analyze(STAGE)
    db.temp_table(ACCOUNTS, f"ref text, account_id {db.uuid_type()}")
    if job.match == AccountMatch.ACCOUNT_ID:
        if db.is_postgres():
            db.execute(f"INSERT INTO {ACCOUNTS} (ref, account_id) SELECT a.id::text, a.id FROM {accounts} a "
                       f"WHERE a.id IN (SELECT DISTINCT ref::uuid FROM {STAGE})")
        else:
            db.execute(f"INSERT INTO {ACCOUNTS} (ref, account_id) SELECT a.id, a.id FROM {accounts} a "
                       f"WHERE a.id IN (SELECT DISTINCT ref FROM {STAGE})")
    else:
        db.execute(f"INSERT INTO {ACCOUNTS} (ref, account_id) SELECT a.client_id, a.id FROM {accounts} a "
                   f"WHERE a.client_id IN (SELECT DISTINCT ref FROM {STAGE})")
    db.execute(f"CREATE INDEX {ACCOUNTS}_ref ON {ACCOUNTS} (ref)")
    db.analyze(ACCOUNTS)
    field = "account_id"
    unknown = db.fetchall(
        f"SELECT s.line, s.ref FROM {STAGE} s WHERE NOT EXISTS (SELECT 1 FROM {ACCOUNTS} m WHERE m.ref = s.ref) "
        f"ORDER BY s.line LIMIT {MAX_ERRORS}"
    )
    if unknown:
        [(count,)] = db.fetchall(
            f"SELECT count(*) FROM {STAGE} s WHERE NOT EXISTS (SELECT 1 FROM {ACCOUNTS} m WHERE m.ref = s.ref)"
        )
        what = "account id" if job.match == AccountMatch.ACCOUNT_ID else "client_id"
        for line, ref in unknown:
            errors.add(line, field, f"no account with {what} {_ref_text(ref)}")
        errors.count += count - len(unknown)
    if job.match == AccountMatch.CLIENT_ID:
        for line, ref, n in db.fetchall(
            f"SELECT s.line, s.ref, m.n FROM {STAGE} s JOIN (SELECT ref, count(*) AS n FROM {ACCOUNTS} GROUP BY ref "
            f"HAVING count(*) > 1) m ON m.ref = s.ref ORDER BY s.line LIMIT {MAX_ERRORS}"
        ):
            errors.add(line, field, f"client_id {ref} matches {n} accounts; use match=account_id")
    for line, ref, currency, kind, first in db.fetchall(
        f"SELECT line, ref, currency, kind, first FROM (SELECT line, ref, currency, kind, "
        f"min(line) OVER (PARTITION BY ref, currency, kind) AS first FROM {STAGE} WHERE instrument_id IS NULL) c "
        f"WHERE line > first ORDER BY line LIMIT {MAX_ERRORS}"
    ):
        errors.add(line, "currency", f"{currency} {kind} of this account is already on line {first}")


def _ref_text(ref: str) -> str:
    try:
        return str(uuid.UUID(ref))
    except ValueError:
        return ref


def _build_diff(tolerance: Decimal) -> None:
    """The differences between the file and the book of the accounts the file names,
    beyond `tolerance`: positions (kind P) and cash accounts (kind C). `file` is NULL
    for what the book has and the file leaves out (it becomes 0)."""
    positions, cash = _table(Position), _table(CashAccount)
    uuid_type = db.uuid_type()
    db.temp_table(FILE_POSITIONS, f"account_id {uuid_type}, instrument_id {uuid_type}, units numeric")
    db.execute(
        f"INSERT INTO {FILE_POSITIONS} (account_id, instrument_id, units) "
        f"SELECT m.account_id, s.instrument_id, sum(s.units) FROM {STAGE} s JOIN {ACCOUNTS} m ON m.ref = s.ref "
        f"WHERE s.instrument_id IS NOT NULL GROUP BY m.account_id, s.instrument_id"
    )
    db.temp_table(FILE_CASH, f"account_id {uuid_type}, currency text, kind text, balance numeric")
    db.execute(
        f"INSERT INTO {FILE_CASH} (account_id, currency, kind, balance) "
        f"SELECT m.account_id, s.currency, s.kind, s.balance FROM {STAGE} s JOIN {ACCOUNTS} m ON m.ref = s.ref "
        f"WHERE s.instrument_id IS NULL"
    )
    db.execute(f"CREATE INDEX {FILE_POSITIONS}_key ON {FILE_POSITIONS} (account_id, instrument_id)")
    db.execute(f"CREATE INDEX {FILE_CASH}_key ON {FILE_CASH} (account_id, currency, kind)")
    db.analyze(FILE_POSITIONS, FILE_CASH)
    db.temp_table(DIFF, f"kind char(1), account_id {uuid_type}, instrument_id {uuid_type}, currency text, "
                        f"cash_kind text, book numeric, file numeric")
    named = f"(SELECT DISTINCT account_id FROM {ACCOUNTS})"
    tol = {"tol": tolerance}
    db.execute(
        f"INSERT INTO {DIFF} SELECT 'P', f.account_id, f.instrument_id, NULL, NULL, p.units, f.units "
        f"FROM {FILE_POSITIONS} f LEFT JOIN {positions} p ON p.account_id = f.account_id AND p.instrument_id = f.instrument_id "
        f"WHERE abs(f.units - coalesce(p.units, 0)) > CAST(%(tol)s AS NUMERIC)", tol,
    )
    db.execute(
        f"INSERT INTO {DIFF} SELECT 'P', p.account_id, p.instrument_id, NULL, NULL, p.units, NULL "
        f"FROM {positions} p WHERE p.account_id IN {named} AND abs(p.units) > CAST(%(tol)s AS NUMERIC) AND NOT EXISTS "
        f"(SELECT 1 FROM {FILE_POSITIONS} f WHERE f.account_id = p.account_id AND f.instrument_id = p.instrument_id)", tol,
    )
    db.execute(
        f"INSERT INTO {DIFF} SELECT 'C', f.account_id, NULL, f.currency, f.kind, c.balance, f.balance "
        f"FROM {FILE_CASH} f LEFT JOIN {cash} c ON c.account_id = f.account_id AND c.currency = f.currency "
        f"AND c.kind = f.kind WHERE abs(f.balance - coalesce(c.balance, 0)) > CAST(%(tol)s AS NUMERIC)", tol,
    )
    db.execute(
        f"INSERT INTO {DIFF} SELECT 'C', c.account_id, NULL, c.currency, c.kind, c.balance, NULL "
        f"FROM {cash} c WHERE c.account_id IN {named} AND abs(c.balance) > CAST(%(tol)s AS NUMERIC) AND NOT EXISTS "
        f"(SELECT 1 FROM {FILE_CASH} f WHERE f.account_id = c.account_id AND f.currency = c.currency AND f.kind = c.kind)",
        tol,
    )


def _apply(source: str, params: dict | None = None) -> tuple[int, int]:
    """Write the file's values of the differences in `source` (SQL yielding kind,
    account_id, instrument_id, currency, cash_kind, file) into the book; returns (rows
    written, accounts changed). A position whose file value is 0 or missing is deleted;
    a cash account is kept with balance 0. A new cash account is the default when its
    account has none and it is in the account's base currency."""
    params = dict(params or {}, now=timezone.now())
    positions, cash, accounts = _table(Position), _table(CashAccount), _table(PortfolioAccount)
    src = f"({source}) src"
    deleted = db.execute(
        f"DELETE FROM {positions} WHERE (account_id, instrument_id) IN "
        f"(SELECT account_id, instrument_id FROM {src} WHERE kind = 'P' AND coalesce(file, 0) = 0)", params,
    )
    upserted = db.execute(
        f"INSERT INTO {positions} (account_id, instrument_id, units, updated_at) "
        f"SELECT account_id, instrument_id, file, %(now)s FROM {src} WHERE kind = 'P' AND file > 0 "
        f"ON CONFLICT (account_id, instrument_id) DO UPDATE SET units = excluded.units, updated_at = excluded.updated_at",
        params,
    )
    balances = db.execute(
        f"INSERT INTO {cash} (account_id, currency, kind, balance, is_default, updated_at) "
        f"SELECT account_id, currency, cash_kind, coalesce(file, 0), %(false)s, %(now)s FROM {src} WHERE kind = 'C' "
        f"ON CONFLICT (account_id, currency, kind) DO UPDATE SET balance = excluded.balance, updated_at = excluded.updated_at",
        {**params, "false": False},
    )
    db.execute(
        f"UPDATE {cash} SET is_default = %(true)s WHERE id IN (SELECT c.id FROM {cash} c JOIN {accounts} a ON a.id = c.account_id "
        f"WHERE c.account_id IN (SELECT account_id FROM {src} WHERE kind = 'C') AND c.currency = a.base_currency "
        f"AND c.kind = %(cash_kind)s AND NOT EXISTS (SELECT 1 FROM {cash} d WHERE d.account_id = c.account_id AND d.is_default))",
        {**params, "true": True, "cash_kind": CashKind.CASH.value},
    )
    [(changed,)] = db.fetchall(f"SELECT count(DISTINCT account_id) FROM {src}", params)
    return deleted + upserted + balances, changed


def _write_breaks(job: ImportJob) -> int:
    new_id = "gen_random_uuid()" if db.is_postgres() else "lower(hex(randomblob(16)))"
    return db.execute(
        f"INSERT INTO {_table(ImportBreak)} (id, import_job_id, account_id, instrument_id, currency, cash_kind, book, file, "
        f"difference, accepted) SELECT {new_id}, %(job)s, account_id, instrument_id, currency, cash_kind, book, file, "
        f"coalesce(file, 0) - coalesce(book, 0), %(false)s FROM {DIFF}",
        {"job": job.pk if db.is_postgres() else job.pk.hex, "false": False},
    )


def holdings_import_run(*, job: ImportJob) -> ImportJob:
    """Run a claimed (RUNNING) holdings import to its end: FAILED with every error,
    DONE (APPLY: the snapshot written), or AWAITING_ACCEPTANCE (RECONCILE with breaks).
    Runs outside a transaction (progress is visible as it goes); the book is written in
    one transaction at the end."""
    errors = ErrorList()
    try:
        rows = _stage_file(job, errors)
        if not errors:
            import_progress(job, 70)
            _resolve_accounts(job, errors)
        if errors:
            import_fail(job, errors=errors.sorted(), error_count=errors.count, rows=rows)
            return job
        import_progress(job, 80)
        with transaction.atomic():
            tolerance = job.tolerance if job.mode == ImportMode.RECONCILE else Decimal(0)
            _build_diff(tolerance)
            if job.mode == ImportMode.APPLY:
                written, changed = _apply(f"SELECT kind, account_id, instrument_id, currency, cash_kind, file FROM {DIFF}")
                import_finish(job, status=ImportStatus.DONE, rows=rows, rows_changed=written, accounts_changed=changed)
            else:
                breaks = _write_breaks(job)
                import_finish(job, status=ImportStatus.AWAITING_ACCEPTANCE if breaks else ImportStatus.DONE,
                              rows=rows, rows_changed=0, accounts_changed=0, break_count=breaks)
        return job
    finally:
        db.drop(STAGE, ACCOUNTS, FILE_POSITIONS, FILE_CASH, DIFF)


@transaction.atomic
def breaks_accept(*, job: ImportJob, break_ids: list | None = None, user=None) -> ImportJob:
    """Apply exactly these breaks of a reconciliation (all when `break_ids` is None):
    each position or cash account gets the file's value. 409 unless the import is
    AWAITING_ACCEPTANCE, or when the book has moved since the reconciliation for a
    break accepted (reconcile again)."""
    job = ImportJob.objects.select_for_update().get(pk=job.pk)
    if job.status != ImportStatus.AWAITING_ACCEPTANCE:
        raise Conflict(f"import {job.pk} is {job.status}; only an import AWAITING_ACCEPTANCE can be accepted")
    breaks = ImportBreak.objects.filter(import_job=job)
    if break_ids is not None:
        wanted, errors = [], []
        for index, value in enumerate(break_ids):
            try:
                wanted.append(uuid.UUID(str(value)))
            except ValueError:
                errors.append(FieldError(f"break_ids[{index}]", f"{value!r} is not a UUID"))
        found = set(breaks.filter(pk__in=wanted).values_list("pk", flat=True)) if wanted else set()
        errors.extend(
            FieldError(f"break_ids[{index}]", f"no break {value} in import {job.pk}")
            for index, value in enumerate(wanted) if value not in found
        )
        if errors:
            raise InvalidInput(errors)
        breaks = breaks.filter(pk__in=wanted)
    breaks.update(accepted=True)
    pg = db.is_postgres()
    job_id = job.pk if pg else job.pk.hex
    table, positions, cash = _table(ImportBreak), _table(Position), _table(CashAccount)
    moved = db.fetchall(
        f"SELECT b.id FROM {table} b LEFT JOIN {positions} p ON p.account_id = b.account_id AND p.instrument_id = b.instrument_id "
        f"WHERE b.import_job_id = %(job)s AND b.accepted AND b.instrument_id IS NOT NULL "
        f"AND coalesce(p.units, 0) <> coalesce(b.book, 0) "
        f"UNION ALL SELECT b.id FROM {table} b LEFT JOIN {cash} c ON c.account_id = b.account_id AND c.currency = b.currency "
        f"AND c.kind = b.cash_kind WHERE b.import_job_id = %(job)s AND b.accepted AND b.instrument_id IS NULL "
        f"AND coalesce(c.balance, 0) <> coalesce(b.book, 0) LIMIT 20",
        {"job": job_id},
    )
    if moved:
        raise Conflict(
            "the book changed since the reconciliation for break(s) "
            + ", ".join(str(uuid.UUID(str(row[0]))) for row in moved) + "; reconcile the file again"
        )
    written, changed = _apply(
        f"SELECT CASE WHEN instrument_id IS NULL THEN 'C' ELSE 'P' END AS kind, account_id, instrument_id, currency, "
        f"cash_kind, file FROM {table} WHERE import_job_id = %(job)s AND accepted",
        {"job": job_id},
    )
    job.accepted_by = user if getattr(user, "is_authenticated", False) else None
    job.accepted_at = timezone.now()
    job.save(update_fields=["accepted_by", "accepted_at"])
    accepted = ImportBreak.objects.filter(import_job=job, accepted=True).count()
    import_finish(job, status=ImportStatus.DONE, rows=job.rows, rows_changed=written, accounts_changed=changed,
                  break_count=job.break_count, actor=user, accepted_breaks=accepted)
    return job
