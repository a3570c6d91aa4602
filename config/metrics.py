"""Prometheus metrics (docs/operations.md, "Metrics").

Three sources, one text page:

- the process's own counters: django-prometheus' request counts and latencies by
  view, and the Celery task counters below (in the process that ran the task);
- the business figures, read from the database when the page is scraped, so every
  web process answers the same whatever process did the work: executions by status,
  accounts rebalanced (a counter: `rate()` gives accounts per second), pending
  webhook deliveries;
- the broker's queue depth, read when scraped.

With several processes per host (gunicorn workers, Celery's prefork pool), set
`PROMETHEUS_MULTIPROC_DIR` to a folder of their own per service and host: each
process writes its counters there and any of them serves the sum.
"""

import hmac
import logging
import os

from django.conf import settings
from django.db.models import Count, Sum
from django.http import Http404, HttpResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import REGISTRY as PROCESS_REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

logger = logging.getLogger(__name__)

TASKS = Counter("ballast_celery_tasks", "Celery tasks finished, by task name and final state.", ["task", "state"])
TASK_FAILURES = Counter("ballast_celery_task_failures", "Celery tasks that ended in FAILURE, by task name.", ["task"])
TASK_RETRIES = Counter("ballast_celery_task_retries", "Celery tasks that asked to be retried, by task name.", ["task"])
TASK_DURATION = Histogram(
    "ballast_celery_task_duration_seconds", "Wall time of a Celery task, by task name.", ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
WEBHOOK_ATTEMPTS = Counter(
    "ballast_webhook_deliveries",
    "Webhook delivery attempts by outcome: delivered (2xx), retry (will be tried again), failed (given up).",
    ["outcome"],
)


def task_finished(name: str, state: str, seconds: float | None) -> None:
    TASKS.labels(task=name, state=state).inc()
    if state == "FAILURE":
        TASK_FAILURES.labels(task=name).inc()
    if seconds is not None:
        TASK_DURATION.labels(task=name).observe(seconds)


def task_retried(name: str) -> None:
    TASK_RETRIES.labels(task=name).inc()


def webhook_attempt(outcome: str) -> None:
    WEBHOOK_ATTEMPTS.labels(outcome=outcome).inc()


# --- Read when scraped ----------------------------------------------------------------


def queue_lengths() -> dict[str, int]:
    """Messages waiting in the default queue of the broker (Redis list length, or the
    file transport's message files); {} when the broker does not answer."""
    queue = settings.CELERY_TASK_DEFAULT_QUEUE if hasattr(settings, "CELERY_TASK_DEFAULT_QUEUE") else "celery"
    broker = settings.CELERY_BROKER_URL
    try:
        if broker.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(broker, socket_connect_timeout=2, socket_timeout=2)
            try:
                return {queue: int(client.llen(queue))}
            finally:
                client.close()
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in")
        if folder:
            return {queue: sum(1 for name in os.listdir(folder) if name.endswith(f".{queue}.msg"))}
    except Exception as exc:  # the page still answers; readyz says what is down
        logger.warning("metrics: queue length unavailable: %r", exc)
    return {}


class BusinessCollector:
    """Figures read from the database (three cheap queries) and the broker."""

    def collect(self):
        from rebalancing.models import Execution, ExecutionStatus
        from webhooks.models import Delivery, DeliveryStatus

        by_status = dict(Execution.objects.order_by().values_list("status").annotate(n=Count("id")))
        executions = GaugeMetricFamily("ballast_executions", "Executions by status.", labels=["status"])
        for status in ExecutionStatus.values:
            executions.add_metric([status], by_status.get(status, 0))
        yield executions

        done = Execution.objects.aggregate(done=Sum("done"))["done"] or 0
        rebalanced = CounterMetricFamily(
            "ballast_accounts_rebalanced", "Accounts given a result by an execution (rate() = accounts per second)."
        )
        rebalanced.add_metric([], done)
        yield rebalanced

        pending = Delivery.objects.filter(status=DeliveryStatus.PENDING).count()
        yield GaugeMetricFamily("ballast_webhook_deliveries_pending", "Webhook deliveries waiting to be sent.", value=pending)

        depth = GaugeMetricFamily("ballast_celery_queue_length", "Messages waiting in the broker, by queue.", labels=["queue"])
        for queue, length in queue_lengths().items():
            depth.add_metric([queue], length)
        yield depth


def process_registry() -> CollectorRegistry:
    """This process's counters, or every process's of the host in multi-process mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return PROCESS_REGISTRY


def metrics_page() -> bytes:
    business = CollectorRegistry(auto_describe=True)
    business.register(BusinessCollector())
    return generate_latest(process_registry()) + generate_latest(business)


def _authorized(request) -> bool:
    expected = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    return bool(expected) and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), expected.encode())


def metrics_view(request):
    """GET /metrics: Prometheus text format, for `Authorization: Bearer <METRICS_TOKEN>`
    only. Without METRICS_TOKEN the page does not exist (404); a wrong token is 403."""
    if not settings.METRICS_TOKEN:
        raise Http404("metrics are off")
    if not _authorized(request):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(metrics_page(), content_type=CONTENT_TYPE_LATEST)


def worker_metrics_server_start(port: int) -> None:
    """Serve this host's worker counters on `port` (CELERY_METRICS_PORT), from the main
    worker process; the pool processes write to PROMETHEUS_MULTIPROC_DIR."""
    from prometheus_client import start_http_server

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        logger.warning("CELERY_METRICS_PORT without PROMETHEUS_MULTIPROC_DIR: only the main process's counters are served")
    start_http_server(port, registry=process_registry())
    logger.info("worker metrics on port %s", port)
