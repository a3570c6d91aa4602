"""A scripted Redis outage: the app points at a Redis port where nothing listens (cache
and broker alike). Reads and writes keep working (no 5xx), the rate limit still counts
(in the process), and an execution POSTed meanwhile is accepted and sent to the broker
by the recovery sweep once it is back."""

import socket

import pytest
from celery import current_app
from django.core.cache import cache
from rest_framework.test import APIClient

from portfolios.models import PortfolioAccount
from portfolios.services.demo import demo_book_load
from rebalancing.models import Execution
from rebalancing.services import execution_chunk_process
from rebalancing.services.recovery import executions_sweep
from tests.factories import api_token_key
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

READS = [
    "/api/v1/instruments/", "/api/v1/prices/", "/api/v1/fx-rates/", "/api/v1/portfolios/allocations/",
    "/api/v1/portfolios/accounts/", "/api/v1/portfolios/configurations/",
    "/api/v1/portfolios/rebalancings/executions/", "/api/v1/webhooks/subscriptions/",
]


def nothing_listens() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"  # the socket is closed again: connections are refused


@pytest.fixture
def redis_down(settings):
    """Cache and broker on a dead port; calling it brings the broker back. The app's
    connection pools are set aside and put back as they were: the other tests of this
    process keep using them."""
    dead = nothing_listens()
    app = current_app._get_current_object()
    saved = (app.conf.broker_url, app.conf.broker_transport_options, app._pool, app.amqp._producer_pool)
    settings.CACHES = {"default": {"BACKEND": "core.cache.FallbackRedisCache", "LOCATION": dead}}
    settings.API_THROTTLE_RATE = "40/min"
    app.conf.broker_url, app.conf.broker_transport_options = dead, {}
    app._pool = app.amqp._producer_pool = None
    restored = []

    def back():
        if restored:
            return
        restored.append(True)
        if app._pool is not None:
            app._pool.force_close_all()  # the dead port's pool only
        app.conf.broker_url, app.conf.broker_transport_options, app._pool, app.amqp._producer_pool = saved

    yield back
    back()


def test_reads_and_writes_work_through_a_redis_outage(redis_down):
    demo_book_load(accounts=3, days=2, seed=5)
    user = UserFactory(username="ops", is_staff=True, is_superuser=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_key(user)}")
    cache.get("warm-up")  # the cache finds Redis unreachable and falls back

    statuses = {path: client.get(path).status_code for path in READS}
    assert statuses == dict.fromkeys(READS, 200)
    accounts = [str(a) for a in PortfolioAccount.objects.filter(parent__isnull=True).values_list("pk", flat=True)[:2]]
    response = client.post("/api/v1/portfolios/rebalancings/executions/", {"accounts": accounts}, format="json",
                           HTTP_IDEMPOTENCY_KEY="outage-1")
    assert response.status_code == 202, response.content
    execution = Execution.objects.get(pk=response.json()["execution_id"])
    assert execution.status == "PENDING"
    assert list(execution.chunks.values_list("sent_at", flat=True)) == [None]  # the broker refused it
    replay = client.post("/api/v1/portfolios/rebalancings/executions/", {"accounts": accounts}, format="json",
                         HTTP_IDEMPOTENCY_KEY="outage-1")
    assert replay.status_code == 202 and replay.content == response.content

    # The rate limit still holds, counted in this process: 40 a minute, 10 requests used.
    codes = [client.get("/api/v1/instruments/").status_code for _ in range(35)]
    assert codes.count(200) == 30 and set(codes[30:]) == {429}
    assert all(code < 500 for code in codes)

    assert executions_sweep().broker_down  # nothing can be sent yet
    redis_down()  # the broker is back
    assert executions_sweep().chunks == 1
    assert execution.chunks.filter(sent_at__isnull=False).count() == 1
    (chunk_id,) = execution.chunks.values_list("pk", flat=True)
    execution_chunk_process(chunk_id=chunk_id)  # what the worker does with the message
    execution.refresh_from_db()
    assert execution.status == "COMPLETED"
