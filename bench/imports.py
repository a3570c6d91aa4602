"""Benchmark of holdings files (docs/imports.md), on PostgreSQL.

    .venv/bin/python bench/imports.py --accounts 1000000 --database ballast_bench_bulk --redis redis://127.0.0.1:6379/11

1. Creates a dedicated database (`--database`, dropped first) and migrates it.
2. Seeds `--accounts` accounts (one INSERT ... SELECT) and 40 instruments with ISINs.
3. Writes a holdings file: per account `--positions` position rows (8) and one EUR
   cash row, in account order (about 9 rows per account).
4. Runs, each as `manage.py import_holdings` in a process of its own (the figures are
   that process's wall time and peak memory, from the kernel):
   - APPLY into the empty book (every position and cash account is new);
   - RECONCILE of the same file against the now unchanged book (no breaks);
   - APPLY of the same file again (nothing to write).
   Prints rows per second and the peak resident memory of each.
`--lots N` gives every position in N rows, one per tax lot (`acquired_on`, `unit_cost`;
domain.md §13): the file then has N × positions + 1 rows per account, and every
position goes through the lots' writer (docs/imports.md, "Lots in a file").
Drops the database unless `--keep`. Targets (issue #19): 1,000,000 accounts validated
and loaded in ≤ 180 s under 1 GiB; the reconciliation in ≤ 180 s.

    .venv/bin/python bench/imports.py --demo --accounts 1000000 --database ballast_bench_bulk

`--demo` instead runs `manage.py load_demo --accounts N --no-admin` into a fresh
database (its holdings go through the holdings import's staging and merge) and prints
its wall time, rows per second (accounts, configurations, positions, cash accounts and
lots written) and peak memory. Target: ≤ 5 minutes for 1,000,000 accounts.

The machine is shared: every figure is printed with the load average (1 minute) at
its start and end; compare runs only side by side.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1_000_000, help="accounts in the file [1000000]")
    parser.add_argument("--positions", type=int, default=8, help="positions per account [8]")
    parser.add_argument("--lots", type=int, default=0, help="lot rows per position (0: no lot columns) [0]")
    parser.add_argument("--database", default="ballast_bench_imports")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15", help="only passed on (no worker runs)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--demo", action="store_true", help="time load_demo --accounts N instead")
    return parser.parse_args()


def environment(args) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": f"{args.postgres}/{args.database}",
        "REDIS_URL": args.redis,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DJANGO_DEBUG": "false",  # DEBUG would keep every query in memory
        "LOG_LEVEL": "WARNING",
    }


def admin_execute(args, *statements) -> None:
    import psycopg

    with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as admin:
        for statement in statements:
            admin.execute(statement)


def book_execute(args, sql: str, fetch: bool = False):
    import psycopg

    with psycopg.connect(f"{args.postgres}/{args.database}", autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if fetch else None


def seed(args) -> list[str]:
    """Accounts and instruments; returns the instruments' ISINs."""
    from stdnum import isin as stdnum_isin

    isins = []
    for n in range(40):
        body = f"DE{900000000 + n:09d}"
        isins.append(body + stdnum_isin.calc_check_digit(body))
    values = ", ".join(
        f"(gen_random_uuid(), '{isin}', 'Bench {n}', 'ETF', 'EUR', true, 1, now(), now())" for n, isin in enumerate(isins)
    )
    book_execute(args, f"INSERT INTO portfolios_instrument (id, isin, name, type, currency, tradable, block_size, "
                       f"created_at, updated_at) VALUES {values}")
    book_execute(args, f"INSERT INTO portfolios_portfolioaccount (id, client_id, account_type, base_currency, status, "
                       f"locked, created_at, updated_at) SELECT gen_random_uuid(), 'B-' || lpad(g::text, 8, '0'), "
                       f"'PORTFOLIO', 'EUR', 'ACTIVE', false, now(), now() FROM generate_series(1, {args.accounts}) g")
    book_execute(args, "VACUUM ANALYZE")
    return isins


def write_file(args, path: Path, isins: list[str]) -> int:
    import psycopg

    rows = 0
    with psycopg.connect(f"{args.postgres}/{args.database}") as conn, path.open("w") as out:
        lots = args.lots
        out.write("account_id,instrument_id,units,currency,balance" + (",acquired_on,unit_cost\n" if lots else "\n"))
        cash_tail = ",," if lots else ""
        with conn.cursor(name="accounts") as cursor:
            cursor.itersize = 50_000
            cursor.execute("SELECT id FROM portfolios_portfolioaccount ORDER BY client_id")
            lines = []
            for n, (account_id,) in enumerate(cursor):
                account = str(account_id)
                for k in range(args.positions):
                    isin, units = isins[(n + k * 5) % len(isins)], f"{(n % 97) + k + 1}.{k}5"
                    if not lots:
                        lines.append(f"{account},{isin},{units},,\n")
                    for j in range(lots):  # dated 60 to 2000 days back, costs 50 to 149.99
                        day = f"20{21 + j % 5}-{(n + j) % 12 + 1:02d}-{(n + k) % 28 + 1:02d}"
                        lines.append(f"{account},{isin},{units},,,{day},{50 + (n + j * 7 + k) % 100}.{j}{k}\n")
                lines.append(f"{account},,,EUR,{(n % 1000) * 10 + 0.5:.2f}{cash_tail}\n")
                rows += args.positions * max(lots, 1) + 1
                if len(lines) > 100_000:
                    out.writelines(lines)
                    lines = []
            out.writelines(lines)
    return rows


def load() -> str:
    return os.getloadavg()[0].__format__(".1f")


def run_command(args, *command) -> tuple[float, int, str]:
    """(seconds, peak RSS in MiB, last line of output) of one manage.py process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [PYTHON, "manage.py", *command], cwd=ROOT, env=environment(args),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    _, status, usage = os.wait4(process.pid, 0)  # the output is a few lines: the pipe does not fill
    seconds = time.perf_counter() - started
    output = process.stdout.read().strip()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{output}")
    return seconds, usage.ru_maxrss // 1024, output.splitlines()[-1] if output else ""


def run_import(args, path: Path, *options) -> tuple[float, int, str]:
    return run_command(args, "import_holdings", str(path), *options)


def demo(args) -> None:
    subprocess.run([PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=environment(args), check=True)
    before = load()
    seconds, peak, _ = run_command(args, "load_demo", "--accounts", str(args.accounts), "--no-admin")
    counts = book_execute(args, "SELECT (SELECT count(*) FROM portfolios_portfolioaccount), "
                                "(SELECT count(*) FROM portfolios_configuration), (SELECT count(*) FROM portfolios_position), "
                                "(SELECT count(*) FROM portfolios_cashaccount), (SELECT count(*) FROM portfolios_lot), "
                                "(SELECT count(*) FROM portfolios_lot WHERE unit_cost IS NOT NULL)", fetch=True)[0]
    rows = sum(counts[:5])
    print(f"load_demo --accounts {args.accounts:,}: {seconds:.1f} s, {rows / seconds:,.0f} rows/s "
          f"({counts[0]:,} accounts, {counts[1]:,} configurations, {counts[2]:,} positions, {counts[3]:,} cash accounts, "
          f"{counts[4]:,} lots, {counts[5]:,} of them with a cost), "
          f"peak {peak:,} MiB, load average {before} → {load()}")


def main():
    args = parse_args()
    admin_execute(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)', f'CREATE DATABASE "{args.database}"')
    try:
        if args.demo:
            demo(args)
            return
        started = time.perf_counter()
        subprocess.run([PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=environment(args),
                       check=True)
        isins = seed(args)
        print(f"seeded {args.accounts:,} accounts in {time.perf_counter() - started:.1f} s")
        with tempfile.TemporaryDirectory(prefix="ballast-bench-imports-") as folder:
            path = Path(folder) / "holdings.csv"
            started = time.perf_counter()
            rows = write_file(args, path, isins)
            size = path.stat().st_size
            print(f"file: {rows:,} rows, {size / 2**20:,.0f} MiB, written in {time.perf_counter() - started:.1f} s")
            os.environ["IMPORTS_ROOT"] = folder
            for label, options in (
                ("APPLY into the empty book", ()),
                ("RECONCILE against the unchanged book", ("--mode", "RECONCILE")),
                ("APPLY again (nothing changes)", ()),
            ):
                book_execute(args, "VACUUM ANALYZE")
                before = load()
                seconds, peak, outcome = run_import(args, path, *options)
                print(f"{label:40s} {seconds:7.1f} s  {rows / seconds:10,.0f} rows/s  peak {peak:5,} MiB  "
                      f"load {before} → {load()}  | {outcome}")
    finally:
        if not args.keep:
            admin_execute(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
