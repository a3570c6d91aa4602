"""Fills files: executed units and prices back into the trade orders of an execution,
shared pro rata, rounded to the block size, the remainder to the largest order
(docs/imports.md "Fills file"). Worked examples through the service, the admin upload
and the management command."""

import io
import re
from datetime import date
from decimal import Decimal

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from hypothesis import given
from hypothesis import strategies as st

from imports import services
from imports.models import ImportJob
from imports.services.fills import fill_shares
from portfolios.models import Position
from rebalancing.models import Execution, ExecutionMethod, Side, TradeOrder
from rebalancing.services.orders import trade_order_transition
from tests.factories import AccountFactory, CashAccountFactory, InstrumentFactory
from tests.imports.conftest import csv_text

HEADER = ("execution_id", "instrument_id", "side", "units", "price")
D = date(2026, 3, 2)


def run(text: str, *, name="fills.csv", user=None) -> ImportJob:
    job, created = services.import_create(kind="FILLS", upload=io.BytesIO(text.encode()), file_name=name,
                                          user=user, enqueue=False)
    assert created
    services.import_run(import_id=job.pk)
    job.refresh_from_db()
    return job


def order(execution, instrument, units, *, side=Side.BUY, status="IN_EXECUTION", price="10"):
    account = AccountFactory()
    CashAccountFactory(account=account, balance=Decimal("100000"))
    units, price = Decimal(units), Decimal(price)
    return TradeOrder.objects.create(
        account=account, instrument=instrument, side=side, transaction_type=side, units=units, unit_price=price,
        trade_amount=units * price, currency=instrument.currency, execution_method=ExecutionMethod.NET_TRADE_AMOUNT,
        execution=execution, status=status,
    )


def state(*orders):
    """(status, executed units, executed amount) of each order, reloaded."""
    result = []
    for o in orders:
        o.refresh_from_db()
        result.append((o.status, o.executed_units, o.executed_amount))
    return result


@pytest.fixture
def blotter_order(db):
    """One aggregated order: BUY 100 units of an ETF traded in whole units, in three
    accounts' orders of 30, 50 and 20 units."""
    execution = Execution.objects.create(rebalance_date=D)
    etf = InstrumentFactory(block_size=Decimal("1"), currency="EUR")
    return execution, etf, [order(execution, etf, units) for units in ("30", "50", "20")]


def test_a_partial_fill_is_shared_pro_rata_rounded_to_the_block_size_with_the_remainder_to_the_largest(blotter_order):
    execution, etf, (a, b, c) = blotter_order
    job = run(csv_text(HEADER, (execution.pk, etf.isin, "BUY", "55", "10.5")))
    assert (job.status, job.rows, job.rows_changed, job.accounts_changed) == ("DONE", 1, 3, 3)
    # 55 × 30/100 = 16.5 → 16; 55 × 50/100 = 27.5 → 27; 55 × 20/100 = 11; 1 left → the 50 order.
    assert state(a, b, c) == [
        ("PARTIALLY_EXECUTED", Decimal("16"), Decimal("168")),
        ("PARTIALLY_EXECUTED", Decimal("28"), Decimal("294")),
        ("PARTIALLY_EXECUTED", Decimal("11"), Decimal("115.5")),
    ]

    # The last 45 are shared by what is still open (14, 22, 9): every order completes.
    job = run(csv_text(HEADER, (execution.pk, etf.isin, "buy", "45", "11")))
    assert job.status == "DONE"
    assert state(a, b, c) == [
        ("EXECUTED_IN_MARKET", Decimal("30"), Decimal("168") + 14 * Decimal("11")),
        ("EXECUTED_IN_MARKET", Decimal("50"), Decimal("294") + 22 * Decimal("11")),
        ("EXECUTED_IN_MARKET", Decimal("20"), Decimal("115.5") + 9 * Decimal("11")),
    ]

    # Settled through the usual transitions, the fills reach the positions.
    for o in (a, b, c):
        trade_order_transition(order=o, status="SETTLED_IN_MARKET")
        trade_order_transition(order=o, status="SETTLED")
    assert Position.objects.get(account=b.account, instrument=etf).units == Decimal("50")


@pytest.mark.parametrize("batch", [None, 2], ids=["one-batch", "batches-of-2"])
def test_lines_of_one_order_in_one_file_are_fills_one_after_the_other(blotter_order, monkeypatch, batch):
    from rebalancing.services.orders import trade_orders  # noqa: PLC0415

    if batch:  # the orders are written a batch at a time (trade_orders_fill)
        monkeypatch.setattr(trade_orders, "FILL_BATCH", batch)
    execution, etf, (a, b, c) = blotter_order
    job = run(csv_text(HEADER, (execution.pk, etf.pk, "BUY", "10", "10"), (execution.pk, etf.isin, "BUY", "90", "10.2")))
    assert (job.status, job.rows_changed) == ("DONE", 6)
    # 10 → 3, 5, 2 (exact); then 90 of the 27, 45, 18 still open: exact again.
    assert state(a, b, c) == [
        ("EXECUTED_IN_MARKET", Decimal("30"), Decimal("30") + 27 * Decimal("10.2")),
        ("EXECUTED_IN_MARKET", Decimal("50"), Decimal("50") + 45 * Decimal("10.2")),
        ("EXECUTED_IN_MARKET", Decimal("20"), Decimal("20") + 18 * Decimal("10.2")),
    ]


def test_a_fill_in_fractions_of_a_block_leaves_the_fraction_to_the_largest_order(db):
    execution = Execution.objects.create(rebalance_date=D)
    etf = InstrumentFactory(block_size=Decimal("0.5"))
    a, b = order(execution, etf, "3"), order(execution, etf, "7")
    job = run(csv_text(HEADER, (execution.pk, etf.isin, "BUY", "4.3", "2")))
    assert job.status == "DONE"
    # 4.3 × 0.3 = 1.29 → 1.0; 4.3 × 0.7 = 3.01 → 3.0; 0.3 left → the 7 order.
    assert [s[1] for s in state(a, b)] == [Decimal("1"), Decimal("3.3")]


def test_a_sent_order_goes_through_in_execution_and_every_step_is_audited(db):
    execution = Execution.objects.create(rebalance_date=D)
    etf = InstrumentFactory(block_size=None)
    sent = order(execution, etf, "8", side=Side.SELL, status="SENT_TO_EXECUTION")
    job = run(csv_text(HEADER, (execution.pk, etf.isin, "SELL", "8", "9.99")))
    assert job.status == "DONE"
    assert state(sent) == [("EXECUTED_IN_MARKET", Decimal("8"), Decimal("79.92"))]
    steps = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(TradeOrder),
                                    object_pk=str(sent.pk)).order_by("timestamp", "pk")
    assert [entry.changes["status"] for entry in steps] == [
        ["SENT_TO_EXECUTION", "IN_EXECUTION"], ["IN_EXECUTION", "EXECUTED_IN_MARKET"],
    ]
    record = LogEntry.objects.filter(object_pk=str(job.pk)).order_by("timestamp", "pk").last()
    assert record.additional_data["rows_changed"] == "1" and record.additional_data["orders_filled"] == "1"


def test_a_bad_file_is_refused_whole_with_each_line_field_and_rule_and_nothing_changes(blotter_order):
    execution, etf, orders = blotter_order
    other = InstrumentFactory()
    before = state(*orders)
    job = run(csv_text(
        HEADER,
        (execution.pk, etf.isin, "BUY", "40", "10"),  # good on its own
        (execution.pk, etf.isin[:-1] + "X", "BUY", "1", "10"),  # no such ISIN
        (execution.pk, etf.isin, "HOLD", "1", "10"),  # side
        (execution.pk, etf.isin, "BUY", "70", "10"),  # 40 + 70 > the 100 open
        (execution.pk, other.isin, "BUY", "1", "10"),  # no order of it in execution
        (execution.pk, etf.isin, "BUY", "1", "0"),  # price
        ("nope", etf.isin, "BUY", "1.00000000001", "1"),  # execution id, units' places
    ))
    assert job.status == "FAILED" and job.rows == 7
    assert [(e["line"], e["field"]) for e in job.errors] == [
        (2, "instrument_id"), (3, "side"), (4, "units"), (5, "instrument_id"), (6, "price"), (7, "execution_id"),
        (7, "units"),
    ]
    messages = {e["line"]: e["message"] for e in job.errors}
    assert "more than the 60 units" in messages[4] and "still open" in messages[4]
    assert "must be greater than 0" in messages[6]
    assert state(*orders) == before  # nothing written, not even the good line


def test_orders_not_in_execution_take_no_fill(blotter_order):
    execution, etf, orders = blotter_order
    TradeOrder.objects.filter(pk=orders[0].pk).update(status="OPEN")
    job = run(csv_text(HEADER, (execution.pk, etf.isin, "BUY", "80", "10")))
    assert job.status == "FAILED"
    assert job.errors[0]["field"] == "units" and "more than the 70 units" in job.errors[0]["message"]


def test_a_currency_column_must_match_the_orders(blotter_order):
    execution, etf, orders = blotter_order
    job = run(csv_text(HEADER + ("currency",), (execution.pk, etf.isin, "BUY", "1", "10", "USD")))
    assert job.status == "FAILED"
    assert (job.errors[0]["field"], job.errors[0]["message"].endswith("are in EUR")) == ("currency", True)


@given(
    opens=st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=8),
    block=st.sampled_from([Decimal("1"), Decimal("0.01"), Decimal("5"), None]),
    fraction=st.fractions(min_value=0, max_value=1),
)
def test_shares_add_up_to_the_fill_and_none_exceeds_its_order(opens, block, fraction):
    opens = [Decimal(o) for o in opens]
    units = (sum(opens) * fraction.numerator / fraction.denominator).quantize(Decimal("0.0001"), rounding="ROUND_FLOOR")
    shares = fill_shares(opens, opens, units, block)
    assert sum(shares) == units
    assert all(0 <= share <= open_ for share, open_ in zip(shares, opens))
    if block is not None:  # only the largest orders carry the part that is not whole blocks
        assert sum(1 for share, open_ in zip(shares, opens) if share % block and share != open_) <= 1


def test_the_admin_takes_a_fills_xlsx_and_the_command_a_csv(admin_client, worker, blotter_order, tmp_path):
    from openpyxl import Workbook

    execution, etf, (a, b, c) = blotter_order
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(list(HEADER))
    sheet.append([str(execution.pk), etf.isin, "BUY", 50, 10.25])
    content = io.BytesIO()
    workbook.save(content)
    with worker():
        response = admin_client.post("/admin/imports/importjob/add/", {
            "kind": "FILLS", "mode": "APPLY", "match": "account_id", "tolerance": "0",
            "file": SimpleUploadedFile("fills.xlsx", content.getvalue()),
        })
    job = ImportJob.objects.get()
    assert response.status_code == 302 and job.status == "DONE" and job.kind == "FILLS"
    assert [s[1] for s in state(a, b, c)] == [Decimal("15"), Decimal("25"), Decimal("10")]

    path = tmp_path / "fills.csv"
    path.write_text(csv_text(HEADER, (execution.pk, etf.isin, "BUY", "51", "10")))
    with pytest.raises(CommandError, match="FAILED"):
        call_command("import_fills", str(path), stdout=io.StringIO())
    path.write_text(csv_text(HEADER, (execution.pk, etf.isin, "BUY", "50", "10")))
    out = io.StringIO()
    call_command("import_fills", str(path), stdout=out)
    assert "DONE" in out.getvalue()
    assert [s[0] for s in state(a, b, c)] == ["EXECUTED_IN_MARKET"] * 3


def test_fills_need_the_trade_order_permission(client, user_with_perms, blotter_order):
    client.force_login(user_with_perms("imports.add_importjob", "imports.view_importjob"))
    execution, etf, _ = blotter_order
    response = client.post("/admin/imports/importjob/add/", {
        "kind": "FILLS", "mode": "APPLY", "match": "account_id", "tolerance": "0",
        "file": SimpleUploadedFile("fills.csv", csv_text(HEADER, (execution.pk, etf.isin, "BUY", "1", "1")).encode()),
    })
    assert response.status_code == 403 and not ImportJob.objects.exists()


def test_a_fills_file_leaves_the_same_audit_entries_and_events_as_the_transitions_one_by_one(db):
    """The file's fills are written in bulk (trade_orders_fill); each move must leave what
    trade_order_transition leaves: the order's audit entry (changes and how the order
    read then) and its `trade_order.status_changed` event with the order as it was at
    that step; a portfolio order takes its status from its trade orders."""
    from webhooks.models import Event, Subscription  # noqa: PLC0415

    from rebalancing.models import PortfolioOrder  # noqa: PLC0415

    Subscription.objects.create(url="https://example.com/hook", event_types=["*"], secret="s")
    etf = InstrumentFactory(block_size=None)
    by_file, by_hand = (Execution.objects.create(rebalance_date=D) for _ in range(2))
    filed = order(by_file, etf, "10", status="SENT_TO_EXECUTION")
    handled = order(by_hand, etf, "10", status="SENT_TO_EXECUTION")
    parent = PortfolioOrder.objects.create(account=filed.account, side=Side.BUY, cash_amount=Decimal("100"),
                                           currency=etf.currency, status="OPEN")
    TradeOrder.objects.filter(pk=filed.pk).update(portfolio_order=parent)

    job = run(csv_text(HEADER, (by_file.pk, etf.isin, "BUY", "4", "9.5"), (by_file.pk, etf.isin, "BUY", "6", "10.25")))
    assert (job.status, job.rows_changed) == ("DONE", 2)
    handled.refresh_from_db()
    trade_order_transition(order=handled, status="IN_EXECUTION")
    trade_order_transition(order=handled, status="PARTIALLY_EXECUTED", executed_units=Decimal("4"),
                           executed_price=Decimal("9.5"))
    trade_order_transition(order=handled, status="EXECUTED_IN_MARKET", executed_units=Decimal("6"),
                           executed_price=Decimal("10.25"))
    assert state(filed) == state(handled) == [("EXECUTED_IN_MARKET", Decimal("10"), Decimal("99.5"))]

    def trail(trade_order):
        entries = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(TradeOrder),
                                          object_pk=str(trade_order.pk)).order_by("timestamp", "pk")
        return [(e.action, e.changes, re.sub(r"…[0-9a-f]+", "…ID", e.object_repr)) for e in entries]

    def sent(trade_order):
        found = [e.payload for e in Event.objects.filter(type="trade_order.status_changed")
                 if e.payload["order_id"] == str(trade_order.pk)]
        keep = ("previous_status", "status", "units", "executed_units", "executed_amount", "currency")
        return sorted(({k: p[k] for k in keep} for p in found), key=lambda p: p["executed_units"] + p["status"])

    assert len(trail(filed)) == 3 and trail(filed) == trail(handled)
    assert len(sent(filed)) == 3 and sent(filed) == sent(handled)
    parent.refresh_from_db()
    assert parent.status == "IN_PROGRESS"  # from its one trade order, refreshed once after the bulk write
    assert Event.objects.filter(type="portfolio_order.status_changed").count() == 1


def test_a_filled_order_reads_back_its_time_and_amounts_as_written(blotter_order):
    """The bulk write of a fills file (raw SQL) stores what the ORM reads back."""
    from django.utils import timezone  # noqa: PLC0415

    execution, etf, (a, b, c) = blotter_order
    before = timezone.now()
    assert run(csv_text(HEADER, (execution.pk, etf.isin, "BUY", "100", "10.125"))).status == "DONE"
    for o in (a, b, c):
        o.refresh_from_db()
        assert o.updated_at >= before and o.updated_at.tzinfo is not None
        assert o.executed_amount == o.units * Decimal("10.125")


def test_a_bad_line_of_one_aggregated_order_undoes_the_fills_of_the_others(db):
    """The aggregated orders are applied one after the other; a bad line in any of them
    (before or after the good ones, whatever their order) leaves every order as it was."""
    execution = Execution.objects.create(rebalance_date=D)
    first, second = InstrumentFactory(block_size=None), InstrumentFactory(block_size=None)
    good = [order(execution, first, "10"), order(execution, first, "5", status="SENT_TO_EXECUTION")]
    other = order(execution, second, "4")
    before = state(*good, other)
    job = run(csv_text(HEADER, (execution.pk, first.isin, "BUY", "15", "10"), (execution.pk, second.isin, "BUY", "5", "10"),
                       (execution.pk, first.isin, "BUY", "1", "10")))
    assert job.status == "FAILED"
    assert [(e["line"], e["field"]) for e in job.errors] == [(2, "units"), (3, "units")]
    assert state(*good, other) == before
    assert not LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(TradeOrder)).exists()


def test_orders_of_one_aggregated_order_in_two_currencies_are_filled_by_currency(db):
    """docs/imports.md: orders of one execution, instrument and side in several
    currencies need the currency column, and a line then fills those of its currency."""
    execution = Execution.objects.create(rebalance_date=D)
    etf = InstrumentFactory(block_size=None, currency="EUR")
    euro = order(execution, etf, "10")
    dollar = order(execution, etf, "4")
    TradeOrder.objects.filter(pk=dollar.pk).update(currency="USD")
    refused = run(csv_text(HEADER, (execution.pk, etf.isin, "BUY", "4", "10")))
    assert [(e["line"], e["field"]) for e in refused.errors] == [(1, "currency")]
    assert "name one in the currency column" in refused.errors[0]["message"]
    job = run(csv_text(HEADER + ("currency",), (execution.pk, etf.isin, "BUY", "4", "11", "USD"),
                       (execution.pk, etf.isin, "BUY", "6", "10", "EUR")))
    assert job.status == "DONE", job.errors
    assert state(euro, dollar) == [("PARTIALLY_EXECUTED", Decimal("6"), Decimal("60")),
                                   ("EXECUTED_IN_MARKET", Decimal("4"), Decimal("44"))]
