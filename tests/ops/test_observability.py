"""Logs, problem details for bugs, task limits and failures, Sentry's scrubbing."""

import json
import logging
import uuid

import pytest
from rest_framework.test import APIClient

from config.observability import (
    ContextFilter, JsonFormatter, TextFormatter, execution_id_var, request_id_var, sentry_before_send, sentry_options,
    task_id_var,
)
from tests.factories import api_token_key
from tests.security.test_deploy import manage


def _record(message="hello", **extra) -> logging.LogRecord:
    record = logging.LogRecord("ballast.test", logging.WARNING, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    ContextFilter().filter(record)
    return record


def test_a_json_line_has_time_level_logger_message_and_the_ids_known():
    tokens = [request_id_var.set("req-1"), execution_id_var.set("exe-1")]
    try:
        line = json.loads(JsonFormatter().format(_record(duration_ms=12.5)))
    finally:
        execution_id_var.reset(tokens[1])
        request_id_var.reset(tokens[0])
    assert line["level"] == "WARNING" and line["logger"] == "ballast.test" and line["message"] == "hello"
    assert line["time"].endswith("+00:00") and line["time"][:4].isdigit()
    assert (line["request_id"], line["execution_id"], line["duration_ms"]) == ("req-1", "exe-1", 12.5)
    assert "task_id" not in line  # unknown ids are left out, not null


def test_a_local_line_is_readable():
    token = task_id_var.set("task-9")
    try:
        text = TextFormatter().format(_record("chunk done"))
    finally:
        task_id_var.reset(token)
    assert " WARNING ballast.test [task=task-9] chunk done" in text


def test_production_logs_json_lines(tmp_path):
    script = "import django, logging; django.setup(); logging.getLogger('ballast.check').warning('from production')"
    result = manage("shell", "-c", script)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    [line] = [entry for entry in lines if entry["logger"] == "ballast.check"]
    assert line["message"] == "from production" and line["level"] == "WARNING"


def test_an_unknown_log_format_is_refused_naming_the_setting():
    from config.observability import logging_config

    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logging_config(fmt="xml", level="INFO")


@pytest.mark.django_db
def test_an_unhandled_api_error_is_a_500_problem_with_the_request_id(superuser, monkeypatch, caplog):
    from portfolios.api import views

    def broken(*args, **kwargs):
        raise RuntimeError("secret detail of the bug")

    monkeypatch.setattr(views.InstrumentViewSet, "list", broken)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_key(superuser)}")
    with caplog.at_level(logging.ERROR, logger="ballast.api"):
        response = client.get("/api/v1/instruments/")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    request_id = response["X-Request-ID"]
    assert body["type"] == "urn:ballast:problem:internal-error" and body["status"] == 500
    assert body["correlation_id"] == request_id and request_id in body["detail"]
    assert "secret detail" not in response.content.decode()
    [logged] = [r for r in caplog.records if r.name == "ballast.api"]
    assert logged.request_id == request_id and "secret detail of the bug" in str(logged.exc_info[1])


def test_a_sane_request_id_from_the_proxy_is_kept_and_a_bad_one_replaced(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="lb-1234.abc").get("X-Request-ID") == "lb-1234.abc"
    replaced = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")["X-Request-ID"]
    assert replaced != "bad id\nwith newline" and uuid.UUID(replaced)


def test_every_task_has_a_soft_and_a_hard_time_limit():
    from config.celery import app

    app.loader.import_default_modules()
    tasks = {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}
    assert "rebalancing.tasks.execution_chunk_run" in tasks and "credentials.tasks.api_tokens_purge_task" in tasks
    for name, task in tasks.items():
        soft = task.soft_time_limit or app.conf.task_soft_time_limit
        hard = task.time_limit or app.conf.task_time_limit
        assert soft and hard and soft < hard, name


@pytest.mark.django_db
def test_a_failed_task_is_logged_with_its_id(monkeypatch, caplog):
    from portfolios import tasks

    monkeypatch.setattr(tasks, "idempotency_records_purge", lambda: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="ballast.tasks"):
        result = tasks.idempotency_records_purge_task.apply()
    assert result.failed()
    [logged] = [r for r in caplog.records if r.name == "ballast.tasks"]
    assert logged.task_id == result.id and result.id in logged.getMessage()
    assert logged.task == "portfolios.tasks.idempotency_records_purge_task" and logged.exc_info[0] is ZeroDivisionError


def test_sentry_is_off_without_a_dsn():
    import sentry_sdk

    from config.observability import sentry_init

    assert sentry_init(dsn="", environment="test") is False
    assert not sentry_sdk.get_client().is_active()


def test_sentry_events_leave_without_money_or_personal_data():
    options = sentry_options(dsn="https://key@sentry.example/1", environment="test", release=None, traces_sample_rate=0)
    assert options["send_default_pii"] is False and options["include_local_variables"] is False
    event = {
        "request": {
            "url": "https://ballast.example/api/v1/portfolios/orders/", "query_string": "client_id=C-1042",
            "data": {"cash_amount": "250000.00", "account_id": "a1"}, "cookies": {"sessionid": "s"},
            "headers": {"Authorization": "Token abc", "X-Request-ID": "req-1"},
        },
        "user": {"id": 7, "username": "j.doe", "email": "j.doe@bank.example", "ip_address": "10.1.2.3"},
        "extra": {"order": {"cash_amount": "250000.00", "units": "12", "currency": "EUR"}, "client_id": "C-1042"},
        "breadcrumbs": {"values": [{"data": {"balance": "99.00", "username": "j.doe"}}]},
    }
    options["event_scrubber"].scrub_event(event)
    event = options["before_send"](event, {})
    text = json.dumps(event, default=lambda value: getattr(value, "value", str(value)))
    for secret in ("250000.00", "C-1042", "j.doe", "99.00", "Token abc", "10.1.2.3"):
        assert secret not in text, secret
    assert event["extra"]["order"]["currency"] == "EUR" and event["user"] == {"id": 7}
