"""The trade-order admin: list, filters, search, transitions through
trade_orders_transition, CSV export (selected and filtered) and the blotter."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rebalancing.models import Execution, ExecutionStatus, Side, TradeOrder, TradeOrderStatus
from rebalancing.selectors import orders as selectors_orders
from tests.factories import AccountFactory, InstrumentFactory

from .conftest import D, csv_lines, messages_of, url

pytestmark = pytest.mark.django_db
CHANGELIST = url("tradeorder", "changelist")
S = TradeOrderStatus


@pytest.fixture
def book(instruments, make_order):
    """Two accounts, one execution; the OPEN orders' blotter is worked out by hand in
    test_the_blotter_sums_the_open_orders."""
    a, b, c = instruments
    x, y = AccountFactory(client_id="CL-X"), AccountFactory(client_id="CL-Y")
    execution = Execution.objects.create(status=ExecutionStatus.COMPLETED, rebalance_date=D, total=2, done=2)
    orders = {
        "x_buy_a": make_order(x, a, Side.BUY, units="10", unit_price="10", execution=execution),
        "y_buy_a": make_order(y, a, Side.BUY, units="2.5", unit_price="10", execution=execution),
        "x_sell_b": make_order(x, b, Side.SELL, units="5", unit_price="20"),
        "y_sell_a": make_order(y, a, Side.SELL, units="1", unit_price="10", transaction_type="SELL_ALL"),
        "x_buy_c": make_order(x, c, Side.BUY, units="3", unit_price="33.3333", trade_amount="99.9999"),
        "y_buy_a_accepted": make_order(y, a, Side.BUY, units="4", unit_price="10", status=S.ACCEPTED),
    }
    return {"orders": orders, "execution": execution, "x": x, "y": y, "instruments": instruments}


def listed(response) -> set:
    assert response.status_code == 200, response.status_code
    return {order.pk for order in response.context["cl"].result_list}


def test_the_changelist_shows_every_column(admin_client, book):
    a = book["instruments"][0]
    order = book["orders"]["y_buy_a"]
    response = admin_client.get(CHANGELIST)
    assert listed(response) == {o.pk for o in book["orders"].values()}
    content = response.content.decode()
    assert "CL-X" in content and "CL-Y" in content
    assert f"{a.isin} Alpha ETF" in content and "Gamma Fund" in content
    assert '<td class="field-units_text">2.5</td>' in content
    assert '<td class="field-trade_amount_text">100.00</td>' in content  # USD to the cent
    assert url("execution", "change", order.execution_id) in content
    assert "SELL_ALL" in content and "NET_TRADE_AMOUNT" in content and "USD" in content
    assert response.context["cl"].show_full_result_count is False
    # Every transition of the flow has its action; REPLACED (a rebalance's own) and
    # PARTIALLY_EXECUTED (needs the fill's units) have none.
    actions = {name for name, _ in response.context["action_form"].fields["action"].choices}
    assert {f"move_to_{s.lower()}" for s in (
        "ACCEPTED", "EXECUTABLE", "SENT_TO_EXECUTION", "IN_EXECUTION", "EXECUTED_IN_MARKET", "SETTLED_IN_MARKET",
        "SETTLED", "CANCELLED", "REJECTED",
    )} | {"export_selected"} <= actions
    assert "move_to_replaced" not in actions and "move_to_partially_executed" not in actions
    assert url("tradeorder", "export") + "?" in content and url("tradeorder", "blotter") + "?" in content


def test_filters(admin_client, book):
    orders, execution, x = book["orders"], book["execution"], book["x"]
    a = book["instruments"][0]
    assert listed(admin_client.get(CHANGELIST + f"?execution__id__exact={execution.pk}")) == {
        orders["x_buy_a"].pk, orders["y_buy_a"].pk
    }
    response = admin_client.get(CHANGELIST + f"?account__id__exact={x.pk}")
    assert listed(response) == {orders["x_buy_a"].pk, orders["x_sell_b"].pk, orders["x_buy_c"].pk}
    assert f'<option value="{x.pk}" selected>{x}</option>' in response.content.decode()  # the autocomplete's choice
    assert listed(admin_client.get(CHANGELIST + f"?instrument__id__exact={a.pk}&side__exact=BUY")) == {
        orders["x_buy_a"].pk, orders["y_buy_a"].pk, orders["y_buy_a_accepted"].pk
    }
    assert listed(admin_client.get(CHANGELIST + "?status__exact=ACCEPTED")) == {orders["y_buy_a_accepted"].pk}
    response = admin_client.get(CHANGELIST)
    (dates,) = [spec for spec in response.context["cl"].filter_specs if getattr(spec, "field_path", "") == "created_at"]
    today = next(c for c in dates.choices(response.context["cl"]) if c["display"] == "Today")
    assert len(listed(admin_client.get(CHANGELIST + today["query_string"]))) == 6
    assert admin_client.get(CHANGELIST + "?execution__id__exact=nonsense").url == CHANGELIST + "?e=1"


def test_the_autocomplete_filter_finds_accounts(admin_client, book):
    response = admin_client.get(
        "/admin/autocomplete/", {"app_label": "rebalancing", "model_name": "tradeorder", "field_name": "account", "term": "CL-X"}
    )
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == [str(book["x"].pk)]


def test_search_by_client_id_isin_or_order_id(admin_client, book):
    orders = book["orders"]
    a, b, _ = book["instruments"]
    assert listed(admin_client.get(CHANGELIST, {"q": "CL-Y"})) == {
        orders["y_buy_a"].pk, orders["y_sell_a"].pk, orders["y_buy_a_accepted"].pk
    }
    assert listed(admin_client.get(CHANGELIST, {"q": b.isin.lower()})) == {orders["x_sell_b"].pk}
    assert listed(admin_client.get(CHANGELIST, {"q": str(orders["x_buy_c"].pk)})) == {orders["x_buy_c"].pk}
    assert listed(admin_client.get(CHANGELIST, {"q": "CL-"})) == set()  # exact client ids only


def test_the_detail_page_is_read_only(admin_client, book):
    order = book["orders"]["y_buy_a_accepted"]
    response = admin_client.get(url("tradeorder", "change", order.pk))
    assert response.status_code == 200
    content = response.content.decode()
    assert "EXECUTABLE, CANCELLED, REJECTED" in content  # where it may go next
    assert 'name="_save"' not in content
    assert admin_client.get(url("tradeorder", "add")).status_code == 403


def run(client, action, orders, **extra):
    return client.post(
        CHANGELIST, {"action": action, "_selected_action": [str(o.pk) for o in orders], "index": "0", **extra},
        follow=True,
    )


def test_a_transition_moves_the_allowed_orders_and_reports_each_refusal(admin_client, book):
    orders = book["orders"]
    chosen = [orders["x_buy_a"], orders["y_buy_a"], orders["y_buy_a_accepted"]]
    response = run(admin_client, "move_to_accepted", chosen)
    statuses = dict(TradeOrder.objects.filter(pk__in=[o.pk for o in chosen]).values_list("pk", "status"))
    assert statuses == {orders["x_buy_a"].pk: S.ACCEPTED, orders["y_buy_a"].pk: S.ACCEPTED,
                        orders["y_buy_a_accepted"].pk: S.ACCEPTED}
    texts = messages_of(response)
    assert "Moved 2 trade orders to ACCEPTED." in texts
    (refusal,) = [t for t in texts if t.startswith("Refused")]
    assert str(orders["y_buy_a_accepted"].pk) in refusal and "cannot go from ACCEPTED to ACCEPTED" in refusal

    response = run(admin_client, "move_to_cancelled", [orders["x_buy_a"], orders["x_sell_b"]])
    assert set(TradeOrder.objects.filter(pk__in=[orders["x_buy_a"].pk, orders["x_sell_b"].pk])
               .values_list("status", flat=True)) == {S.CANCELLED}
    assert "Moved 2 trade orders to CANCELLED." in messages_of(response)

    response = run(admin_client, "move_to_executable", [orders["x_buy_a"]])  # CANCELLED is final
    assert TradeOrder.objects.get(pk=orders["x_buy_a"].pk).status == S.CANCELLED
    assert [t for t in messages_of(response) if "CANCELLED is final" in t or "nothing" in t]


def test_transitions_need_the_change_permission(client, book, user_with_perms):
    order = book["orders"]["x_buy_a"]
    client.force_login(user_with_perms("rebalancing.view_tradeorder"))
    response = client.get(CHANGELIST)
    actions = {name for name, _ in response.context["action_form"].fields["action"].choices}
    assert "export_selected" in actions and not any(name.startswith("move_to_") for name in actions)
    run(client, "move_to_accepted", [order])
    assert TradeOrder.objects.get(pk=order.pk).status == S.OPEN

    client.force_login(user_with_perms("rebalancing.view_tradeorder", "rebalancing.change_tradeorder", username="desk"))
    run(client, "move_to_accepted", [order])
    assert TradeOrder.objects.get(pk=order.pk).status == S.ACCEPTED


def test_export_selected_as_csv(admin_client, book):
    orders = book["orders"]
    chosen = orders["y_buy_a"]
    response = admin_client.post(
        CHANGELIST, {"action": "export_selected", "_selected_action": [str(chosen.pk), str(orders["x_buy_c"].pk)],
                     "index": "0"},
    )
    assert 'attachment; filename="trade-orders-' in response["Content-Disposition"]
    header, *rows = csv_lines(response)
    assert tuple(header) == selectors_orders.TRADE_ORDER_HEADER
    assert len(rows) == 2
    row = dict(zip(header, next(r for r in rows if r[0] == str(chosen.pk))))
    a = book["instruments"][0]
    assert row == {
        "order_id": str(chosen.pk), "created_at": chosen.created_at.isoformat(), "account_id": str(book["y"].pk),
        "client_id": "CL-Y", "instrument_id": str(a.pk), "isin": a.isin, "instrument_name": "Alpha ETF",
        "side": "BUY", "transaction_type": "BUY", "units": "2.5", "unit_price": "10", "trade_amount": "25",
        "currency": "EUR", "execution_method": "NET_TRADE_AMOUNT", "status": "OPEN", "executed_units": "0",
        "executed_amount": "0", "execution_id": str(book["execution"].pk), "portfolio_order_id": "",
        "cash_account_id": "", "counter_cash_account_id": "",
    }
    gamma = dict(zip(header, next(r for r in rows if r[0] == str(orders["x_buy_c"].pk))))
    assert (gamma["isin"], gamma["currency"], gamma["unit_price"], gamma["trade_amount"], gamma["execution_id"]) == (
        "", "USD", "33.3333", "99.9999", ""
    )


def test_export_all_filtered_streams_the_filter(admin_client, book):
    orders = book["orders"]
    response = admin_client.get(url("tradeorder", "export") + "?status__exact=OPEN&side__exact=SELL")
    assert response.streaming
    header, *rows = csv_lines(response)
    assert {row[0] for row in rows} == {str(orders["x_sell_b"].pk), str(orders["y_sell_a"].pk)}
    _, *everything = csv_lines(admin_client.get(url("tradeorder", "export")))
    assert len(everything) == 6
    _, *found = csv_lines(admin_client.get(url("tradeorder", "export") + "?q=CL-X&o=5"))
    assert {row[0] for row in found} == {str(orders[k].pk) for k in ("x_buy_a", "x_sell_b", "x_buy_c")}
    assert admin_client.get(url("tradeorder", "export") + "?nonsense=1").url == CHANGELIST + "?e=1"


def test_exports_need_the_view_permission(client, book, user_with_perms):
    client.force_login(user_with_perms("rebalancing.view_execution"))
    for view in ("export", "blotter", "blotter_csv"):
        assert client.get(url("tradeorder", view) + "?status__exact=OPEN").status_code == 403, view


def test_a_formula_in_free_text_is_defused(admin_client, instruments, make_order):
    make_order(AccountFactory(client_id="=HYPERLINK(1)"), instruments[0])
    header, row = csv_lines(admin_client.get(url("tradeorder", "export")))
    assert dict(zip(header, row))["client_id"] == "'=HYPERLINK(1)"


def test_the_blotter_sums_the_open_orders(admin_client, book):
    a, b, c = book["instruments"]
    response = admin_client.get(url("tradeorder", "blotter"))
    assert response.status_code == 302 and response.url == url("tradeorder", "blotter") + "?status__exact=OPEN"
    response = admin_client.get(response.url)
    assert response.status_code == 200
    rows = [
        (r["instrument_id"], r["side"], r["currency"], r["orders"], r["units"], r["trade_amount"])
        for r in response.context["rows"]
    ]
    assert rows == [  # by ISIN (none last), side, currency; the ACCEPTED buy of A is not OPEN
        (a.pk, "BUY", "EUR", 2, "12.5", "125.00"),
        (a.pk, "SELL", "EUR", 1, "1", "10.00"),
        (b.pk, "SELL", "EUR", 1, "5", "100.00"),
        (c.pk, "BUY", "USD", 1, "3", "100.00"),
    ]
    assert [(t["currency"], t["side"], t["orders"], t["trade_amount"]) for t in response.context["totals"]] == [
        ("EUR", "BUY", 2, "125.00"), ("EUR", "SELL", 2, "110.00"), ("USD", "BUY", 1, "100.00"),
    ]
    content = response.content.decode()
    assert "status: OPEN" in content
    assert url("tradeorder", "blotter_csv") + "?status__exact=OPEN" in content

    header, *lines = csv_lines(admin_client.get(url("tradeorder", "blotter_csv") + "?status__exact=OPEN"))
    assert tuple(header) == selectors_orders.BLOTTER_HEADER
    assert lines == [
        [a.isin, "Alpha ETF", str(a.pk), "BUY", "EUR", "2", "12.5", "125"],
        [a.isin, "Alpha ETF", str(a.pk), "SELL", "EUR", "1", "1", "10"],
        [b.isin, "Beta ETF", str(b.pk), "SELL", "EUR", "1", "5", "100"],
        ["", "Gamma Fund", str(c.pk), "BUY", "USD", "1", "3", "99.9999"],
    ]
    default = admin_client.get(url("tradeorder", "blotter_csv"))
    assert default.url == url("tradeorder", "blotter_csv") + "?status__exact=OPEN"


def test_the_blotter_follows_the_changelist_filter(admin_client, book):
    a = book["instruments"][0]
    response = admin_client.get(url("tradeorder", "blotter") + f"?execution__id__exact={book['execution'].pk}")
    assert [(r["instrument_id"], r["side"], r["orders"], r["units"], r["trade_amount"]) for r in response.context["rows"]] == [
        (a.pk, "BUY", 2, "12.5", "125.00")
    ]
    # Every status of A's buys, when the filter names no status.
    response = admin_client.get(url("tradeorder", "blotter") + f"?instrument__id__exact={a.pk}&side__exact=BUY")
    assert [(r["orders"], r["units"], r["trade_amount"]) for r in response.context["rows"]] == [(3, "16.5", "165.00")]
    drill = response.context["rows"][0]["url"]
    assert listed(admin_client.get(drill)) == {
        book["orders"][k].pk for k in ("x_buy_a", "y_buy_a", "y_buy_a_accepted")
    }


def test_the_blotter_selector_is_one_query(book, django_assert_num_queries):
    with django_assert_num_queries(1):
        rows = selectors_orders.trade_order_blotter(TradeOrder.objects.filter(status=S.OPEN))
    assert sum(row.orders for row in rows) == 5
    assert sum(row.units for row in rows) == Decimal("21.5")


def _queries(client, path) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured)


def test_the_changelist_query_count_does_not_grow_with_the_rows(admin_client, instruments, make_order, book):
    TradeOrder.objects.all().delete()
    extra = [InstrumentFactory() for _ in range(3)]
    pool = [*instruments, *extra]

    def add(count):
        for i in range(count):
            make_order(AccountFactory(), pool[i % len(pool)], execution=book["execution"] if i % 2 else None)

    add(10)
    paths = [CHANGELIST, CHANGELIST + f"?execution__id__exact={book['execution'].pk}&status__exact=OPEN"]
    ten = [_queries(admin_client, p) for p in paths]
    add(90)
    assert TradeOrder.objects.count() == 100
    assert [_queries(admin_client, p) for p in paths] == ten


def test_fx_and_withdrawal_orders_are_filterable_and_fx_groups_by_currency_pair(admin_client, book):
    from portfolios.models import Instrument, InstrumentType
    from rebalancing.models import TradeOrder

    usd = Instrument.objects.create(name="USD", type=InstrumentType.CASH, currency="USD")
    eur = Instrument.objects.create(name="EUR", type=InstrumentType.CASH, currency="EUR")
    common = {"execution_method": "UNITS", "status": "OPEN", "side": "BUY"}
    for account, units in ((book["x"], "1100"), (book["y"], "220")):
        TradeOrder.objects.create(account=account, instrument=usd, transaction_type="FX", units=units,
                                  unit_price="0.9090909091", trade_amount=str(int(units) * 10 // 11), currency="EUR",
                                  **common)  # fmt: skip
    withdrawal = TradeOrder.objects.create(account=book["x"], instrument=eur, transaction_type="WITHDRAWAL",
                                           units="50", unit_price="1", trade_amount="50", currency="EUR",
                                           **{**common, "side": "SELL"})  # fmt: skip
    assert listed(admin_client.get(CHANGELIST + "?transaction_type=FX")) == set(
        TradeOrder.objects.filter(transaction_type="FX").values_list("pk", flat=True)
    )
    assert listed(admin_client.get(CHANGELIST + "?transaction_type=WITHDRAWAL")) == {withdrawal.pk}
    rows = selectors_orders.trade_order_blotter(TradeOrder.objects.filter(transaction_type="FX"))
    assert [(r.name, r.side, r.currency, r.orders, r.units, r.trade_amount) for r in rows] == [
        ("FX USD/EUR", "BUY", "EUR", 2, Decimal("1320"), Decimal("1200"))
    ]


def test_the_changelist_counts_only_up_to_a_cap(admin_client, book, monkeypatch):
    """No COUNT(*) of the whole table on a page: the rows are counted up to the page's
    end plus COUNT_AHEAD (0 here, 2 rows a page); beyond, the list says "more than"."""
    from rebalancing.admin.orders import TradeOrderAdmin

    monkeypatch.setattr("core.counting.COUNT_AHEAD", 0)
    monkeypatch.setattr(TradeOrderAdmin, "list_per_page", 2)
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(CHANGELIST)
    assert len(listed(response)) == 2
    assert "more than 2 trade orders" in response.content.decode()
    [count] = [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]
    assert "LIMIT 3" in count.upper()
    response = admin_client.get(CHANGELIST + "?p=2")
    assert len(listed(response)) == 2 and "more than 4 trade orders" in response.content.decode()
    response = admin_client.get(CHANGELIST + "?p=3")
    assert len(listed(response)) == 2 and "6 trade orders" in response.content.decode()
    assert "more than" not in response.content.decode()


@pytest.mark.parametrize("query", ["", "?o=-5", "?status__exact=OPEN", "?o=1.-13"])
def test_the_list_rows_are_djangos_own_cells(admin_client, book, query):
    """The rows rendered in one piece (FastRowsChangeList) are cell for cell what Django's
    items_for_result renders: links, classes, formatted values, checkboxes."""
    from django.contrib.admin.templatetags.admin_list import items_for_result

    from rebalancing.admin.common import fast_rows

    response = admin_client.get(CHANGELIST + query)
    changelist = response.context["cl"]
    assert len(changelist.result_list) > 0
    django_rows = ["".join(items_for_result(changelist, row, None)) for row in changelist.result_list]
    assert list(fast_rows(changelist)) == django_rows
    # … and those rows are what the page shows.
    content = response.content.decode()
    assert all(row in content for row in django_rows)


def test_units_and_amounts_sort_only_within_an_execution_or_account(admin_client, book):
    """No index orders the whole table by units or amount: the headers offer those sorts
    only when the list is narrowed to one execution or account."""
    headers = {h["text"]: h["sortable"] for h in _headers(admin_client.get(CHANGELIST))}
    assert headers["trade amount"] is False and headers["created at"] is True
    execution = book["execution"]
    response = admin_client.get(CHANGELIST + f"?execution__id__exact={execution.pk}")
    assert {h["text"]: h["sortable"] for h in _headers(response)}["trade amount"] is True
    # A typed sort by amount over the whole list is ignored (the default order stays).
    amount = list(response.context["cl"].list_display).index("trade_amount_text")
    unsorted = admin_client.get(CHANGELIST)
    typed = admin_client.get(CHANGELIST + f"?o={amount}")
    assert [o.pk for o in typed.context["cl"].result_list] == [o.pk for o in unsorted.context["cl"].result_list]
    sorted_within = admin_client.get(CHANGELIST + f"?execution__id__exact={execution.pk}&o={amount}")
    amounts = [o.trade_amount for o in sorted_within.context["cl"].result_list]
    assert amounts == sorted(amounts) and len(amounts) == 2


def _headers(response):
    from django.contrib.admin.templatetags.admin_list import result_headers

    return list(result_headers(response.context["cl"]))
