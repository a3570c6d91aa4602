"""django-axes locks a username out, from one address, after repeated failed logins.

The admin login form and the API token endpoint both call `authenticate()` with the
request, so failures on either count towards the same lockout.
"""

import uuid
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import UserFactory

PASSWORD = "pw-Secret-123"
LOGIN = "/admin/login/"
ADDRESS = "203.0.113.7"
OTHER_ADDRESS = "198.51.100.9"


@pytest.fixture
def staff(db):
    # A fresh username: the token endpoint counts failures in the cache, which may be
    # a Redis shared with other test processes and earlier runs.
    return UserFactory(username=f"operator-{uuid.uuid4().hex[:12]}", is_staff=True, is_superuser=True)


def admin_login(client, password, address=ADDRESS, *, username):
    return client.post(
        LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=address
    )


def logged_in(client) -> bool:
    return client.get("/admin/", REMOTE_ADDR=ADDRESS).status_code == 200


def test_the_settings_are_five_failures_and_half_an_hour():
    assert settings.AUTHENTICATION_BACKENDS[0] == "config.api.throttling.LoginLockoutBackend"
    assert settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME == timedelta(minutes=30)
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]


def test_five_wrong_passwords_lock_the_admin_login_even_for_the_right_one(staff):
    client = Client()
    for attempt in range(1, 5):
        response = admin_login(client, "wrong", username=staff.username)
        assert response.status_code == 200, attempt  # the form again, with its error
        assert b"Please enter the correct username and password" in response.content
    assert admin_login(client, "wrong", username=staff.username).status_code == 429  # the fifth locks
    response = admin_login(client, PASSWORD, username=staff.username)
    assert response.status_code == 429
    assert b"too many login attempts" in response.content
    assert not logged_in(client)


def test_the_lockout_is_per_username_and_address(staff):
    for _ in range(5):
        admin_login(Client(), "wrong", username=staff.username)
    # Same username from another address: not locked.
    elsewhere = Client()
    assert admin_login(elsewhere, PASSWORD, address=OTHER_ADDRESS, username=staff.username).status_code == 302
    # Another username from the locked address: not locked either.
    UserFactory(username="colleague", is_staff=True)
    colleague = Client()
    response = colleague.post(LOGIN, {"username": "colleague", "password": PASSWORD}, REMOTE_ADDR=ADDRESS)
    assert response.status_code == 302


def test_the_lockout_ends_after_the_cool_off(staff):
    client = Client()
    for _ in range(5):
        admin_login(client, "wrong", username=staff.username)
    assert admin_login(client, PASSWORD, username=staff.username).status_code == 429
    # Half an hour and a minute later (axes compares the last attempt's time).
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=31))
    assert admin_login(client, PASSWORD, username=staff.username).status_code == 302
    assert logged_in(client)


def test_a_successful_login_resets_the_count(staff):
    client = Client()
    for _ in range(4):
        admin_login(client, "wrong", username=staff.username)
    assert admin_login(client, PASSWORD, username=staff.username).status_code == 302
    client.logout()
    for _ in range(4):
        assert admin_login(client, "wrong", username=staff.username).status_code == 200
    assert admin_login(client, PASSWORD, username=staff.username).status_code == 302


def test_the_token_endpoint_works_with_axes_and_counts_towards_the_lockout(staff):
    api = APIClient(REMOTE_ADDR=ADDRESS)
    url = "/api/v1/auth/token/"
    assert api.post(url, {"username": staff.username, "password": PASSWORD}, format="json").status_code == 200
    for _ in range(5):
        assert api.post(url, {"username": staff.username, "password": "wrong"}, format="json").status_code == 400
    # Locked: the right password is refused like a wrong one (400 problem, nothing
    # said about the lockout), and the admin login is locked for this address too.
    response = api.post(url, {"username": staff.username, "password": PASSWORD}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    assert "Unable to log in" in response.json()["detail"]
    assert admin_login(Client(), PASSWORD, username=staff.username).status_code == 429


def test_authenticate_without_a_request_still_works(staff):
    # Management commands and the shell call authenticate() without a request.
    from django.contrib.auth import authenticate

    assert authenticate(username=staff.username, password=PASSWORD) == staff
    assert authenticate(username=staff.username, password="wrong") is None
