"""A staff session ends 8 hours after login (SESSION_COOKIE_AGE) and with the browser."""

from datetime import timedelta
from unittest import mock

from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from tests.factories import UserFactory

EIGHT_HOURS = timedelta(hours=8)


def test_a_staff_session_expires_after_eight_hours(db):
    UserFactory(username="operator", is_staff=True, is_superuser=True)
    client = Client()
    logged_in_at = timezone.now()
    response = client.post("/admin/login/", {"username": "operator", "password": "pw-Secret-123", "next": "/admin/"})
    assert response.status_code == 302

    assert settings.SESSION_COOKIE_AGE == EIGHT_HOURS.total_seconds()
    # The server-side row expires after the age...
    session = Session.objects.get()
    assert abs(session.expire_date - (logged_in_at + EIGHT_HOURS)) < timedelta(minutes=1)
    # ...and the browser is told to drop the cookie when it closes (no Max-Age/Expires).
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["max-age"] == "" and cookie["expires"] == ""
    assert cookie["httponly"]

    def at(moment):
        return mock.patch("django.utils.timezone.now", return_value=moment)

    with at(logged_in_at + EIGHT_HOURS - timedelta(minutes=2)):
        assert client.get("/admin/").status_code == 200
    with at(logged_in_at + EIGHT_HOURS + timedelta(minutes=1)):
        response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
