"""`manage.py rebalance`: choose accounts, start a MANUAL execution, wait for it."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from rebalancing.management.commands import rebalance as command_module
from rebalancing.models import Execution

from .conftest import D, run_chunks


def rebalance(*args) -> str:
    out = StringIO()
    call_command("rebalance", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_accounts_start_a_manual_execution(fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    accounts = [account_with(allocation) for _ in range(2)]
    out = rebalance("--accounts", ",".join(str(a.pk) for a in accounts), "--date", D.isoformat(), "--method", "FULL")
    execution = Execution.objects.get()
    assert (execution.trigger, execution.method, execution.rebalance_date, execution.total) == ("MANUAL", "FULL", D, 2)
    assert f"Execution {execution.pk}: 2 accounts, FULL on {D}, PENDING." in out


def test_allocation_and_all(fifty_fifty, account_with):
    *_, allocation = fifty_fifty
    account_with(allocation)
    rebalance("--allocation", str(allocation.pk), "--date", D.isoformat())
    run_chunks(Execution.objects.get())
    rebalance("--all", "--date", D.isoformat())
    assert set(Execution.objects.values_list("total", "allocation_id")) == {(1, allocation.pk), (1, None)}


def test_exactly_one_selection_and_domain_errors(fifty_fifty):
    with pytest.raises(CommandError):
        rebalance("--date", D.isoformat())
    with pytest.raises(CommandError):
        rebalance("--all", "--allocation", "0b5f2b8e-8f5e-4c39-9d0e-3f4f0c2d9a11")
    with pytest.raises(CommandError, match="no account with id"):
        rebalance("--accounts", "0b5f2b8e-8f5e-4c39-9d0e-3f4f0c2d9a11")


def test_wait_prints_progress_and_the_outcome(fifty_fifty, account_with, monkeypatch):
    *_, allocation = fifty_fifty
    account = account_with(allocation)

    def a_worker_meanwhile(seconds):  # stands for the Celery workers while the command sleeps
        for execution in Execution.objects.filter(status__in=["PENDING", "RUNNING"]):
            run_chunks(execution)

    monkeypatch.setattr(command_module.time, "sleep", a_worker_meanwhile)
    out = rebalance("--accounts", str(account.pk), "--date", D.isoformat(), "--wait")
    assert "COMPLETED: 1/1 accounts done" in out
    assert "COMPLETED in" in out and "1 PROPOSED; 2 trade orders." in out


def test_wait_gives_up_after_the_timeout(fifty_fifty, account_with, monkeypatch):
    *_, allocation = fifty_fifty
    account = account_with(allocation)
    monkeypatch.setattr(command_module.time, "sleep", lambda seconds: None)
    with pytest.raises(SystemExit) as exit_:
        rebalance("--accounts", str(account.pk), "--date", D.isoformat(), "--wait", "--timeout", "0")
    assert exit_.value.code == 2
