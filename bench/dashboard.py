"""The dashboard (the admin index) at two book sizes: its queries per page load at
1,000 and at 100,000 accounts (they must be equal), and its p95 at the larger size.

    .venv/bin/python bench/dashboard.py [--small 1000] [--accounts 100000] [--rounds 40]
        [--database ballast_bench_cockpit] [--redis redis://127.0.0.1:6379/4] [--reuse] [--keep]

Loads the demo book (`demo_book_load`) into `<database>_small` and `<database>`
(dropped first unless --reuse finds them), stores every account's drift and the drift
summary (`account_drifts_refresh`, the daily evaluation's step), then loads /admin/ through
Django's test client as a logged-in superuser (the real URL, middleware, dashboard
selector and template; no HTTP server): the queries of one load at each size, then
`--rounds` loads at the larger size (after one warm-up) for the p95, with the load
average before and after (the machine is shared). Drops both databases unless --keep.
PostgreSQL only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cockpit  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=1000, help="accounts of the small book [1000]")
    parser.add_argument("--accounts", type=int, default=100_000, help="accounts of the large book [100000]")
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)  # one size, in a child process
    cockpit.add_arguments(parser)
    return parser.parse_args(argv)


def one_size(args) -> None:
    """In a process of its own (Django is set up once per process): load, count, time."""
    database = args.database if args.size == args.accounts else f"{args.database}_small"
    must_load = cockpit.database_prepare(args, database)
    cockpit.django_setup(args, database)
    cockpit.book_load(args.size, must_load)
    from portfolios.models import PortfolioAccount

    admin, _ = cockpit.clients()
    _, queries = cockpit.timed_get(admin, "/admin/")
    _, queries = cockpit.timed_get(admin, "/admin/")  # the second load: caches as on a busy day
    book = PortfolioAccount.objects.count()
    print(f"dashboard at {args.size:,} accounts ({book:,} with sub-portfolios): {len(queries)} queries per page load",
          flush=True)
    if args.size == args.accounts:
        before = os.getloadavg()
        times = cockpit.measure({"dashboard": (admin, "/admin/")}, args.rounds)["dashboard"]
        after = os.getloadavg()
        print(f"dashboard at {args.size:,} accounts: p95 {cockpit.p95(times):.0f} ms, median "
              f"{sorted(times)[len(times) // 2]:.0f} ms over {args.rounds} loads (load average 1 min: "
              f"{before[0]:.1f} before, {after[0]:.1f} after, on {os.cpu_count()} CPUs)", flush=True)
    if not args.keep:
        cockpit.database_drop(args, database)


def main() -> None:
    args = parse_args()
    if args.size:
        one_size(args)
        return
    for size in (args.small, args.accounts):
        command = [sys.executable, __file__, *sys.argv[1:], "--size", str(size)]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
