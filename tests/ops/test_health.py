"""/healthz and /readyz: unauthenticated, cheap, naming a failing component and nothing else."""

import os
import shutil
import socket
import subprocess
import time

import pytest
from django.test import Client

READYZ_WITHIN_SECONDS = 5


def test_healthz_answers_without_credentials_or_dependencies(client):
    # No database mark: the view must not touch it (pytest-django would refuse).
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_readyz_is_200_when_everything_answers(db, client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_readyz_names_a_missing_migration_and_no_detail(db, client, monkeypatch):
    from django.db.migrations.executor import MigrationExecutor

    monkeypatch.setattr(MigrationExecutor, "migration_plan", lambda self, targets: [("portfolios", "9999_future")])
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "failing": ["migrations"]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own, on a free port, stopped by the test."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs redis-server on the PATH for the readiness test")
        pytest.skip("redis-server is not installed")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("the test's redis-server did not start")
    yield process, f"redis://127.0.0.1:{port}/0"
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


@pytest.mark.django_db(transaction=True)
def test_readyz_turns_503_naming_redis_within_5_seconds_of_it_stopping(own_redis, settings):
    process, url = own_redis
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    settings.CELERY_BROKER_URL = url
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, "socket_connect_timeout": 2}
    client = Client()

    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.content

    process.terminate()
    stopped_at = time.monotonic()
    process.wait(timeout=10)
    while True:
        response = client.get("/readyz")
        if response.status_code == 503 or time.monotonic() - stopped_at > READYZ_WITHIN_SECONDS:
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - stopped_at
    assert response.status_code == 503, f"still {response.status_code} {elapsed:.1f} s after Redis stopped"
    assert elapsed <= READYZ_WITHIN_SECONDS
    assert response.json() == {"status": "unavailable", "failing": ["broker", "cache"]}
    assert url not in response.content.decode() and "127.0.0.1" not in response.content.decode()
    print(f"readyz: 503 {response.json()} {elapsed:.2f} s after Redis stopped")
