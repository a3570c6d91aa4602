"""Staging tables: a file's checked rows go into a temporary table of the import's
database connection, so every further check and the merge into the book are set-based
SQL, whatever the size of the file.

PostgreSQL receives them by `COPY ... FROM STDIN` (psycopg 3), in blocks so progress
can be recorded between them; SQLite (development and tests) by `executemany`.
Temporary tables belong to the connection: the import runs on one connection from
start to end and drops them when it is done.
"""

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from django.db import connection

BLOCK_ROWS = 100_000
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def uuid_type() -> str:
    return "uuid" if is_postgres() else "char(32)"


def execute(sql: str, params=None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def fetchall(sql: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


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


def analyze(*names: str) -> None:
    """Temporary tables are never analysed by autovacuum: without statistics PostgreSQL
    plans joins over millions of rows as if they held a few hundred."""
    if is_postgres():
        for name in names:
            execute(f"ANALYZE {name}")


class Stager:
    """Rows (tuples of str, int or None) into `table (columns)`, BLOCK_ROWS at a time."""

    def __init__(self, table: str, columns: Sequence[str]):
        self.table, self.columns = table, tuple(columns)
        self.rows: list = []
        self.written = 0

    def add(self, row: tuple) -> None:
        self.rows.append(row)

    def full(self) -> bool:
        return len(self.rows) >= BLOCK_ROWS

    def flush(self) -> None:
        if not self.rows:
            return
        columns = ", ".join(self.columns)
        with connection.cursor() as cursor:
            if is_postgres():
                data = "".join(
                    "\t".join("\\N" if v is None else str(v).translate(_ESCAPES) for v in row) + "\n"
                    for row in self.rows
                )
                with cursor.cursor.copy(f"COPY {self.table} ({columns}) FROM STDIN") as copy:
                    for start in range(0, len(data), 1 << 20):
                        copy.write(data[start:start + (1 << 20)])
            else:
                placeholders = ", ".join(["%s"] * len(self.columns))
                cursor.executemany(f"INSERT INTO {self.table} ({columns}) VALUES ({placeholders})", self.rows)
        self.written += len(self.rows)
        self.rows = []


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
