"""Imports run in a worker: here the message is delivered at once, to the real task."""

import pytest

from tests.portfolios.api.conftest import client_for  # noqa: F401


@pytest.fixture(autouse=True)
def imports_root(settings, tmp_path):
    settings.IMPORTS_ROOT = tmp_path / "imports"
    return settings.IMPORTS_ROOT


@pytest.fixture
def worker(monkeypatch, django_capture_on_commit_callbacks):
    """Deliver sent imports to the real Celery task (in this process) on commit; use as
    `with worker(): client.post(...)`."""
    from imports import tasks
    from imports.services import jobs

    sent = []

    def deliver(name, *args, **options):
        assert name == tasks.import_run.name
        sent.append(args)
        tasks.import_run.apply(args=args).get()

    monkeypatch.setattr(jobs, "task_send", deliver)

    def run():
        return django_capture_on_commit_callbacks(execute=True)

    run.sent = sent
    return run


def csv_text(*rows) -> str:
    return "\n".join(",".join(str(cell) for cell in row) for row in rows) + "\n"


HEADER = ("account_id", "instrument_id", "units", "currency", "balance")
