"""The OpenAPI document generates cleanly and lists every path of api.md that exists so far."""

import json

import pytest
from django.core.management import call_command
from django.test import Client

# api.md: "Conventions", "Instruments and market data", "Model portfolios", "Portfolio
# accounts", "Configurations", "Rebalancing" (preferences, previews) (the endpoints built so far).
API_MD_PATHS = {
    "/api/v1/auth/token/": {"post"},
    "/api/v1/instruments/": {"get", "post"},
    "/api/v1/instruments/{instrument_id}/": {"get", "patch"},
    "/api/v1/prices/": {"get", "post"},
    "/api/v1/fx-rates/": {"get", "post"},
    "/api/v1/portfolios/allocations/": {"get", "post"},
    "/api/v1/portfolios/allocations/{allocation_id}/": {"get", "put", "delete"},
    "/api/v1/portfolios/allocations/{allocation_id}/versions/": {"get"},
    "/api/v1/portfolios/allocations/{allocation_id}/constituents/": {"get"},
    "/api/v1/portfolios/accounts/": {"get", "post"},
    "/api/v1/portfolios/accounts/{account_id}/": {"get", "patch"},
    "/api/v1/portfolios/accounts/{account_id}/holdings/": {"get", "put"},
    "/api/v1/portfolios/accounts/{account_id}/preferences/": {"get", "put"},
    "/api/v1/portfolios/configurations/": {"get", "post"},
    "/api/v1/portfolios/configurations/{account_id}/": {"get", "patch"},
    "/api/v1/rebalancing/preferences/": {"get", "put"},
    "/api/v1/portfolios/rebalancings/previews/": {"post"},
    "/api/v1/portfolios/rebalancings/executions/": {"get", "post"},
    "/api/v1/portfolios/rebalancings/executions/{execution_id}/": {"get"},
    "/api/v1/portfolios/rebalancings/executions/{execution_id}/cancel/": {"post"},
    "/api/v1/portfolios/orders/": {"get", "post"},
    "/api/v1/portfolios/orders/{portfolio_order_id}/": {"get"},
    "/api/v1/trade-orders/": {"get"},
    "/api/v1/trade-orders/{order_id}/": {"get"},
    "/api/v1/trade-orders/{order_id}/transitions/": {"post"},
    "/api/v1/portfolios/savings-plans/": {"get", "post"},
    "/api/v1/portfolios/savings-plans/{savings_plan_id}/": {"get", "patch", "delete"},
    "/api/v1/webhooks/subscriptions/": {"get", "post"},
    "/api/v1/webhooks/subscriptions/{subscription_id}/": {"get", "patch", "delete"},
    "/api/v1/webhooks/deliveries/": {"get"},
}
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def schema(tmp_path_factory, django_db_blocker):
    path = tmp_path_factory.mktemp("openapi") / "schema.json"
    with django_db_blocker.unblock():
        # Raises on any warning or error, and validates against the OpenAPI 3 spec.
        call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(path))
    return json.loads(path.read_text())


def test_every_api_md_path_and_method_is_in_the_schema(schema):
    for path, methods in API_MD_PATHS.items():
        assert path in schema["paths"], path
        assert methods <= set(schema["paths"][path]), (path, set(schema["paths"][path]))


def test_error_responses_are_declared_as_problem_details(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method not in HTTP_METHODS:
                continue
            expected = {"400"} if path.endswith("/auth/token/") else {"401", "403"}
            if "{" in path:
                expected.add("404")
            assert expected <= set(operation["responses"]), (method, path)
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == ["application/problem+json"], (method, path, status)
                    assert response["content"]["application/problem+json"]["schema"]["$ref"].endswith("/ProblemDetails")


def test_posts_document_the_idempotency_key(schema):
    for path, operations in schema["paths"].items():
        if "post" in operations and not path.endswith("/auth/token/"):
            names = {p["name"] for p in operations["post"].get("parameters", [])}
            assert "Idempotency-Key" in names, path
            assert "409" in operations["post"]["responses"], path


def test_lists_are_paginated_in_the_schema(schema):
    listed = schema["paths"]["/api/v1/portfolios/allocations/"]["get"]
    ref = listed["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    component = schema["components"]["schemas"][ref]
    assert set(component["properties"]) == {"meta", "data"}
    assert set(component["properties"]["meta"]["properties"]) == {"offset", "limit", "count", "total_count"}
    assert {p["name"] for p in listed["parameters"]} >= {"offset", "limit", "instrument_ids", "start_date", "end_date"}


def test_the_schema_endpoint_needs_authentication(db, admin_client):
    assert Client().get("/api/v1/schema/").status_code == 401
    response = admin_client.get("/api/v1/schema/")
    assert response.status_code == 200
    assert "/api/v1/portfolios/allocations/" in json.loads(response.content)["paths"]


def test_the_docs_page(db, admin_client):
    response = Client().get("/api/v1/docs/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    response = admin_client.get("/api/v1/docs/")
    assert response.status_code == 200
    assert b"swagger-ui" in response.content


def _request_properties(schema):
    """(component, property, its schema) of every JSON request body component, nested
    array items included."""
    for name, component in schema["components"]["schemas"].items():
        if not name.endswith("Request") or name == "UploadRequest":
            continue
        for field, spec in component.get("properties", {}).items():
            yield name, field, spec
            if spec.get("type") == "array" and "type" in spec.get("items", {}):
                yield name, f"{field}[]", spec["items"]


def test_request_strings_and_decimals_state_what_they_take(schema):
    """Every request string says what it takes (enum, format, pattern or a referenced
    enum), so a value the document allows is not refused for its shape: NUL characters,
    blanks, decimals in exponent form."""
    vague = [
        (name, field) for name, field, spec in _request_properties(schema)
        if spec.get("type") == "string" and not {"enum", "pattern", "format"} & set(spec)
        or spec.get("format") == "decimal" and "pattern" not in spec
    ]
    assert vague == []


def test_service_rules_are_in_the_schema(schema):
    import re

    components = schema["components"]["schemas"]
    rate = components["FxRateRowRequest"]["properties"]["rate"]["pattern"]
    assert [v for v in ("0", "0.0", "-1", "1", "0.5", "1e2", " 1") if re.search(rate, v)] == ["1", "0.5"]
    pct = components["GlobalPreferencesInputRequest"]["properties"]["cash_from_sells_pct"]["pattern"]
    assert [v for v in ("-1", "0", "100", "100.5", "101", "99.9999") if re.search(pct, v)] == ["0", "100", "99.9999"]
    assert components["AllocationInputRequest"]["properties"]["allocation"]["minItems"] == 1
    accounts = components["PreviewInputRequest"]["properties"]["accounts"]
    assert (accounts["minItems"], accounts["maxItems"], accounts["uniqueItems"], accounts["items"]["format"]) == (
        1, 500, True, "uuid")
    strategy = schema["paths"]["/api/v1/portfolios/allocations/{allocation_id}/strategy/"]["post"]["requestBody"]
    assert strategy["required"] is True
    assert strategy["content"]["application/json"]["schema"]["additionalProperties"] is False
    upload = schema["paths"]["/api/v1/imports/prices/"]["post"]["requestBody"]
    assert upload["required"] is True and upload["content"]["text/csv"]["schema"]["minLength"] == 1
    assert "additionalProperties" not in components["UploadRequest"]  # other parts are ignored


def test_the_date_pattern_takes_exactly_the_days_the_api_takes():
    import re
    from datetime import date, timedelta

    from core.dates import ISO_DATE_PATTERN, date_parse

    pattern = re.compile(ISO_DATE_PATTERN)
    texts = [f"{y:04d}-{m:02d}-{d:02d}" for y in (1899, 1900, 1904, 2000, 2023, 2024, 2100, 2199, 2200)
             for m in range(0, 14) for d in range(0, 33)]
    day = date(1899, 12, 25)
    while day <= date(2200, 1, 5):
        texts.append(day.isoformat())
        day += timedelta(days=97)
    texts += ["2026-1-05", "２０２６-01-05", "2026-01-05\n", "2026-01-05T00:00:00Z"]
    mismatches = [t for t in texts if bool(pattern.fullmatch(t)) != (date_parse(t)[1] is None)]
    assert mismatches == []
