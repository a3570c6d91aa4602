"""Benchmark the daily strategy evaluation over a whole book: accounts per second.

Loads the demo book into a fresh PostgreSQL database, gives the demo allocations
THRESHOLD and CALENDAR strategies (a calendar date due today), and times
`strategies_evaluate`: it finds the due accounts, values every THRESHOLD account at
the latest prices, claims each (strategy, due date) and creates the executions
(what follows their commit is kept from the broker: nothing is rebalanced). Then it
times a second evaluation the same day, which must do nothing, and the planning of
the executions (leases and chunks) that a worker does next.

    .venv/bin/python bench/evaluation.py [--accounts 100000] \
        [--database-url postgres://postgres@127.0.0.1:5432/ballast_bench_eval] [--keep] [--profile]

The database named in --database-url is dropped and created again (unless --keep
and it already holds a book).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/ballast_bench_eval"


def fresh_database(url: str) -> None:
    import environ
    import psycopg
    from psycopg import sql

    config = environ.Env.db_url_config(url)
    if "postgresql" not in config["ENGINE"]:
        sys.exit("the benchmark runs on PostgreSQL: give a postgres:// URL")
    with psycopg.connect(
        host=config["HOST"] or "127.0.0.1", port=config["PORT"] or 5432, user=config["USER"],
        password=config["PASSWORD"] or None, dbname="postgres", autocommit=True,
    ) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(config["NAME"])))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(config["NAME"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--keep", action="store_true", help="reuse the database if it already holds a book")
    parser.add_argument("--profile", action="store_true", help="print the 25 costliest functions of the evaluation")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    if not args.keep:
        fresh_database(args.database_url)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from portfolios.models import Allocation, Configuration
    from portfolios.services.demo import demo_book_load
    from rebalancing.models import Execution, ExecutionChunk, Strategy, StrategyRun, StrategyType
    from rebalancing.services import automation, executions

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    summary = demo_book_load(accounts=args.accounts)
    print(f"book: {summary.accounts} new accounts, {summary.positions} positions "
          f"({time.perf_counter() - started:.1f} s to load)")
    with connection.cursor() as cursor:  # statistics, as a database in service has them
        cursor.execute("ANALYZE")

    # Two THRESHOLD and three CALENDAR strategies, on the five demo allocations; each
    # calendar date is due today. Re-running with --keep starts the day again.
    StrategyRun.objects.all().delete()
    Execution.objects.all().delete()
    Strategy.objects.all().delete()
    today = automation.evaluation_date()
    for n, allocation in enumerate(Allocation.objects.order_by("name")):
        if n % 2 == 0:
            Strategy.objects.create(
                allocation=allocation, type=StrategyType.CALENDAR, period_type="MONTHLY", period_count=1,
                anchor_date=today, method="FULL",
            )
        else:
            Strategy.objects.create(
                allocation=allocation, type=StrategyType.THRESHOLD, absolute_drift=Decimal("0.05"), method="EXCHANGE",
            )
    in_scope = Configuration.objects.filter(
        account__status="ACTIVE", account__parent__isnull=True, account__locked=False
    ).count()
    connection.close()

    # Keep the work that follows the commit (planning a large execution, its chunks)
    # away from the broker: the benchmark times the evaluation, not the rebalances.
    enqueued, plans = [], []
    executions.chunks_enqueue = enqueued.extend
    executions.plan_enqueue = lambda execution_id, account_ids=None: plans.append((execution_id, account_ids))

    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    first = automation.strategies_evaluate()
    elapsed = time.perf_counter() - started
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    started = time.perf_counter()
    second = automation.strategies_evaluate()
    again = time.perf_counter() - started

    print(f"evaluation of {first.on_date}: {in_scope} accounts with a strategy, {first.accounts_valued} valued for "
          f"their drift, {first.claimed} due dates claimed, {len(first.executions)} executions for "
          f"{first.accounts} accounts")
    print(f"evaluation: {elapsed:.1f} s, {in_scope / elapsed:,.0f} accounts/s "
          f"({first.accounts_valued / elapsed:,.0f} valued accounts/s)")
    print(f"second evaluation the same day: {second.claimed} claimed, {len(second.executions)} executions, "
          f"{again:.1f} s")
    # What the workers do next (not part of the evaluation): plan the large executions.
    started = time.perf_counter()
    for execution_id, account_ids in plans:
        executions.execution_plan(execution_id=execution_id, account_ids=account_ids)
    print(f"then, on a worker: {len(plans)} execution(s) planned in {time.perf_counter() - started:.1f} s, "
          f"{ExecutionChunk.objects.count()} chunks to rebalance")
    print(f"at {timezone.now():%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPU(s), PostgreSQL "
          f"{connection.cursor().connection.info.server_version}")


if __name__ == "__main__":
    main()
