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

import decimal
import re
import uuid
from collections import Counter
from datetime import date
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from stdnum import isin as stdnum_isin
from stdnum.exceptions import ValidationError as IsinError

from audit.services import audit_record
from core.errors import Conflict, FieldError, InvalidInput

from portfolios.models import CashAccount, CashKind, Instrument, InstrumentType, Lot, PortfolioAccount, Position
from portfolios.models.fields import MONEY, PRICE, UNITS, is_currency_code
from portfolios.services.lots import LotBook, LotInput, positions_set

from ..models import AccountMatch, ImportBreak, ImportJob, ImportKind, ImportMode, ImportStatus
from . import staging as db
from .jobs import MAX_ERRORS, ErrorList, FileRows, header_index, import_fail, import_finish, import_progress

REQUIRED = ("account_id", "instrument_id", "units", "currency", "balance")
OPTIONAL = ("kind", "acquired_on", "unit_cost")
STAGE, NAMED, ACCOUNTS, DIFF = "imp_stage", "imp_named", "imp_accounts", "imp_diff"
# The file's lots (account id resolved), their positions' keys, and the accounts whose
# lots an APPLY replaced.
LOTS, LOT_KEYS, LOT_ACCOUNTS = "imp_lots", "imp_lot_keys", "imp_lot_accounts"
# The staged `kind` of a position's rows when the file gives its lots: the position
# (the lots' units added up, on the first lot's line) and each lot on its own line.
# A position without lots has no kind, a cash row its cash kind.
KIND_LOTS_POSITION, KIND_LOT = "P", "LOT"
PROGRESS_EVERY = 200_000
# New positions and cash accounts from which an APPLY checks their foreign keys once,
# set-based (about 17 µs a row checked one by one at COMMIT: four minutes for a
# million accounts), taking the two tables for itself meanwhile (docs/imports.md).
BULK_FOREIGN_KEY_ROWS = 100_000


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


UNITS_TEXT = re.compile(r"\d{1,%d}(?:\.\d{0,%d})?" % (UNITS["max_digits"] - UNITS["decimal_places"], UNITS["decimal_places"]))
BALANCE_TEXT = re.compile(r"-?\d{1,%d}(?:\.\d{0,%d})?" % (MONEY["max_digits"] - MONEY["decimal_places"], MONEY["decimal_places"]))
DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")
NULL = "\\N"
UNITS_QUANTUM = Decimal(1).scaleb(-UNITS["decimal_places"])


class FileShape:
    """What the pass learnt about the file as a whole."""

    def __init__(self):
        self.rows = 0
        self.header_ok = False
        self.grouped = True  # every account's rows are together (then duplicates were merged in Python)
        self.named: dict[str, int] = {}  # staged account reference → its first line
        self.lots = 0  # lot rows staged (rows with acquired_on)


class AccountBlock:
    """The rows of one account while its block is read: a position named twice is
    added up, a cash account named twice is an error; emitted as COPY lines at the end."""

    def __init__(self, ref_column: str):
        self.ref_column = ref_column  # "account_id\t\\N" or "\\N\tref"
        self.positions: dict[str, list] = {}  # instrument id → [first line, units text]
        self.cash: dict[tuple, list] = {}  # (currency, kind) → [line, balance text]
        self.lots: dict[str, list] | None = None  # instrument id → [(line, acquired_on, units, unit_cost)]

    def position(self, line: int, instrument_id: str, units: str) -> None:
        known = self.positions.get(instrument_id)
        if known is None:
            self.positions[instrument_id] = [line, units]
        else:
            known[1] = str(Decimal(known[1]) + Decimal(units))

    def lot(self, line: int, instrument_id: str, units: str, acquired_on: str, unit_cost: str,
            errors: ErrorList) -> None:
        """A row with lot columns: one lot of the position; the position is the sum of its
        lots, and a position gives lots on all of its rows or on none."""
        if self.lots is None:
            self.lots = {}
        lots = self.lots.get(instrument_id)
        if lots is None:
            plain = self.positions.get(instrument_id)
            if plain is not None:
                errors.add(line, "acquired_on", f"line {plain[0]} gives this position without lots: give "
                                                "acquired_on on every row of a position, or on none")
                return
            self.lots[instrument_id] = [(line, acquired_on, units, unit_cost)]
            self.positions[instrument_id] = [line, units]
        else:
            lots.append((line, acquired_on, units, unit_cost))
            self.position(line, instrument_id, units)

    def cash_row(self, line: int, currency: str, kind: str, balance: str, errors: ErrorList) -> None:
        known = self.cash.get((currency, kind))
        if known is None:
            self.cash[(currency, kind)] = [line, balance]
        else:
            errors.add(line, "currency", f"{currency} {kind} of this account is already on line {known[0]}")

    def emit(self, stager) -> None:
        head = self.ref_column
        if self.lots:
            lots = self.lots
            stager.extend([f"{line}\t{head}\t{instrument_id}\t{NULL}\t"
                           f"{KIND_LOTS_POSITION if instrument_id in lots else NULL}\t{units}\t{NULL}\t{NULL}\t{NULL}\n"
                           for instrument_id, (line, units) in self.positions.items()])
            stager.extend([f"{line}\t{head}\t{instrument_id}\t{NULL}\t{KIND_LOT}\t{units}\t{NULL}\t{acquired_on}\t"
                           f"{unit_cost or NULL}\n"
                           for instrument_id, rows in lots.items() for line, acquired_on, units, unit_cost in rows])
        else:
            stager.extend([f"{line}\t{head}\t{instrument_id}\t{NULL}\t{NULL}\t{units}\t{NULL}\t{NULL}\t{NULL}\n"
                           for instrument_id, (line, units) in self.positions.items()])
        stager.extend([f"{line}\t{head}\t{NULL}\t{currency}\t{kind}\t{NULL}\t{balance}\t{NULL}\t{NULL}\n"
                       for (currency, kind), (line, balance) in self.cash.items()])


class RowSource:
    """Rows (lists of strings, the header first) made inside Ballast, read like a file."""

    def __init__(self, rows):
        self.rows = rows

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def __iter__(self):
        return iter(self.rows)

    def position(self) -> int:
        return 0


def _stage_file(job: ImportJob, errors: ErrorList, rows=None) -> FileShape:
    """Pass 1: check every row on its own and stage the good ones (an account's rows
    merged when they come together). Progress goes to 70 % by the bytes read. `rows`
    replaces the stored file (holdings_snapshot_load)."""
    db.temp_table(STAGE, f"line bigint, account_id {db.uuid_type()}, ref text, instrument_id {db.uuid_type()}, "
                         f"currency text, kind text, units {db.exact_type()}, balance {db.exact_type()}, "
                         f"acquired_on {'date' if db.is_postgres() else 'text'}, unit_cost {db.exact_type()}")
    shape = FileShape()
    stager = db.Stager(STAGE, ("line", "account_id", "ref", "instrument_id", "currency", "kind", "units", "balance",
                               "acquired_on", "unit_cost"))
    instruments = InstrumentRefs()  # before the COPY: it holds the connection until it ends
    with (FileRows(job) if rows is None else RowSource(rows)) as source, stager:
        _stage_rows(job, source, stager, errors, shape, instruments)
    return shape


def _stage_rows(job: ImportJob, source: FileRows, stager: db.Stager, errors: ErrorList, shape: FileShape,
                instruments: InstrumentRefs) -> None:
    """No query may run here: on PostgreSQL the COPY holds the connection."""
    pg = db.is_postgres()
    rows = iter(source)
    header = next(rows, None)
    if header is None:
        errors.add(0, "", "the file is empty (a header row is required)")
        return
    columns = header_index(header, required=REQUIRED, optional=OPTIONAL, errors=errors)
    if errors:
        return
    shape.header_ok = True
    width = max(columns.values()) + 1
    i_acc, i_inst, i_units, i_cur, i_bal = (columns[c] for c in REQUIRED)
    i_kind = columns.get("kind")
    i_acquired, i_cost = columns.get("acquired_on"), columns.get("unit_cost")
    with_lots = i_acquired is not None or i_cost is not None
    today = timezone.localdate()
    by_id = job.match == AccountMatch.ACCOUNT_ID
    kinds = set(CashKind.values)
    units_ok, balance_ok = UNITS_TEXT.fullmatch, BALANCE_TEXT.fullmatch
    decimal_of = db.decimal_of
    named = shape.named
    block: AccountBlock | None = None
    last_ref = None
    total_size = max(job.size, 1)
    line = 0
    for row in rows:
        line += 1
        if len(row) != width:
            if len(row) < width:
                if not any(cell.strip() for cell in row):
                    continue  # a blank line (often the last one): not a row
                row = row + [""] * (width - len(row))
            elif any(cell.strip() for cell in row[width:]):
                errors.add(line, "", f"{len(row)} cells, the header has {width}")
                continue
        bad = False
        ref = row[i_acc].strip()
        if ref != last_ref:
            if block is not None:
                block.emit(stager)
                block = None
            last_ref = ref
            if not ref:
                staged_ref = None
            elif by_id:
                try:
                    parsed = uuid.UUID(ref)
                    staged_ref = str(parsed) if pg else parsed.hex
                except ValueError:
                    staged_ref = None
            else:
                staged_ref = db.copy_escape(ref)
            if staged_ref is not None:
                if staged_ref in named:
                    shape.grouped = False
                else:
                    named[staged_ref] = line
                block = AccountBlock(f"{staged_ref}\t{NULL}" if by_id else f"{NULL}\t{staged_ref}")
        if block is None:
            if not ref:
                errors.add(line, "account_id", "required")
            else:
                errors.add(line, "account_id", f"{ref!r} is not a UUID (use match=client_id for client references)")
            bad = True
        acquired_on = unit_cost = ""
        if with_lots:
            acquired_on = row[i_acquired].strip() if i_acquired is not None else ""
            unit_cost = row[i_cost].strip() if i_cost is not None else ""
        instrument_ref = row[i_inst].strip()
        units, currency, balance = row[i_units].strip(), row[i_cur].strip(), row[i_bal].strip()
        kind = row[i_kind].strip().upper() if i_kind is not None else ""
        if instrument_ref:  # a position
            instrument_id, instrument_currency, message = instruments.resolve(instrument_ref)
            if message:
                errors.add(line, "instrument_id", message)
                bad = True
            elif currency and currency != instrument_currency:
                errors.add(line, "currency", f"{instrument_ref} trades in {instrument_currency}, not {currency}")
                bad = True
            if balance:
                errors.add(line, "balance", "a position row has no balance (cash goes in a row without instrument_id)")
                bad = True
            if kind:
                errors.add(line, "kind", "only a cash row has a kind")
                bad = True
            if not units_ok(units):
                if not units:
                    errors.add(line, "units", "required for a position")
                    continue
                value, message = decimal_of(units, places=UNITS["decimal_places"], max_digits=UNITS["max_digits"],
                                            negative=False)
                if message:
                    errors.add(line, "units", message)
                    continue
                units = str(value)
            if acquired_on or unit_cost:
                acquired_on, unit_cost, lot_ok = _lot_cells(line, acquired_on, unit_cost, units, today, errors)
                bad = bad or not lot_ok
            if not bad and acquired_on:
                block.lot(line, instrument_id, units, acquired_on, unit_cost, errors)
                shape.lots += 1
            elif not bad:
                known = block.positions.get(instrument_id)
                if known is None:
                    block.positions[instrument_id] = [line, units]
                elif block.lots and instrument_id in block.lots:
                    errors.add(line, "acquired_on", f"line {known[0]} gives this position's lots: give acquired_on "
                                                    "on every row of a position, or on none")
                else:
                    block.position(line, instrument_id, units)
        else:  # cash
            if units:
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
            if acquired_on or unit_cost:
                for name, value in (("acquired_on", acquired_on), ("unit_cost", unit_cost)):
                    if value:
                        errors.add(line, name, "a cash row has no lots (set instrument_id for a position's lot)")
                bad = True
            if not balance_ok(balance):
                if not balance:
                    errors.add(line, "balance", "required for a cash row")
                    continue
                value, message = decimal_of(balance, places=MONEY["decimal_places"], max_digits=MONEY["max_digits"],
                                            negative=True)
                if message:
                    errors.add(line, "balance", message)
                    continue
                balance = str(value)
            if not bad:
                block.cash_row(line, currency, kind or CashKind.CASH, balance, errors)
        if line % PROGRESS_EVERY == 0:
            import_progress(job, 70 * min(source.position(), total_size) / total_size, live=True)
    if block is not None:
        block.emit(stager)
    shape.rows = line


def _lot_cells(line: int, acquired_on: str, unit_cost: str, units: str, today: date,
               errors: ErrorList) -> tuple[str, str, bool]:
    """A position row's lot columns (domain.md §12): `acquired_on` a date not in the
    future (required once `unit_cost` is given), `unit_cost` ≥ 0 or empty (unknown),
    and a lot's units above 0. Returns (date text, cost text, whether they are good)."""
    ok = True
    if not acquired_on:
        errors.add(line, "acquired_on", "required for a lot (a row with unit_cost is one lot of the position)")
        ok = False
    else:
        try:
            day = date.fromisoformat(acquired_on) if DATE_TEXT.fullmatch(acquired_on) else None
        except ValueError:
            day = None
        if day is None:
            errors.add(line, "acquired_on", f"{acquired_on!r} is not a date (YYYY-MM-DD)")
            ok = False
        elif day > today:
            errors.add(line, "acquired_on", "must not be in the future")
            ok = False
    if unit_cost:
        value, message = db.decimal_of(unit_cost, places=PRICE["decimal_places"], max_digits=PRICE["max_digits"],
                                       negative=False)
        if message:
            errors.add(line, "unit_cost", message)
            ok = False
        else:
            unit_cost = str(value)
    if not Decimal(units) > 0:
        errors.add(line, "units", "a lot must hold more than 0 units")
        ok = False
    return acquired_on, unit_cost, ok


def _resolve_accounts(job: ImportJob, errors: ErrorList, shape: FileShape) -> None:
    """Pass 2: every account the file names → one account, set-based; a cash account
    named twice when an account's rows are not together."""
    accounts = _table(PortfolioAccount)
    pg = db.is_postgres()
    by_id = job.match == AccountMatch.ACCOUNT_ID
    db.temp_table(NAMED, "ref text, line bigint")
    with db.Stager(NAMED, ("ref", "line")) as stager:
        for ref, line in shape.named.items():
            stager.add(f"{ref}\t{line}\n")
    shape.named = {}  # memory back
    db.temp_table(ACCOUNTS, f"ref text, account_id {db.uuid_type()}")
    if by_id:
        db.execute(f"INSERT INTO {ACCOUNTS} (ref, account_id) SELECT n.ref, a.id FROM {NAMED} n JOIN {accounts} a "
                   f"ON a.id = {'CAST(n.ref AS uuid)' if pg else 'n.ref'}")
    else:
        db.execute(f"INSERT INTO {ACCOUNTS} (ref, account_id) SELECT n.ref, a.id FROM {NAMED} n JOIN {accounts} a "
                   f"ON a.client_id = n.ref")
    db.execute(f"CREATE INDEX {ACCOUNTS}_ref ON {ACCOUNTS} (ref)")
    db.analyze(STAGE, NAMED, ACCOUNTS)
    missing = f"SELECT ref FROM {NAMED} n WHERE NOT EXISTS (SELECT 1 FROM {ACCOUNTS} m WHERE m.ref = n.ref)"
    if db.fetchone(f"SELECT EXISTS ({missing})")[0]:
        column = "account_id" if by_id else "ref"
        cast = "::text" if by_id and pg else ""
        what = "account id" if by_id else "client_id"
        unknown = (f"SELECT s.line, s.{column}{cast} FROM {STAGE} s WHERE s.{column}{cast} IN ({missing}) "
                   f"AND {_not_kind('s', KIND_LOTS_POSITION)}")
        for line, ref in db.fetchall(f"{unknown} ORDER BY s.line LIMIT {MAX_ERRORS}"):
            errors.add(line, "account_id", f"no account with {what} {_ref_text(ref)}")
        [(count,)] = db.fetchall(f"SELECT count(*) FROM ({unknown}) u")
        errors.count += max(0, count - min(count, MAX_ERRORS))
    if not by_id:
        for line, ref, n in db.fetchall(
            f"SELECT s.line, s.ref, m.n FROM {STAGE} s JOIN (SELECT ref, count(*) AS n FROM {ACCOUNTS} GROUP BY ref "
            f"HAVING count(*) > 1) m ON m.ref = s.ref WHERE {_not_kind('s', KIND_LOTS_POSITION)} "
            f"ORDER BY s.line LIMIT {MAX_ERRORS}"
        ):
            errors.add(line, "account_id", f"client_id {ref} matches {n} accounts; use match=account_id")
    if not shape.grouped:
        key = "account_id" if by_id else "ref"
        for line, currency, kind, first in db.fetchall(
            f"SELECT line, currency, kind, first FROM (SELECT line, currency, kind, "
            f"min(line) OVER (PARTITION BY {key}, currency, kind) AS first FROM {STAGE} WHERE instrument_id IS NULL) c "
            f"WHERE line > first ORDER BY line LIMIT {MAX_ERRORS}"
        ):
            errors.add(line, "currency", f"{currency} {kind} of this account is already on line {first}")
        if shape.lots:  # a position with lots on some rows and without on others, in two blocks
            for line, first in db.fetchall(
                f"SELECT p.line, min(l.line) FROM {STAGE} p JOIN {STAGE} l ON l.{key} = p.{key} "
                f"AND l.instrument_id = p.instrument_id AND l.kind = %(lots)s WHERE p.instrument_id IS NOT NULL "
                f"AND p.kind IS NULL GROUP BY p.line ORDER BY p.line LIMIT {MAX_ERRORS}", {"lots": KIND_LOTS_POSITION},
            ):
                errors.add(line, "acquired_on", f"line {first} gives this position's lots: give acquired_on on every "
                                                "row of a position, or on none")


def _not_kind(alias: str, kind: str) -> str:
    """SQL: the staged row `alias` is not of `kind` (a NULL kind is not)."""
    return f"coalesce({alias}.kind, '') <> '{kind}'"


def _ref_text(ref: str) -> str:
    try:
        return str(uuid.UUID(ref))
    except ValueError:
        return ref


def _file_relations(job: ImportJob, shape: FileShape) -> tuple[str, str]:
    """SQL for the file's positions (account_id, instrument_id, units) and cash
    (account_id, currency, kind, balance), by account id."""
    if job.match == AccountMatch.ACCOUNT_ID:
        rows = f"SELECT account_id, instrument_id, currency, kind, units, balance FROM {STAGE}"
    else:
        rows = (f"SELECT m.account_id, s.instrument_id, s.currency, s.kind, s.units, s.balance FROM {STAGE} s "
                f"JOIN {ACCOUNTS} m ON m.ref = s.ref")
    position_rows = f"instrument_id IS NOT NULL AND {_not_kind('r', KIND_LOT)}"
    if shape.grouped:
        positions = f"SELECT account_id, instrument_id, units FROM ({rows}) r WHERE {position_rows}"
    else:
        positions = (f"SELECT account_id, instrument_id, sum(units) AS units FROM ({rows}) r "
                     f"WHERE {position_rows} GROUP BY account_id, instrument_id")
    cash = f"SELECT account_id, currency, kind, balance FROM ({rows}) r WHERE instrument_id IS NULL"
    return positions, cash


def _build_diff(job: ImportJob, shape: FileShape, tolerance: Decimal) -> None:
    """The differences between the file and the book of the accounts the file names,
    beyond `tolerance`: positions (kind P) and cash accounts (kind C). `file` is NULL
    for what the book has and the file leaves out (it becomes 0)."""
    positions, cash = _table(Position), _table(CashAccount)
    db.temp_table(DIFF, f"kind char(1), account_id {db.uuid_type()}, instrument_id {db.uuid_type()}, currency text, "
                        f"cash_kind text, book numeric, file numeric, difference numeric")
    if not db.is_postgres():
        _build_diff_exact(job, tolerance)
        return
    file_positions, file_cash = _file_relations(job, shape)
    tol = {"tol": tolerance}
    db.execute(
        f"INSERT INTO {DIFF} SELECT 'P', coalesce(f.account_id, p.account_id), coalesce(f.instrument_id, p.instrument_id), "
        f"NULL, NULL, p.units, f.units, coalesce(f.units, 0) - coalesce(p.units, 0) "
        f"FROM ({file_positions}) f FULL JOIN (SELECT p.account_id, p.instrument_id, p.units "
        f"FROM {positions} p JOIN {ACCOUNTS} m ON m.account_id = p.account_id) p "
        f"ON p.account_id = f.account_id AND p.instrument_id = f.instrument_id "
        f"WHERE abs(coalesce(f.units, 0) - coalesce(p.units, 0)) > CAST(%(tol)s AS NUMERIC)", tol,
    )
    db.execute(
        f"INSERT INTO {DIFF} SELECT 'C', coalesce(f.account_id, c.account_id), NULL, coalesce(f.currency, c.currency), "
        f"coalesce(f.kind, c.kind), c.balance, f.balance, coalesce(f.balance, 0) - coalesce(c.balance, 0) "
        f"FROM ({file_cash}) f FULL JOIN (SELECT c.account_id, c.currency, "
        f"c.kind, c.balance FROM {cash} c JOIN {ACCOUNTS} m ON m.account_id = c.account_id) c "
        f"ON c.account_id = f.account_id AND c.currency = f.currency AND c.kind = f.kind "
        f"WHERE abs(coalesce(f.balance, 0) - coalesce(c.balance, 0)) > CAST(%(tol)s AS NUMERIC)", tol,
    )
    db.analyze(DIFF)


def _named_accounts_hold_nothing() -> bool:
    """PostgreSQL: whether the accounts the file names have no position and no cash
    account (a first load): then every row of the file is new and the differences are
    the file itself, read from the staging table without building `imp_diff`."""
    if not db.is_postgres():
        return False
    return not db.fetchone(
        f"SELECT EXISTS (SELECT 1 FROM {_table(Position)} p JOIN {ACCOUNTS} m ON m.account_id = p.account_id) "
        f"OR EXISTS (SELECT 1 FROM {_table(CashAccount)} c JOIN {ACCOUNTS} m ON m.account_id = c.account_id)")[0]


def _first_load_source(job: ImportJob, shape: FileShape) -> str:
    """The differences of a first load (`_named_accounts_hold_nothing`), as `_build_diff`
    would have them: every position and balance of the file that is not 0, the book
    side missing."""
    file_positions, file_cash = _file_relations(job, shape)
    return (f"SELECT 'P' AS kind, account_id, instrument_id, NULL AS currency, NULL AS cash_kind, "
            f"CAST(NULL AS numeric) AS book, units AS file FROM ({file_positions}) f WHERE units <> 0 "
            f"UNION ALL SELECT 'C', account_id, CAST(NULL AS uuid), currency, kind, NULL, balance "
            f"FROM ({file_cash}) f WHERE balance <> 0")


def _build_diff_exact(job: ImportJob, tolerance: Decimal) -> None:
    """`_build_diff` for SQLite (development, tests), whose numbers are floating point:
    the staged numbers are text and are summed and compared here as Decimals; the
    book's are read as Django reads them (15 significant digits, then the field's
    places). The files SQLite sees are small."""
    by_id = job.match == AccountMatch.ACCOUNT_ID
    account = "s.account_id" if by_id else "m.account_id"
    join = "" if by_id else f"JOIN {ACCOUNTS} m ON m.ref = s.ref"
    file_positions: dict[tuple, Decimal] = {}
    file_cash: dict[tuple, Decimal] = {}
    for account_id, instrument_id, currency, kind, units, balance in db.fetchall(
        f"SELECT {account}, s.instrument_id, s.currency, s.kind, s.units, s.balance FROM {STAGE} s {join}"
    ):
        if kind == KIND_LOT:
            continue
        if instrument_id is not None:
            key = (account_id, instrument_id)
            file_positions[key] = file_positions.get(key, Decimal(0)) + Decimal(units)
        else:
            file_cash[(account_id, currency, kind)] = Decimal(balance)
    book_positions = {
        (account_id, instrument_id): _book_decimal(units) for account_id, instrument_id, units in db.fetchall(
            f"SELECT p.account_id, p.instrument_id, p.units FROM {_table(Position)} p "
            f"JOIN {ACCOUNTS} m ON m.account_id = p.account_id")
    }
    book_cash = {
        (account_id, currency, kind): _book_decimal(balance) for account_id, currency, kind, balance in db.fetchall(
            f"SELECT c.account_id, c.currency, c.kind, c.balance FROM {_table(CashAccount)} c "
            f"JOIN {ACCOUNTS} m ON m.account_id = c.account_id")
    }
    rows = []
    for kind, file, book in (("P", file_positions, book_positions), ("C", file_cash, book_cash)):
        for key in sorted(file.keys() | book.keys()):
            ours, theirs = book.get(key), file.get(key)
            difference = (theirs or Decimal(0)) - (ours or Decimal(0))
            if abs(difference) > tolerance:
                instrument_id, currency, cash_kind = (key[1], None, None) if kind == "P" else (None, key[1], key[2])
                rows.append((kind, key[0], instrument_id, currency, cash_kind, _text(ours), _text(theirs), _text(difference)))
    with db.connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {DIFF} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows)


SQLITE_FLOAT = decimal.Context(prec=15)  # what Django keeps of a decimal SQLite stored as a float


def _book_decimal(value) -> Decimal:
    if isinstance(value, float):
        value = SQLITE_FLOAT.create_decimal_from_float(value)
    return Decimal(str(value)).quantize(UNITS_QUANTUM)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _apply(source: str, params: dict | None = None, new_lots: "NewLots | None" = None,
           file_lots: bool = False) -> tuple[int, int]:
    """Write the file's values of the differences in `source` (SQL yielding kind,
    account_id, instrument_id, currency, cash_kind, book, file) into the book; returns
    (rows written, accounts changed). A position whose file value is 0 or missing is
    deleted; a cash account is kept with balance 0. A new cash account is the default
    when its account has none and it is in the account's base currency. From
    `bulk_foreign_key_rows()` new rows on, the foreign keys are checked once, set-based
    (`foreign_keys_checked_once`). Positions keep their lots (§12): units removed go
    through the lots' one writer (portfolios/services/lots.py), units added become one
    lot of unknown cost dated today (or as `new_lots` says), written set-based on
    PostgreSQL. With `file_lots` (staged by `_stage_lots`), the positions the file gives
    lots for become exactly those lots (`_write_file_lots`), whatever their units did."""
    params = dict(params or {}, now=timezone.now())
    positions, cash, lots = _table(Position), _table(CashAccount), _table(Lot)
    src = f"({source}) src"
    new_positions = new_cash = held = 0
    if db.is_postgres():
        [(new_positions, new_cash, held)] = db.fetchall(
            f"SELECT count(*) FILTER (WHERE kind = 'P' AND file > 0), count(*) FILTER (WHERE kind = 'C'), "
            f"(SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = %(positions)s::regclass) "
            f"FROM {src} WHERE book IS NULL", {**params, "positions": positions})
    bulk = new_positions + new_cash >= bulk_foreign_key_rows()
    with db.foreign_keys_checked_once((positions, cash, lots), enabled=bulk) as exclusive:
        # Adding at least as many positions as the table holds (a first load): its plain
        # indexes (and the lots') are built again once, sorted, rather than maintained row by row.
        rebuild = exclusive and new_positions >= held
        with db.indexes_rebuilt(positions, enabled=rebuild), db.indexes_rebuilt(lots, enabled=rebuild):
            written = _write_book(src, params, exclusive, new_lots, file_lots)
            if file_lots and db.is_postgres():
                written += _write_file_lots_sql(params)
    changed_accounts = f"SELECT account_id FROM {src}"
    if file_lots:
        if not db.is_postgres():
            written += _write_file_lots()
        changed_accounts += f" UNION SELECT account_id FROM {LOT_ACCOUNTS}"
    else:  # DISTINCT in a subquery may hash; count(DISTINCT …) always sorts.
        changed_accounts = f"SELECT DISTINCT account_id FROM {src}"
    [(changed,)] = db.fetchall(f"SELECT count(*) FROM ({changed_accounts}) changed", params)
    return written, changed


@dataclass(frozen=True)
class NewLots:
    """How an APPLY on PostgreSQL writes the lot of each addition of units: SQL
    expressions of the lot's `unit_cost` and `acquired_on` over `n.position_id`,
    `n.instrument_id` and `n.units`, with their `params` (pyformat; `%(today)s` is the
    import's day). The default, for files: unknown cost, dated today. The demo book
    gives its lots a cost and a date this way as they are written (docs/imports.md)."""

    unit_cost: str = "NULL"
    acquired_on: str = "%(today)s"
    params: dict = field(default_factory=dict)


def bulk_foreign_key_rows() -> int:
    """New positions and cash accounts from which one APPLY checks their foreign keys
    once, set-based, rather than row by row (settings.IMPORTS_BULK_FOREIGN_KEY_ROWS)."""
    return int(getattr(settings, "IMPORTS_BULK_FOREIGN_KEY_ROWS", BULK_FOREIGN_KEY_ROWS))


def _write_book(src: str, params: dict, exclusive: bool = False, lots: "NewLots | None" = None,
                file_lots: bool = False) -> int:
    """Rows written. The lots of units added get `lots`' cost and date (default: unknown
    cost, today); with `file_lots`, the positions the file gives lots for are left to
    `_write_file_lots`.
    `exclusive`: the import holds the tables (foreign_keys_checked_once), so nobody
    else inserts meanwhile and new rows (no `book` value) go in by a plain INSERT; a
    row there after all would be a unique violation that fails the import."""
    positions, cash, accounts = _table(Position), _table(CashAccount), _table(PortfolioAccount)
    postgres = db.is_postgres()
    # Units removed (a position down or gone), and on SQLite every position change:
    # through the lots' one writer, which relieves lots by the account's lot_method and
    # records the gains (§12), a batch at a time from a server-side cursor, so a file
    # of millions of positions never sits in memory whole.
    through_lots = "coalesce(file, 0) < book" if postgres else "TRUE"
    not_file_lots = (f"AND NOT EXISTS (SELECT 1 FROM {LOT_KEYS} k WHERE k.account_id = src.account_id "
                     f"AND k.instrument_id = src.instrument_id) " if file_lots else "")
    deleted = 0
    today = timezone.localdate()
    for rows in db.fetch_batches(
        f"SELECT account_id, instrument_id, file FROM {src} WHERE kind = 'P' AND {through_lots} {not_file_lots}"
        f"ORDER BY account_id, instrument_id", params, size=POSITION_BATCH,
    ):
        positions_set(units={
            (_uuid(account_id), _uuid(instrument_id)): Decimal(0) if file is None else _units(file)
            for account_id, instrument_id, file in rows
        }, on_date=today)
        deleted += len(rows)
    upserted = 0
    if postgres:  # units added: the positions set-based, and one lot for each addition
        added = f"kind = 'P' AND file > coalesce(book, 0) {not_file_lots}"
        lots = lots or NewLots()
        lot_params = {**params, **lots.params, "today": today}
        on_conflict = ("ON CONFLICT (account_id, instrument_id) DO UPDATE SET "
                       "units = excluded.units, updated_at = excluded.updated_at")
        upsert = (f"INSERT INTO {positions} (account_id, instrument_id, units, updated_at) "
                  f"SELECT account_id, instrument_id, file, %(now)s FROM {src} WHERE {added} {{part}}"
                  f"ORDER BY account_id, instrument_id ")  # index pages and foreign-key lookups in order
        if exclusive:
            # New positions: a plain INSERT whose RETURNING feeds their lots, in the same
            # statement (no second join of the file with the positions).
            upserted += db.execute(
                f"WITH ins AS ({upsert.format(part='AND src.book IS NULL ')}RETURNING id, instrument_id, units) "
                + _lots_insert(lots, "SELECT id AS position_id, instrument_id, units FROM ins"), lot_params,
            )
            part, conflict = "AND src.book IS NOT NULL ", on_conflict
        else:
            part, conflict = "", on_conflict
        changed_rows = db.execute(upsert.format(part=part) + conflict, params)
        upserted += changed_rows
        if changed_rows:
            db.execute(_lots_insert(lots, (
                f"SELECT p.id AS position_id, src.instrument_id, src.file - coalesce(src.book, 0) AS units "
                f"FROM {src} JOIN {positions} p ON p.account_id = src.account_id "
                f"AND p.instrument_id = src.instrument_id WHERE src.kind = 'P' AND src.file > coalesce(src.book, 0) "
                f"{not_file_lots}{part}ORDER BY p.id")), lot_params)
    # A new cash account is the default when it is in its account's base currency and
    # the account has no default yet; an existing one keeps its flag.
    balances = 0
    for part, on_conflict in _parts(exclusive, "ON CONFLICT (account_id, currency, kind) DO UPDATE SET "
                                               "balance = excluded.balance, updated_at = excluded.updated_at"):
        balances += db.execute(
            f"INSERT INTO {cash} (account_id, currency, kind, balance, is_default, updated_at) "
            f"SELECT src.account_id, src.currency, src.cash_kind, coalesce(src.file, 0), "
            f"src.cash_kind = %(cash_kind)s AND src.currency = a.base_currency AND NOT EXISTS "
            f"(SELECT 1 FROM {cash} d WHERE d.account_id = src.account_id AND d.is_default), %(now)s "
            f"FROM {src} JOIN {accounts} a ON a.id = src.account_id WHERE src.kind = 'C' {part}"
            f"ORDER BY src.account_id {on_conflict}",
            {**params, "cash_kind": CashKind.CASH.value},
        )
    return deleted + upserted + balances


# A time-ordered UUID (version 7: 48 bits of Unix milliseconds, then random bits): the
# lots of one load land at the right end of the primary key's index, page after page,
# where random version-4 ids would touch (and log) a random page of it for every lot.
LOT_ID = ("encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
          "substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6), "
          "52, 1), 53, 1), 'hex')::uuid")


def _lots_insert(lots: "NewLots", new: str) -> str:
    """INSERT of one lot per row of `new` (SQL yielding position_id, instrument_id,
    units), its cost and date from `lots`, its id time-ordered (LOT_ID)."""
    return (f"INSERT INTO {_table(Lot)} (id, position_id, acquired_on, units, unit_cost, cost_currency) "
            f"SELECT {LOT_ID}, n.position_id, {lots.acquired_on}, n.units, {lots.unit_cost}, i.currency "
            f"FROM ({new}) n JOIN {_table(Instrument)} i ON i.id = n.instrument_id")


def _parts(exclusive: bool, on_conflict: str) -> list[tuple[str, str]]:
    """(extra condition, conflict clause) of each INSERT: one upsert, or with the tables
    held, a plain INSERT of the new rows and an upsert of the others."""
    if not exclusive:
        return [("", on_conflict)]
    return [("AND src.book IS NULL ", ""), ("AND src.book IS NOT NULL ", on_conflict)]


POSITION_BATCH = 5000  # positions per LotBook in an APPLY


def _stage_lots(job: ImportJob) -> None:
    """The file's lots by account id (`LOTS`), the keys of their positions (`LOT_KEYS`)
    and an empty `LOT_ACCOUNTS` for the accounts `_write_file_lots` changes."""
    pg = db.is_postgres()
    by_id = job.match == AccountMatch.ACCOUNT_ID
    account, join = ("s.account_id", "") if by_id else ("m.account_id", f"JOIN {ACCOUNTS} m ON m.ref = s.ref")
    db.temp_table(LOTS, f"account_id {db.uuid_type()}, instrument_id {db.uuid_type()}, line bigint, "
                        f"acquired_on {'date' if pg else 'text'}, units {db.exact_type()}, unit_cost {db.exact_type()}")
    db.execute(f"INSERT INTO {LOTS} SELECT {account}, s.instrument_id, s.line, s.acquired_on, s.units, s.unit_cost "
               f"FROM {STAGE} s {join} WHERE s.kind = %(lot)s", {"lot": KIND_LOT})
    if not pg:  # SQLite's writer reads them in key order; PostgreSQL joins them whole (hash joins)
        db.execute(f"CREATE INDEX {LOTS}_key ON {LOTS} (account_id, instrument_id, line)")
    db.temp_table(LOT_KEYS, f"account_id {db.uuid_type()}, instrument_id {db.uuid_type()}, "
                            f"PRIMARY KEY (account_id, instrument_id)")
    # The positions staged from lot rows: a third of the lots' rows or fewer, one per
    # position and block (DISTINCT for the accounts whose rows are apart).
    db.execute(f"INSERT INTO {LOT_KEYS} SELECT DISTINCT {account}, s.instrument_id FROM {STAGE} s {join} "
               f"WHERE s.kind = %(position)s", {"position": KIND_LOTS_POSITION})
    db.temp_table(LOT_ACCOUNTS, f"account_id {db.uuid_type()}")
    db.analyze(LOTS, LOT_KEYS)


def _file_lots():
    """((account id, instrument id), [LotInput]) of every position the file gives lots
    for, in key order, from a server-side cursor (never the whole file in memory)."""
    key, lots = None, []
    for rows in db.fetch_batches(f"SELECT account_id, instrument_id, acquired_on, units, unit_cost FROM {LOTS} "
                                 f"ORDER BY account_id, instrument_id, line", size=POSITION_BATCH):
        for account_id, instrument_id, acquired_on, units, unit_cost in rows:
            here = (_uuid(account_id), _uuid(instrument_id))
            if here != key:
                if key is not None:
                    yield key, lots
                key, lots = here, []
            lots.append(LotInput(
                acquired_on=acquired_on if isinstance(acquired_on, date) else date.fromisoformat(acquired_on),
                units=_units(units), unit_cost=None if unit_cost is None else Decimal(str(unit_cost)),
            ))
    if key is not None:
        yield key, lots


def _write_file_lots_sql(params: dict) -> int:
    """`_write_file_lots` on PostgreSQL, set-based: the positions the file gives lots
    for get their ids first (an existing position keeps its own, a new one takes the
    next of the positions' sequence); those the book holds with the file's lots already
    (compared as multisets of date, units and cost) are dropped from the set; the rest
    are written from plain hash joins of the staged tables: old lots deleted, existing
    positions updated to the sum of their lots, new ones inserted, lots inserted.
    Returns the positions written."""
    positions, lots, instruments = _table(Position), _table(Lot), _table(Instrument)
    changed = "imp_lot_positions"
    db.temp_table(changed, "account_id uuid, instrument_id uuid, position_id bigint, is_new boolean, units numeric")
    db.execute(  # every position the file gives lots for: its units, its id (COALESCE takes an id only for new ones)
        f"INSERT INTO {changed} SELECT t.account_id, t.instrument_id, "
        f"coalesce(p.id, nextval(pg_get_serial_sequence(%(positions)s, 'id'))), p.id IS NULL, t.units "
        f"FROM (SELECT account_id, instrument_id, sum(units) AS units FROM {LOTS} GROUP BY 1, 2) t "
        f"LEFT JOIN {positions} p ON p.account_id = t.account_id AND p.instrument_id = t.instrument_id",
        {"positions": positions},
    )
    db.analyze(changed)
    # Of the positions the book holds, keep those whose lots differ (multisets of date,
    # units and cost; costs are ≥ 0, so -1 stands for unknown and NULLs compare).
    held = f"SELECT position_id, account_id, instrument_id FROM {changed} WHERE NOT is_new"
    db.execute(
        f"DELETE FROM {changed} c WHERE NOT c.is_new AND c.position_id NOT IN ("
        f"SELECT coalesce(f.position_id, b.position_id) FROM "
        f"(SELECT h.position_id, f.acquired_on, f.units, coalesce(f.unit_cost, -1) AS cost, count(*) AS n "
        f"FROM {LOTS} f JOIN ({held}) h ON h.account_id = f.account_id AND h.instrument_id = f.instrument_id "
        f"GROUP BY 1, 2, 3, 4) f FULL JOIN "
        f"(SELECT l.position_id, l.acquired_on, l.units, coalesce(l.unit_cost, -1) AS cost, count(*) AS n "
        f"FROM {lots} l JOIN ({held}) h ON h.position_id = l.position_id GROUP BY 1, 2, 3, 4) b "
        f"ON b.position_id = f.position_id AND b.acquired_on = f.acquired_on AND b.units = f.units AND b.cost = f.cost "
        f"WHERE f.n IS DISTINCT FROM b.n)"
    )
    db.analyze(changed)
    db.execute(f"DELETE FROM {lots} l USING {changed} c WHERE l.position_id = c.position_id AND NOT c.is_new")
    db.execute(f"UPDATE {positions} p SET units = c.units, updated_at = %(now)s FROM {changed} c "
               f"WHERE p.id = c.position_id AND NOT c.is_new", params)
    # A position inserted meanwhile by someone else (when the import does not hold the
    # table) is a unique violation that fails the import: reconcile or apply again.
    db.execute(f"INSERT INTO {positions} (id, account_id, instrument_id, units, updated_at) "
               f"SELECT position_id, account_id, instrument_id, units, %(now)s FROM {changed} WHERE is_new "
               f"ORDER BY account_id, instrument_id", params)
    db.execute(
        f"INSERT INTO {lots} (id, position_id, acquired_on, units, unit_cost, cost_currency) "
        f"SELECT {LOT_ID}, c.position_id, f.acquired_on, f.units, f.unit_cost, i.currency FROM {LOTS} f "
        f"JOIN {changed} c ON c.account_id = f.account_id AND c.instrument_id = f.instrument_id "
        f"JOIN {instruments} i ON i.id = f.instrument_id ORDER BY c.position_id, f.line"
    )
    db.execute(f"INSERT INTO {LOT_ACCOUNTS} SELECT DISTINCT account_id FROM {changed}")
    [(written,)] = db.fetchall(f"SELECT count(*) FROM {changed}")
    db.drop(changed)
    return written


def _write_file_lots() -> int:
    """Every position the file gives lots for becomes exactly those lots (nothing is
    realized: the custodian's lots are the record), unless it holds them already;
    POSITION_BATCH positions per LotBook. Returns the positions written; their
    accounts go into LOT_ACCOUNTS."""
    today = timezone.localdate()
    written = 0
    batch: dict = {}

    def write() -> int:
        book = LotBook(batch, on_date=today)
        changed = {
            key: lots for key, lots in batch.items()
            if Counter((lot[1], lot[2], lot[3]) for lot in book.lots.get(key, ()))
            != Counter((lot.acquired_on, lot.units, lot.unit_cost) for lot in lots)
        }
        if changed:
            positions_set(units={key: sum((lot.units for lot in lots), Decimal(0)) for key, lots in changed.items()},
                          lots=changed, on_date=today)
            pg = db.is_postgres()
            with db.connection.cursor() as cursor:
                cursor.executemany(f"INSERT INTO {LOT_ACCOUNTS} (account_id) VALUES (%s)",
                                   [(a if pg else a.hex,) for a in {a for a, _ in changed}])
        batch.clear()
        return len(changed)

    for key, lots in _file_lots():
        batch[key] = lots
        if len(batch) >= POSITION_BATCH:
            written += write()
    if batch:
        written += write()
    return written


def _units(value) -> Decimal:
    """A staged number as exact units (SQLite hands numerics back as floats: their
    shortest repr is the text the file had, cut to the units column)."""
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-UNITS["decimal_places"]))


def _uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _write_breaks(job: ImportJob) -> int:
    new_id = "gen_random_uuid()" if db.is_postgres() else "lower(hex(randomblob(16)))"
    return db.execute(
        f"INSERT INTO {_table(ImportBreak)} (id, import_job_id, account_id, instrument_id, currency, cash_kind, book, file, "
        f"difference, accepted) SELECT {new_id}, %(job)s, account_id, instrument_id, currency, cash_kind, book, file, "
        f"difference, %(false)s FROM {DIFF}",
        {"job": job.pk if db.is_postgres() else job.pk.hex, "false": False},
    )


def holdings_import_run(*, job: ImportJob, rows=None, lots: NewLots | None = None) -> ImportJob:
    """Run a claimed (RUNNING) holdings import to its end: FAILED with every error,
    DONE (APPLY: the snapshot written), or AWAITING_ACCEPTANCE (RECONCILE with breaks).
    Runs outside a transaction (progress is visible as it goes); the book is written in
    one transaction at the end. `rows` (an iterable of rows, header first, that runs no
    query) replaces the stored file; `lots` (PostgreSQL) the cost and date of the lots
    of units added."""
    errors = ErrorList()
    db.session_tune()
    try:
        shape = _stage_file(job, errors, rows)
        if shape.header_ok:  # the rows' own errors do not hide those the database finds
            import_progress(job, 70)
            _resolve_accounts(job, errors, shape)
        if errors:
            import_fail(job, errors=errors.sorted(), error_count=errors.count, rows=shape.rows)
            return job
        import_progress(job, 80)
        with transaction.atomic():
            tolerance = job.tolerance if job.mode == ImportMode.RECONCILE else Decimal(0)
            first_load = job.mode == ImportMode.APPLY and _named_accounts_hold_nothing()
            if not first_load:
                _build_diff(job, shape, tolerance)
            if job.mode == ImportMode.APPLY:
                source = (_first_load_source(job, shape) if first_load else
                          f"SELECT kind, account_id, instrument_id, currency, cash_kind, book, file FROM {DIFF}")
                if shape.lots:
                    _stage_lots(job)
                written, changed = _apply(source, new_lots=lots, file_lots=bool(shape.lots))
                import_finish(job, status=ImportStatus.DONE, rows=shape.rows, rows_changed=written,
                              accounts_changed=changed)
            else:
                breaks = _write_breaks(job)
                import_finish(job, status=ImportStatus.AWAITING_ACCEPTANCE if breaks else ImportStatus.DONE,
                              rows=shape.rows, rows_changed=0, accounts_changed=0, break_count=breaks)
        return job
    finally:
        db.drop(STAGE, NAMED, ACCOUNTS, DIFF, LOTS, LOT_KEYS, LOT_ACCOUNTS)
        db.session_reset()


def holdings_snapshot_load(*, rows, name: str, user=None, lots: NewLots | None = None) -> ImportJob:
    """APPLY a holdings snapshot made inside Ballast (the demo book) through the path of
    a holdings file: `rows` are the file's rows as lists of strings, the header first,
    and their iteration must run no query (on PostgreSQL the staging COPY holds the
    connection). Recorded as an import named `name` without a stored file."""
    job = ImportJob.objects.create(
        kind=ImportKind.HOLDINGS, mode=ImportMode.APPLY, status=ImportStatus.RUNNING, file_name=name[:255], sha256="",
        created_by=user if getattr(user, "is_authenticated", False) else None, started_at=timezone.now(),
    )
    audit_record(job, "create", {"file": (None, f"{job.file_name} (generated)"), "mode": (None, job.mode)})
    return holdings_import_run(job=job, rows=rows, lots=lots)


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
        f"cash_kind, book, file FROM {table} WHERE import_job_id = %(job)s AND accepted",
        {"job": job_id},
    )
    job.accepted_by = user if getattr(user, "is_authenticated", False) else None
    job.accepted_at = timezone.now()
    job.save(update_fields=["accepted_by", "accepted_at"])
    accepted = ImportBreak.objects.filter(import_job=job, accepted=True).count()
    import_finish(job, status=ImportStatus.DONE, rows=job.rows, rows_changed=written, accounts_changed=changed,
                  break_count=job.break_count, actor=user, accepted_breaks=accepted)
    return job
