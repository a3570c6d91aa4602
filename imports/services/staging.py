"""Staging tables: a file's checked rows go into a temporary table of the import's
database connection, so every further check and the merge into the book are set-based
SQL, whatever the size of the file.

PostgreSQL receives them by `COPY ... FROM STDIN` (psycopg 3), in blocks so progress
can be recorded between them; SQLite (development and tests) by `executemany`.
Temporary tables belong to the connection: the import runs on one connection from
start to end and drops them when it is done.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation

from django.db import DatabaseError, connection, transaction

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def uuid_type() -> str:
    return "uuid" if is_postgres() else "char(32)"


def exact_type() -> str:
    """A staging column for file numbers: numeric on PostgreSQL; text on SQLite, whose
    numeric is floating point (the exact sums are then made in Python)."""
    return "numeric" if is_postgres() else "text"


def execute(sql: str, params=None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def fetchall(sql: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def fetch_batches(sql: str, params=None, *, size: int):
    """The rows of `sql` in lists of at most `size`; on PostgreSQL from a server-side
    cursor (inside the caller's transaction), so the result is never held whole."""
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(size):
            yield rows


def fetchone(sql: str, params=None) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def temp_table(name: str, columns: str) -> None:
    """(Re)create a temporary table of this connection."""
    execute(f"DROP TABLE IF EXISTS {name}")
    execute(f"CREATE TEMPORARY TABLE {name} ({columns})")


def drop(*names: str) -> None:
    for name in names:
        execute(f"DROP TABLE IF EXISTS {name}")


def session_tune() -> None:
    """More memory for the import's sorts and hashes (PostgreSQL's 4 MB default spills
    joins of millions of rows to disk); undone by `session_reset`."""
    if is_postgres():
        execute("SET work_mem = '256MB'")
        execute("SET maintenance_work_mem = '256MB'")


def session_reset() -> None:
    if is_postgres():
        execute("RESET work_mem")
        execute("RESET maintenance_work_mem")


def analyze(*names: str) -> None:
    """Temporary tables are never analysed by autovacuum: without statistics PostgreSQL
    plans joins over millions of rows as if they held a few hundred."""
    if is_postgres():
        for name in names:
            execute(f"ANALYZE {name}")


LOCK_TIMEOUT = "5s"


@contextmanager
def foreign_keys_checked_once(tables: Sequence[str], *, enabled: bool) -> Iterator[bool]:
    """Within the caller's transaction, on PostgreSQL and when `enabled`: drop the
    foreign keys `tables` hold, let the caller write, then add them back with their
    own definitions, which checks every row of those tables against the referenced
    ones in one query (PostgreSQL's initial check of a new foreign key) instead of one
    index lookup and row lock per written row at COMMIT. A row that references
    nothing makes the ADD fail and the whole transaction with it: integrity is the
    same as row by row. The ALTERs lock the tables (ACCESS EXCLUSIVE: readers wait)
    and the referenced ones (SHARE ROW EXCLUSIVE: writers wait) until the transaction
    ends. When the locks are not granted within LOCK_TIMEOUT, or the connection's role
    does not own the tables, nothing is dropped and the checks stay row by row.
    Deferred checks pending in the transaction run at once (SET CONSTRAINTS ALL
    IMMEDIATE), and deferrable constraints are DEFERRED again afterwards.
    Yields whether the foreign keys were dropped."""
    if not (enabled and is_postgres() and connection.in_atomic_block):
        yield False
        return
    dropped, immediate = [], False
    try:
        with transaction.atomic():  # a savepoint: a refused ALTER leaves the transaction usable
            execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            # ALTER TABLE refuses a table with deferred checks still pending (rows the
            # caller wrote earlier in this transaction, e.g. the demo's accounts): run them now.
            execute("SET CONSTRAINTS ALL IMMEDIATE")
            immediate = True
            for table in tables:
                for name, definition in fetchall(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname", [table],
                ):
                    execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
                    dropped.append((table, name, definition))
    except DatabaseError:  # the savepoint's rollback undid the SET CONSTRAINTS too
        dropped, immediate = [], False
    execute("SET LOCAL lock_timeout = DEFAULT")
    yield bool(dropped)
    for table, name, definition in dropped:
        execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    if immediate:
        execute("SET CONSTRAINTS ALL DEFERRED")  # the project's deferrable constraints are all INITIALLY DEFERRED


@contextmanager
def indexes_rebuilt(table: str, *, enabled: bool) -> Iterator[bool]:
    """With `table` already held by this transaction (inside foreign_keys_checked_once)
    and when `enabled`: drop its plain indexes (neither unique nor primary: the writes
    still need those), let the caller write, then create them again from their own
    definitions, one sorted build each instead of one insertion per written row.
    Worth it only when the rows written are about as many as the table held."""
    if not (enabled and is_postgres()):
        yield False
        return
    indexes = fetchall(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = %s::regclass AND NOT i.indisunique AND NOT i.indisprimary ORDER BY c.relname", [table],
    )
    for name, _ in indexes:
        execute(f'DROP INDEX "{name}"')
    yield bool(indexes)
    for _, definition in indexes:
        execute(definition)


class Stager:
    """Lines already in COPY's text format (tab-separated, \\N for NULL, ending in a
    newline) into `table (columns)`. On PostgreSQL one COPY runs from `open()` to
    `close()` and a writer thread sends the data while Python reads on; elsewhere the
    lines are split again and inserted with `executemany`, 10,000 at a time."""

    def __init__(self, table: str, columns: Sequence[str]):
        self.table, self.columns = table, tuple(columns)
        self.lines: list[str] = []
        self.written = 0
        self._copy = self._cursor = self._manager = None

    def __enter__(self):
        if is_postgres():
            from psycopg.copy import QueuedLibpqWriter

            self._cursor = connection.cursor()
            raw = self._cursor.cursor  # psycopg's own cursor: Django's wrapper has no copy()
            self._manager = raw.copy(f"COPY {self.table} ({', '.join(self.columns)}) FROM STDIN",
                                     writer=QueuedLibpqWriter(raw))
            self._copy = self._manager.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.flush()
        finally:
            if self._copy is not None:
                self._manager.__exit__(exc_type, exc, tb)
                self._cursor.close()
                self._copy = self._cursor = None

    def add(self, line: str) -> None:
        self.lines.append(line)
        if len(self.lines) >= 10_000:
            self.flush()

    def extend(self, lines: list[str]) -> None:
        self.lines.extend(lines)
        if len(self.lines) >= 10_000:
            self.flush()

    def flush(self) -> None:
        if not self.lines:
            return
        if self._copy is not None:
            self._copy.write("".join(self.lines))
        else:
            rows = [[None if v == "\\N" else v for v in line[:-1].split("\t")] for line in self.lines]
            placeholders = ", ".join(["%s"] * len(self.columns))
            with connection.cursor() as cursor:
                cursor.executemany(f"INSERT INTO {self.table} ({', '.join(self.columns)}) VALUES ({placeholders})", rows)
        self.written += len(self.lines)
        self.lines = []


def copy_escape(value: str) -> str:
    return value.translate(_ESCAPES)


def decimal_of(text: str, *, places: int, max_digits: int, negative: bool) -> tuple[Decimal | None, str | None]:
    """A decimal cell: (value, None) or (None, the rule it breaks)."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None, f"{text!r} is not a number"
    if not value.is_finite():
        return None, f"{text!r} is not a number"
    if not negative and value < 0:
        return None, "must not be negative"
    exponent = value.as_tuple().exponent
    if exponent < -places:
        return None, f"at most {places} decimal places"
    if value.adjusted() >= max_digits - places:
        return None, f"at most {max_digits - places} digits before the decimal point"
    return value, None
