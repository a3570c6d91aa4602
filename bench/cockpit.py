"""What the cockpit benchmarks share: a database of their own with the demo book, a
logged-in admin client and an API client, percentiles, and EXPLAIN of a page's queries.
Imported by bench/dashboard.py and bench/admin_lists.py (not run alone)."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def add_arguments(parser) -> None:
    parser.add_argument("--database", default="ballast_bench_cockpit")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--reuse", action="store_true", help="reuse a database loaded by an earlier run")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--rounds", type=int, default=40, help="page loads per page measured [40]")


def django_setup(args, database: str) -> None:
    os.environ.update({
        "DATABASE_URL": f"{args.postgres}/{database}",
        "REDIS_URL": args.redis,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DJANGO_DEBUG": "false",  # DEBUG would keep every query in memory
        "DJANGO_ALLOWED_HOSTS": "localhost",
        "LOG_LEVEL": "WARNING",
    })
    import django

    django.setup()


def database_prepare(args, database: str) -> bool:
    """Create `database` (dropping an old one) unless --reuse finds it. True if it must be loaded."""
    import psycopg

    with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if exists and args.reuse:
            return False
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{database}"')
    return True


def database_drop(args, database: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def book_load(accounts: int, must_load: bool) -> None:
    """Migrate; load the demo book of `accounts` accounts and store every account's drift
    (what the daily evaluation does) unless the database is reused."""
    from django.core.management import call_command
    from django.db import connection

    from portfolios.services.demo import demo_book_load
    from rebalancing.services.drift import account_drifts_refresh

    call_command("migrate", verbosity=0)
    if not must_load:
        from rebalancing.models import DriftSummary
        from rebalancing.services.drift import drift_summary_refresh

        if not DriftSummary.objects.exists():  # a book loaded before the summary existed
            drift_summary_refresh()
        return
    started = time.perf_counter()
    summary = demo_book_load(accounts=accounts)
    drifts = account_drifts_refresh()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"loaded {summary.accounts:,} accounts ({summary.positions:,} positions, {drifts:,} drifts stored) in "
          f"{time.perf_counter() - started:.0f}s", flush=True)


def clients():
    """(admin client logged in as a superuser, API client with a token)."""
    from django.contrib.auth import get_user_model
    from django.test import Client
    from rest_framework.test import APIClient

    from credentials.services import api_token_create

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    admin = Client(HTTP_HOST="localhost")
    admin.force_login(user)
    api = APIClient(HTTP_HOST="localhost")
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name='benchmark')[1]}")
    return admin, api


def timed_get(client, url: str) -> tuple[float, list[str]]:
    """(milliseconds, SQL of the queries) of one GET; fails on anything but a 200."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        response = client.get(url)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
        elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"GET {url} answered {response.status_code}")
    return elapsed, [q["sql"] for q in captured.captured_queries]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def measure(pages: dict[str, tuple], rounds: int) -> dict[str, list[float]]:
    """Load every page `rounds` times, the pages interleaved (the machine's speed varies),
    after one warm-up load each. `pages`: label → (client, url)."""
    for client, url in pages.values():
        timed_get(client, url)
    times = {label: [] for label in pages}
    for _ in range(rounds):
        for label, (client, url) in pages.items():
            times[label].append(timed_get(client, url)[0])
    return times


def scans(queries: list[str], table: str) -> list[str]:
    """The queries whose PostgreSQL plan reads the whole of `table` (a Seq Scan on it)."""
    from django.db import connection

    found = []
    with connection.cursor() as cursor:
        for sql in queries:
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            try:
                cursor.execute("EXPLAIN " + sql)
            except Exception as exc:  # noqa: BLE001 - a query the capture could not render back
                found.append(f"(not explained: {exc.__class__.__name__}) {sql[:120]}")
                continue
            plan = "\n".join(row[0] for row in cursor.fetchall())
            if f"Seq Scan on {table}" in plan:
                found.append(sql)
    return found
