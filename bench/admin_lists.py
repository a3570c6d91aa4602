"""The large lists of the admin and the API on PostgreSQL: trade orders (5 million) and
accounts (100,000), p95 per page, and whether any query of a page reads the whole
table.

    .venv/bin/python bench/admin_lists.py [--orders 5000000] [--accounts 100000] [--rounds 40]
        [--database ballast_bench_cockpit] [--redis redis://127.0.0.1:6379/4] [--reuse] [--keep]

1. Creates the database (dropped first; `--reuse` keeps a loaded one: the same as
   bench/dashboard.py's larger book, so `dashboard.py --keep` then `admin_lists.py
   --reuse` loads it once), loads the demo book and stores every account's drift.
2. Adds trade orders set-based until there are `--orders`: 1,000 COMPLETED executions
   and one INSERT … SELECT FROM generate_series per million rows (accounts and
   instruments of the book, 5,000 orders per transaction timestamp as an execution's
   chunk writes them, 90 % SETTLED, 5 % OPEN, the rest spread over the other
   statuses), then VACUUM ANALYZE.
3. Loads each page `--rounds` times, the pages interleaved, through Django's test
   client (admin: a logged-in superuser; API: a token): the real URL, middleware,
   changelist or viewset and template, no HTTP server. Prints p95 and median per page,
   the p95 target (150 ms), and for each page the queries whose plan has a Seq Scan of
   the trade-order or account table. Also times one plain `SELECT COUNT(*)` of the
   trade orders: what every page cost before the capped count.

    .venv/bin/python bench/admin_lists.py --copy-cost 3 [--copy-accounts 20000]

measures instead what the (execution, -created_at) index of the trade orders costs an
execution's COPY of its orders: bench/execution.py (real workers, --naive 0) on a book
of its own (`<database>_exec`, loaded once), 2 × ROUNDS whole-book executions
alternately with and without the index (dropped and created again between runs, the
trade order table being empty then), printing each run's accounts/s and orders/s and
the medians side by side.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cockpit  # noqa: E402

TARGET_MS = 150
MILLION = 1_000_000


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=5 * MILLION, help="trade orders [5000000]")
    parser.add_argument("--accounts", type=int, default=100_000, help="accounts in the demo book [100000]")
    parser.add_argument("--copy-cost", type=int, default=0, metavar="ROUNDS",
                        help="measure the execution index's cost to an execution's COPY instead (see above)")
    parser.add_argument("--copy-accounts", type=int, default=20_000, help="accounts of the --copy-cost book [20000]")
    cockpit.add_arguments(parser)
    return parser.parse_args()


INDEX = "tradeorder_execution_created"


def copy_cost(args) -> None:
    """Whole-book executions with and without the (execution, -created_at) index, alternately."""
    import psycopg

    database = f"{args.database}_exec"
    command = [sys.executable, str(Path(__file__).resolve().parent / "execution.py"), "--accounts",
               str(args.copy_accounts), "--naive", "0", "--database", database, "--postgres", args.postgres,
               "--redis", args.redis, "--keep"]
    rates = {True: [], False: []}
    for run in range(2 * args.copy_cost):
        with_index = run % 2 == 0
        if run:
            with psycopg.connect(f"{args.postgres}/{database}", autocommit=True) as connection:
                connection.execute(f"DROP INDEX IF EXISTS {INDEX}")
                if with_index:
                    connection.execute(
                        f"CREATE INDEX {INDEX} ON rebalancing_tradeorder (execution_id, created_at DESC, id)"
                    )
        output = subprocess.run(command + (["--reuse"] if run else []), check=True, capture_output=True,
                                text=True).stdout
        found = re.search(r"end to end: ([\d,]+) accounts/s, ([\d,]+) orders/s \(([\d,]+) orders", output)
        if found is None:
            raise SystemExit(f"bench/execution.py printed no rate:\n{output}")
        accounts, orders, count = (int(g.replace(",", "")) for g in found.groups())
        rates[with_index].append((accounts, orders))
        print(f"  run {run + 1} {'with   ' if with_index else 'without'} the index: {accounts:,} accounts/s, "
              f"{orders:,} orders/s ({count:,} orders)", flush=True)
    for with_index in (True, False):
        print(f"{'with   ' if with_index else 'without'} the index: median "
              f"{statistics.median(a for a, _ in rates[with_index]):,.0f} accounts/s, "
              f"{statistics.median(o for _, o in rates[with_index]):,.0f} orders/s over {args.copy_cost} runs", flush=True)
    with psycopg.connect(f"{args.postgres}/{database}", autocommit=True) as connection:
        connection.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON rebalancing_tradeorder (execution_id, created_at DESC, id)")
    if not args.keep:
        with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def orders_add(total: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from rebalancing.models import Execution, ExecutionStatus, TradeOrder

    have = TradeOrder.objects.count()
    if have >= total:
        print(f"{have:,} trade orders already", flush=True)
        return
    executions = list(Execution.objects.filter(error="bench").values_list("pk", flat=True))
    if not executions:
        today = timezone.localdate()
        Execution.objects.bulk_create(
            Execution(status=ExecutionStatus.COMPLETED, rebalance_date=today, error="bench", total=100, done=100)
            for _ in range(1000)
        )
    started = time.perf_counter()
    sql = """
        WITH a AS (SELECT array_agg(id ORDER BY id) AS ids, count(*) AS n FROM portfolios_portfolioaccount),
             i AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(currency ORDER BY id) AS cur, count(*) AS n
                   FROM portfolios_instrument WHERE type <> 'CASH'),
             e AS (SELECT array_agg(id ORDER BY id) AS ids, count(*) AS n FROM rebalancing_execution WHERE error = 'bench')
        INSERT INTO rebalancing_tradeorder (
            id, account_id, instrument_id, side, transaction_type, units, unit_price, trade_amount, currency,
            execution_method, status, execution_id, created_at, updated_at)
        SELECT gen_random_uuid(), a.ids[(1 + (g::bigint * 7919) %% a.n)::int], i.ids[(1 + g %% i.n)::int],
               CASE WHEN g %% 2 = 0 THEN 'BUY' ELSE 'SELL' END, CASE WHEN g %% 2 = 0 THEN 'BUY' ELSE 'SELL' END,
               1 + g %% 50, 100.25, (1 + g %% 50) * 100.25, i.cur[(1 + g %% i.n)::int], 'UNITS',
               CASE WHEN g %% 20 = 0 THEN 'OPEN' WHEN g %% 20 = 1 THEN 'ACCEPTED' WHEN g %% 20 = 2 THEN 'CANCELLED'
                    ELSE 'SETTLED' END,
               e.ids[(1 + (g / 5000) %% e.n)::int],
               now() - ((%(total)s - g) / 5000) * interval '2 hours', now() - ((%(total)s - g) / 5000) * interval '2 hours'
        FROM a, i, e, generate_series(%(start)s, %(stop)s) AS g
    """
    for start in range(have, total, MILLION):
        stop = min(start + MILLION, total) - 1
        with connection.cursor() as cursor:
            cursor.execute(sql, {"start": start, "stop": stop, "total": total})
        print(f"  {stop + 1:,} trade orders ({time.perf_counter() - started:.0f}s)", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE rebalancing_tradeorder")
    print(f"added {total - have:,} trade orders in {time.perf_counter() - started:.0f}s", flush=True)


def main() -> None:
    args = parse_args()
    if args.copy_cost:
        copy_cost(args)
        return
    must_load = cockpit.database_prepare(args, args.database)
    cockpit.django_setup(args, args.database)
    cockpit.book_load(args.accounts, must_load)
    orders_add(args.orders)

    from django.db import connection

    from portfolios.models import Configuration, PortfolioAccount
    from rebalancing.models import AccountDrift, TradeOrder

    admin, api = cockpit.clients()
    order = TradeOrder.objects.order_by().only("account_id", "execution_id").first()
    allocation_id = Configuration.objects.order_by("allocation_id").values_list("allocation_id", flat=True).first()
    client_id = PortfolioAccount.objects.get(pk=order.account_id).client_id
    orders_admin, accounts_admin, orders_api = "/admin/rebalancing/tradeorder/", "/admin/portfolios/portfolioaccount/", "/api/v1/trade-orders/"
    pages = {
        "admin trade orders, page 1": (admin, orders_admin),
        "admin trade orders, page 50": (admin, orders_admin + "?p=50"),
        "admin trade orders, status OPEN": (admin, orders_admin + "?status__exact=OPEN"),
        "admin trade orders, one account": (admin, orders_admin + f"?account__id__exact={order.account_id}"),
        "admin trade orders, one execution": (admin, orders_admin + f"?execution__id__exact={order.execution_id}"),
        "admin trade orders, search client id": (admin, orders_admin + f"?q={client_id}"),
        "API trade orders, first 100": (api, orders_api),
        "API trade orders, 1000 at offset 5000": (api, orders_api + "?limit=1000&offset=5000"),
        "API trade orders, status OPEN": (api, orders_api + "?status=OPEN"),
        "API trade orders, one account": (api, orders_api + f"?account_id={order.account_id}"),
        "admin accounts, page 1": (admin, accounts_admin),
        "admin accounts, outside band": (admin, accounts_admin + "?outside_band=yes"),
        "admin accounts, drift 5-10 %": (admin, accounts_admin + "?drift=2"),
        "admin accounts, one allocation": (admin, accounts_admin + f"?configuration__allocation__id__exact={allocation_id}"),
        "admin accounts, outside band, one allocation": (
            admin, accounts_admin + f"?outside_band=yes&configuration__allocation__id__exact={allocation_id}"),
        "admin accounts, sorted by drift (largest first)": (admin, accounts_admin + "?o=9"),
        "admin accounts, sorted by drift (smallest first)": (admin, accounts_admin + "?o=-9"),
    }
    print(f"book: {PortfolioAccount.objects.count():,} accounts, {AccountDrift.objects.count():,} drifts, "
          f"{TradeOrder.objects.count():,} trade orders; {args.rounds} loads per page, interleaved", flush=True)
    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute("SELECT COUNT(*) FROM rebalancing_tradeorder")
        print(f"one plain SELECT COUNT(*) of the trade orders: {(time.perf_counter() - started) * 1000:.0f} ms "
              f"(every page paid it before the capped count)", flush=True)
    before = os.getloadavg()
    times = cockpit.measure(pages, args.rounds)
    after = os.getloadavg()
    print(f"load average (1, 5, 15 min) before {before[0]:.1f} {before[1]:.1f} {before[2]:.1f}, after "
          f"{after[0]:.1f} {after[1]:.1f} {after[2]:.1f} on {os.cpu_count()} CPUs: compare pages only within this run",
          flush=True)
    width = max(len(label) for label in pages)
    worst = 0.0
    for label, (client, url) in pages.items():
        _, queries = cockpit.timed_get(client, url)
        table = "rebalancing_tradeorder" if "trade" in label else "portfolios_portfolioaccount"
        whole = cockpit.scans(queries, table)
        value = cockpit.p95(times[label])
        worst = max(worst, value)
        print(f"{label:<{width}}  p95 {value:6.0f} ms  median {sorted(times[label])[len(times[label]) // 2]:6.0f} ms  "
              f"{len(queries):2d} queries  whole-table scans of {table}: {len(whole)}", flush=True)
        for sql in whole:
            print(f"    {sql[:300]}", flush=True)
    print(f"worst p95 {worst:.0f} ms (target ≤ {TARGET_MS} ms): {'OK' if worst <= TARGET_MS else 'OVER'}", flush=True)
    if not args.keep:
        cockpit.database_drop(args, args.database)


if __name__ == "__main__":
    main()
