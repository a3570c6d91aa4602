"""Each user (token) gets API_THROTTLE_RATE requests; the next one is a 429 problem."""

import random

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings
from rest_framework.test import APIClient

from tests.factories import UserFactory, api_token_key

RATE = 3
URL = "/api/v1/instruments/"


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_key(user)}")
    return client


@pytest.fixture
def fresh_user(db):
    """A superuser whose id no other test process uses: the cache may be a shared Redis."""

    def make(username):
        user = UserFactory(id=random.randrange(10**8, 2 * 10**9), username=username, is_superuser=True)
        cache.delete(f"throttle_user_{user.pk}")
        return user

    return make


def test_the_default_rate_and_the_test_rate():
    from rest_framework.settings import api_settings

    assert api_settings.DEFAULT_THROTTLE_CLASSES[0].__module__ == "config.api.throttling"
    # The suite runs unthrottled; production's default comes from base.py.
    assert settings.API_THROTTLE_RATE == "1000000/min"


@override_settings(API_THROTTLE_RATE=f"{RATE}/min")
def test_the_request_after_the_rate_is_a_429_problem(fresh_user):
    user = fresh_user("busy")
    client = token_client(user)
    for _ in range(RATE):
        assert client.get(URL).status_code == 200
    response = client.get(URL)
    assert response.status_code == 429
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 429 and body["type"] == "urn:ballast:problem:throttled"
    assert 0 < int(response["Retry-After"]) <= 60
    # Counted in the default cache (Redis when REDIS_URL is set), by user id.
    assert len(cache.get(f"throttle_user_{user.pk}")) == RATE

    # Per user: another token is not affected; the same user by session is.
    assert token_client(fresh_user("quiet")).get(URL).status_code == 200
    session = APIClient()
    session.force_login(user)
    assert session.get(URL).status_code == 429


@override_settings(API_THROTTLE_RATE="1/min")
def test_anonymous_requests_are_refused_before_throttling(db):
    for _ in range(3):
        assert APIClient().get(URL).status_code == 401
