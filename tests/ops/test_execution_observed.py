"""One execution through the API and a real worker, as an operator sees it: JSON log
lines carrying the request id into the worker's tasks with the execution id, and the
Prometheus page counting the execution, its accounts and the tasks."""

import io
import json
import logging
import re
import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import connection
from django.db.utils import OperationalError
from django.test import Client

from config.celery import app
from config.observability import ContextFilter, JsonFormatter
from core.dispatch import queue_size
from rebalancing.models import DriftSummary
from tests.factories import UserFactory
from tests.portfolios.api.conftest import client_for  # noqa: F401
from tests.rebalancing.conftest import D, account_with, fifty_fifty  # noqa: F401

METRICS_TOKEN = "scrape-" + "x" * 40


@pytest.fixture
def json_log():
    """Every record of the `ballast.*` loggers as the production JSON formatter writes
    it (not on the root logger: the worker's start runs django.setup() again, which
    configures the root logger anew)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    ballast = logging.getLogger("ballast")
    level = ballast.level
    ballast.addHandler(handler)
    ballast.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    ballast.removeHandler(handler)
    ballast.setLevel(level)


def _metric(page: str, name: str, **labels) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in page.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = ",".join(sorted(part for part in (match.group(2) or "").split(",") if part))
        if found == wanted:
            return float(match.group(3))
    raise AssertionError(f"no {name}{{{wanted}}} in the page")


@pytest.mark.parametrize("planned_by", ["worker", "request"])
@pytest.mark.django_db(transaction=True)
def test_one_execution_in_the_logs_and_the_metrics(
    fifty_fifty, account_with, client_for, settings, request, json_log, planned_by,
):
    """Planned by the worker (a large execution: plan task, then chunks) or in the
    request (a small one: the request enqueues the chunks)."""
    settings.REBALANCE_CHUNK_SIZE = 2
    if planned_by == "worker":
        settings.REBALANCE_PLAN_INLINE_MAX = 0
    settings.METRICS_TOKEN = METRICS_TOKEN
    _, _, allocation = fifty_fifty
    accounts = [account_with(allocation) for _ in range(3)]
    client = client_for(UserFactory(username="operator", is_staff=True, is_superuser=True))
    if connection.vendor == "sqlite":  # as in tests/rebalancing/executions/test_concurrency.py
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA read_uncommitted = 1")

        def read_committed_again():
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA read_uncommitted = 0")

        request.addfinalizer(read_committed_again)

    def poll(url: str) -> dict:
        for _ in range(50):
            try:
                return client.get(url).json()
            except OperationalError:
                time.sleep(0.1)
        raise AssertionError("the database stayed locked")

    # Messages earlier tests in this process left in its queue (work they sent on commit
    # that no worker took) would run first in this worker, beside this test's requests.
    app.control.purge()
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        response = client.post(
            "/api/v1/portfolios/rebalancings/executions/",
            {"accounts": [str(a.pk) for a in accounts], "rebalance_date": D.isoformat()},
            format="json", HTTP_X_REQUEST_ID="req-from-the-proxy-1",
        )
        assert response.status_code == 202, response.content
        assert response["X-Request-ID"] == "req-from-the-proxy-1"
        execution_id = response.json()["execution_id"]
        deadline = time.monotonic() + 60
        while poll(f"/api/v1/portfolios/rebalancings/executions/{execution_id}/")["status"] in ("PENDING", "RUNNING"):
            assert time.monotonic() < deadline, "the execution did not finish"
            time.sleep(0.2)
        # The finished execution sends one rebuild of the dashboard's drift summary: the
        # worker has run it when the summary exists and nothing is left in the queue.
        while not DriftSummary.objects.exists() or queue_size() != 0:
            assert time.monotonic() < deadline, "the drift summary was not rebuilt"
            time.sleep(0.2)

    records = json_log()
    [post] = [r for r in records if r["logger"] == "ballast.request" and r.get("method") == "POST"]
    assert post["request_id"] == "req-from-the-proxy-1" and post["status"] == 202
    assert post["execution_id"] == execution_id  # the request created it
    assert {"time", "level", "logger", "message"} <= set(post) and post["level"] == "INFO"
    # This execution's tasks: the queue may still hold a message an earlier test in this
    # process sent and no worker took (it runs here as a no-op, with no ids of ours).
    task_lines = [r for r in records if r["logger"] == "ballast.tasks" and r.get("execution_id") == execution_id]
    chunks = {"rebalancing.tasks.execution_chunk_run", "rebalancing.tasks.drift_summary_refresh_task"}
    assert {r["task"] for r in task_lines} == (chunks | {"rebalancing.tasks.execution_plan_run"} if planned_by == "worker" else chunks)
    for line in task_lines:
        # The worker's lines carry the request that started it all, their task and the execution.
        assert line.get("request_id") == "req-from-the-proxy-1", line
        assert line["execution_id"] == execution_id, line
        assert re.fullmatch(r"[0-9a-f-]{36}", line["task_id"]) and line["state"] == "SUCCESS"
    assert len({line["task_id"] for line in task_lines}) == len(task_lines) == (4 if planned_by == "worker" else 3)

    scraper = Client()
    assert scraper.get("/metrics").status_code == 403
    page = scraper.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/plain")
    text = page.content.decode()
    assert _metric(text, "ballast_executions", status="COMPLETED") == 1
    assert _metric(text, "ballast_executions", status="FAILED") == 0
    assert _metric(text, "ballast_accounts_rebalanced_total") == 3
    assert _metric(text, "ballast_celery_tasks_total", task="rebalancing.tasks.execution_chunk_run", state="SUCCESS") >= 2
    assert _metric(text, "ballast_celery_task_duration_seconds_count", task="rebalancing.tasks.execution_chunk_run") >= 2
    assert _metric(text, "ballast_celery_queue_length", queue=settings.CELERY_TASK_DEFAULT_QUEUE) == 0
    assert _metric(text, "ballast_webhook_deliveries_pending") == 0
    # django-prometheus: requests and their latency by view.
    assert _metric(
        text, "django_http_requests_total_by_view_transport_method_total",
        view="execution-list", transport="http", method="POST",
    ) >= 1
    assert _metric(text, "django_http_requests_latency_seconds_by_view_method_count", view="execution-list", method="POST") >= 1
    print("\n".join(json.dumps(r) for r in [post, *task_lines]))
    print("\n".join(line for line in text.splitlines() if line.startswith("ballast_")))
