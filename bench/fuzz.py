"""Fuzz the API against its OpenAPI document at 100 examples per operation, every check.

    .venv/bin/python bench/fuzz.py [--examples 100] [--database ballast_bench_harden --redis redis://127.0.0.1:6379/9]
                                   [--details failing-cases.jsonl]

Runs tests/security/test_fuzz_api.py (schemathesis, every single-request check: server
errors, status codes, content types, response schemas and headers, negative data
rejected, positive data accepted, missing required headers, unsupported methods) with
FUZZ_EXAMPLES and a report file, then prints per operation the cases sent and the
failing cases by check, and the totals. `--database`/`--redis` run it on PostgreSQL +
Redis (the database is the test database's name prefix); without them, on SQLite.
Exits non-zero when any case failed.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=100, help="examples per operation [100]")
    parser.add_argument("--database", help="PostgreSQL database name (default: SQLite)")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", help="Redis URL (default: none)")
    parser.add_argument("--workers", default="2", help="pytest-xdist processes [2]")
    parser.add_argument("--details", type=Path, help="write each failing case (request, answer, check messages) "
                        "to this file, one JSON line each")
    parser.add_argument("--keep-going", action="store_true",
                        help="run every example even after a failure (counts every failing case, "
                        "where by default an operation stops at its first failure)")
    args = parser.parse_args()

    report = Path(tempfile.mkstemp(prefix="ballast-fuzz-", suffix=".jsonl")[1])
    env = {**os.environ, "FUZZ_EXAMPLES": str(args.examples), "FUZZ_REPORT": str(report)}
    if args.keep_going:
        env["FUZZ_KEEP_GOING"] = "1"
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    if args.database:
        env["DATABASE_URL"] = f"{args.postgres}/{args.database}"
    if args.redis:
        env["REDIS_URL"] = args.redis
    command = [sys.executable, "-m", "pytest", "tests/security/test_fuzz_api.py", "-q", "-n", args.workers,
               "-p", "no:cacheprovider", "-k", "test_api_answers_as_its_schema_says"]
    completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)

    cases, failing, unstateable = Counter(), defaultdict(Counter), defaultdict(Counter)
    details = args.details.open("w") if args.details else None
    for line in report.read_text().splitlines():
        row = json.loads(line)
        if details and row["failures"]:
            details.write(line + "\n")
        cases[row["operation"]] += 1
        for rule in row.get("unstateable") or []:
            if not row["failures"]:
                unstateable[row["operation"]][rule] += 1
        for title in set(row["failures"]):
            failing[row["operation"]][title] += 1
    report.unlink()
    if details:
        details.close()
    width = max((len(op) for op in cases), default=10)
    print(f"{'operation':<{width}}  cases  refused  failing cases by check")
    for operation in sorted(cases):
        found = ", ".join(f"{title}: {n}" for title, n in sorted(failing[operation].items())) or "-"
        print(f"{operation:<{width}}  {cases[operation]:>5}  {sum(unstateable[operation].values()):>7}  {found}")
    totals, rules = Counter(), Counter()
    for counter in failing.values():
        totals.update(counter)
    for counter in unstateable.values():
        rules.update(counter)
    print("refused: schema-valid requests refused by a rule the document cannot state (not failures): "
          + (", ".join(f"{rule}: {n}" for rule, n in rules.most_common()) or "none"))
    print(f"operations: {len(cases)}, cases: {sum(cases.values())}, failing cases: "
          f"{sum(sum(c.values()) for c in failing.values())} ({', '.join(f'{t}: {n}' for t, n in totals.items()) or 'none'}); "
          f"{args.examples} examples per operation; pytest exit code {completed.returncode}")
    if completed.returncode not in (0, 1) or not cases:
        print(completed.stdout[-3000:], completed.stderr[-3000:])
    return 1 if totals or completed.returncode else 0


if __name__ == "__main__":
    sys.exit(main())
