"""GET/PUT /api/v1/rebalancing/preferences/ (the global defaults) and
GET/PUT /api/v1/portfolios/accounts/{account_id}/preferences/ (overrides)."""

import uuid
from decimal import Decimal

import pytest

from rebalancing.models import RebalancePreferences
from tests.factories import AccountFactory

from .conftest import error_fields, message_for, problem

GLOBAL = "/api/v1/rebalancing/preferences/"

BUILT_IN = {
    "cash_range_min": None,
    "cash_range_max": None,
    "negative_cash_buffer_pct": "0",
    "negative_cash_buffer_amount": "0",
    "positive_cash_buffer_pct": "0",
    "positive_cash_buffer_amount": "0",
    "order_basis": "TRADE_AMOUNT",
    "cash_from_sells_pct": "100",
    "min_trade_amount": "0",
    "filter_by_min_max": False,
    "sell_all_transaction_type": "SELL_ALL",
    "available_cash": "ALL_ACCOUNTS",
    "price_source": "default",
    "default_decimals": {"EQUITY": 0, "ETF": 0, "FUND": 3, "BOND": 0, "CRYPTO": 8, "FUTURE": 0, "CASH": 2},
    "futures_fee_pct": "0",
    "restricted_weight_to": "CASH",
    "fx_mode": "AUTO",
    "fx_repatriate": False,
    "use_price_connector": False,
    "lot_method": "FIFO",
    "long_term_days": 365,
    "tax_aware": False,
    "max_realized_gain": None,
    "avoid_short_term_gains": False,
    "sell_removed_lines_regardless": True,
    "harvest_losses": False,
    "harvest_min_loss_pct": "5",
    "harvest_min_loss_amount": "100",
    "wash_sale_days": 30,
}
# The global preferences also show the approval thresholds of executions (none by default).
GLOBAL_BUILT_IN = BUILT_IN | {"approval_gross_amount": None, "approval_order_count": None, "approval_currency": "EUR"}


def account_url(account) -> str:
    return f"/api/v1/portfolios/accounts/{getattr(account, 'pk', account)}/preferences/"


def ok(response) -> dict:
    assert response.status_code == 200, response.content[:2000]
    return response.json()


# --- Global defaults ------------------------------------------------------------------

def test_get_shows_the_built_in_defaults(api_client, db):
    assert ok(api_client.get(GLOBAL)) == {"preferences": GLOBAL_BUILT_IN}
    assert not RebalancePreferences.objects.exists()


def test_put_replaces_the_global_defaults(api_client, db):
    body = ok(api_client.put(
        GLOBAL,
        {"min_trade_amount": "25.50", "cash_from_sells_pct": "80", "order_basis": "UNITS", "filter_by_min_max": True,
         "cash_range_min": "-100", "cash_range_max": "250", "default_decimals": {"FUND": 2}},
        format="json",
    ))
    assert body["preferences"] == GLOBAL_BUILT_IN | {
        "min_trade_amount": "25.5", "cash_from_sells_pct": "80", "order_basis": "UNITS", "filter_by_min_max": True,
        "cash_range_min": "-100", "cash_range_max": "250", "default_decimals": BUILT_IN["default_decimals"] | {"FUND": 2},
    }
    assert ok(api_client.get(GLOBAL)) == body
    row = RebalancePreferences.objects.get(is_global=True)
    assert row.min_trade_amount == Decimal("25.5") and row.updated_by.username == "admin"

    # A full replacement: what is left out goes back to the built-in default.
    assert ok(api_client.put(GLOBAL, {"available_cash": "DEFAULT_ACCOUNT_ONLY"}, format="json")) == {
        "preferences": GLOBAL_BUILT_IN | {"available_cash": "DEFAULT_ACCOUNT_ONLY"}
    }
    assert ok(api_client.put(GLOBAL, {}, format="json")) == {"preferences": GLOBAL_BUILT_IN}
    assert RebalancePreferences.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"cash_from_sells_pct": 150}, "cash_from_sells_pct"),
        ({"min_trade_amount": "-1"}, "min_trade_amount"),
        ({"cash_range_min": "10", "cash_range_max": "5"}, "cash_range_max"),
        ({"negative_cash_buffer_pct": "-0.5"}, "negative_cash_buffer_pct"),
        ({"min_trade_amount": "0.000000001"}, "min_trade_amount"),
        ({"order_basis": "SHARES"}, "order_basis"),
        ({"available_cash": "SOME"}, "available_cash"),
        ({"filter_by_min_max": "perhaps"}, "filter_by_min_max"),
        ({"sell_all_transaction_type": ""}, "sell_all_transaction_type"),
        ({"default_decimals": {"SHARES": 2}}, "default_decimals.SHARES"),
        ({"default_decimals": {"FUND": 12}}, "default_decimals.FUND"),
        ({"default_decimals": [3]}, "default_decimals"),
        ({"min_trade_amount": "5", "cash_minimum": "3"}, "cash_minimum"),
    ],
)
def test_invalid_values_are_named_and_change_nothing(api_client, db, payload, field):
    ok(api_client.put(GLOBAL, {"min_trade_amount": "7"}, format="json"))
    account = AccountFactory()
    ok(api_client.put(account_url(account), {"cash_from_sells_pct": "90"}, format="json"))
    before = list(RebalancePreferences.objects.order_by("pk").values())

    for url in (GLOBAL, account_url(account)):
        body = problem(api_client.put(url, payload, format="json"), 400)
        assert field in error_fields(body), body
    assert list(RebalancePreferences.objects.order_by("pk").values()) == before


def test_unknown_field_message(api_client, db):
    body = problem(api_client.put(GLOBAL, {"min_trade": "5"}, format="json"), 400)
    assert message_for(body, "min_trade") == "is not a preference field"


def test_global_permissions(client_for, user_with_perms, db):
    viewer = client_for(user_with_perms("rebalancing.view_rebalancepreferences", username="viewer"))
    assert ok(viewer.get(GLOBAL)) == {"preferences": GLOBAL_BUILT_IN}
    problem(viewer.put(GLOBAL, {"min_trade_amount": "5"}, format="json"), 403)
    editor = client_for(user_with_perms(
        "rebalancing.view_rebalancepreferences", "rebalancing.change_rebalancepreferences", username="editor"
    ))
    assert ok(editor.put(GLOBAL, {"min_trade_amount": "5"}, format="json"))["preferences"]["min_trade_amount"] == "5"
    stranger = client_for(user_with_perms("portfolios.view_portfolioaccount", username="stranger"))
    problem(stranger.get(GLOBAL), 403)


# --- Account overrides ----------------------------------------------------------------

def test_account_inherits_the_global_defaults(api_client, db):
    account = AccountFactory()
    ok(api_client.put(GLOBAL, {"min_trade_amount": "20"}, format="json"))
    assert ok(api_client.get(account_url(account))) == {
        "account_id": str(account.pk), "preferences": BUILT_IN | {"min_trade_amount": "20"}, "overridden": [],
    }


def test_account_overrides_are_marked_and_replaced_as_a_set(api_client, db):
    account, other = AccountFactory(), AccountFactory()
    ok(api_client.put(GLOBAL, {"min_trade_amount": "20", "cash_from_sells_pct": "90"}, format="json"))

    body = ok(api_client.put(
        account_url(account), {"cash_from_sells_pct": "80", "available_cash": "CASH_ACCOUNTS_ONLY"}, format="json"
    ))
    expected = {
        "account_id": str(account.pk),
        "preferences": BUILT_IN | {"min_trade_amount": "20", "cash_from_sells_pct": "80", "available_cash": "CASH_ACCOUNTS_ONLY"},
        "overridden": ["cash_from_sells_pct", "available_cash"],
    }
    assert body == expected
    assert ok(api_client.get(account_url(account))) == expected
    # Another account and the global defaults are untouched.
    assert ok(api_client.get(account_url(other)))["overridden"] == []
    assert ok(api_client.get(GLOBAL))["preferences"]["cash_from_sells_pct"] == "90"

    # The global defaults still show through the fields the account does not override.
    ok(api_client.put(GLOBAL, {"min_trade_amount": "30"}, format="json"))
    body = ok(api_client.get(account_url(account)))
    assert body["preferences"]["min_trade_amount"] == "30"
    assert body["preferences"]["cash_from_sells_pct"] == "80"

    # A PUT replaces the whole override set; a null field inherits.
    body = ok(api_client.put(account_url(account), {"min_trade_amount": "0", "cash_range_max": None}, format="json"))
    assert body["overridden"] == ["min_trade_amount"]
    assert body["preferences"]["min_trade_amount"] == "0"
    assert body["preferences"]["available_cash"] == "ALL_ACCOUNTS"

    # {} clears every override.
    assert ok(api_client.put(account_url(account), {}, format="json")) == {
        "account_id": str(account.pk), "preferences": BUILT_IN | {"min_trade_amount": "30"}, "overridden": [],
    }


def test_unknown_account_is_a_404(api_client, db):
    problem(api_client.get(account_url(uuid.uuid4())), 404)
    problem(api_client.put(account_url(uuid.uuid4()), {}, format="json"), 404)
    problem(api_client.get(account_url("not-a-uuid")), 404)
    assert not RebalancePreferences.objects.exists()


def test_account_permissions(client_for, user_with_perms, db):
    account = AccountFactory()
    viewer = client_for(user_with_perms(
        "portfolios.view_portfolioaccount", "rebalancing.view_rebalancepreferences", username="viewer"
    ))
    assert ok(viewer.get(account_url(account)))["overridden"] == []
    problem(viewer.put(account_url(account), {"min_trade_amount": "5"}, format="json"), 403)
    editor = client_for(user_with_perms(
        "portfolios.view_portfolioaccount", "rebalancing.change_rebalancepreferences", username="editor"
    ))
    assert ok(editor.put(account_url(account), {"min_trade_amount": "5"}, format="json"))["overridden"] == [
        "min_trade_amount"
    ]
    no_account_view = client_for(user_with_perms("rebalancing.view_rebalancepreferences", username="blind"))
    problem(no_account_view.get(account_url(account)), 403)
