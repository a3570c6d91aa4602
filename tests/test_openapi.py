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
