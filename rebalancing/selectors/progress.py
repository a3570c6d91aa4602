"""An execution's progress over time, for the execution page's line chart."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Func, IntegerField

from ..models import ExecutionChunk


class JSONArrayLength(Func):
    """The length of a JSON array column (PostgreSQL jsonb, SQLite JSON text)."""

    output_field = IntegerField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, function="jsonb_array_length", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, function="json_array_length", **extra)


@dataclass(frozen=True)
class Progress:
    """Accounts done by `seconds` after the start: one point per finished chunk."""

    start: datetime | None
    points: tuple  # ((seconds, accounts done), …), seconds increasing

    @property
    def rate(self) -> float | None:
        """Accounts per second so far (for an estimate in words, never for money)."""
        if not self.points or self.points[-1][0] <= 0:
            return None
        return self.points[-1][1] / self.points[-1][0]


def execution_progress_series(*, execution) -> Progress:
    """The cumulative count of accounts of the execution's finished chunks, by the time
    each chunk finished, from `execution.started_at` (else its creation). One query; the
    chunks' account lists are measured in the database, not loaded."""
    start = execution.started_at or execution.created_at
    rows = (
        ExecutionChunk.objects.filter(execution_id=execution.pk, finished_at__isnull=False)
        .order_by("finished_at", "number")
        .values_list("finished_at", JSONArrayLength("account_ids"))
    )
    points, done = [], 0
    for finished_at, accounts in rows:
        done += accounts or 0
        points.append((max((finished_at - start).total_seconds(), 0.0), done))
    return Progress(start=start, points=tuple(points))
