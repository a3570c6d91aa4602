"""`manage.py rebalance`: start an execution (trigger MANUAL) and optionally wait for it."""

import time
from collections import Counter
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from core.errors import DomainError
from rebalancing.models import EXECUTION_ENDED, Execution, ExecutionStatus, Method, Trigger
from rebalancing.services import execution_create


class Command(BaseCommand):
    help = (
        "Rebalance accounts for real: create an execution (trigger MANUAL) whose chunks run on the Celery "
        "workers. Choose the accounts with exactly one of --accounts, --allocation or --all."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--accounts", help="Comma-separated account UUIDs.")
        which.add_argument("--allocation", help="Every ACTIVE top-level account following this allocation (UUID).")
        which.add_argument(
            "--all", dest="whole_book", action="store_true", help="Every ACTIVE top-level configured account."
        )
        parser.add_argument("--method", default=Method.FULL, choices=Method.values, help="Default FULL.")
        parser.add_argument("--date", type=date.fromisoformat, help="Rebalance date, YYYY-MM-DD (default today).")
        parser.add_argument("--wait", action="store_true", help="Wait until it finishes, printing its progress.")
        parser.add_argument("--interval", type=float, default=2.0, help="Seconds between progress lines (--wait).")
        parser.add_argument(
            "--timeout", type=float, default=None, help="Give up waiting after this many seconds (exit code 2)."
        )

    def handle(self, *args, accounts, allocation, whole_book, method, date, wait, interval, timeout, **options):
        account_ids = [a.strip() for a in accounts.split(",") if a.strip()] if accounts is not None else None
        try:
            execution = execution_create(
                method=method, trigger=Trigger.MANUAL, account_ids=account_ids, allocation=allocation,
                rebalance_date=date,
            )
        except DomainError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(
            f"Execution {execution.pk}: {execution.total} accounts, {execution.method} on {execution.rebalance_date}, "
            f"{execution.status}."
        )
        if not wait:
            return
        started = time.monotonic()
        while execution.status not in EXECUTION_ENDED:
            if timeout is not None and time.monotonic() - started > timeout:
                self.stderr.write(f"Still {execution.status} after {timeout:g}s ({execution.done}/{execution.total}).")
                raise SystemExit(2)
            time.sleep(interval)
            execution = Execution.objects.get(pk=execution.pk)
            self.stdout.write(f"  {execution.status}: {execution.done}/{execution.total} accounts done")
        self._outcome(execution, time.monotonic() - started)

    def _outcome(self, execution: Execution, elapsed: float):
        counts = Counter(execution.results.values_list("status", flat=True))
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no results"
        orders = execution.trade_orders.count()
        line = f"Execution {execution.pk} {execution.status} in {elapsed:.1f}s: {summary}; {orders} trade orders."
        style = self.style.SUCCESS if execution.status == ExecutionStatus.COMPLETED else self.style.WARNING
        self.stdout.write(style(line))
