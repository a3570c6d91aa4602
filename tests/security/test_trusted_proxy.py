"""Behind trusted proxies, lockouts and audit entries see the client's address
(config/proxy.py); a client talking directly cannot choose its address."""

import uuid

import pytest
from axes.models import AccessAttempt
from django.test import Client
from rest_framework.test import APIClient

from config.proxy import _networks, client_address
from tests.factories import AccountFactory, UserFactory

PROXY = "10.0.0.5"
CLIENT = "203.0.113.7"
TRUSTED = _networks(["10.0.0.0/24", "fd00::/8"])


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        (PROXY, CLIENT, CLIENT),
        (PROXY, f"198.51.100.1, {CLIENT}", CLIENT),  # a client-sent hop on the left is never reached
        (PROXY, f"{CLIENT}, 10.0.0.9", CLIENT),  # through two trusted proxies
        (PROXY, "", PROXY),
        (PROXY, "not-an-address", PROXY),
        (CLIENT, "198.51.100.1", CLIENT),  # not from a proxy: the header is ignored
        ("fd00::1", "2001:db8::7", "2001:db8::7"),
    ],
)
def test_the_client_address(remote, forwarded, expected):
    assert client_address(remote, forwarded, TRUSTED) == expected


def test_a_bad_setting_is_refused_naming_it():
    with pytest.raises(ValueError, match="DJANGO_TRUSTED_PROXIES"):
        _networks(["10.0.0.0/33"])


@pytest.fixture
def behind_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]


def test_a_lockout_is_per_client_address_behind_the_proxy(behind_proxy, db):
    user = UserFactory(username=f"op-{uuid.uuid4().hex[:10]}", is_staff=True)
    client = Client()
    for _ in range(5):
        client.post(
            "/admin/login/", {"username": user.username, "password": "wrong", "next": "/admin/"},
            REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=CLIENT,
        )
    [attempt] = AccessAttempt.objects.filter(username=user.username)
    assert attempt.ip_address == CLIENT and attempt.failures_since_start == 5
    # Another client behind the same proxy is not locked out.
    other = APIClient().post(
        "/api/v1/auth/token/", {"username": user.username, "password": "pw-Secret-123"}, format="json",
        REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="198.51.100.20",
    )
    assert other.status_code == 200, other.content


def test_an_audit_entry_records_the_client_address(behind_proxy, superuser):
    from auditlog.models import LogEntry

    account = AccountFactory()
    api = APIClient()
    api.force_login(superuser)
    patched = api.patch(
        f"/api/v1/portfolios/accounts/{account.pk}/", {"locked": True}, format="json",
        REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=CLIENT,
    )
    assert patched.status_code == 200, patched.content
    entry = LogEntry.objects.get_for_object(account).order_by("-timestamp", "-id").first()
    assert entry.changes_dict["locked"] == ["False", "True"] and entry.remote_addr == CLIENT
