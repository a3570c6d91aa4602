"""Audit entries of executions (docs/audit.md).

An execution's status moves by conditional updates, which no signal sees, so each
service that moves it calls `execution_audit` once per move: a handful of entries per
execution, whatever its size. The execution is also the record of its trade orders:
the orders its chunks write, the OPEN orders they replace, and the orders its
approval, rejection or cancellation moves in bulk get no entry of their own (one per
order would double the cost of a whole-book rebalance).
"""

from audit.services import audit_record

from ..models import Execution


def execution_audit(execution, event: str, status: str, *, before: str | None = None, actor=None,
                    changes: dict | None = None, **extra) -> None:
    """Record `execution` (an Execution loaded before the change, or an id: one SELECT)
    moving to `status`; `before` overrides the status it had. One INSERT."""
    if not isinstance(execution, Execution):
        execution = Execution.objects.get(pk=execution)
    before = before if before is not None else execution.status
    execution.status = status
    audit_record(execution, event, {"status": (before, status), **(changes or {})}, actor=actor, **extra)
