"""core.dispatch: the task names the services send are registered, and sent by name."""

import pytest

from config.celery import app
from core import dispatch
from rebalancing.services import executions
from webhooks import events

SENT_BY_NAME = (executions.PLAN_TASK, executions.CHUNK_TASK, events.SEND_TASK)


@pytest.mark.parametrize("name", SENT_BY_NAME)
def test_every_task_a_service_sends_is_registered_under_that_name(name):
    app.loader.import_default_modules()
    assert name in app.tasks


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(app, "send_task", lambda name, args=(), **options: calls.append((name, args, options)))
    return calls


def test_task_send_sends_by_name_with_its_options(sent):
    dispatch.task_send("rebalancing.tasks.execution_chunk_run", 7, countdown=5)
    # No result is kept: nothing waits for one, and keeping it made a send wait ~20 s on a
    # result store that is down.
    assert sent == [("rebalancing.tasks.execution_chunk_run", (7,), {"countdown": 5, "ignore_result": True})]


def test_task_try_send_reports_a_refusal_instead_of_raising(monkeypatch):
    def refuse(name, args=(), **options):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(app, "send_task", refuse)
    assert dispatch.task_try_send("rebalancing.tasks.execution_chunk_run", 7) is False


def test_queue_size_is_none_when_the_broker_cannot_be_asked(monkeypatch):
    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    assert dispatch.queue_size("nothing-here") is None

