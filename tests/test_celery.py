"""Celery runs on the configured broker for real: files without REDIS_URL, Redis with it."""

import os

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from config.celery import app
from portfolios.models import IdempotencyRecord
from portfolios.tasks import idempotency_records_purge_task
from tests.factories import UserFactory


def test_broker_follows_redis_url():
    if os.environ.get("REDIS_URL"):
        assert app.conf.broker_url == os.environ["REDIS_URL"] == settings.CELERY_RESULT_BACKEND
    else:
        assert app.conf.broker_url == "filesystem://"
        assert settings.CELERY_RESULT_BACKEND == "django-db"
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost


@pytest.mark.django_db(transaction=True)
def test_a_task_round_trips_through_the_real_broker_and_a_worker():
    from datetime import timedelta

    from django.utils import timezone

    record = IdempotencyRecord.objects.create(user=UserFactory(), key="k", method="POST", path="/", request_hash="h")
    IdempotencyRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - timedelta(days=2))
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        assert idempotency_records_purge_task.delay().get(timeout=30) == 1
    assert not IdempotencyRecord.objects.exists()


def test_workers_reuse_their_database_connection_and_check_it_before_each_task(monkeypatch):
    """Celery closes the connection around every task unless CELERY_DB_REUSE_MAX is set
    (a new PostgreSQL backend per chunk cost ~20 % of the CPU of a whole-book execution); our
    task_prerun hook then drops a broken or expired connection, except for an eager
    task, which runs inside its caller's transaction."""
    from types import SimpleNamespace

    import django.db

    from config.celery import _database_connections_check

    assert app.conf.get("CELERY_DB_REUSE_MAX") == settings.CELERY_DB_REUSE_MAX >= 1
    calls = []
    monkeypatch.setattr(django.db, "close_old_connections", lambda: calls.append(1))
    _database_connections_check(task=SimpleNamespace(request=SimpleNamespace(is_eager=True)))
    assert calls == []
    _database_connections_check(task=SimpleNamespace(request=SimpleNamespace(is_eager=False)))
    assert calls == [1]


def test_each_worker_process_freezes_its_start_up_heap_and_collects_young_objects_less_often():
    """A whole-book execution spent a fifth of the workers' time in full collections of
    the start-up heap; worker_process_init tunes the collector in every pool process."""
    import gc
    import weakref

    from celery.signals import worker_process_init

    from config.celery import GC_FIRST_GENERATION_THRESHOLD, _garbage_collector_tune

    connected = [r() if isinstance(r, weakref.ReferenceType) else r for _, r in worker_process_init.receivers]
    assert _garbage_collector_tune in connected
    thresholds = gc.get_threshold()
    try:
        _garbage_collector_tune()  # not the signal: Celery's Django fixup would close the test's connections
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_FIRST_GENERATION_THRESHOLD, *thresholds[1:])
        assert gc.isenabled()  # cycles are still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
