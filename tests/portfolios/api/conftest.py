import pytest
from rest_framework.test import APIClient

PROBLEM = "application/problem+json"


def problem(response, status: int) -> dict:
    """Assert `response` is RFC 9457 problem details with `status`; return its body."""
    assert response.status_code == status, (response.status_code, response.content[:2000])
    assert response["Content-Type"].startswith(PROBLEM), response["Content-Type"]
    body = response.json()
    assert body["status"] == status
    assert body["type"] and body["title"] and body["detail"]
    return body


def error_fields(body: dict) -> set[str]:
    return {error["field"] for error in body.get("errors", [])}


def message_for(body: dict, field: str) -> str:
    return " | ".join(error["message"] for error in body["errors"] if error["field"] == field)


@pytest.fixture
def client_for():
    """An API client authenticated (by token) as the given user."""
    from tests.factories import api_token_key

    def make(user):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_key(user)}")
        return client

    return make
