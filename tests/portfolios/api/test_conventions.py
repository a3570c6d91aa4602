"""Auth, permissions, problem details and pagination, across the endpoints."""

import uuid

import pytest
from rest_framework.exceptions import ErrorDetail
from rest_framework.test import APIClient

from config.api.exceptions import flatten_errors
from core.errors import FieldError
from tests.factories import AccountFactory, InstrumentFactory, UserFactory, make_allocation, make_configuration

from .conftest import error_fields, problem

UNKNOWN = "0b5f2b8e-8f5e-4c39-9d0e-3f4f0c2d9a11"

ENDPOINTS = [
    ("get", "/api/v1/instruments/"),
    ("post", "/api/v1/instruments/"),
    ("get", f"/api/v1/instruments/{UNKNOWN}/"),
    ("patch", f"/api/v1/instruments/{UNKNOWN}/"),
    ("get", "/api/v1/prices/"),
    ("post", "/api/v1/prices/"),
    ("get", "/api/v1/fx-rates/"),
    ("post", "/api/v1/fx-rates/"),
    ("get", "/api/v1/portfolios/allocations/"),
    ("post", "/api/v1/portfolios/allocations/"),
    ("get", f"/api/v1/portfolios/allocations/{UNKNOWN}/"),
    ("put", f"/api/v1/portfolios/allocations/{UNKNOWN}/"),
    ("delete", f"/api/v1/portfolios/allocations/{UNKNOWN}/"),
    ("get", f"/api/v1/portfolios/allocations/{UNKNOWN}/versions/"),
    ("get", "/api/v1/portfolios/accounts/"),
    ("post", "/api/v1/portfolios/accounts/"),
    ("get", f"/api/v1/portfolios/accounts/{UNKNOWN}/"),
    ("patch", f"/api/v1/portfolios/accounts/{UNKNOWN}/"),
    ("get", f"/api/v1/portfolios/accounts/{UNKNOWN}/holdings/"),
    ("put", f"/api/v1/portfolios/accounts/{UNKNOWN}/holdings/"),
    ("get", "/api/v1/portfolios/configurations/"),
    ("post", "/api/v1/portfolios/configurations/"),
    ("get", f"/api/v1/portfolios/configurations/{UNKNOWN}/"),
    ("patch", f"/api/v1/portfolios/configurations/{UNKNOWN}/"),
    ("get", "/api/v1/schema/"),
    ("get", "/api/v1/no-such-thing/"),
]


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_no_anonymous_access(db, method, url):
    response = getattr(APIClient(), method)(url, {}, format="json")
    body = problem(response, 401)
    assert response["WWW-Authenticate"] == "Token"
    assert body["type"] == "urn:ballast:problem:not-authenticated"


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_a_bad_token_is_401(db, method, url):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    problem(getattr(client, method)(url, {}, format="json"), 401)


@pytest.mark.parametrize(("method", "url"), [e for e in ENDPOINTS if "schema" not in e[1] and "no-such" not in e[1]])
def test_without_the_model_permission_is_403(db, client_for, method, url):
    user = UserFactory(username="nobody", is_staff=True)
    body = problem(getattr(client_for(user), method)(url, {}, format="json"), 403)
    assert body["type"] == "urn:ballast:problem:permission-denied"


def test_view_permission_reads_but_does_not_write(db, client_for, user_with_perms):
    client = client_for(user_with_perms("portfolios.view_allocation", "portfolios.view_allocationversion"))
    allocation = make_allocation()
    assert client.get("/api/v1/portfolios/allocations/").status_code == 200
    assert client.get(f"/api/v1/portfolios/allocations/{allocation.pk}/versions/").status_code == 200
    problem(client.post("/api/v1/portfolios/allocations/", {"allocation": []}, format="json"), 403)
    problem(client.delete(f"/api/v1/portfolios/allocations/{allocation.pk}/"), 403)
    problem(client.get("/api/v1/portfolios/accounts/"), 403)


def test_add_permission_allows_create(db, client_for, user_with_perms):
    client = client_for(user_with_perms("portfolios.add_portfolioaccount"))
    response = client.post("/api/v1/portfolios/accounts/", {"client_id": "C", "base_currency": "EUR"}, format="json")
    assert response.status_code == 201
    problem(client.get("/api/v1/portfolios/accounts/"), 403)


def test_holdings_need_position_and_cash_permissions(db, client_for, user_with_perms):
    account = AccountFactory()
    url = f"/api/v1/portfolios/accounts/{account.pk}/holdings/"
    only_account = client_for(user_with_perms("portfolios.view_portfolioaccount", "portfolios.change_portfolioaccount"))
    problem(only_account.get(url), 403)
    problem(only_account.put(url, {"positions": [], "cash": []}, format="json"), 403)
    operations = client_for(user_with_perms(
        "portfolios.view_portfolioaccount", "portfolios.view_position", "portfolios.view_cashaccount",
        *(f"portfolios.{a}_{m}" for a in ("add", "change", "delete") for m in ("position", "cashaccount")),
        username="ops",
    ))
    assert operations.put(url, {"positions": [], "cash": []}, format="json").status_code == 200
    assert operations.get(url).status_code == 200


def test_price_upsert_needs_add_and_change(db, client_for, user_with_perms):
    instrument = InstrumentFactory()
    payload = {"prices": [{"instrument_id": instrument.isin, "effective_at": "2026-03-02", "value": "1"}]}
    adder = client_for(user_with_perms("portfolios.add_price"))
    problem(adder.post("/api/v1/prices/", payload, format="json"), 403)
    upserter = client_for(user_with_perms("portfolios.add_price", "portfolios.change_price", username="up"))
    assert upserter.post("/api/v1/prices/", payload, format="json").json() == {"upserted": 1}


def test_session_auth_works(db, admin_client):
    make_configuration()
    assert admin_client.get("/api/v1/portfolios/configurations/").status_code == 200


# --- Token -----------------------------------------------------------------------------

def test_token_endpoint(db):
    UserFactory(username="pm", is_superuser=True)
    client = APIClient()
    response = client.post("/api/v1/auth/token/", {"username": "pm", "password": "pw-Secret-123"}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    assert set(response.json()) == {"token"}
    again = client.post("/api/v1/auth/token/", {"username": "pm", "password": "pw-Secret-123"}, format="json")
    assert again.json()["token"] != token  # several tokens per user (tests/credentials)
    for key in (token, again.json()["token"]):
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        assert client.get("/api/v1/instruments/").status_code == 200


@pytest.mark.parametrize("password", ["wrong", "pw-Secret-123"])
def test_token_bad_credentials_is_a_400_problem(db, password):
    # Fresh usernames: failed attempts are counted in the (possibly shared) cache.
    user = UserFactory(username=f"pm-{uuid.uuid4().hex}")
    username = user.username if password == "wrong" else f"nobody-{uuid.uuid4().hex}"
    payload = {"username": username, "password": password}
    body = problem(APIClient().post("/api/v1/auth/token/", payload, format="json"), 400)
    assert "Unable to log in" in body["detail"]


def test_token_missing_fields(db):
    body = problem(APIClient().post("/api/v1/auth/token/", {}, format="json"), 400)
    assert error_fields(body) == {"username", "password"}


def test_token_inactive_user_gets_none(db):
    user = UserFactory(username=f"gone-{uuid.uuid4().hex}", is_active=False)
    problem(APIClient().post("/api/v1/auth/token/", {"username": user.username, "password": "pw-Secret-123"},
                             format="json"), 400)


# --- Problem details -------------------------------------------------------------------

def test_malformed_json_is_a_400_problem(api_client, db):
    response = api_client.generic("POST", "/api/v1/portfolios/accounts/", "{not json", content_type="application/json")
    body = problem(response, 400)
    assert body["type"] == "urn:ballast:problem:malformed-request"


def test_json_only(api_client, db):
    response = api_client.post("/api/v1/portfolios/accounts/", {"client_id": "x"})  # multipart
    problem(response, 415)


def test_method_not_allowed_is_a_problem(api_client, db):
    problem(api_client.delete("/api/v1/portfolios/accounts/"), 405)


def test_unknown_endpoint_is_a_404_problem(api_client, db):
    body = problem(api_client.get("/api/v1/no-such-thing/"), 404)
    assert "/api/v1/no-such-thing/" in body["detail"]
    problem(api_client.get("/api/v1/instruments"), 404)  # every path ends with /


def test_flatten_errors_paths():
    detail = {
        "name": [ErrorDetail("This field is required.")],
        "allocation": [{}, {"weight": [ErrorDetail("A valid number is required.")]},
                       {"non_field_errors": [ErrorDetail("Invalid data.")]}],
        "cash": {"non_field_errors": [ErrorDetail("Expected a list.")]},
        "tags": {2: [ErrorDetail("Not a string.")]},
        "non_field_errors": [ErrorDetail("Whole request.")],
        "nested": {"inner": {"deep": [ErrorDetail("x")]}},
    }
    assert flatten_errors(detail) == [
        FieldError("name", "This field is required."),
        FieldError("allocation[1].weight", "A valid number is required."),
        FieldError("allocation[2]", "Invalid data."),
        FieldError("cash", "Expected a list."),
        FieldError("tags[2]", "Not a string."),
        FieldError("", "Whole request."),
        FieldError("nested.inner.deep", "x"),
    ]


# --- Pagination -----------------------------------------------------------------------

def test_pagination_meta(api_client, db):
    for _ in range(5):
        InstrumentFactory()
    body = api_client.get("/api/v1/instruments/", {"offset": 3, "limit": 2}).json()
    assert body["meta"] == {"offset": 3, "limit": 2, "count": 2, "total_count": 5}
    body = api_client.get("/api/v1/instruments/", {"offset": 4, "limit": 2}).json()
    assert body["meta"] == {"offset": 4, "limit": 2, "count": 1, "total_count": 5}
    body = api_client.get("/api/v1/instruments/", {"offset": 10}).json()
    assert body["meta"] == {"offset": 10, "limit": 100, "count": 0, "total_count": 5}
    assert body["data"] == []


def test_pagination_pages_do_not_overlap(api_client, db):
    for _ in range(7):
        AccountFactory()
    seen = []
    for offset in range(0, 7, 3):
        seen += [row["account_id"] for row in api_client.get("/api/v1/portfolios/accounts/", {"offset": offset, "limit": 3}).json()["data"]]
    assert len(seen) == len(set(seen)) == 7


def test_pagination_limit_is_capped_at_1000(api_client, db):
    assert api_client.get("/api/v1/instruments/", {"limit": 5000}).json()["meta"]["limit"] == 1000


@pytest.mark.parametrize(("param", "value"), [("limit", "0"), ("limit", "-1"), ("limit", "ten"), ("offset", "-5")])
def test_pagination_bad_values_are_400(api_client, db, param, value):
    body = problem(api_client.get("/api/v1/instruments/", {param: value}), 400)
    assert error_fields(body) == {param}


def test_token_failures_are_limited_per_username(db):
    target = UserFactory(username=f"target-{uuid.uuid4().hex}")
    client = APIClient()
    for _ in range(10):
        problem(client.post("/api/v1/auth/token/", {"username": target.username, "password": "guess"}, format="json"), 400)
    response = client.post("/api/v1/auth/token/", {"username": target.username, "password": "pw-Secret-123"},
                           format="json")
    problem(response, 429)
    assert int(response["Retry-After"]) > 0
    other = UserFactory(username=f"other-{uuid.uuid4().hex}")
    ok = client.post("/api/v1/auth/token/", {"username": other.username, "password": "pw-Secret-123"}, format="json")
    assert ok.status_code == 200
