"""`manage.py import_holdings FILE [--mode RECONCILE] [--match client_id] [--tolerance 0.01]`:
run a holdings import in this process (no worker needed) and print its outcome."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.errors import DomainError
from imports import services
from imports.models import ImportKind, ImportStatus


class Command(BaseCommand):
    help = "Import a holdings file (CSV or XLSX): APPLY writes the snapshot, RECONCILE lists the breaks."
    kind = ImportKind.HOLDINGS

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--mode", default="APPLY", choices=["APPLY", "RECONCILE"])
        parser.add_argument("--match", default="account_id", choices=["account_id", "client_id"])
        parser.add_argument("--tolerance", default="0")

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"no file {path}")
        try:
            with path.open("rb") as upload:
                job, _ = services.import_create(
                    kind=self.kind, upload=upload, file_name=path.name, mode=options.get("mode", "APPLY"),
                    match=options.get("match", "account_id"), tolerance=options.get("tolerance", "0"), enqueue=False,
                )
        except DomainError as exc:
            raise CommandError(exc.detail) from exc
        job = services.import_run(import_id=job.pk)
        self.stdout.write(
            f"import {job.pk}: {job.status}; {job.rows} rows, {job.rows_changed} written, "
            f"{job.accounts_changed} accounts changed, {job.break_count} breaks"
        )
        for error in job.errors:
            self.stdout.write(f"  line {error['line']}, {error['field']}: {error['message']}")
        if job.error_count > len(job.errors):
            self.stdout.write(f"  … {job.error_count - len(job.errors)} more errors")
        if job.status == ImportStatus.FAILED:
            raise CommandError(f"import {job.pk} FAILED: nothing was written")
