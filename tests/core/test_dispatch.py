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
    assert sent == [("rebalancing.tasks.execution_chunk_run", (7,), {"countdown": 5})]

