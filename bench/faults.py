"""Fault benchmark: whole-book executions with hard-killed workers and broker outages.

    .venv/bin/python bench/faults.py [--accounts 20000] [--rounds 20] [--workers 2]
                                     [--outage-every 4] [--outage-seconds 60] [--reuse] [--keep]
                                     [--database ballast_bench_faults] [--redis redis://127.0.0.1:6379/9]

1. Creates (or `--reuse`s) a database on PostgreSQL and loads a demo book of
   `--accounts` accounts, and starts a Redis server of its own on a free port with no
   persistence (a restart loses every queued message: the harshest outage). `--redis`
   names the Redis used instead when `--outage-every 0` (no outage rounds).
2. Round 0 is clean: POST a whole-book execution (the real URL, view and service) to
   `--workers` Celery workers (`--concurrency 1`, each in its own process group) and
   wait for it: the clean time, and every account's order count, the expectation.
3. Each of `--rounds` rounds empties the executions and runs the same execution again,
   with a SIGKILL of one random worker's whole process group at a random moment of the
   clean time, the worker started again at once; every `--outage-every`th round also
   stops the Redis server at a random moment for `--outage-seconds` (then starts it
   again, empty).
4. Prints per round: orders expected vs written, orders lost and doubled (per account,
   against the clean run), accounts without exactly one result, leases left, seconds
   beyond the clean run, and seconds from the worker's restart (kill rounds) or the
   broker's return (outage rounds) to the execution's end; then p50/p95 of those.
   Targets: 0 lost, 0 doubled, 0 leases left; ≤ 60 s after a restart or a return.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=20_000, help="accounts in the demo book [20000]")
    parser.add_argument("--rounds", type=int, default=20, help="fault rounds after the clean one [20]")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes [2]")
    parser.add_argument("--outage-every", type=int, default=4, help="every Nth round stops Redis too; 0: never [4]")
    parser.add_argument("--outage-seconds", type=float, default=60, help="length of a broker outage [60]")
    parser.add_argument("--seed", type=int, default=18, help="random seed of the fault moments [18]")
    parser.add_argument("--database", default="ballast_bench_faults")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9", help="used only without outage rounds")
    parser.add_argument("--reuse", action="store_true", help="reuse a loaded database (only empty its executions)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--timeout", type=float, default=900, help="give up on a round after this many seconds [900]")
    return parser.parse_args()


# --- Processes ----------------------------------------------------------------------------------


class RedisServer:
    """A redis-server of the benchmark's own on a free port, without persistence."""

    def __init__(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.directory = tempfile.mkdtemp(prefix="ballast-faults-redis-")
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        import redis

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise SystemExit("the benchmark's redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()  # as a crash: nothing saved, every queued message gone
            self.process.wait()


def worker_start(n: int, env: dict) -> subprocess.Popen:
    celery = str(Path(sys.executable).with_name("celery"))
    return subprocess.Popen(
        [celery, "-A", "config", "worker", "--concurrency", "1", "--pool", "prefork", "-n", f"faults{n}@%h",
         "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(f"/tmp/ballast-faults-worker{n}.log", "a"),
        start_new_session=True,  # its own process group: the kill takes the pool child too
    )


def worker_kill(worker: subprocess.Popen) -> None:
    try:
        os.killpg(worker.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    worker.wait()


def workers_stop(workers: list) -> None:
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker_kill(worker)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else float("nan")


# --- Main ------------------------------------------------------------------------------------


def main(args) -> None:
    rng = random.Random(args.seed)
    redis_server = RedisServer() if args.outage_every else None
    if redis_server:
        redis_server.start()
    broker = redis_server.url if redis_server else args.redis
    env = {
        **os.environ, "DATABASE_URL": f"{args.postgres}/{args.database}", "REDIS_URL": broker,
        "DJANGO_SETTINGS_MODULE": "config.settings.local", "DJANGO_DEBUG": "false", "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),  # this checkout's code, whatever the virtualenv was installed from
    }
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_DEBUG",
                                          "LOG_LEVEL")})
    sys.argv = [sys.argv[0]]  # bench/execution.py parses its own arguments only as a script
    from bench import execution as bench_execution

    must_load = bench_execution.database_prepare(args)

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Count
    from django.utils import timezone
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from portfolios.services.demo import demo_book_load
    from rebalancing.models import EXECUTION_ENDED, AccountLease, Execution, ExecutionResult, TradeOrder

    on_date = timezone.localdate()
    call_command("migrate", verbosity=0)
    if must_load:
        started = time.perf_counter()
        summary = demo_book_load(accounts=args.accounts)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        print(f"loaded {summary.accounts:,} accounts in {time.perf_counter() - started:.0f}s into {args.database}")
    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True, "is_superuser": True})
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")

    def execution_run(fault) -> dict:
        """Empty the executions, POST a whole-book execution, let `fault(started)` act,
        wait for the end; the execution's figures."""
        bench_execution.executions_empty()
        connection.close()
        started = time.monotonic()
        response = client.post(
            "/api/v1/portfolios/rebalancings/executions/",
            {"all_accounts": True, "method": "FULL", "rebalance_date": on_date.isoformat()},
            format="json", HTTP_HOST="localhost",
        )
        assert response.status_code == 202, response.content[:500]
        execution_id = response.json()["execution_id"]
        marks = fault(started, execution_id) or {}
        while True:
            status = Execution.objects.values_list("status", flat=True).get(pk=execution_id)
            if status in EXECUTION_ENDED:
                break
            if time.monotonic() - started > args.timeout:
                raise SystemExit(f"round stuck: {status} after {args.timeout:.0f}s; see /tmp/ballast-faults-worker*.log")
            time.sleep(0.2)
        ended = time.monotonic()
        per_account = dict(
            TradeOrder.objects.filter(execution_id=execution_id).order_by().values("account_id")
            .annotate(n=Count("id")).values_list("account_id", "n")
        )
        results = ExecutionResult.objects.filter(execution_id=execution_id)
        return {
            "status": status, "elapsed": ended - started, "ended": ended, "per_account": per_account,
            "orders": sum(per_account.values()), "results": results.count(),
            "result_accounts": results.values("account_id").distinct().count(),
            "failed": results.filter(status="FAILED").count(),
            "leases": AccountLease.objects.count(), **marks,
        }

    workers = [worker_start(n, env) for n in range(args.workers)]
    time.sleep(5)  # let them connect
    rows = []
    try:
        clean = execution_run(lambda started, execution_id: None)
        expected = clean["per_account"]
        print(f"clean run: {clean['status']} in {clean['elapsed']:.1f}s, {clean['orders']:,} orders, "
              f"{clean['results']:,} results, {clean['leases']} leases left; {args.workers} workers, "
              f"chunks of {settings.REBALANCE_CHUNK_SIZE if hasattr(settings, 'REBALANCE_CHUNK_SIZE') else 1000}, "
              f"broker {broker}")
        header = (f"{'round':>5} {'fault':<22} {'status':<10} {'expected':>9} {'written':>9} {'lost':>5} "
                  f"{'doubled':>7} {'bad res.':>8} {'leases':>6} {'beyond clean':>12} {'after restart/return':>21}")
        print(header)
        for number in range(1, args.rounds + 1):
            outage = bool(args.outage_every) and number % args.outage_every == 0

            def fault(started, execution_id, outage=outage):
                kill_at = rng.uniform(1.0, max(1.5, 0.8 * clean["elapsed"]))
                victim = rng.randrange(len(workers))
                marks = {"victim": victim}
                if outage:
                    outage_at = rng.uniform(1.0, max(1.5, 0.6 * clean["elapsed"]))
                    time.sleep(max(0.0, started + outage_at - time.monotonic()))
                    redis_server.stop()
                    stopped = time.monotonic()
                    kill_at = max(kill_at, outage_at + rng.uniform(0, args.outage_seconds / 2))
                time.sleep(max(0.0, started + kill_at - time.monotonic()))
                worker_kill(workers[victim])
                workers[victim] = worker_start(victim, env)
                marks["restarted"] = time.monotonic()
                if outage:
                    time.sleep(max(0.0, stopped + args.outage_seconds - time.monotonic()))
                    redis_server.start()
                    marks["returned"] = time.monotonic()
                return marks

            row = execution_run(fault)
            got = row["per_account"]
            row["lost"] = sum(max(0, n - got.get(a, 0)) for a, n in expected.items())
            row["doubled"] = sum(max(0, n - expected.get(a, 0)) for a, n in got.items())
            row["bad_results"] = abs(clean["results"] - row["results"]) + (row["results"] - row["result_accounts"])
            row["beyond"] = row["elapsed"] - clean["elapsed"]
            row["after"] = row["ended"] - row.get("returned", row["restarted"])
            row["outage"] = outage
            rows.append(row)
            fault_name = f"kill w{row['victim']}" + (f" + {args.outage_seconds:.0f}s outage" if outage else "")
            print(f"{number:>5} {fault_name:<22} {row['status']:<10} {clean['orders']:>9,} {row['orders']:>9,} "
                  f"{row['lost']:>5} {row['doubled']:>7} {row['bad_results']:>8} {row['leases']:>6} "
                  f"{row['beyond']:>11.1f}s {row['after']:>20.1f}s", flush=True)
    finally:
        workers_stop(workers)
        if redis_server:
            redis_server.stop()
    kills = [r["after"] for r in rows if not r["outage"]]
    outages = [r["after"] for r in rows if r["outage"]]
    beyond = [r["beyond"] for r in rows]
    print(f"rounds: {len(rows)} ({len(outages)} with a broker outage); lost {sum(r['lost'] for r in rows)}, "
          f"doubled {sum(r['doubled'] for r in rows)}, bad results {sum(r['bad_results'] for r in rows)}, "
          f"FAILED results {sum(r['failed'] for r in rows)} (clean run: {clean['failed']}), "
          f"leases left {sum(r['leases'] for r in rows)}")
    print(f"beyond the clean run ({clean['elapsed']:.1f}s): p50 {percentile(beyond, .5):.1f}s, "
          f"p95 {percentile(beyond, .95):.1f}s, max {max(beyond, default=float('nan')):.1f}s")
    print(f"kill rounds, end after the worker's restart: p50 {percentile(kills, .5):.1f}s, "
          f"p95 {percentile(kills, .95):.1f}s, max {max(kills, default=float('nan')):.1f}s (target ≤ 60 s)")
    if outages:
        print(f"outage rounds, end after the broker's return: p50 {percentile(outages, .5):.1f}s, "
              f"p95 {percentile(outages, .95):.1f}s, max {max(outages):.1f}s (target ≤ 60 s)")
    if not args.keep:
        connection.close()
        bench_execution.database_drop(args)


if __name__ == "__main__":
    main(parse_args())
