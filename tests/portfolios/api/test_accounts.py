from datetime import date
from decimal import Decimal

import pytest

from portfolios.models import AccountStatus, AccountType, CashAccount, PortfolioAccount, Position
from tests.factories import (
    AccountFactory,
    CashAccountFactory,
    FxRateFactory,
    InstrumentFactory,
    PositionFactory,
    PriceFactory,
    make_allocation,
    make_configuration,
)

from .conftest import error_fields, message_for, problem

URL = "/api/v1/portfolios/accounts/"
UNKNOWN = "0b5f2b8e-8f5e-4c39-9d0e-3f4f0c2d9a11"


def detail_url(account_id) -> str:
    return f"{URL}{account_id}/"


def holdings_url(account_id) -> str:
    return f"{URL}{account_id}/holdings/"


# --- Create, read, change --------------------------------------------------------------

def test_create_with_defaults(api_client, db):
    response = api_client.post(URL, {"client_id": "CL-1", "base_currency": "EUR"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {
        "account_id", "client_id", "account_type", "base_currency", "status", "parent_id", "locked",
        "allocation_id", "created_at", "updated_at", "restriction_list_ids",
    }
    assert (body["account_type"], body["status"], body["locked"]) == ("PORTFOLIO", "ACTIVE", False)
    assert body["parent_id"] is None and body["allocation_id"] is None and body["restriction_list_ids"] == []
    assert PortfolioAccount.objects.get(pk=body["account_id"]).client_id == "CL-1"


def test_create_sub_portfolio(api_client, db):
    parent = AccountFactory()
    response = api_client.post(
        URL,
        {"client_id": "CL-2", "base_currency": "USD", "account_type": "CUSTODY", "status": "PENDING",
         "parent_id": str(parent.pk), "locked": True},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["account_type"], body["status"], body["locked"], body["parent_id"]) == (
        "CUSTODY", "PENDING", True, str(parent.pk)
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"base_currency": "EUR"}, "client_id"),
        ({"client_id": "CL", "base_currency": "EURO"}, "base_currency"),
        ({"client_id": "CL", "base_currency": "XYZ"}, "base_currency"),
        ({"client_id": "CL", "base_currency": "EUR", "status": "OPEN"}, "status"),
        ({"client_id": "CL", "base_currency": "EUR", "account_type": "SAVINGS"}, "account_type"),
        ({"client_id": "CL", "base_currency": "EUR", "parent_id": UNKNOWN}, "parent_id"),
        ({"client_id": "CL", "base_currency": "EUR", "locked": "maybe"}, "locked"),
    ],
)
def test_create_refused(api_client, db, payload, field):
    body = problem(api_client.post(URL, payload, format="json"), 400)
    assert field in error_fields(body)
    assert PortfolioAccount.objects.count() == 0


def test_sub_portfolios_are_one_level_deep(api_client, db):
    parent = AccountFactory()
    child = AccountFactory(parent=parent)
    body = problem(api_client.post(URL, {"client_id": "CL", "base_currency": "EUR", "parent_id": str(child.pk)},
                                   format="json"), 400)
    assert "one level deep" in message_for(body, "parent_id")


def test_get_one_shows_the_configured_allocation(api_client, db):
    configuration = make_configuration()
    body = api_client.get(detail_url(configuration.account_id)).json()
    assert body["allocation_id"] == str(configuration.allocation_id)


def test_get_unknown_is_404(api_client, db):
    problem(api_client.get(detail_url(UNKNOWN)), 404)


def test_patch_status_locked_parent(api_client, db):
    account = AccountFactory()
    parent = AccountFactory()
    response = api_client.patch(detail_url(account.pk),
                                {"status": "PENDING", "locked": True, "parent_id": str(parent.pk)}, format="json")
    assert response.status_code == 200, response.json()
    account.refresh_from_db()
    assert (account.status, account.locked, account.parent_id) == ("PENDING", True, parent.pk)
    response = api_client.patch(detail_url(account.pk), {"parent_id": None}, format="json")
    assert response.json()["parent_id"] is None
    assert response.json()["locked"] is True  # untouched by a PATCH that does not name it


@pytest.mark.parametrize("field", ["client_id", "base_currency", "account_type", "account_id", "whatever"])
def test_patch_other_fields_is_400(api_client, db, field):
    account = AccountFactory()
    body = problem(api_client.patch(detail_url(account.pk), {field: "X", "locked": True}, format="json"), 400)
    assert field in error_fields(body)
    account.refresh_from_db()
    assert account.locked is False


def test_patch_closed_account_cannot_reopen(api_client, db):
    account = AccountFactory(status=AccountStatus.CLOSED)
    body = problem(api_client.patch(detail_url(account.pk), {"status": "ACTIVE"}, format="json"), 422)
    assert "status" in error_fields(body)


def test_patch_unknown_is_404(api_client, db):
    problem(api_client.patch(detail_url(UNKNOWN), {"locked": True}, format="json"), 404)


# --- List ------------------------------------------------------------------------------

def test_list_filters(api_client, db):
    configured = make_configuration(account=AccountFactory(client_id="C-1")).account
    locked = AccountFactory(client_id="C-2", locked=True)
    pending = AccountFactory(client_id="C-3", status=AccountStatus.PENDING)

    def ids(params):
        response = api_client.get(URL, params)
        assert response.status_code == 200, response.json()
        return {row["account_id"] for row in response.json()["data"]}

    assert ids({}) == {str(configured.pk), str(locked.pk), str(pending.pk)}
    assert ids({"client_id": "C-2"}) == {str(locked.pk)}
    assert ids({"status": "PENDING"}) == {str(pending.pk)}
    assert ids({"locked": "true"}) == {str(locked.pk)}
    assert ids({"locked": "false"}) == {str(configured.pk), str(pending.pk)}
    assert ids({"allocation_id": str(configured.configuration.allocation_id)}) == {str(configured.pk)}
    assert ids({"allocation_id": UNKNOWN}) == set()


@pytest.mark.parametrize(("param", "value"), [("status", "OPEN"), ("locked", "maybe"), ("allocation_id", "x")])
def test_list_bad_filter_is_400(api_client, db, param, value):
    body = problem(api_client.get(URL, {param: value}), 400)
    assert error_fields(body) == {param}


@pytest.mark.parametrize("rows", [10, 100])
def test_list_query_count_does_not_grow_with_the_page(api_client, django_assert_num_queries, rows):
    allocation = make_allocation()
    parent = AccountFactory()
    for index in range(rows - 1):
        account = AccountFactory(parent=parent if index % 3 == 0 else None)
        if index % 2:
            make_configuration(account=account, allocation=allocation)
    # token lookup, COUNT, accounts joined with their configuration, their restriction lists
    with django_assert_num_queries(4):
        response = api_client.get(URL, {"limit": rows})
    assert response.json()["meta"]["count"] == rows
    assert sum(row["allocation_id"] is not None for row in response.json()["data"]) == (rows - 1) // 2


# --- Holdings -------------------------------------------------------------------------

@pytest.fixture
def holdings(db):
    account = AccountFactory(base_currency="EUR")
    eur_etf = InstrumentFactory(currency="EUR")
    usd_etf = InstrumentFactory(currency="USD")
    PriceFactory(instrument=eur_etf, effective_at=date(2026, 3, 1), value=Decimal("90"))
    PriceFactory(instrument=eur_etf, effective_at=date(2026, 3, 2), value=Decimal("100"))
    PriceFactory(instrument=usd_etf, effective_at=date(2026, 3, 2), value=Decimal("55"))
    FxRateFactory(base="EUR", quote="USD", effective_at=date(2026, 3, 2), rate=Decimal("1.10"))
    return account, eur_etf, usd_etf


def _snapshot(eur_etf, usd_etf):
    return {
        "positions": [{"instrument_id": eur_etf.isin, "units": "10"}, {"instrument_id": str(usd_etf.id), "units": "20"}],
        "cash": [{"currency": "EUR", "balance": "500", "is_default": True}, {"currency": "USD", "balance": "110", "kind": "SETTLEMENT"}],
    }


def test_put_holdings_replaces_the_snapshot(api_client, holdings):
    account, eur_etf, usd_etf = holdings
    PositionFactory(account=account)
    CashAccountFactory(account=account, currency="CHF")
    response = api_client.put(holdings_url(account.pk), _snapshot(eur_etf, usd_etf), format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["account_id"] == str(account.pk)
    assert {(p["instrument_id"], p["isin"], p["units"]) for p in body["positions"]} == {
        (str(eur_etf.id), eur_etf.isin, "10"), (str(usd_etf.id), usd_etf.isin, "20"),
    }
    assert {(c["currency"], c["balance"], c["is_default"], c["kind"]) for c in body["cash"]} == {
        ("EUR", "500", True, "CASH"), ("USD", "110", False, "SETTLEMENT"),
    }
    assert set(Position.objects.filter(account=account).values_list("instrument_id", flat=True)) == {eur_etf.id, usd_etf.id}
    assert set(CashAccount.objects.filter(account=account).values_list("currency", flat=True)) == {"EUR", "USD"}


def test_put_holdings_bad_row_leaves_the_old_snapshot(api_client, holdings):
    account, eur_etf, usd_etf = holdings
    old_position = PositionFactory(account=account, instrument=eur_etf, units=Decimal("3"))
    old_cash = CashAccountFactory(account=account, currency="EUR", balance=Decimal("42"))
    snapshot = _snapshot(eur_etf, usd_etf)
    snapshot["positions"].append({"instrument_id": "US0378331005", "units": "1"})
    snapshot["cash"][1]["balance"] = "abc"
    body = problem(api_client.put(holdings_url(account.pk), snapshot, format="json"), 400)
    assert "cash[1].balance" in error_fields(body)
    # The service's own checks name their rows the same way.
    snapshot["cash"][1]["balance"] = "1"
    body = problem(api_client.put(holdings_url(account.pk), snapshot, format="json"), 400)
    assert error_fields(body) == {"positions[2].instrument_id"}
    snapshot["positions"][2] = {"instrument_id": eur_etf.isin, "units": "-1"}
    body = problem(api_client.put(holdings_url(account.pk), snapshot, format="json"), 400)
    assert {"positions[2].instrument_id", "positions[2].units"} <= error_fields(body)
    assert list(Position.objects.filter(account=account)) == [old_position]
    assert list(CashAccount.objects.filter(account=account)) == [old_cash]
    assert Position.objects.get().units == Decimal("3")


def test_put_holdings_needs_both_lists(api_client, holdings):
    account, *_ = holdings
    body = problem(api_client.put(holdings_url(account.pk), {"positions": []}, format="json"), 400)
    assert error_fields(body) == {"cash"}


def test_put_holdings_empty_clears(api_client, holdings):
    account, eur_etf, _ = holdings
    PositionFactory(account=account, instrument=eur_etf)
    response = api_client.put(holdings_url(account.pk), {"positions": [], "cash": []}, format="json")
    assert response.status_code == 200
    assert response.json()["positions"] == [] and response.json()["cash"] == []
    assert not Position.objects.filter(account=account).exists()


def test_put_holdings_unknown_account_is_404(api_client, db):
    problem(api_client.put(holdings_url(UNKNOWN), {"positions": [], "cash": []}, format="json"), 404)


def test_get_holdings_valued_at_the_latest_prices(api_client, holdings):
    account, eur_etf, usd_etf = holdings
    api_client.put(holdings_url(account.pk), _snapshot(eur_etf, usd_etf), format="json")
    response = api_client.get(holdings_url(account.pk), {"as_of": "2026-03-05"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["currency"] == "EUR"
    assert body["as_of"] == "2026-03-05"
    # 10 × 100 EUR + 20 × 55 USD / 1.10 + 500 EUR + 110 USD / 1.10 = 1000 + 1000 + 500 + 100
    assert Decimal(body["total_value"]) == Decimal("2600")
    positions = {p["instrument_id"]: p for p in body["positions"]}
    eur = positions[str(eur_etf.id)]
    assert (eur["isin"], Decimal(eur["units"]), Decimal(eur["price"]), Decimal(eur["value"])) == (
        eur_etf.isin, 10, 100, 1000
    )
    assert Decimal(eur["weight"]) == (Decimal(1000) / Decimal(2600)).quantize(Decimal("1e-12"))
    assert Decimal(positions[str(usd_etf.id)]["value"]) == 1000
    cash = {c["currency"]: c for c in body["cash"]}
    assert Decimal(cash["USD"]["value"]) == 100
    assert (cash["EUR"]["is_default"], cash["EUR"]["kind"], Decimal(cash["EUR"]["balance"])) == (True, "CASH", 500)


def test_get_holdings_uses_prices_at_or_before_as_of(api_client, holdings):
    account, eur_etf, _ = holdings
    PositionFactory(account=account, instrument=eur_etf, units=Decimal("10"))
    body = api_client.get(holdings_url(account.pk), {"as_of": "2026-03-01"}).json()
    assert Decimal(body["total_value"]) == 900


def test_get_holdings_missing_price_is_422(api_client, holdings):
    account, eur_etf, _ = holdings
    PositionFactory(account=account, instrument=eur_etf)
    body = problem(api_client.get(holdings_url(account.pk), {"as_of": "2026-02-01"}), 422)
    assert f"no price for {eur_etf.isin} at or before 2026-02-01" in body["detail"]


def test_get_holdings_bad_date_is_400(api_client, holdings):
    account, *_ = holdings
    body = problem(api_client.get(holdings_url(account.pk), {"as_of": "2026-03-02T00:00:00"}), 400)
    assert error_fields(body) == {"as_of"}


def test_get_holdings_default_date_is_today(api_client, holdings):
    account, eur_etf, _ = holdings
    PositionFactory(account=account, instrument=eur_etf, units=Decimal("2"))
    body = api_client.get(holdings_url(account.pk)).json()
    assert Decimal(body["total_value"]) == 200


def test_get_holdings_includes_sub_portfolios(api_client, holdings):
    account, eur_etf, _ = holdings
    child = AccountFactory(parent=account, locked=True, account_type=AccountType.CUSTODY)
    PositionFactory(account=account, instrument=eur_etf, units=Decimal("1"))
    PositionFactory(account=child, instrument=eur_etf, units=Decimal("3"))
    body = api_client.get(holdings_url(account.pk), {"as_of": "2026-03-02"}).json()
    assert Decimal(body["total_value"]) == 400
    assert {(p["account_id"], Decimal(p["units"])) for p in body["positions"]} == {
        (str(account.pk), 1), (str(child.pk), 3)
    }
