"""Benchmark rebalancing executions end to end, on PostgreSQL, Redis and real workers.

    .venv/bin/python bench/execution.py [--accounts 100000] [--workers 2] [--chunk-size 1000]
                                        [--naive 2000] [--reuse] [--keep]

1. Creates a dedicated database (`--database`, default ballast_bench; dropped first),
   migrates it and loads the demo book with `demo_book_load(accounts=N)`: ~10 lines
   per allocation, positions near target with drift, ~6 % with a locked sub-portfolio.
   `--reuse` keeps a database loaded by an earlier run and only empties its executions.
2. Runs the NAIVE version over a sample (`--naive`, default 2,000 accounts, split over
   as many processes as workers): one transaction per account, the book loaded with
   the ORM for that one account, the engine, the OPEN orders replaced, every trade
   order and the result saved with `.save()` one by one. Then empties it again.
3. Starts `--workers` Celery worker processes (`celery -A config worker --concurrency 1`,
   prefork) on a Redis database of their own (the planner and the chunks run there), and POSTs
   `{"all_accounts": true, "method": "FULL"}` to /api/v1/portfolios/rebalancings/executions/
   with DRF's APIClient (in this process: the real URL, view, serializer, idempotency
   mixin and service; no HTTP server in between), then polls the database until the
   execution has finished.
4. Prints accounts/s end to end (POST → finished), orders/s, the naive rate and the
   ratio, the workers' peak RSS (VmHWM of each worker process and its pool child) and
   their CPU time (since their start, and during the execution alone). Stops the
   workers and drops the database unless `--keep`.

`--restricted N`, `--fx N` and `--tax N` alternate two variants of the book N times each
and print both rates, the workers' CPU per 1000 accounts and the ratios (docs/restrictions.md,
docs/prices.md, docs/tax.md); `--tax` also prints them by the medians of the rounds.

`--fills` then sends the execution's fills back as a file through `manage.py import_fills`
and prints its time, orders per second and peak memory (docs/imports.md "Fills file").

Needs PostgreSQL (`--postgres`, default postgres://postgres@127.0.0.1:5432) and Redis
(`--redis`, default redis://127.0.0.1:6379/15: its queue is emptied first).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
QUEUE = "celery"  # the default queue, in a Redis database of the bench's own (--redis)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=100_000, help="accounts in the demo book [100000]")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes [2]")
    parser.add_argument("--chunk-size", type=int, default=1000, help="accounts per chunk [1000]")
    parser.add_argument("--naive", type=int, default=2000, help="accounts in the naive sample; 0 skips it [2000]")
    parser.add_argument("--database", default="ballast_bench")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--reuse", action="store_true", help="reuse a loaded database (only empty its executions)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--timeout", type=float, default=1800, help="give up waiting after this many seconds [1800]")
    parser.add_argument(
        "--fx", type=int, default=0, metavar="ROUNDS",
        help="measure the whole book under fx_mode AUTO (no FX) and EXPLICIT (about a third of the accounts need FX, "
        "counted and printed; fx_repatriate on every third account in both) alternately, ROUNDS times each "
        "(docs/prices.md)",
    )
    parser.add_argument(
        "--restricted", type=int, default=0, metavar="ROUNDS",
        help="measure the unrestricted and the restricted book alternately, ROUNDS times each (10 %% of the "
        "accounts under an ACCOUNT list of 20 entries, plus a FIRM list of 50), and print both rates and the ratio",
    )
    parser.add_argument(
        "--tax", type=int, default=0, metavar="ROUNDS",
        help="give every position 3 lots (costs at 70/100/130 %% of today's price, bought 800/300/60 days ago) and "
        "measure tax_aware off (lot-free: no lot is read) and on for every account alternately, ROUNDS times each",
    )
    parser.add_argument(
        "--fills", action="store_true",
        help="after the execution, mark its orders (FX ones aside) SENT_TO_EXECUTION, write a fills file of one line "
        "per instrument and side filling them whole, and time `manage.py import_fills` on it (docs/imports.md)",
    )
    return parser.parse_args()


ARGS = parse_args() if __name__ == "__main__" else None


def environment(args) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": f"{args.postgres}/{args.database}",
        "REDIS_URL": args.redis,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DJANGO_DEBUG": "false",  # DEBUG would keep every query in memory
        "LOG_LEVEL": "WARNING",
    }


def fills_measure(args, execution_id) -> None:
    """The desk's fills of a whole execution back through `manage.py import_fills` (its
    own process, DEBUG off as in production): the orders (FX ones aside) marked
    SENT_TO_EXECUTION with one UPDATE, one line per instrument and side for all their
    units at their average price. Prints the time, orders per second and peak memory."""
    import tempfile

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("UPDATE rebalancing_tradeorder SET status = 'SENT_TO_EXECUTION', executed_units = 0, "
                       "executed_amount = 0 WHERE execution_id = %s AND transaction_type <> 'FX'", [execution_id])
        orders = cursor.rowcount
        cursor.execute("SELECT instrument_id, side, sum(units), round(avg(unit_price), 4) FROM rebalancing_tradeorder "
                       "WHERE execution_id = %s AND status = 'SENT_TO_EXECUTION' GROUP BY instrument_id, side "
                       "ORDER BY instrument_id, side", [execution_id])
        lines = cursor.fetchall()
    connection.close()
    with tempfile.TemporaryDirectory(prefix="ballast-bench-fills-") as folder:
        path = Path(folder) / "fills.csv"
        path.write_text("execution_id,instrument_id,side,units,price\n" + "".join(
            f"{execution_id},{instrument_id},{side},{units},{price}\n" for instrument_id, side, units, price in lines))
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "manage.py", "import_fills", str(path)], cwd=ROOT,
                                   env={**environment(args), "IMPORTS_ROOT": folder},
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        output = process.stdout.read().strip().splitlines()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("import_fills failed:\n" + "\n".join(output))
    print(f"fills: {len(lines)} lines filling {orders:,} orders in {seconds:.1f} s = {orders / seconds:,.0f} orders/s, "
          f"peak {usage.ru_maxrss // 1024:,} MiB | {output[-1] if output else ''}")


def database_prepare(args) -> bool:
    """Create the database (dropping an old one) unless --reuse finds it. True if it must be loaded."""
    import psycopg

    with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [args.database]).fetchone()
        if exists and args.reuse:
            return False
        admin.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{args.database}"')
    return True


def database_drop(args) -> None:
    import psycopg

    with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')


def executions_empty() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE rebalancing_tradeorder, rebalancing_executionresult, rebalancing_accountlease, "
            "rebalancing_executionchunk, rebalancing_execution CASCADE"
        )
    with connection.cursor() as cursor:  # VACUUM cannot run inside the TRUNCATE's transaction block
        # A reused book's accounts carry the row locks of the last run's foreign-key checks: vacuum
        # them away, and start each measured run from a clean write-ahead log.
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("CHECKPOINT")


# --- The naive version ----------------------------------------------------------------------


def naive_run(account_ids: list, execution_id, on_date) -> int:
    """One transaction and ORM round trips per account; returns the orders written."""
    from django.db import connection, transaction
    from django.utils import timezone

    from portfolios.models import PortfolioAccount
    from rebalancing.models import ExecutionResult, TradeOrder, TradeOrderStatus
    from rebalancing.selectors.book import book_load
    from rebalancing.services import account_preferences, rebalance_account

    connection.close()  # never share the parent's connection across fork
    orders = 0
    for account_id in account_ids:
        with transaction.atomic():
            account = PortfolioAccount.objects.get(pk=account_id)
            preferences = account_preferences(account)
            book = book_load(account_ids=[account_id], on_date=on_date,
                             price_source=preferences.values["price_source"], lock_orders=True)
            result = rebalance_account(
                book=book, account_id=account_id, method="FULL", preferences=preferences.for_engine(),
                outstanding_orders=book.outstanding.get(account_id, ()),
            )
            now = timezone.now()
            TradeOrder.objects.filter(account_id__in=book.group_ids(account_id), status=TradeOrderStatus.OPEN).update(
                status=TradeOrderStatus.REPLACED, updated_at=now
            )
            for o in result.orders:
                TradeOrder(
                    account_id=o.account_id, instrument_id=o.instrument_id, side=o.side.value,
                    transaction_type=o.transaction_type, units=o.units, unit_price=o.unit_price,
                    trade_amount=o.trade_amount, currency=o.currency, execution_method=o.execution_method.value,
                    execution_id=execution_id, created_at=now, updated_at=now,
                ).save()
                orders += 1
            ExecutionResult(
                execution_id=execution_id, account_id=account_id, status=result.status.value,
                error=result.reason, total_value=result.total_value, cash_before=result.cash_before,
                cash_after=result.cash_after, order_count=len(result.orders),
            ).save()
    connection.close()
    return orders


def naive_measure(sample: list, processes: int, on_date) -> tuple[float, int]:
    from django.db import connection

    from rebalancing.models import Execution

    execution = Execution.objects.create(method="FULL", rebalance_date=on_date, total=len(sample))
    connection.close()
    parts = [sample[n::processes] for n in range(processes)]
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        orders = sum(pool.starmap(naive_run, [(part, execution.pk, on_date) for part in parts]))
    return time.perf_counter() - started, orders


# --- Workers ------------------------------------------------------------------------------------


def workers_start(args, env) -> list[subprocess.Popen]:
    celery = str(Path(sys.executable).with_name("celery"))
    workers = []
    for n in range(args.workers):
        workers.append(subprocess.Popen(
            [celery, "-A", "config", "worker", "--concurrency", "1", "--pool", "prefork",
             "-n", f"bench{n}@%h", "--loglevel", "WARNING", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(f"/tmp/ballast-bench-worker{n}.log", "w"),
        ))
    return workers


def workers_ready(app, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0) or []) >= count:
            return
    raise SystemExit(f"the {count} workers did not answer within {timeout:.0f}s (see /tmp/ballast-bench-worker*.log)")


def process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            children = (task / "children").read_text().split() if (task / "children").exists() else []
            todo.extend(int(child) for child in children)
    return pids


def proc_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])  # kB
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def machine_cpu() -> float:
    """CPU seconds the whole machine has spent busy since boot (every core, /proc/stat)."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def workers_stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()


# --- Main ------------------------------------------------------------------------------------


EXECUTION_SECONDS: dict = {}
EXECUTION_MACHINE: dict = {}
WORKER_CPU: dict = {}  # execution id → CPU seconds the workers spent on it (less sensitive to a busy machine)


def workers_cpu(workers) -> float:
    return sum(cpu_seconds(pid) for worker in workers for pid in process_tree(worker.pid))


def execution_measure(client, args, on_date, workers, quiet=False) -> tuple[float, str]:
    """POST a whole-book execution and wait for it; returns (accounts/s, execution id)."""
    from rebalancing.models import EXECUTION_ENDED, Execution

    machine_before = machine_cpu()
    workers_before = workers_cpu(workers)
    started = time.perf_counter()
    response = client.post(
        "/api/v1/portfolios/rebalancings/executions/",
        {"all_accounts": True, "method": "FULL", "rebalance_date": on_date.isoformat()},
        format="json", HTTP_HOST="localhost",
    )
    accepted = time.perf_counter() - started
    assert response.status_code == 202, response.content[:500]
    execution_id = response.json()["execution_id"]
    total = response.json()["accounts"]
    if not quiet:
        print(f"POST answered 202 in {accepted:.2f}s: execution {execution_id}, {total:,} accounts")
    last_print = 0.0
    while True:
        row = Execution.objects.values("status", "done").get(pk=execution_id)
        now = time.perf_counter() - started
        if row["status"] in EXECUTION_ENDED:
            break
        if now > args.timeout:
            raise SystemExit(f"still {row['status']} after {now:.0f}s; see /tmp/ballast-bench-worker*.log")
        if now - last_print >= 5 and not quiet:
            print(f"  {now:5.1f}s {row['status']}: {row['done']:,}/{total:,}")
            last_print = now
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    machine_seconds = machine_cpu() - machine_before
    peaks, cpu = [], 0.0
    for worker in workers:
        tree = process_tree(worker.pid)
        peaks.append(max(proc_status(pid, "VmHWM") for pid in tree))
        cpu += sum(cpu_seconds(pid) for pid in tree)
    EXECUTION_SECONDS[execution_id] = elapsed
    EXECUTION_MACHINE[execution_id] = (machine_seconds, peaks, cpu)
    WORKER_CPU[execution_id] = workers_cpu(workers) - workers_before
    return total / elapsed, execution_id


def fx_set(on: bool) -> None:
    """The whole book under fx_mode EXPLICIT when `on` (the global preference), AUTO
    otherwise, with `fx_repatriate` on every third configured account (its own
    preferences row, in both runs): the two runs differ only by the FX work. In the demo
    book every account holds EUR cash only, so under EXPLICIT an account needs FX when
    it buys more USD, CHF or GBP than its sells of them bring in (most accounts of the
    "Global Champions" model, some of the two models with a USD gold line), or, with
    `fx_repatriate`, when it sells any: about a third of the book (EXPLICIT alone: about
    a quarter). The share is counted from the orders written and printed."""
    from django.db import transaction

    from portfolios.models import Configuration
    from rebalancing.models import RebalancePreferences

    with transaction.atomic():
        RebalancePreferences.objects.filter(is_global=False).delete()
        row, _ = RebalancePreferences.objects.get_or_create(is_global=True)
        row.fx_mode = "EXPLICIT" if on else "AUTO"
        row.save(update_fields=["fx_mode"])
        accounts = list(
            Configuration.objects.filter(account__status="ACTIVE", account__parent__isnull=True)
            .order_by("account_id").values_list("account_id", flat=True)
        )[::3]
        RebalancePreferences.objects.bulk_create(
            RebalancePreferences(account_id=a, fx_repatriate=True) for a in accounts
        )


def fx_reset() -> None:
    """Back to the book as loaded: no account rows, the global fx_mode AUTO."""
    from rebalancing.models import RebalancePreferences

    RebalancePreferences.objects.filter(is_global=False).delete()
    RebalancePreferences.objects.filter(is_global=True).update(fx_mode="AUTO")


def restrictions_set(on: bool) -> None:
    """`on`: a FIRM list of 50 entries (sanctioned issuers outside every model) and an
    ACCOUNT list of 20 entries on instruments the models use (NO_BUY with a substitute,
    NO_BUY, NO_SELL, NO_HOLD) assigned to every tenth configured account. Off: no
    restriction data at all (the unrestricted book)."""
    from django.db import transaction

    from portfolios.models import (
        AccountRestrictionList, AllocationLine, Configuration, Instrument, RestrictionEntry, RestrictionList, Substitute,
    )

    with transaction.atomic():
        AccountRestrictionList.objects.all().delete()
        RestrictionEntry.objects.all().delete()
        Substitute.objects.all().delete()
        RestrictionList.objects.all().delete()
        if not on:
            return
        sanctioned = list(Instrument.objects.filter(name__startswith="Sanctioned issuer ").order_by("name"))
        for n in range(len(sanctioned), 50):
            sanctioned.append(Instrument.objects.create(name=f"Sanctioned issuer {n:02d}", type="EQUITY", currency="EUR"))
        firm = RestrictionList.objects.create(name="Sanctions", scope="FIRM")
        RestrictionEntry.objects.bulk_create(
            RestrictionEntry(restriction_list=firm, instrument=i, rule="NO_HOLD", reason="sanctions") for i in sanctioned
        )
        used = list(
            AllocationLine.objects.exclude(instrument__type__in=("CASH", "FUTURE")).order_by("instrument__name")
            .values_list("instrument_id", flat=True).distinct()
        )
        used = list(dict.fromkeys(used))
        rules = ["NO_BUY", "NO_BUY", "NO_SELL", "NO_HOLD"]
        own = RestrictionList.objects.create(name="Client ESG", scope="ACCOUNT")
        chosen = used[:20]
        RestrictionEntry.objects.bulk_create(
            RestrictionEntry(restriction_list=own, instrument_id=i, rule=rules[k % 4], reason="ESG")
            for k, i in enumerate(chosen)
        )
        spare = [i for i in used if i not in chosen] or used[-1:]
        Substitute.objects.bulk_create(
            Substitute(instrument_id=i, substitute_id=spare[k % len(spare)], rank=1)
            for k, i in enumerate(chosen[::4]) if spare[k % len(spare)] != i
        )
        accounts = list(
            Configuration.objects.filter(account__status="ACTIVE", account__parent__isnull=True)
            .order_by("account_id").values_list("account_id", flat=True)
        )[::10]
        AccountRestrictionList.objects.bulk_create(
            AccountRestrictionList(account_id=a, restriction_list=own) for a in accounts
        )
        print(f"  restrictions: FIRM list of 50 entries; ACCOUNT list of {len(chosen)} entries on "
              f"{len(accounts):,} accounts") if not getattr(restrictions_set, "said", False) else None
        restrictions_set.said = True


def lots_build() -> int:
    """Three lots per position (§12): a third of the units each (the last takes the rest),
    bought 800, 300 and 60 days ago at 70 %, 100 % and 130 % of the latest price; one lot
    at today's price for a position too small to split. One statement; returns the lots."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM portfolios_lot")
        cursor.execute(
            "WITH price AS (SELECT DISTINCT ON (instrument_id) instrument_id, value FROM portfolios_price "
            "WHERE source = 'default' AND effective_at <= current_date ORDER BY instrument_id, effective_at DESC), "
            "pos AS (SELECT p.id, p.units, trunc(p.units / 3, 4) AS third, coalesce(pr.value, 1) AS price, i.currency "
            "FROM portfolios_position p JOIN portfolios_instrument i ON i.id = p.instrument_id "
            "LEFT JOIN price pr ON pr.instrument_id = p.instrument_id) "
            "INSERT INTO portfolios_lot (id, position_id, acquired_on, units, unit_cost, cost_currency) "
            "SELECT gen_random_uuid(), pos.id, current_date - k.days, "
            "CASE WHEN pos.third = 0 THEN pos.units WHEN k.n = 3 THEN pos.units - 2 * pos.third ELSE pos.third END, "
            "round(pos.price * k.f, 10), pos.currency FROM pos CROSS JOIN (VALUES (1, 800, 0.7), (2, 300, 1.0), "
            "(3, 60, 1.3)) AS k(n, days, f) WHERE pos.third > 0 OR k.n = 3"
        )
        count = cursor.rowcount
        cursor.execute("ANALYZE portfolios_lot")
    return count


def side_by_side(client, args, on_date, workers, rounds: int, switch, reset, names: tuple, detail) -> None:
    """Whole-book executions of the book's two variants alternately (`switch(False)`:
    the plain one, `switch(True)`: the other), `rounds` times each; print every round
    (with `detail(execution_id, total)` when given), then the best and the median rates,
    the workers' CPU per 1000 accounts and the ratios other / plain. `reset()` after."""
    from rebalancing.models import Execution

    rates, cpu_per_1000 = {False: [], True: []}, {False: [], True: []}
    width = max(map(len, names))
    for n in range(rounds):
        for on in (False, True):
            switch(on)
            executions_empty()
            rate, execution_id = execution_measure(client, args, on_date, workers, quiet=True)
            total = Execution.objects.get(pk=execution_id).total
            per_1000 = 1_000_000 * WORKER_CPU[execution_id] / total
            rates[on].append(rate)
            cpu_per_1000[on].append(per_1000)
            extra = f" ({detail(execution_id, total)})" if detail else ""
            print(f"  round {n + 1} {names[on]:{width}}: {rate:,.0f} accounts/s, workers' CPU {per_1000:.0f} ms per "
                  f"1000 accounts{extra}")
    plain, other = names
    for how, pick_rate, pick_cpu in (("best", max, min), ("median", statistics.median, statistics.median)):
        a, b = pick_rate(rates[False]), pick_rate(rates[True])
        a_cpu, b_cpu = pick_cpu(cpu_per_1000[False]), pick_cpu(cpu_per_1000[True])
        print(f"{how} of {rounds}, alternating: {plain} {a:,.0f} accounts/s, {other} {b:,.0f} → {other}/{plain} = "
              f"{100 * b / a:.1f} %; workers' CPU per 1000 accounts {a_cpu:.0f} vs {b_cpu:.0f} ms → throughput on "
              f"CPU alone {100 * a_cpu / b_cpu:.1f} %")
    reset()


def fx_detail(execution_id, total: int) -> str:
    from rebalancing.models import TradeOrder

    fx_orders = TradeOrder.objects.filter(execution_id=execution_id, transaction_type="FX")
    with_fx = fx_orders.values("account_id").distinct().count()
    return f"{fx_orders.count():,} FX orders in {with_fx:,} of {total:,} accounts = {100 * with_fx / total:.1f} % needing FX"


def tax_detail(execution_id, total: int) -> str:
    from rebalancing.models import ExecutionResult

    estimated = ExecutionResult.objects.filter(execution_id=execution_id, estimated_realized_gain__isnull=False).count()
    return f"{estimated:,} results with an estimate"


def tax_set(on: bool) -> None:
    """Every configured account gets its own preferences row: tax_aware on, or off. The
    same rows either way, so the two runs differ only by the tax work."""
    from django.db import transaction

    from portfolios.models import Configuration
    from rebalancing.models import RebalancePreferences

    with transaction.atomic():
        RebalancePreferences.objects.filter(is_global=False).delete()
        accounts = list(
            Configuration.objects.filter(account__status="ACTIVE", account__parent__isnull=True)
            .values_list("account_id", flat=True)
        )
        RebalancePreferences.objects.bulk_create(RebalancePreferences(account_id=a, tax_aware=on) for a in accounts)


def main(args) -> None:
    env = environment(args)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_DEBUG", "LOG_LEVEL")})
    must_load = database_prepare(args)

    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone
    from credentials.services import api_token_create
    from rest_framework.test import APIClient

    from config.celery import app
    from portfolios.models import Configuration, PortfolioAccount
    from portfolios.services.demo import demo_book_load
    from rebalancing.models import EXECUTION_ENDED, Execution, ExecutionResult, TradeOrder

    settings.REBALANCE_CHUNK_SIZE = args.chunk_size
    on_date = timezone.localdate()

    call_command("migrate", verbosity=0)  # also brings a reused database up to date
    if must_load:
        started = time.perf_counter()
        summary = demo_book_load(accounts=args.accounts)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        print(f"loaded {summary.accounts:,} accounts ({summary.positions:,} positions) in "
              f"{time.perf_counter() - started:.0f}s into {args.database}")
    executions_empty()
    book = PortfolioAccount.objects.count()
    runnable = Configuration.objects.filter(account__status="ACTIVE", account__parent__isnull=True).count()
    print(f"book: {book:,} accounts (sub-portfolios included), {runnable:,} ACTIVE configured top-level accounts; "
          f"{args.workers} workers, chunks of {args.chunk_size}, {os.cpu_count()} CPUs")

    naive_rate = None
    if args.naive:
        sample = list(
            Configuration.objects.filter(account__status="ACTIVE", account__parent__isnull=True)
            .order_by("account_id").values_list("account_id", flat=True)[: args.naive]
        )
        elapsed, orders = naive_measure(sample, args.workers, on_date)
        naive_rate = len(sample) / elapsed
        print(f"naive: {len(sample):,} accounts, {orders:,} orders in {elapsed:.1f}s on {args.workers} processes "
              f"→ {naive_rate:,.0f} accounts/s")
        executions_empty()

    redis.Redis.from_url(args.redis).delete(QUEUE)
    connection.close()
    workers = workers_start(args, env)
    try:
        workers_ready(app, args.workers)
        user, _ = get_user_model().objects.get_or_create(
            username="bench", defaults={"is_staff": True, "is_superuser": True}
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name='benchmark')[1]}")
        variants = None
        if args.fx:
            variants = (args.fx, fx_set, fx_reset, ("AUTO (no FX)", "EXPLICIT"), fx_detail)
        elif args.tax:
            started = time.perf_counter()
            lots = lots_build()
            print(f"  lots: {lots:,} (3 per position) in {time.perf_counter() - started:.0f}s")
            variants = (args.tax, tax_set, lambda: tax_set(False), ("lot-free", "tax-aware"), tax_detail)
        elif args.restricted:
            variants = (args.restricted, restrictions_set, lambda: restrictions_set(False),
                        ("unrestricted", "restricted"), None)
        if variants:
            side_by_side(client, args, on_date, workers, *variants)
            if not args.keep:
                connection.close()
                database_drop(args)
            return
        _, execution_id = execution_measure(client, args, on_date, workers)
        total = Execution.objects.get(pk=execution_id).total
        elapsed = EXECUTION_SECONDS[execution_id]
        machine_seconds, peaks, cpu = EXECUTION_MACHINE[execution_id]
    finally:
        workers_stop(workers)

    execution = Execution.objects.get(pk=execution_id)
    orders = TradeOrder.objects.filter(execution=execution).count()
    statuses = Counter(ExecutionResult.objects.filter(execution=execution).values_list("status", flat=True))
    rate = total / elapsed
    database_seconds = (execution.finished_at - execution.created_at).total_seconds()
    print(f"execution {execution.status} in {elapsed:.1f}s (database: {database_seconds:.1f}s from created to finished, "
          f"the first chunk started after {(execution.started_at - execution.created_at).total_seconds():.1f}s): "
          f"{', '.join(f'{n:,} {s}' for s, n in sorted(statuses.items()))}")
    print(f"end to end: {rate:,.0f} accounts/s, {orders / elapsed:,.0f} orders/s ({orders:,} orders, "
          f"{orders / max(total, 1):.1f} per account)")
    print(f"workers: peak RSS {', '.join(f'{kb / 1024:.0f} MB' for kb in peaks)} (VmHWM, largest process of each "
          f"worker)")
    print(f"CPU: {cpu:.1f} s in the workers, {machine_seconds - cpu:.1f} s elsewhere on the machine (PostgreSQL, Redis, "
          f"this process, anything else running), {machine_seconds:.1f} s in all = "
          f"{1e6 * machine_seconds / max(total, 1):.0f} ms per 1000 accounts")
    during = WORKER_CPU[execution_id]
    print(f"workers' CPU during the execution: {during:.1f} s = {1e6 * during / max(total, 1):.0f} ms per 1000 accounts "
          f"(the line above counts the workers' start too)")
    if naive_rate:
        print(f"naive: {naive_rate:,.0f} accounts/s → executions are {rate / naive_rate:.1f}× faster")
    if args.fills:
        fills_measure(args, execution_id)
    if not args.keep:
        connection.close()
        database_drop(args)


if __name__ == "__main__":
    main(ARGS)
