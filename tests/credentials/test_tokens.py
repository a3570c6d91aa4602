"""API tokens: hashed, named, several per user, expiring, revocable in the admin."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from credentials.models import ApiToken
from credentials.services import api_token_create, api_tokens_purge
from tests.factories import UserFactory

TOKEN_URL = "/api/v1/auth/token/"
PASSWORD = "pw-Secret-123"  # UserFactory's


def _status(key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/v1/instruments/").status_code


@pytest.fixture
def user(db):
    return UserFactory(username="partner", is_superuser=True)


def test_the_endpoint_makes_a_named_hashed_expiring_token_each_time(user, settings):
    client = APIClient()
    first = client.post(TOKEN_URL, {"username": "partner", "password": PASSWORD, "name": "custodian sync"}, format="json")
    second = client.post(TOKEN_URL, {"username": "partner", "password": PASSWORD}, format="json")
    assert first.status_code == second.status_code == 200
    keys = [first.json()["token"], second.json()["token"]]
    assert keys[0] != keys[1]
    tokens = ApiToken.objects.filter(user=user).order_by("created")
    assert [t.name for t in tokens] == ["custodian sync", ""]
    for key, token in zip(keys, tokens, strict=True):
        # Only the digest and the key's first 15 characters are stored.
        assert key not in token.digest and token.token_key == key[:15] and len(key) == 64
        ttl = token.expiry - token.created
        assert timedelta(days=settings.API_TOKEN_TTL_DAYS) - timedelta(minutes=1) < ttl <= timedelta(days=settings.API_TOKEN_TTL_DAYS)
        assert _status(key) == 200


def test_a_long_name_is_refused_naming_the_field(user):
    response = APIClient().post(TOKEN_URL, {"username": "partner", "password": PASSWORD, "name": "x" * 101}, format="json")
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["name"]


def test_an_expired_token_is_refused_and_purged(user):
    token, key = api_token_create(user=user, ttl=timedelta(hours=1))
    assert _status(key) == 200
    with time_machine.travel(timezone.now() + timedelta(hours=1, seconds=1)):
        response_status = _status(key)
        assert api_tokens_purge() == 1
    assert response_status == 401
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_a_wrong_key_with_a_right_prefix_is_refused(user):
    _, key = api_token_create(user=user)
    assert _status(key[:15] + "0" * 49) == 401
    assert _status(key + "x") == 401


def test_revoking_in_the_admin_stops_the_token(user, admin_client):
    token, key = api_token_create(user=user, name="old integration")
    other, other_key = api_token_create(user=user, name="new integration")
    page = admin_client.get("/admin/credentials/apitoken/")
    assert page.status_code == 200 and b"old integration" in page.content and key.encode() not in page.content
    response = admin_client.post(
        "/admin/credentials/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )
    assert response.status_code == 200
    assert _status(key) == 401 and _status(other_key) == 200


def test_the_admin_makes_a_token_and_shows_its_key_once(user, admin_client):
    response = admin_client.post(
        "/admin/credentials/apitoken/add/", {"user": user.pk, "name": "made by staff", "expiry_0": "", "expiry_1": ""},
        follow=True,
    )
    assert response.status_code == 200
    [message] = [str(m) for m in response.context["messages"] if "shown only now" in str(m)]
    key = message.rsplit(": ", 1)[1]
    token = ApiToken.objects.get(name="made by staff")
    assert token.expiry is not None and _status(key) == 200
    assert key not in admin_client.get(f"/admin/credentials/apitoken/{token.pk}/change/").content.decode()


def test_a_token_costs_one_query(user, django_assert_num_queries):
    from audit.context import audit_context
    from credentials.authentication import TokenAuthentication

    _, key = api_token_create(user=user)
    # In a context of its own: the token's user becomes the audit actor, as in a request.
    with audit_context(via="process"), django_assert_num_queries(1):
        authenticated, token = TokenAuthentication().authenticate_credentials(key.encode())
    assert authenticated == user and token.user_id == user.pk


def test_the_migration_hashes_the_former_plain_text_tokens(db, django_db_blocker):
    """credentials 0002: a DRF token's key keeps working, and is no longer stored."""
    from importlib import import_module

    from django.apps import apps
    from rest_framework.authtoken.models import Token

    legacy_user = UserFactory(username="legacy", is_superuser=True)
    legacy = Token.objects.create(user=legacy_user)
    import_module("credentials.migrations.0002_drf_tokens_hashed").hash_drf_tokens(apps, None)
    assert not Token.objects.exists()
    assert _status(legacy.key) == 200
    assert ApiToken.objects.get(user=legacy_user).expiry > timezone.now()
