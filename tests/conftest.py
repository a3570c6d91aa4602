import os

import pytest
from django.db import connection

# Django-dependent imports live inside the fixtures, so the pure engine tests can run
# with `-p no:django`.


def pytest_report_header(config):
    return f"ballast: DATABASE_URL={'set' if os.environ.get('DATABASE_URL') else 'unset (SQLite)'}, REDIS_URL={'set' if os.environ.get('REDIS_URL') else 'unset'}"


@pytest.fixture
def superuser(db):
    from tests.factories import UserFactory

    return UserFactory(username="admin", is_staff=True, is_superuser=True)


@pytest.fixture
def api_client(superuser):
    """An API client authenticated with a superuser's token."""
    from rest_framework.test import APIClient

    from tests.factories import api_token_key

    client = APIClient()
    client.token_key = api_token_key(superuser)
    client.credentials(HTTP_AUTHORIZATION=f"Token {client.token_key}")
    return client


@pytest.fixture
def user_with_perms(db):
    """Make a staff user holding the given permission codenames ("portfolios.view_instrument")."""
    from django.contrib.auth.models import Permission

    from tests.factories import UserFactory

    def make(*perms, username="staff"):
        user = UserFactory(username=username, is_staff=True)
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        return user

    return make


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def is_postgres():
    return connection.vendor == "postgresql"


def pytest_sessionstart(session):
    """With REDIS_URL set the suite must really reach Redis: fail fast, never skip."""
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        import redis

        try:
            redis.Redis.from_url(redis_url, socket_connect_timeout=5).ping()
        except redis.RedisError as exc:
            raise pytest.UsageError(f"REDIS_URL is set but Redis is unreachable: {exc}") from exc


@pytest.fixture(autouse=True)
def _fresh_log_context():
    """Each test starts without the request, task and execution ids a previous test may
    have left in this process's context (creating an execution outside a request sets
    the execution id: config/observability.py)."""
    from config.observability import execution_id_var, request_id_var, task_id_var

    tokens = [(var, var.set(None)) for var in (request_id_var, task_id_var, execution_id_var)]
    yield
    for var, token in reversed(tokens):
        try:
            var.reset(token)
        except ValueError:  # changed in another context meanwhile: leave it
            var.set(None)
