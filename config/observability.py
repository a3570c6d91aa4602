"""What an operator sees of a running Ballast: correlation ids in every log line, JSON
logs, task time limits and failures, and the optional Sentry hook (docs/operations.md).

- A request gets an id (`X-Request-ID` from the proxy when it is sane, else a new
  one), answered in the `X-Request-ID` header and put on every log line written while
  it runs, as `request_id`.
- A Celery task's log lines carry its `task_id`, the `request_id` of the request (or
  task) that enqueued it, and the `execution_id` when the task works for an
  execution (its `execution_id` argument, or inherited from the task that sent it).
- `SENTRY_DSN` turns error reporting on (Django, Celery, logged errors) with money
  amounts and personal data scrubbed.
"""

import contextvars
import inspect
import logging
import re
import time
import uuid

from celery import signals
from django.db.models.signals import post_save
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

logger = logging.getLogger("ballast.tasks")
request_logger = logging.getLogger("ballast.request")

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("ballast_request_id", default=None)
task_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("ballast_task_id", default=None)
execution_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("ballast_execution_id", default=None)

CONTEXT_FIELDS = ("request_id", "task_id", "execution_id")
_VARS = {"request_id": request_id_var, "task_id": task_id_var, "execution_id": execution_id_var}
# Message headers that carry the ids from the sender to the task.
REQUEST_ID_HEADER = "ballast_request_id"
EXECUTION_ID_HEADER = "ballast_execution_id"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def current_request_id() -> str | None:
    return request_id_var.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


# --- Logging --------------------------------------------------------------------------


class ContextFilter(logging.Filter):
    """Put `request_id`, `task_id` and `execution_id` on every record (None when unknown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _VARS.items():
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the
    context ids that are known, anything passed in `extra=`, and the traceback."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        super().__init__("%(levelname)s %(name)s %(message)s", *args, **kwargs)

    def process_log_record(self, log_record):
        for name in CONTEXT_FIELDS:
            if log_record.get(name) is None:
                log_record.pop(name, None)
        return super().process_log_record(log_record)


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal: `time LEVEL logger [ids] message`."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(context)s%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = [f"{name.split('_')[0]}={getattr(record, name)}" for name in CONTEXT_FIELDS if getattr(record, name, None)]
        record.context = f"[{' '.join(ids)}] " if ids else ""
        return super().format(record)


def logging_config(*, fmt: str, level: str) -> dict:
    """settings.LOGGING: `fmt` "json" (production) or "text" (local)."""
    if fmt not in ("json", "text"):
        raise ValueError(f'LOG_FORMAT must be "json" or "text", not {fmt!r}')
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "config.observability.ContextFilter"}},
        "formatters": {
            "json": {"()": "config.observability.JsonFormatter"},
            "text": {"()": "config.observability.TextFormatter"},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": fmt, "filters": ["context"]}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django logs 4xx as warnings on django.request; ballast.request has every request.
            "django.request": {"level": "ERROR"},
            # config/health.py logs one line naming what is not ready, without tracebacks.
            "health_check": {"level": "ERROR"},
        },
    }


# --- Requests -----------------------------------------------------------------------


class RequestIdMiddleware:
    """First middleware: give the request its id, log one line when it is answered
    (`ballast.request`: method, path without query string, status, duration_ms), and
    answer the id in `X-Request-ID`."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SANE_REQUEST_ID.match(incoming) else new_request_id()
        request.request_id = request_id
        token = request_id_var.set(request_id)
        execution_token = execution_id_var.set(None)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            request_logger.info(
                "%s %s %s", request.method, request.path, response.status_code,
                extra={
                    "method": request.method, "path": request.path, "status": response.status_code,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                },
            )
            return response
        finally:
            execution_id_var.reset(execution_token)
            request_id_var.reset(token)


# --- Executions -------------------------------------------------------------------------


def _execution_saved(sender, instance, **kwargs) -> None:
    """Once a request or task has created (or saved) an execution, its later log lines
    and the tasks it enqueues (an execution's chunks) carry the execution's id."""
    execution_id_var.set(str(instance.pk))


# A lazy sender: this module is imported by the settings, before the apps are loaded.
post_save.connect(_execution_saved, sender="rebalancing.Execution", weak=False, dispatch_uid="ballast-execution-id")


# --- Celery -----------------------------------------------------------------------------

# Time limits of every task unless it declares its own: a stuck task is stopped (soft:
# SoftTimeLimitExceeded inside the task, which the chunk tasks retry; hard: the worker
# process is killed and the message, acknowledged late, is delivered again).
TASK_SOFT_TIME_LIMIT_SECONDS = 300
TASK_TIME_LIMIT_SECONDS = 360


@signals.before_task_publish.connect(dispatch_uid="ballast-ids-publish")
def _ids_into_message(headers=None, **kwargs) -> None:
    """The sender's request id and execution id travel with the message."""
    if headers is None:
        return
    for header, var in ((REQUEST_ID_HEADER, request_id_var), (EXECUTION_ID_HEADER, execution_id_var)):
        value = var.get()
        if value and header not in headers:
            headers[header] = value


def _execution_id_argument(task, args, kwargs) -> str | None:
    if kwargs and kwargs.get("execution_id"):
        return str(kwargs["execution_id"])
    if not args:
        return None
    try:
        bound = inspect.signature(task.run).bind_partial(*args)
    except (TypeError, ValueError):
        return None
    value = bound.arguments.get("execution_id")
    return str(value) if value else None


_task_tokens: dict = {}


@signals.task_prerun.connect(dispatch_uid="ballast-ids-task-start")
def _task_started(task_id=None, task=None, args=None, kwargs=None, **extra) -> None:
    request = task.request
    execution_id = _execution_id_argument(task, args, kwargs) or getattr(request, EXECUTION_ID_HEADER, None)
    _task_tokens[task_id] = [
        (task_id_var, task_id_var.set(task_id)),
        (request_id_var, request_id_var.set(getattr(request, REQUEST_ID_HEADER, None) or request_id_var.get())),
        (execution_id_var, execution_id_var.set(execution_id)),
    ]
    request._ballast_started = time.monotonic()


@signals.task_postrun.connect(dispatch_uid="ballast-ids-task-end")
def _task_finished(task_id=None, task=None, state=None, **extra) -> None:
    from . import metrics

    started = getattr(task.request, "_ballast_started", None)
    seconds = None if started is None else time.monotonic() - started
    metrics.task_finished(task.name, state or "UNKNOWN", seconds)
    logger.info(
        "task %s %s", task.name, state, extra={"task": task.name, "state": state, "duration_ms": round((seconds or 0) * 1000, 1)}
    )
    for var, token in reversed(_task_tokens.pop(task_id, [])):
        try:
            var.reset(token)
        except ValueError:  # set in another context (an eager task inside a test): nothing to restore
            pass


@signals.task_failure.connect(dispatch_uid="ballast-task-failure-log")
def _task_failed(task_id=None, exception=None, sender=None, einfo=None, **extra) -> None:
    """Every failed task leaves a log line with its id and name (and the traceback),
    whatever the feature's own rows record; Sentry picks it up from the log as well."""
    name = getattr(sender, "name", "?")
    logger.error(
        "task %s %s failed: %r", name, task_id, exception,
        exc_info=(type(exception), exception, exception.__traceback__) if exception is not None else None,
        extra={"task": name, "task_id": task_id},
    )


@signals.task_retry.connect(dispatch_uid="ballast-task-retry-log")
def _task_retried(request=None, reason=None, sender=None, **extra) -> None:
    from . import metrics

    name = getattr(sender, "name", "?")
    metrics.task_retried(name)
    logger.warning("task %s %s will be retried: %s", name, getattr(request, "id", "?"), reason, extra={"task": name})


# --- Sentry -----------------------------------------------------------------------------

# Keys whose values never leave for Sentry: money amounts, positions and people.
SCRUBBED_KEYS = [
    "amount", "cash_amount", "balance", "units", "executed_units", "settled_units", "value", "total_value",
    "cash_before", "cash_after", "trade_amount", "unit_price", "executed_price", "executed_amount",
    "gross_amount", "price", "rate", "unit_cost", "weight", "cash", "positions", "lots", "holdings",
    "client_id", "user_id", "username", "email", "actor_email", "first_name", "last_name", "name",
    "remote_addr", "ip_address", "secret", "token", "key", "digest",
]


def sentry_before_send(event: dict, hint: dict) -> dict:
    """Drop what Sentry's scrubber cannot know to be personal: request bodies, query
    strings (they hold client ids and amounts), cookies and the user's address."""
    request = event.get("request") or {}
    for field in ("data", "query_string", "cookies"):
        if field in request:
            request[field] = "[Filtered]"
    user = event.get("user")
    if isinstance(user, dict):
        event["user"] = {key: value for key, value in user.items() if key == "id"}
    return event


def sentry_options(*, dsn: str, environment: str, release: str | None, traces_sample_rate: float) -> dict:
    """The options `sentry_sdk.init` gets (tests check the scrubbing with them)."""
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, DEFAULT_PII_DENYLIST, EventScrubber

    return {
        "dsn": dsn,
        "environment": environment,
        "release": release,
        "send_default_pii": False,
        "include_local_variables": False,  # a frame's locals hold amounts under any name
        "max_request_body_size": "never",
        "event_scrubber": EventScrubber(
            denylist=DEFAULT_DENYLIST + SCRUBBED_KEYS, pii_denylist=DEFAULT_PII_DENYLIST, recursive=True
        ),
        "before_send": sentry_before_send,
        "traces_sample_rate": traces_sample_rate,
    }


def sentry_init(*, dsn: str, environment: str, release: str | None = None, traces_sample_rate: float = 0.0) -> bool:
    """Start the Sentry SDK for Django and Celery when `dsn` is set; False when it is not."""
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        integrations=[DjangoIntegration(), CeleryIntegration()],
        **sentry_options(dsn=dsn, environment=environment, release=release, traces_sample_rate=traces_sample_rate),
    )
    return True
