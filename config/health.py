"""`/healthz` and `/readyz` for load balancers and orchestrators (docs/operations.md).

- `/healthz`: the process answers; touches nothing else. Restart the process when
  it fails.
- `/readyz`: the database answers and has every migration applied, the cache and
  the broker answer. 200 `{"status": "ok"}`, or 503 `{"status": "unavailable",
  "failing": ["broker", "cache"]}`: the names of the failing components and nothing
  else (no host, no error text; the reasons go to the log). Send no traffic to a
  process while it fails.

Both are unauthenticated, never cached, and cheap: one `SELECT 1`, one look at the
migration table, a cache set/get and a broker connection, each given
`READINESS_TIMEOUT_SECONDS` (django-health-check runs them concurrently).
"""

import dataclasses
import datetime
import logging

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from health_check.base import HealthCheck
from health_check.checks import Cache, Database
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView

logger = logging.getLogger(__name__)

READINESS_TIMEOUT_SECONDS = 2


@dataclasses.dataclass
class Migrations(HealthCheck):
    """Every migration the code knows is applied (a deploy that skipped `migrate`)."""

    timeout: datetime.timedelta = dataclasses.field(
        default=datetime.timedelta(seconds=READINESS_TIMEOUT_SECONDS), repr=False
    )

    def run(self):
        from django.db import DEFAULT_DB_ALIAS, connections
        from django.db.migrations.executor import MigrationExecutor

        connection = connections[DEFAULT_DB_ALIAS]
        try:
            executor = MigrationExecutor(connection)
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        finally:
            connection.close()  # this runs in a worker thread: do not leave its connection open
        if plan:
            raise ServiceUnavailable(f"{len(plan)} migration(s) not applied")


@dataclasses.dataclass
class Broker(HealthCheck):
    """The Celery broker accepts a connection (Redis, or the file transport's folders)."""

    timeout: datetime.timedelta = dataclasses.field(
        default=datetime.timedelta(seconds=READINESS_TIMEOUT_SECONDS), repr=False
    )

    def run(self):
        from kombu import Connection

        seconds = self.timeout.total_seconds()
        options = dict(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}))
        options.setdefault("socket_connect_timeout", seconds)
        options.setdefault("socket_timeout", seconds)
        try:
            with Connection(settings.CELERY_BROKER_URL, connect_timeout=seconds, transport_options=options) as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=seconds)
                if conn.transport_cls in ("redis", "rediss"):
                    conn.default_channel.client.ping()
        except Exception as exc:
            raise ServiceUnavailable(type(exc).__name__) from exc


@dataclasses.dataclass
class _Database(Database):
    timeout: datetime.timedelta = dataclasses.field(
        default=datetime.timedelta(seconds=READINESS_TIMEOUT_SECONDS), repr=False
    )

    def run(self):
        from django.db import connections

        try:
            super().run()
        finally:
            connections[self.alias].close()  # worker thread: do not leave its connection open


# name shown in a 503 → the check
COMPONENTS = {
    "database": _Database,
    "migrations": Migrations,
    "cache": lambda: Cache(timeout=datetime.timedelta(seconds=READINESS_TIMEOUT_SECONDS)),
    "broker": Broker,
}


class ReadinessView(HealthCheckView):
    """django-health-check's view, answering only names and a status."""

    def get_checks(self):
        self._names = {}
        for name, make in COMPONENTS.items():
            check = make()
            self._names[id(check)] = name
            yield check

    async def get(self, request, *args, **kwargs):
        import asyncio

        with self.get_executor() as executor:
            results = await asyncio.gather(*(check.get_result(executor) for check in self.get_checks()))
        failing = sorted(self._names[id(result.check)] for result in results if result.error)
        if failing:
            logger.warning(
                "not ready: %s", "; ".join(f"{self._names[id(r.check)]}: {r.error}" for r in results if r.error),
                extra={"failing": failing},
            )
            return JsonResponse({"status": "unavailable", "failing": failing}, status=503)
        return JsonResponse({"status": "ok"})


readyz = ReadinessView.as_view()


@never_cache
def healthz(request):
    return JsonResponse({"status": "ok"})
