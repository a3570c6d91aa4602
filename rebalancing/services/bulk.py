"""Fast set-based writes of executions: trade orders, results and account leases.

PostgreSQL gets the fastest path psycopg 3 offers: `COPY ... FROM STDIN` for new rows
(one round trip for thousands of rows, no per-row INSERT parsing) and one statement
over an array for leases and status updates. Any other database (SQLite in
development and tests) gets `bulk_create` / `update` in batches. Both paths write the
same rows; the callers own the transaction.

Result rows are plain tuples in the order of `RESULT_COLUMNS`, already in database
form (UUIDs, Decimals, str, aware datetimes, None for NULL); trade orders are written
straight from the engine's OrderProposals.
"""

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from core.ids import uuid_array
from portfolios.models import AccountStatus, Configuration, PortfolioAccount

from ..models import (
    AccountLease,
    ChunkStatus,
    ExecutionChunk,
    ExecutionResult,
    ResultStatus,
    TradeOrder,
    TradeOrderStatus,
)

# Every column of the tables: COPY has no model defaults to fall back on (only database
# defaults, which the trade orders' COPY relies on for the columns after the first 14).
TRADE_ORDER_COLUMNS = (
    "id", "account_id", "instrument_id", "side", "transaction_type", "units", "unit_price", "trade_amount",
    "currency", "execution_method", "status", "execution_id", "cash_account_id", "counter_cash_account_id",
    "executed_units", "executed_amount", "settled_units", "settled_amount", "portfolio_order_id", "created_at",
    "updated_at",
)
TRADE_ORDER_COPY_COLUMNS = TRADE_ORDER_COLUMNS[:14]
RESULT_COLUMNS = (
    "execution_id", "account_id", "status", "error", "total_value", "cash_before", "cash_after", "order_count",
    "created_at", "adjustments", "price_fallbacks",
)
# A tax-aware result (§12) adds these two (JSON) at the end of its row.
TAX_RESULT_COLUMNS = ("estimated_realized_gain", "tax_orders")


class JsonText(str):
    """A value of a JSON column already as its JSON text, written as it is: its maker
    guarantees no tab, newline or backslash (COPY's text format would need them escaped)."""

    __slots__ = ()
# SQLite's limit on bound parameters (999 in older builds): keep IN lists and batches below it.
_BATCH = 900


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _batches(items: Sequence, size: int = _BATCH):
    for start in range(0, len(items), size):
        yield items[start:start + size]


_LOW_48 = (1 << 48) - 1


def ordered_uuids(count: int) -> list[str]:
    """`count` new UUIDs as strings, in the UUID version 7 layout: 48 bits of Unix
    milliseconds, then a counter from a random start. They sort in creation order, so
    new trade orders are appended to the right edge of the primary-key index instead of
    landing on random pages (far fewer pages touched and logged per insert), and
    ordering a result's orders by id gives the engine's order (sells, then buys)."""
    if not count:
        return []
    head = (time.time_ns() // 1_000_000) << 80 | 7 << 76 | 0b10 << 62
    counter = int.from_bytes(os.urandom(9)) >> 2  # 70 random bits: room for any batch
    low_mask = (1 << 62) - 1
    variant = 0b10 << 62
    ids = []
    prefixes = {}  # the first three groups change only when the counter carries into them
    for n in range(counter, counter + count):
        prefix = prefixes.get(n >> 62)
        if prefix is None:
            h = f"{head | (n >> 62) << 64:032x}"
            prefix = prefixes[n >> 62] = f"{h[:8]}-{h[8:12]}-{h[12:16]}-"
        low = variant | (n & low_mask)
        ids.append(f"{prefix}{low >> 48:04x}-{low & _LOW_48:012x}")  # one format, no slicing
    return ids


# --- COPY -----------------------------------------------------------------------------

NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value) -> str:
    """One value in COPY's text format (\\N for NULL, tabs and newlines escaped)."""
    if value is None:
        return NULL
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if isinstance(value, datetime):
        return value.isoformat()
    if value is True or value is False:
        return "t" if value else "f"
    return str(value)  # UUID, Decimal (str() is exact; PostgreSQL reads exponents too), int


def copy_text(table: str, columns: Sequence[str], lines: list[str]) -> int:
    """`COPY table (columns) FROM STDIN` of lines already in COPY's text format."""
    if not lines:
        return 0
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    sql = f"COPY {connection.ops.quote_name(table)} ({quoted}) FROM STDIN"
    data = "\n".join(lines) + "\n"
    started = time.monotonic()
    with connection.cursor() as cursor:
        with cursor.cursor.copy(sql) as copy:  # psycopg's own cursor: Django's wrapper has no copy()
            step = 1 << 20  # a few writes of ~1 MB, not one huge buffer nor thousands of small ones
            for start in range(0, len(data), step):
                copy.write(data[start:start + step])
    if connection.queries_logged:  # as Django's debug cursor would, so query counts see the COPY
        connection.queries_log.append({"sql": f"{sql} ({len(lines)} rows)", "time": f"{time.monotonic() - started:.3f}"})
    return len(lines)


def insert_many(model, columns: Sequence[str], rows: Sequence[tuple]) -> int:
    """The other databases' path: one INSERT run for every row with `executemany`
    (one statement whatever the number of rows), values prepared by the model fields."""
    if not rows:
        return 0
    fields = [model._meta.get_field(column) for column in columns]
    prepared = [[field.get_db_prep_save(value, connection) for field, value in zip(fields, row)] for row in rows]
    quoted = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({quoted}) VALUES ({placeholders})", prepared
        )
    return len(rows)


# --- Trade orders and results -------------------------------------------------------------


def trade_orders_write(
    *, proposals: Sequence, execution_id, now: datetime, status: str = TradeOrderStatus.OPEN,
    cash_accounts: Sequence | None = None,
) -> int:
    """Insert engine OrderProposals as trade orders of the execution in `status` (OPEN;
    PENDING_APPROVAL for an execution waiting for approval); ids from `ordered_uuids`.
    Returns how many. The engine's values fit the columns as they are (units ≤ 10
    places, prices 10, amounts 8).

    On PostgreSQL the COPY leaves the timestamps and the zero amounts to the columns'
    database defaults (parsing two timestamps an order was a tenth of the COPY): the
    orders are created at the start of the transaction (CURRENT_TIMESTAMP, PostgreSQL's
    clock), a few milliseconds before `now`; elsewhere `now` is written.

    `cash_accounts`: per proposal, (cash account id, counter cash account id) (§10),
    in the same order; None writes NULLs."""
    if not proposals:
        return 0
    status = TradeOrderStatus(status).value
    ids = ordered_uuids(len(proposals))
    if cash_accounts is None:
        cash_accounts = [(None, None)] * len(proposals)
    if not is_postgres():
        return insert_many(TradeOrder, TRADE_ORDER_COLUMNS, [
            (
                order_id, o.account_id, o.instrument_id, o.side.value, o.transaction_type, o.units, o.unit_price,
                o.trade_amount, o.currency, o.execution_method.value, status, execution_id, cash[0], cash[1],
                0, 0, 0, 0, None, now, now,
            )
            for order_id, o, cash in zip(ids, proposals, cash_accounts)
        ])
    # Formatted by hand: this is the hottest loop of an execution. Ids are formatted
    # once per account and instrument; only the transaction type is free text.
    tail = f"\t{status}\t{execution_id}"
    # str(), not f-string formatting: a Decimal's or a StrEnum's __format__ takes twice to
    # three times as long as its __str__ (which gives the exact digits, and the value).
    text = str
    names, types = {}, {}
    cash_texts = {}
    lines = []
    for order_id, o, cash in zip(ids, proposals, cash_accounts):
        account = names.get(o.account_id)
        if account is None:
            account = names[o.account_id] = str(o.account_id)
        instrument = names.get(o.instrument_id)
        if instrument is None:
            instrument = names[o.instrument_id] = str(o.instrument_id)
        transaction_type = types.get(o.transaction_type)
        if transaction_type is None:
            transaction_type = types[o.transaction_type] = _text(o.transaction_type)
        # By the tuple's identity: the chunk passes one tuple per account and currency, and
        # hashing it would hash a UUID (a Python call) for every order. `cash_accounts`
        # keeps the tuples alive, so their ids are not reused meanwhile.
        cash_text = cash_texts.get(id(cash))
        if cash_text is None:
            cash_text = cash_texts[id(cash)] = f"\t{_text(cash[0])}\t{_text(cash[1])}"
        lines.append(
            f"{order_id}\t{account}\t{instrument}\t{text(o.side)}\t{transaction_type}\t{text(o.units)}\t"
            f"{text(o.unit_price)}\t{text(o.trade_amount)}\t{o.currency}\t{text(o.execution_method)}{tail}{cash_text}"
        )
    return copy_text(TradeOrder._meta.db_table, TRADE_ORDER_COPY_COLUMNS, lines)


def results_write(rows: Sequence[tuple]) -> int:
    """Insert execution results (tuples in RESULT_COLUMNS order; `adjustments` a list
    of JSON-able dicts, usually empty). A row may carry the two TAX_RESULT_COLUMNS
    after those (a tax-aware result; JSON-able values or JsonText); the columns are
    written only when a row does. The unique key (execution, account) refuses a second result for an account: the
    transaction fails."""
    if not rows:
        return 0
    taxed = any(len(row) > len(RESULT_COLUMNS) for row in rows)
    if taxed:
        rows = [row if len(row) > len(RESULT_COLUMNS) else (*row, None, None) for row in rows]
    columns = (*RESULT_COLUMNS, *TAX_RESULT_COLUMNS) if taxed else RESULT_COLUMNS
    if not is_postgres():
        if taxed:
            rows = [(*row[:-2], *(json.loads(v) if type(v) is JsonText else v for v in row[-2:])) for row in rows]
        return insert_many(ExecutionResult, columns, rows)
    # By hand as the trade orders are (a chunk's rows share their execution and time).
    texts = {}
    lines = []
    for execution_id, account_id, status, error, total, before, after, count, created, adjustments, fallbacks, *tax in rows:
        head = texts.get((execution_id, created))
        if head is None:
            head = texts[(execution_id, created)] = (f"{execution_id}\t", f"\t{_text(created)}\t")
        lines.append(
            f"{head[0]}{account_id}\t{status}\t{_text(error)}\t"
            f"{NULL if total is None else str(total)}\t{NULL if before is None else str(before)}\t"
            f"{NULL if after is None else str(after)}\t{count}{head[1]}"
            f"{_text(json.dumps(adjustments, separators=(',', ':'))) if adjustments else '[]'}\t"
            f"{_text(json.dumps(fallbacks, separators=(',', ':'))) if fallbacks else '[]'}"
            + (f"\t{_json_text(tax[0])}\t{_json_text(tax[1])}" if tax else "")
        )
    return copy_text(ExecutionResult._meta.db_table, columns, lines)


def _json_text(value) -> str:
    """A JSON column's value in COPY's text format: JsonText as it is."""
    if type(value) is JsonText:
        return value
    return NULL if value is None else _text(json.dumps(value, separators=(",", ":")))


def trade_orders_replace(*, order_ids: Sequence, now: datetime) -> int:
    """These OPEN trade orders (found and locked by book_load) → REPLACED (§4.6); returns
    how many. No query when there are none (a first rebalance of the accounts)."""
    if not order_ids:
        return 0
    if is_postgres():
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {_table(TradeOrder)} SET status = %s, updated_at = %s WHERE id = ANY(%s::uuid[]) AND status = %s",
                [TradeOrderStatus.REPLACED.value, now, uuid_array(order_ids), TradeOrderStatus.OPEN.value],
            )
            return cursor.rowcount
    return sum(
        TradeOrder.objects.filter(pk__in=part, status=TradeOrderStatus.OPEN).update(
            status=TradeOrderStatus.REPLACED, updated_at=now
        )
        for part in _batches(list(order_ids))
    )


# --- Leases -------------------------------------------------------------------------------


def leases_take(*, execution_id, account_ids: Sequence, now: datetime) -> set:
    """Lease the accounts to the execution where no other unfinished execution holds
    them (the primary key decides; conflicts are skipped). Returns the ids taken."""
    if not account_ids:
        return set()
    if is_postgres():
        table = connection.ops.quote_name(AccountLease._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (account_id, execution_id, created_at) "
                f"SELECT a, %s, %s FROM unnest(%s::uuid[]) AS a "
                f"ON CONFLICT (account_id) DO NOTHING RETURNING account_id",
                [execution_id, now, uuid_array(account_ids)],
            )
            return {row[0] for row in cursor.fetchall()}
    AccountLease.objects.bulk_create(
        [AccountLease(account_id=a, execution_id=execution_id, created_at=now) for a in account_ids],
        batch_size=_BATCH // 3, ignore_conflicts=True,
    )
    taken = set()
    for part in _batches(list(account_ids)):
        taken.update(
            AccountLease.objects.filter(account_id__in=part, execution_id=execution_id).values_list("account_id", flat=True)
        )
    return taken


def lease_holders(account_ids: Sequence) -> dict:
    """account id → the execution id holding its lease, for those leased."""
    holders = {}
    for part in _batches(list(account_ids), 10_000 if is_postgres() else _BATCH):
        holders.update(AccountLease.objects.filter(account_id__in=part).values_list("account_id", "execution_id"))
    return holders


def leases_release(*, execution_id, account_ids: Sequence) -> int:
    """Delete the execution's leases of these accounts; returns how many."""
    if not account_ids:
        return 0
    if is_postgres():
        table = connection.ops.quote_name(AccountLease._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE account_id = ANY(%s::uuid[]) AND execution_id = %s",
                [uuid_array(account_ids), execution_id],
            )
            return cursor.rowcount
    return sum(
        AccountLease.objects.filter(account_id__in=part, execution_id=execution_id).delete()[0]
        for part in _batches(list(account_ids))
    )


# --- Planning an execution (PostgreSQL) ------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """The accounts of an execution as SQL yielding one `account_id` column (named
    placeholders, `%(sel_...)s`)."""

    sql: str
    params: dict

    @classmethod
    def of_ids(cls, account_ids: Iterable) -> "Selection":
        """The given ids that are accounts (one deleted since the request drops out)."""
        return cls(
            f"SELECT a.id AS account_id FROM unnest(%(sel_ids)s::uuid[]) AS u(id) "
            f"JOIN {_table(PortfolioAccount)} a ON a.id = u.id",
            {"sel_ids": uuid_array(account_ids)},
        )

    @classmethod
    def configured(cls, *, allocation_id=None) -> "Selection":
        """ACTIVE top-level accounts with a configuration (following `allocation_id` if given)."""
        sql = (
            f"SELECT c.account_id FROM {_table(Configuration)} c JOIN {_table(PortfolioAccount)} a ON a.id = c.account_id "
            f"WHERE a.status = %(sel_status)s AND a.parent_id IS NULL"
        )
        params = {"sel_status": AccountStatus.ACTIVE.value}
        if allocation_id is not None:
            sql += " AND c.allocation_id = %(sel_allocation)s"
            params["sel_allocation"] = allocation_id
        return cls(sql, params)


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def plan(*, execution_id, selection: Selection, chunk_size: int, now: datetime, refusal_prefix: str,
         refusal_unknown: str) -> tuple[int, int, list]:
    """Plan an execution in one statement, inside the database: lease the selected
    accounts (in id order; conflicts skipped), split the leased ones into chunks of
    `chunk_size` by account id, and write a FAILED result naming the holder for each
    account another execution holds. Returns (selected, refused, chunk ids).

    No account id travels to Python and back: for 100,000 accounts this is one round
    trip instead of megabytes of parameters. (Every statement of a WITH sees the same
    snapshot, so the holder is read from the leases as they were before this insert.)
    """
    sql = f"""
        WITH selected AS ({selection.sql}),
        leased AS (
            INSERT INTO {_table(AccountLease)} (account_id, execution_id, created_at)
            SELECT account_id, %(execution)s, %(now)s FROM selected ORDER BY account_id
            ON CONFLICT (account_id) DO NOTHING
            RETURNING account_id
        ),
        chunks AS (
            INSERT INTO {_table(ExecutionChunk)} (execution_id, number, account_ids, status, attempts)
            SELECT %(execution)s, bucket + 1, jsonb_agg(account_id::text ORDER BY account_id), %(pending)s, 0
            FROM (SELECT account_id, (row_number() OVER (ORDER BY account_id) - 1) / %(size)s AS bucket FROM leased) b
            GROUP BY bucket
            RETURNING id
        ),
        refused AS (
            INSERT INTO {_table(ExecutionResult)} (execution_id, account_id, status, error, order_count, created_at,
                                                   adjustments, price_fallbacks)
            SELECT %(execution)s, s.account_id, %(failed)s,
                   coalesce(%(prefix)s || held.execution_id::text, %(unknown)s), 0, %(now)s, '[]'::jsonb, '[]'::jsonb
            FROM selected s
            LEFT JOIN leased l ON l.account_id = s.account_id
            LEFT JOIN {_table(AccountLease)} held ON held.account_id = s.account_id
            WHERE l.account_id IS NULL
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM selected), (SELECT count(*) FROM refused),
               (SELECT coalesce(array_agg(id ORDER BY id), '{{}}') FROM chunks)
    """
    params = {
        **selection.params, "execution": execution_id, "now": now, "size": chunk_size, "pending": ChunkStatus.PENDING.value,
        "failed": ResultStatus.FAILED.value, "prefix": refusal_prefix, "unknown": refusal_unknown,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        total, refused, chunk_ids = cursor.fetchone()
    return total, refused, list(chunk_ids)


def existing_account_ids(account_ids: Sequence) -> set:
    """The ids among `account_ids` that are accounts: one query on PostgreSQL (an array
    parameter), batches under SQLite's parameter limit elsewhere."""
    if is_postgres():
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id FROM {_table(PortfolioAccount)} WHERE id = ANY(%s::uuid[])", [uuid_array(account_ids)])
            return {row[0] for row in cursor.fetchall()}
    found = set()
    for part in _batches(list(account_ids)):
        found.update(PortfolioAccount.objects.filter(pk__in=part).values_list("pk", flat=True))
    return found
