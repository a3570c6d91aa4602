"""Holdings files through the service: every rule of domain.md §13 and docs/imports.md."""

import io
from contextlib import contextmanager
from decimal import Decimal

import pytest

from auditlog.models import LogEntry
from imports import services
from imports.models import ImportJob
from portfolios.models import CashAccount, Position
from tests.factories import (
    AccountFactory,
    CashAccountFactory,
    CashInstrumentFactory,
    InstrumentFactory,
    PositionFactory,
    UserFactory,
)
from tests.imports.conftest import HEADER, csv_text

pytestmark = pytest.mark.django_db


def run(text: str, *, name="holdings.csv", user=None, **options) -> ImportJob:
    job, created = services.import_create(kind="HOLDINGS", upload=io.BytesIO(text.encode()), file_name=name,
                                          user=user, enqueue=False, **options)
    assert created
    services.import_run(import_id=job.pk)
    job.refresh_from_db()
    return job


def book(account):
    return (
        {p.instrument_id: p.units for p in Position.objects.filter(account=account)},
        {(c.currency, c.kind): (c.balance, c.is_default) for c in CashAccount.objects.filter(account=account)},
    )


@pytest.fixture
def etfs():
    return InstrumentFactory(currency="EUR"), InstrumentFactory(currency="USD")


def test_a_file_is_a_full_snapshot_of_the_accounts_it_names_and_leaves_the_others_alone(etfs):
    a, b = etfs
    named, other = AccountFactory(), AccountFactory()
    PositionFactory(account=named, instrument=b, units=Decimal("7"))
    CashAccountFactory(account=named, currency="USD", balance=Decimal("50"), is_default=False)
    PositionFactory(account=other, instrument=a, units=Decimal("1"))
    untouched = book(other)
    job = run(csv_text(HEADER, (named.pk, a.isin, "3.5", "EUR", ""), (named.pk, "", "", "EUR", "-20.25")))
    assert (job.status, job.rows, job.accounts_changed, job.rows_changed) == ("DONE", 2, 1, 4)
    positions, cash = book(named)
    assert positions == {a.pk: Decimal("3.5")}  # b, left out of the file, is gone
    assert cash == {
        ("EUR", "CASH"): (Decimal("-20.25"), True),  # new, in the base currency, and the account had no default
        ("USD", "CASH"): (Decimal("0"), False),  # left out of the file: kept at 0
    }
    assert book(other) == untouched


def test_rows_of_one_position_add_up_even_when_the_accounts_rows_are_apart(etfs):
    a, _ = etfs
    first, second = AccountFactory(), AccountFactory()
    rows = [(first.pk, a.isin, "1.25", "", ""), (second.pk, a.isin, "2", "", ""), (first.pk, a.pk, "0.75", "", ""),
            (second.pk, a.isin, "3", "", "")]
    job = run(csv_text(HEADER, *rows))
    assert job.status == "DONE"
    assert book(first)[0] == {a.pk: Decimal("2")} and book(second)[0] == {a.pk: Decimal("5")}


@pytest.mark.parametrize("apart", [False, True])
def test_a_cash_account_twice_is_an_error_naming_both_lines(etfs, apart):
    first, second = AccountFactory(), AccountFactory()
    rows = [(first.pk, "", "", "EUR", "1"), (second.pk, "", "", "EUR", "1"), (first.pk, "", "", "EUR", "2")]
    if not apart:
        rows[1], rows[2] = rows[2], rows[1]
    job = run(csv_text(HEADER, *rows))
    line = 3 if apart else 2
    assert job.status == "FAILED"
    assert job.errors == [{"line": line, "field": "currency", "message": "EUR CASH of this account is already on line 1"}]


def test_every_bad_row_is_reported_with_its_line_field_and_rule_and_nothing_is_written(etfs):
    a, b = etfs
    account = AccountFactory()
    PositionFactory(account=account, instrument=a, units=Decimal("9"))
    before = book(account)
    cash_instrument = CashInstrumentFactory(currency="CHF", name="CHF")
    rows = [
        (account.pk, a.isin, "1", "", ""),  # good
        ("not-a-uuid", a.isin, "1", "", ""),
        (account.pk, "XX0000000000", "1", "", ""),
        (account.pk, a.isin, "-1", "", ""),
        (account.pk, a.isin, "1.12345678901", "", ""),
        (account.pk, b.isin, "1", "EUR", ""),
        (account.pk, "", "", "EURO", "1"),
        (account.pk, "", "", "CHF", ""),
        (account.pk, "", "5", "GBP", "1"),
        (account.pk, str(cash_instrument.pk), "1", "", ""),
        ("00000000-0000-0000-0000-000000000001", a.isin, "1", "", ""),
    ]
    job = run(csv_text(HEADER, *rows))
    assert job.status == "FAILED" and job.error_count == 10
    assert [(e["line"], e["field"]) for e in job.errors] == [
        (2, "account_id"), (3, "instrument_id"), (4, "units"), (5, "units"), (6, "currency"), (7, "currency"),
        (8, "balance"), (9, "units"), (10, "instrument_id"), (11, "account_id"),
    ]
    messages = {e["line"]: e["message"] for e in job.errors}
    assert messages[4] == "must not be negative"
    assert messages[5] == "at most 10 decimal places"
    assert messages[6] == f"{b.isin} trades in USD, not EUR"
    assert messages[11] == "no account with account id 00000000-0000-0000-0000-000000000001"
    assert book(account) == before
    assert Position.objects.get(account=account).units == Decimal("9")


def test_the_header_must_name_the_columns():
    job = run("account,instrument_id,units\n1,2,3\n")
    assert job.status == "FAILED"
    assert {(e["line"], e["field"]) for e in job.errors} == {
        (0, "account"), (0, "account_id"), (0, "currency"), (0, "balance"),
    }


LOT_HEADER = HEADER + ("acquired_on", "unit_cost")


def lots_of(account):
    """{instrument id: sorted [(acquired_on, units, unit_cost, cost_currency)]} of an account."""
    from portfolios.models import Lot  # noqa: PLC0415

    found = {}
    for row in Lot.objects.filter(position__account=account).values_list(
        "position__instrument", "acquired_on", "units", "unit_cost", "cost_currency",
    ):
        found.setdefault(row[0], []).append(row[1:])
    return {key: sorted(value, key=lambda lot: (lot[0], lot[1])) for key, value in found.items()}


@pytest.mark.parametrize("bulk", [False, True], ids=["row-by-row", "keys-checked-once"])
@pytest.mark.parametrize("held", [False, True], ids=["first-load", "book-holds"])
def test_lot_rows_become_exactly_the_positions_lots_and_realize_nothing(etfs, settings, bulk, held):
    """§12/§13: one row per lot, the rows of a position add up to its units; a row
    without unit_cost is a lot of unknown cost. Lots given replace the book's whatever
    the units did (nothing is realized); positions without lot rows behave as before."""
    from datetime import date  # noqa: PLC0415

    from portfolios.models import RealizedGain  # noqa: PLC0415

    if bulk:
        settings.IMPORTS_BULK_FOREIGN_KEY_ROWS = 1
    a, b = etfs
    account, other = AccountFactory(), AccountFactory()
    if held:
        PositionFactory(account=account, instrument=a, units=Decimal("9"), lots=[
            (date(2020, 1, 2), Decimal("9"), Decimal("5")),
        ])
    job = run(csv_text(
        LOT_HEADER,
        (account.pk, a.isin, "2", "", "", "2024-03-01", "10"),
        (account.pk, a.isin, "3.5", "EUR", "", "2026-01-15", "30.125"),
        (account.pk, b.isin, "4", "", "", "2025-06-30", ""),  # unknown cost
        (account.pk, "", "", "EUR", "12", "", ""),
        (other.pk, a.isin, "1", "", "", "", ""),  # no lots: one lot of unknown cost dated today
    ))
    assert job.status == "DONE", job.errors
    assert (job.rows, job.rows_changed, job.accounts_changed) == (5, 4, 2)
    assert book(account)[0] == {a.pk: Decimal("5.5"), b.pk: Decimal("4")}
    assert lots_of(account) == {
        a.pk: [(date(2024, 3, 1), Decimal("2"), Decimal("10"), "EUR"),
               (date(2026, 1, 15), Decimal("3.5"), Decimal("30.125"), "EUR")],
        b.pk: [(date(2025, 6, 30), Decimal("4"), None, "USD")],
    }
    from django.utils import timezone  # noqa: PLC0415

    assert lots_of(other) == {a.pk: [(timezone.localdate(), Decimal("1"), None, "EUR")]}
    assert not RealizedGain.objects.exists()


def test_the_same_lots_again_write_nothing_and_other_lots_replace_them(etfs):
    from datetime import date  # noqa: PLC0415

    from portfolios.models import Lot, RealizedGain  # noqa: PLC0415

    a, _ = etfs
    account = AccountFactory()
    rows = [(account.pk, a.isin, "2", "", "", "2024-03-01", "10"), (account.pk, a.isin, "3", "", "", "2025-03-01", "20")]
    assert run(csv_text(LOT_HEADER, *rows)).status == "DONE"
    ids = set(Lot.objects.values_list("pk", flat=True))
    again = run(csv_text(LOT_HEADER, *reversed(rows)))  # the order of the rows does not matter
    assert (again.status, again.rows_changed, again.accounts_changed) == ("DONE", 0, 0)
    assert set(Lot.objects.values_list("pk", flat=True)) == ids
    moved = run(csv_text(LOT_HEADER, rows[0], (account.pk, a.isin, "3", "", "", "2025-03-02", "20")))
    assert (moved.status, moved.rows_changed, moved.accounts_changed) == ("DONE", 1, 1)
    assert lots_of(account)[a.pk] == [(date(2024, 3, 1), Decimal("2"), Decimal("10"), "EUR"),
                                      (date(2025, 3, 2), Decimal("3"), Decimal("20"), "EUR")]
    assert not RealizedGain.objects.exists()  # the custodian's lots are the record: nothing was sold


def test_lot_rows_are_checked_like_every_row_and_a_bad_one_writes_nothing(etfs):
    from datetime import timedelta  # noqa: PLC0415

    from django.utils import timezone  # noqa: PLC0415

    a, b = etfs
    account = AccountFactory()
    PositionFactory(account=account, instrument=a, units=Decimal("9"))
    before, lots_before = book(account), lots_of(account)
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    job = run(csv_text(
        LOT_HEADER,
        (account.pk, a.isin, "1", "", "", "2024-02-30", "10"),  # 1: no such day
        (account.pk, a.isin, "1", "", "", tomorrow, "10"),  # 2: future
        (account.pk, a.isin, "1", "", "", "", "10"),  # 3: a cost without a date
        (account.pk, a.isin, "1", "", "", "2024-01-02", "-1"),  # 4: negative cost
        (account.pk, a.isin, "1", "", "", "2024-01-02", "1.12345678901"),  # 5: too many places
        (account.pk, a.isin, "0", "", "", "2024-01-02", "1"),  # 6: a lot of 0 units
        (account.pk, "", "", "EUR", "5", "2024-01-02", ""),  # 7: cash has no lots
        (account.pk, b.isin, "1", "", "", "2024-01-02", "1"),  # 8: b's lot …
        (account.pk, b.isin, "1", "", "", "", ""),  # 9: … then b without one
        (account.pk, a.isin, "1", "", "", "02.01.2024", ""),  # 10: not ISO
    ))
    assert job.status == "FAILED"
    assert [(e["line"], e["field"]) for e in job.errors] == [
        (1, "acquired_on"), (2, "acquired_on"), (3, "acquired_on"), (4, "unit_cost"), (5, "unit_cost"), (6, "units"),
        (7, "acquired_on"), (9, "acquired_on"), (10, "acquired_on"),
    ]
    messages = {e["line"]: e["message"] for e in job.errors}
    assert messages[1] == "'2024-02-30' is not a date (YYYY-MM-DD)"
    assert messages[2] == "must not be in the future"
    assert messages[4] == "must not be negative"
    assert messages[5] == "at most 10 decimal places"
    assert messages[6] == "a lot must hold more than 0 units"
    assert messages[9] == "line 8 gives this position's lots: give acquired_on on every row of a position, or on none"
    assert (book(account), lots_of(account)) == (before, lots_before)


def test_a_position_with_lots_in_one_block_and_without_in_another_is_refused(etfs):
    """The rows of an account need not be together: the rule holds across blocks too."""
    a, _ = etfs
    first, second = AccountFactory(), AccountFactory()
    job = run(csv_text(
        LOT_HEADER,
        (first.pk, a.isin, "1", "", "", "", ""),
        (second.pk, a.isin, "1", "", "", "2024-01-02", "3"),
        (first.pk, a.isin, "2", "", "", "2024-01-02", "3"),
        (second.pk, a.isin, "2", "", "", "2024-01-03", "4"),  # second's lots apart: that is fine
    ))
    assert job.status == "FAILED"
    assert job.errors == [{"line": 1, "field": "acquired_on", "message": (
        "line 3 gives this position's lots: give acquired_on on every row of a position, or on none")}]
    ok = run(csv_text(LOT_HEADER, (second.pk, a.isin, "1", "", "", "2024-01-02", "3"),
                      (first.pk, a.isin, "1", "", "", "", ""), (second.pk, a.isin, "2", "", "", "2024-01-03", "4")))
    assert ok.status == "DONE", ok.errors
    assert book(second)[0] == {a.pk: Decimal("3")} and len(lots_of(second)[a.pk]) == 2


def test_lots_of_accounts_matched_by_client_id_and_unknown_accounts_reported_once_per_row(etfs):
    from datetime import date  # noqa: PLC0415

    a, _ = etfs
    account = AccountFactory(client_id="C-7")
    rows = [("C-7", a.isin, "1", "", "", "2024-01-02", "3"), ("C-7", a.isin, "1", "", "", "2024-01-03", "")]
    job = run(csv_text(LOT_HEADER, *rows), match="client_id")
    assert job.status == "DONE", job.errors
    assert lots_of(account) == {a.pk: [(date(2024, 1, 2), Decimal("1"), Decimal("3"), "EUR"),
                                       (date(2024, 1, 3), Decimal("1"), None, "EUR")]}
    missing = run(csv_text(LOT_HEADER, *rows, ("NOBODY", a.isin, "1", "", "", "2024-01-02", "3"),
                           ("NOBODY", a.isin, "2", "", "", "2024-01-03", "3")), match="client_id")
    assert missing.status == "FAILED"
    assert [(e["line"], e["field"]) for e in missing.errors] == [(3, "account_id"), (4, "account_id")]


def test_a_reconciliation_of_a_file_with_lots_compares_units(etfs):
    a, b = etfs
    account = AccountFactory()
    PositionFactory(account=account, instrument=a, units=Decimal("3"))
    job = run(csv_text(LOT_HEADER, (account.pk, a.isin, "1", "", "", "2024-01-02", "3"),
                       (account.pk, a.isin, "2", "", "", "2024-01-03", "4"),
                       (account.pk, b.isin, "2", "", "", "2024-01-03", "4")), mode="RECONCILE")
    assert (job.status, job.break_count) == ("AWAITING_ACCEPTANCE", 1)
    [the_break] = job.breaks.all()
    assert (the_break.instrument_id, the_break.book, the_break.file) == (b.pk, None, Decimal("2"))


def test_accounts_matched_by_client_id(etfs):
    a, _ = etfs
    account = AccountFactory(client_id="C-1")
    AccountFactory(client_id="TWIN"), AccountFactory(client_id="TWIN")
    job = run(csv_text(HEADER, ("C-1", a.isin, "4", "", "")), match="client_id")
    assert job.status == "DONE" and book(account)[0] == {a.pk: Decimal("4")}
    job = run(csv_text(HEADER, ("TWIN", a.isin, "4", "", "")), match="client_id")
    assert job.errors == [{"line": 1, "field": "account_id", "message": "client_id TWIN matches 2 accounts; use match=account_id"}]


def test_reconcile_lists_breaks_beyond_the_tolerance_and_writes_nothing(etfs):
    a, b = etfs
    account = AccountFactory()
    PositionFactory(account=account, instrument=a, units=Decimal("10"))
    PositionFactory(account=account, instrument=b, units=Decimal("4"))
    CashAccountFactory(account=account, balance=Decimal("100"))
    before = book(account)
    rows = [(account.pk, a.isin, "10.004", "", ""), (account.pk, "", "", "EUR", "99"), (account.pk, "", "", "USD", "5")]
    job = run(csv_text(HEADER, *rows), mode="RECONCILE", tolerance="0.01")
    assert (job.status, job.break_count, job.accounts_changed) == ("AWAITING_ACCEPTANCE", 3, 0)
    found = {(x.instrument_id or x.currency): (x.book, x.file, x.difference) for x in job.breaks.all()}
    assert found == {
        b.pk: (Decimal("4"), None, Decimal("-4")),  # missing in the file
        "EUR": (Decimal("100"), Decimal("99"), Decimal("-1")),  # cash differs
        "USD": (None, Decimal("5"), Decimal("5")),  # missing in Ballast
    }  # a's 0.004 is within the tolerance
    assert book(account) == before

    services.breaks_accept(job=job, break_ids=None)
    job.refresh_from_db()
    assert (job.status, job.accounts_changed) == ("DONE", 1)
    positions, cash = book(account)
    assert positions == {a.pk: Decimal("10")}
    assert cash == {("EUR", "CASH"): (Decimal("99"), True), ("USD", "CASH"): (Decimal("5"), False)}


def test_a_reconciliation_of_an_unchanged_book_is_done_with_no_breaks(etfs):
    a, _ = etfs
    account = AccountFactory()
    text = csv_text(HEADER, (account.pk, a.isin, "10", "", ""), (account.pk, "", "", "EUR", "1"))
    assert run(text).status == "DONE"
    job = run(text, mode="RECONCILE")
    assert (job.status, job.break_count) == ("DONE", 0)


def test_accepting_after_the_book_moved_is_refused(etfs):
    from core.errors import Conflict

    a, _ = etfs
    account = AccountFactory()
    position = PositionFactory(account=account, instrument=a, units=Decimal("10"))
    job = run(csv_text(HEADER, (account.pk, a.isin, "11", "", "")), mode="RECONCILE")
    [the_break] = job.breaks.all()
    Position.objects.filter(pk=position.pk).update(units=Decimal("10.5"))
    with pytest.raises(Conflict, match=str(the_break.pk)):
        services.breaks_accept(job=job, break_ids=[str(the_break.pk)])
    assert Position.objects.get(pk=position.pk).units == Decimal("10.5")


def test_an_import_is_recorded_and_in_the_audit_trail(etfs):
    a, _ = etfs
    user = UserFactory(username="ops")
    account = AccountFactory()
    job = run(csv_text(HEADER, (account.pk, a.isin, "1", "", "")), name="custody.csv", user=user)
    assert (job.created_by, job.file_name, len(job.sha256), job.rows, job.accounts_changed) == (user, "custody.csv", 64, 1, 1)
    entries = LogEntry.objects.get_for_object(job).order_by("timestamp", "pk")
    assert [e.additional_data.get("event", e.action) for e in entries] == [LogEntry.Action.CREATE, "import"]
    assert entries.last().additional_data["accounts_changed"] == "1"


def test_the_same_idempotency_key_returns_the_first_import_and_another_file_is_a_conflict(etfs):
    from core.errors import Conflict

    user = UserFactory()
    text = csv_text(HEADER, (AccountFactory().pk, etfs[0].isin, "1", "", ""))
    first, created = services.import_create(kind="HOLDINGS", upload=io.BytesIO(text.encode()), file_name="a.csv",
                                            user=user, idempotency_key="k1", enqueue=False)
    again, created_again = services.import_create(kind="HOLDINGS", upload=io.BytesIO(text.encode()), file_name="a.csv",
                                                  user=user, idempotency_key="k1", enqueue=False)
    assert created and not created_again and again.pk == first.pk
    with pytest.raises(Conflict):
        services.import_create(kind="HOLDINGS", upload=io.BytesIO(b"other"), file_name="a.csv", user=user,
                               idempotency_key="k1", enqueue=False)


def test_an_xlsx_file(etfs):
    """Numbers as Excel stores them; a date cell (Excel keeps a date as a datetime at
    midnight) is the date."""
    from datetime import date, datetime  # noqa: PLC0415

    from openpyxl import Workbook

    a, b = etfs
    account = AccountFactory()
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(list(LOT_HEADER))
    sheet.append([str(account.pk), a.isin, 12.5, None, None, None, None])
    sheet.append([str(account.pk), b.isin, 2, None, None, datetime(2024, 5, 2), 30.25])
    sheet.append([str(account.pk), None, None, "EUR", "1000.10", None, None])
    data = io.BytesIO()
    workbook.save(data)
    job, _ = services.import_create(kind="HOLDINGS", upload=io.BytesIO(data.getvalue()), file_name="book.xlsx",
                                    enqueue=False)
    services.import_run(import_id=job.pk)
    job.refresh_from_db()
    assert job.status == "DONE", job.errors
    assert book(account) == ({a.pk: Decimal("12.5"), b.pk: Decimal("2")}, {("EUR", "CASH"): (Decimal("1000.1"), True)})
    assert lots_of(account)[b.pk] == [(date(2024, 5, 2), Decimal("2"), Decimal("30.25"), "USD")]


def test_sums_and_tolerances_are_exact_decimals_on_every_database(etfs):
    """As floats, 0.1 + 0.2 is not 0.3 and 1.1 − 1 is more than 0.1: each assertion
    below fails if the staged numbers are summed or compared as floating point."""
    a, b = etfs
    named, other = AccountFactory(), AccountFactory()
    PositionFactory(account=named, instrument=a, units=Decimal("0.3"))
    PositionFactory(account=named, instrument=b, units=Decimal("1"))
    CashAccountFactory(account=named, currency="EUR", balance=Decimal("0.3"))
    # The named account's rows are apart (another account between): summed by the database pass.
    rows = [(named.pk, a.isin, "0.1", "", ""), (other.pk, a.isin, "1", "", ""), (named.pk, a.isin, "0.2", "", ""),
            (named.pk, b.isin, "1.1", "", ""), (named.pk, "", "", "EUR", "0.3"), (other.pk, "", "", "EUR", "5")]
    job = run(csv_text(HEADER, *rows), mode="RECONCILE", tolerance="0.1")
    # a: 0.1 + 0.2 = 0.3, no difference; b: 1.1 − 1 = 0.1, within the tolerance; only `other` differs.
    assert {(brk.account_id, brk.instrument_id) for brk in job.breaks.all()} == {(other.pk, a.pk), (other.pk, None)}

    job = run(csv_text(HEADER, *rows[:3], (named.pk, a.isin, "0.05", "", ""), *rows[3:]), mode="RECONCILE")
    found = {(brk.account_id, brk.instrument_id): brk.difference for brk in job.breaks.filter(account=named)}
    assert found == {(named.pk, a.pk): Decimal("0.05"), (named.pk, b.pk): Decimal("0.1")}

    job = run(csv_text(HEADER, *rows))
    assert book(named)[0] == {a.pk: Decimal("0.3"), b.pk: Decimal("1.1")}
    assert job.accounts_changed == 2  # named (b) and other; a's 0.3 was not rewritten


def foreign_keys(table: str) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT conname, convalidated, condeferrable, condeferred, pg_get_constraintdef(oid) "
                       "FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname", [table])
        return cursor.fetchall()


def indexes(table: str) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s ORDER BY indexname", [table])
        return cursor.fetchall()


@pytest.mark.postgres
def test_a_large_apply_checks_the_foreign_keys_once_and_keeps_them_whole(etfs, settings, monkeypatch):
    """From IMPORTS_BULK_FOREIGN_KEY_ROWS new rows on, the foreign keys of positions and
    cash accounts are dropped for the load and added back, which checks every row:
    afterwards they are the same constraints, validated, and still refuse a row that
    references no account."""
    from django.db import IntegrityError, connection, transaction

    from imports.services import staging

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite checks foreign keys its own way")
    settings.IMPORTS_BULK_FOREIGN_KEY_ROWS = 2
    tables = (Position._meta.db_table, CashAccount._meta.db_table)
    before = {table: foreign_keys(table) for table in tables}
    indexes_before = indexes(tables[0])
    assert len(indexes_before) == 4  # the primary key, the unique pair, account_id, instrument_id
    assert all(len(keys) == (2 if table == tables[0] else 1) for table, keys in before.items())
    a, b = etfs
    account = AccountFactory()
    calls = []
    original = staging.foreign_keys_checked_once

    @contextmanager
    def spy(tables, *, enabled):
        with original(tables, enabled=enabled) as dropped:
            calls.append(dropped)
            yield dropped

    rebuilt, original_rebuild = [], staging.indexes_rebuilt

    def spy_rebuild(table, *, enabled):  # on whatever the test database's statistics say
        rebuilt.append(table)
        return original_rebuild(table, enabled=True)

    monkeypatch.setattr(staging, "foreign_keys_checked_once", spy)
    monkeypatch.setattr(staging, "indexes_rebuilt", spy_rebuild)
    job = run(csv_text(HEADER, (account.pk, a.isin, "1", "", ""), (account.pk, b.isin, "2", "", ""),
                       (account.pk, "", "", "EUR", "3")))
    from portfolios.models import Lot  # noqa: PLC0415

    assert job.status == "DONE" and calls == [True] and rebuilt == [tables[0], Lot._meta.db_table]
    assert book(account)[0] == {a.pk: Decimal("1"), b.pk: Decimal("2")}
    # Each new position has one lot of unknown cost with its units, written set-based.
    assert sorted(Lot.objects.filter(position__account=account).values_list("units", "unit_cost")) == [
        (Decimal("1"), None), (Decimal("2"), None)]
    assert {table: foreign_keys(table) for table in tables} == before
    assert indexes(tables[0]) == indexes_before  # the plain ones were built again
    assert all(validated and deferrable for _, validated, deferrable, _, _ in before[tables[0]])
    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"INSERT INTO {tables[0]} (account_id, instrument_id, units, updated_at) "
                           "VALUES (gen_random_uuid(), %s, 1, now())", [a.pk])


@pytest.mark.postgres
def test_a_row_that_references_nothing_fails_the_large_apply_when_the_keys_come_back(etfs, settings):
    from django.db import IntegrityError, connection, transaction

    from imports.services import staging

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    a, _ = etfs
    table = Position._meta.db_table

    with pytest.raises(IntegrityError), transaction.atomic():
        with staging.foreign_keys_checked_once((table,), enabled=True) as dropped:
            assert dropped
            staging.execute(f"INSERT INTO {table} (account_id, instrument_id, units, updated_at) "
                            "VALUES (gen_random_uuid(), %s, 1, now())", [a.pk])
    assert len(foreign_keys(table)) == 2  # rolled back: the keys are still there


def test_an_applied_file_keeps_each_positions_units_equal_to_its_lots(etfs):
    """§12: units the file adds become a lot of unknown cost dated today; units it
    removes are relieved (FIFO) and recorded as realized; a position left out loses its lots."""
    from datetime import date  # noqa: PLC0415

    from django.db.models import Sum  # noqa: PLC0415
    from django.utils import timezone  # noqa: PLC0415

    from portfolios.models import Lot, Position, RealizedGain  # noqa: PLC0415

    a, b = etfs
    account = AccountFactory()
    PositionFactory(account=account, instrument=a, units=Decimal("5"), lots=[
        (date(2024, 1, 2), Decimal("2"), Decimal("10")), (date(2025, 1, 2), Decimal("3"), Decimal("12")),
    ])
    PositionFactory(account=account, instrument=b, units=Decimal("7"))
    assert run(csv_text(HEADER, (account.pk, a.isin, "4", "", ""), (account.pk, "", "", "EUR", "1"))).status == "DONE"
    assert run(csv_text(HEADER, (account.pk, a.isin, "9", "", ""), (account.pk, "", "", "EUR", "1"))).status == "DONE"
    lots = list(Lot.objects.filter(position__instrument=a).order_by("acquired_on").values_list("acquired_on", "units"))
    assert lots == [(date(2024, 1, 2), Decimal("1")), (date(2025, 1, 2), Decimal("3")), (timezone.localdate(), Decimal("5"))]
    assert not Position.objects.filter(instrument=b).exists() and not Lot.objects.filter(position__instrument=b).exists()
    assert RealizedGain.objects.filter(instrument=a).values_list("units", flat=True).get() == Decimal("1")
    for position in Position.objects.all():
        assert Lot.objects.filter(position=position).aggregate(t=Sum("units"))["t"] == position.units


@pytest.mark.parametrize("bulk", [False, True], ids=["row-by-row", "keys-checked-once"])
def test_units_added_become_one_lot_each_for_new_and_increased_positions_in_one_apply(etfs, settings, bulk):
    """New positions and positions that grow in the same APPLY: each addition is one lot
    of unknown cost dated today, of exactly the units added. With the foreign keys
    checked once (PostgreSQL) the new positions' lots are written by the positions'
    INSERT itself (RETURNING), the grown ones' by a join: both are checked here."""
    from datetime import date  # noqa: PLC0415

    from django.db.models import Sum  # noqa: PLC0415
    from django.utils import timezone  # noqa: PLC0415

    from portfolios.models import Lot  # noqa: PLC0415

    if bulk:
        settings.IMPORTS_BULK_FOREIGN_KEY_ROWS = 1
    a, b = etfs
    held, fresh = AccountFactory(), AccountFactory()
    PositionFactory(account=held, instrument=a, units=Decimal("5"), lots=[(date(2024, 1, 2), Decimal("5"), Decimal("10"))])
    job = run(csv_text(HEADER, (held.pk, a.isin, "7.5", "", ""), (held.pk, b.isin, "2", "", ""),
                       (fresh.pk, a.isin, "3", "", ""), (fresh.pk, "", "", "EUR", "4")))
    assert job.status == "DONE" and job.rows_changed == 4
    today = timezone.localdate()
    assert sorted(Lot.objects.values_list("position__account", "position__instrument", "acquired_on", "units",
                                          "unit_cost", "cost_currency")) == sorted([
        (held.pk, a.pk, date(2024, 1, 2), Decimal("5"), Decimal("10"), "EUR"),
        (held.pk, a.pk, today, Decimal("2.5"), None, "EUR"),
        (held.pk, b.pk, today, Decimal("2"), None, "USD"),
        (fresh.pk, a.pk, today, Decimal("3"), None, "EUR"),
    ])
    for position in Position.objects.all():
        assert Lot.objects.filter(position=position).aggregate(t=Sum("units"))["t"] == position.units


@pytest.mark.parametrize("first_load", [True, False], ids=["accounts-hold-nothing", "one-account-holds"])
def test_zero_units_and_balances_of_accounts_without_holdings_write_nothing(etfs, first_load):
    """When no account the file names holds anything (a first load), PostgreSQL applies
    the staged file without the differences table: the outcome must be the same as
    through it. Rows at 0 create no position and no cash account."""
    a, b = etfs
    fresh, other = AccountFactory(base_currency="EUR"), AccountFactory(base_currency="EUR")
    if not first_load:
        PositionFactory(account=other, instrument=a, units=Decimal("1"))
    job = run(csv_text(HEADER, (fresh.pk, a.isin, "0", "", ""), (fresh.pk, b.isin, "2.5", "", ""),
                       (fresh.pk, "", "", "EUR", "0"), (fresh.pk, "", "", "USD", "-5"),
                       (other.pk, a.isin, "1", "", ""), (other.pk, "", "", "EUR", "3")))
    assert job.status == "DONE"
    assert job.rows_changed == (3 if first_load else 2) + 1 and job.accounts_changed == 2
    assert book(fresh) == ({b.pk: Decimal("2.5")}, {("USD", "CASH"): (Decimal("-5"), False)})
    assert book(other) == ({a.pk: Decimal("1")}, {("EUR", "CASH"): (Decimal("3"), True)})
