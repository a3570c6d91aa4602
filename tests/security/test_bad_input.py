"""Every malformed body gets problem details naming the field and the rule, never a 500
or an HTML page, and nothing is written."""

import json

import pytest

from rebalancing.models import Execution
from tests.factories import make_allocation

EXECUTIONS = "/api/v1/portfolios/rebalancings/executions/"
PRICES = "/api/v1/prices/"
PROBLEM = "application/problem+json"

pytestmark = pytest.mark.django_db


def post_raw(api_client, body: bytes | str, path: str = EXECUTIONS):
    return api_client.generic("POST", path, body, content_type="application/json")


def errors(response) -> dict:
    assert response["Content-Type"] == PROBLEM, response.content[:200]
    return {e["field"]: e["message"] for e in response.json().get("errors", [])}


def test_a_thousand_nested_arrays_is_a_400_not_a_500(api_client):
    response = post_raw(api_client, "[" * 1000 + "]" * 1000)
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert "nests deeper than 32 levels" in response.json()["detail"]
    # Deeper than Python's recursion limit: the same answer.
    assert post_raw(api_client, "[" * 100_000 + "]" * 100_000).status_code == 400


def test_a_body_above_the_upload_limit_is_a_413_problem(api_client, settings):
    body = json.dumps({"accounts": ["x" * 1000] * 20_000})  # ~20 MB
    response = post_raw(api_client, body)
    assert response.status_code == 413
    assert response["Content-Type"] == PROBLEM
    assert f"at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes" in response.json()["detail"]
    assert not Execution.objects.exists()


def test_nan_and_infinity_are_refused_naming_the_field(api_client):
    response = post_raw(api_client, '{"accounts": [], "method": NaN, "options": {"x": [1, -Infinity]}}')
    assert response.status_code == 400
    assert errors(response) == {
        "method": "NaN is not a number: JSON has no NaN or Infinity",
        "options.x[1]": "-Infinity is not a number: JSON has no NaN or Infinity",
    }


@pytest.mark.parametrize(("value", "message"), [
    ("2026-02-30", "2026-02-30 is not a valid date: day is out of range for month"),
    ("9999-12-31", "must be between 1900-01-01 and 2199-12-31"),
    ("1899-12-31", "must be between 1900-01-01 and 2199-12-31"),
    ("2026-02-03T10:00:00", "must be a date in the form YYYY-MM-DD"),
])
def test_bad_dates_are_refused_with_the_rule(api_client, value, message):
    response = api_client.post(EXECUTIONS, {"all_accounts": True, "rebalance_date": value}, format="json")
    assert response.status_code == 400
    assert errors(response) == {"rebalance_date": message}
    assert not Execution.objects.exists()


def test_prices_and_allocation_versions_refuse_dates_out_of_range(api_client):
    response = api_client.post(
        PRICES,
        {"prices": [{"instrument_id": "00000000-0000-0000-0000-000000000000", "value": "1",
                     "effective_at": "9999-12-31"}]}, format="json",
    )
    assert response.status_code == 400
    assert errors(response).get("prices[0].effective_at") == "must be between 1900-01-01 and 2199-12-31"


def test_unknown_top_level_fields_are_refused_by_name(api_client):
    response = api_client.post(EXECUTIONS, {"all_accounts": True, "methd": "FULL", "dry_run": True}, format="json")
    assert response.status_code == 400
    found = errors(response)
    assert set(found) == {"dry_run", "methd"}
    assert found["methd"] == "is not a field of an execution request"


def test_unknown_fields_are_refused_on_every_body(api_client):
    response = api_client.post("/api/v1/webhooks/subscriptions/",
                               {"url": "https://example.com/hook", "event_types": ["*"], "secrett": "x"}, format="json")
    assert response.status_code == 400
    found = errors(response)
    assert list(found) == ["secrett"]
    assert found["secrett"].startswith("unknown field; the fields accepted are ")
    assert not Execution.objects.exists()


PREFERENCES = "/api/v1/rebalancing/preferences/"


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"min_trade_amount": 10}, "min_trade_amount", "must be a decimal in a string"),
    ({"min_trade_amount": 0.1}, "min_trade_amount", "must be a decimal in a string"),
    ({"min_trade_amount": ""}, "min_trade_amount", "must be a decimal in a string"),
    ({"min_trade_amount": "1e2"}, "min_trade_amount", "must be a decimal in a string"),
    ({"min_trade_amount": " 1"}, "min_trade_amount", "must be a decimal in a string"),
    ({"filter_by_min_max": "true"}, "filter_by_min_max", "must be true or false"),
    ({"fx_repatriate": ""}, "fx_repatriate", "must be true or false"),
    ({"price_source": 5}, "price_source", "must be a string"),
    ({"approval_order_count": "5"}, "approval_order_count", "must be a whole number"),
])
def test_values_in_another_json_type_than_documented_are_refused(api_client, body, field, message):
    before = api_client.get(PREFERENCES).json()
    response = api_client.put(PREFERENCES, body, format="json")
    assert response.status_code == 400
    assert errors(response)[field].startswith(message)
    assert api_client.get(PREFERENCES).json() == before


def test_a_type_error_is_named_with_the_other_bad_fields(api_client):
    response = api_client.post("/api/v1/portfolios/orders/", {"cash_amount": 100, "side": "HOLD"}, format="json")
    assert response.status_code == 400
    found = errors(response)
    assert {"account_id", "cash_amount", "currency", "side"} <= set(found)
    assert found["cash_amount"].startswith("must be a decimal in a string")


def test_a_strategy_takes_its_fields_in_their_json_types(api_client):
    url = f"/api/v1/portfolios/allocations/{make_allocation().pk}/strategy/"
    response = api_client.post(url, {"type": "CALENDAR", "period_type": "MONTHLY", "period_count": "3",
                                      "anchor_date": "2026-01-05", "method": ""}, format="json")
    assert response.status_code == 400
    assert errors(response) == {
        "strategy.period_count": "must be a whole number",
        "strategy.method": "must be one of CONSERVATIVE, EXCHANGE, FULL, FULL_INCLUDING_ORDERS",
    }
    assert api_client.get(url).json() is None
