"""Executions with real concurrency: two workers racing for one chunk (PostgreSQL row
locks), and one end to end run through the API, the configured broker and a real Celery
worker (files and SQLite without REDIS_URL, Redis and PostgreSQL in CI)."""

import threading
import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import OperationalError, connection

from config.celery import app
from rebalancing.models import AccountLease, ExecutionChunk, ExecutionResult, TradeOrder
from rebalancing.services import execution_chunk_process, execution_create
from rebalancing.services import executions as executions_module
from tests.factories import UserFactory

from .conftest import D


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_on_one_chunk_one_does_the_work(fifty_fifty, account_with, is_postgres, monkeypatch):
    if not is_postgres:
        pytest.skip("needs PostgreSQL (row locks and concurrent connections)")
    *_, allocation = fifty_fifty
    accounts = [account_with(allocation) for _ in range(5)]
    execution = execution_create(method="FULL", trigger="API", account_ids=[str(a.pk) for a in accounts],
                                 rebalance_date=D)
    [chunk] = execution.chunks.all()

    # The first worker stops inside its transaction (chunk row locked) until the second has given up.
    inside, second_done = threading.Event(), threading.Event()
    real_book_load = executions_module.book_load

    def slow_book_load(**kwargs):
        inside.set()
        assert second_done.wait(10)
        return real_book_load(**kwargs)

    monkeypatch.setattr(executions_module, "book_load", slow_book_load)
    outcomes = {}

    def work(name, before=None, after=None):
        try:
            if before is not None:
                assert before.wait(10)
            outcomes[name] = execution_chunk_process(chunk_id=chunk.pk)
        finally:
            if after is not None:
                after.set()
            connection.close()

    first = threading.Thread(target=work, args=("first",))
    second = threading.Thread(target=work, args=("second", inside, second_done))
    first.start()
    second.start()
    first.join(20)
    second.join(20)
    assert outcomes["first"].processed and outcomes["first"].execution_status == "COMPLETED"
    assert not outcomes["second"].processed
    assert ExecutionResult.objects.filter(execution=execution).count() == 5
    assert TradeOrder.objects.filter(execution=execution).count() == 10


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_many_workers_racing_for_every_chunk_do_each_account_once(fifty_fifty, account_with, is_postgres, settings):
    if not is_postgres:
        pytest.skip("needs PostgreSQL (row locks and concurrent connections)")
    settings.REBALANCE_CHUNK_SIZE = 2
    *_, allocation = fifty_fifty
    accounts = [account_with(allocation) for _ in range(8)]
    execution = execution_create(method="FULL", trigger="API", account_ids=[str(a.pk) for a in accounts],
                                 rebalance_date=D)
    chunk_ids = list(execution.chunks.values_list("pk", flat=True))
    barrier = threading.Barrier(4)
    processed, errors = [], []

    def work():
        try:
            barrier.wait(10)
            for chunk_id in chunk_ids:  # every worker tries every chunk, as duplicate deliveries would
                outcome = execution_chunk_process(chunk_id=chunk_id)
                if outcome.processed:
                    processed.append(chunk_id)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    execution.refresh_from_db()
    assert errors == []
    assert sorted(processed) == sorted(chunk_ids)
    assert (execution.status, execution.done) == ("COMPLETED", 8)
    assert ExecutionResult.objects.filter(execution=execution).count() == 8
    assert TradeOrder.objects.filter(execution=execution).count() == 16


@pytest.mark.django_db(transaction=True)
def test_end_to_end_through_the_api_and_a_real_worker(fifty_fifty, account_with, client_for, settings, request):
    """Runs in both passes: the file broker and SQLite, and Redis and PostgreSQL when they are set.
    The execution counts as large, so the worker plans it too (execution_plan_run, then three chunks)."""
    settings.REBALANCE_CHUNK_SIZE = 2
    settings.REBALANCE_PLAN_INLINE_MAX = 0
    a, b, allocation = fifty_fifty
    accounts = [account_with(allocation) for _ in range(5)]
    user = UserFactory(username="operator", is_staff=True, is_superuser=True)
    client = client_for(user)
    expected_broker = "redis" if settings.REDIS_URL else "filesystem"
    assert app.conf.broker_url.startswith(expected_broker)

    if connection.vendor == "sqlite":
        # The test database is SQLite's shared-cache in-memory one: a read by this thread while
        # the worker's thread writes would be "database table is locked" (no busy wait there).
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
            except OperationalError:  # SQLite only, see above
                time.sleep(0.1)
        raise AssertionError("the database stayed locked")

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        response = client.post(
            "/api/v1/portfolios/rebalancings/executions/",
            {"accounts": [str(x.pk) for x in accounts], "rebalance_date": D.isoformat()},
            format="json",
        )
        assert response.status_code == 202, response.content
        execution_id = response.json()["execution_id"]
        deadline = time.monotonic() + 60
        while True:
            body = poll(f"/api/v1/portfolios/rebalancings/executions/{execution_id}/")
            if body["status"] not in ("PENDING", "RUNNING") or time.monotonic() > deadline:
                break
            time.sleep(0.2)

    body = client.get(f"/api/v1/portfolios/rebalancings/executions/{execution_id}/").json()  # the worker has stopped
    assert body["status"] == "COMPLETED", body
    assert body["progress"] == {"done": 5, "total": 5}
    assert ExecutionChunk.objects.filter(execution_id=execution_id, status="DONE").count() == 3
    assert [r["account_id"] for r in body["results"]] == sorted(str(x.pk) for x in accounts)
    assert {r["status"] for r in body["results"]} == {"PROPOSED"}
    assert all(len(r["orders"]) == 2 and {o["status"] for o in r["orders"]} == {"OPEN"} for r in body["results"])
    assert TradeOrder.objects.filter(execution_id=execution_id).count() == 10
    assert not AccountLease.objects.exists()
    assert settings.CELERY_TASK_DEFAULT_QUEUE.startswith("ballast-test-")
