"""Model alerts (§11): an allocation needs attention while a line of its current
version is not tradable or has no price at or before today.

`allocation_alerts_refresh` recomputes the alerts of some allocations (or all) in a
fixed number of queries, replaces their `AllocationAlert` rows and sends one
`allocation.needs_attention` event per allocation with an alert not yet notified
today (once per reason and day). It runs on every allocation save, when an
instrument's `tradable` flag changes, when prices arrive for an instrument under a
NO_PRICE alert, and daily from beat (config/schedules.py).
"""

from datetime import date

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from webhooks import events

from ..models import Allocation, AllocationAlert, AllocationLine, AlertReason, Price

EVENT = "allocation.needs_attention"


def alerts_payload(allocation_id, alerts: list[tuple]) -> dict:
    return {
        "allocation_id": str(allocation_id),
        "needs_attention": [{"instrument_id": str(i), "reason": r} for i, r in sorted(alerts, key=lambda a: (str(a[0]), a[1]))],
    }


@transaction.atomic
def allocation_alerts_refresh(*, allocation_ids=None, on_date: date | None = None) -> int:
    """Recompute the alerts of `allocation_ids` (None: every allocation); returns how
    many allocations need attention afterwards. Queries: lines with tradable and price
    flags (one), the current alerts (one), then a delete, an insert and an update when
    something changed, whatever the number of allocations."""
    today = on_date or timezone.localdate()
    queryset = AllocationLine.objects.order_by().filter(version_id__in=models_current_version())
    if allocation_ids is not None:
        queryset = queryset.filter(allocation_id__in=list(allocation_ids))
    found = {}  # (allocation id, instrument id, reason)
    priced = Price.objects.filter(instrument_id=OuterRef("instrument_id"), effective_at__lte=today)
    for allocation_id, instrument_id, tradable, has_price, kind in queryset.annotate(
        has_price=Exists(priced)
    ).values_list("allocation_id", "instrument_id", "instrument__tradable", "has_price", "instrument__type"):
        if not tradable:
            found[(allocation_id, instrument_id, AlertReason.NOT_TRADABLE.value)] = True
        if not has_price and kind != "CASH":
            found[(allocation_id, instrument_id, AlertReason.NO_PRICE.value)] = True
    existing_rows = AllocationAlert.objects.order_by()
    if allocation_ids is not None:
        existing_rows = existing_rows.filter(allocation_id__in=list(allocation_ids))
    existing = {(a, i, r): (pk, notified) for pk, a, i, r, notified in existing_rows.values_list(
        "pk", "allocation_id", "instrument_id", "reason", "notified_on"
    )}
    stale = [pk for key, (pk, _) in existing.items() if key not in found]
    if stale:
        AllocationAlert.objects.filter(pk__in=stale).delete()
    new = [key for key in found if key not in existing]
    if new:
        AllocationAlert.objects.bulk_create(
            AllocationAlert(allocation_id=a, instrument_id=i, reason=r, since=today, notified_on=today) for a, i, r in new
        )
    due = [existing[key][0] for key in found if key in existing and existing[key][1] < today]
    if due:
        AllocationAlert.objects.filter(pk__in=due).update(notified_on=today)
    notify = {a for a, _, _ in new} | {key[0] for key in found if key in existing and existing[key][1] < today}
    by_allocation = {}
    for a, i, r in found:
        by_allocation.setdefault(a, []).append((i, r))
    for allocation_id in sorted(notify, key=str):
        alerts = by_allocation[allocation_id]
        events.record(EVENT, lambda allocation_id=allocation_id, alerts=alerts: alerts_payload(allocation_id, alerts))
    return len(by_allocation)


def models_current_version():
    """The current version ids, as a subquery."""
    return Allocation.objects.filter(current_version__isnull=False).values("current_version_id")


def allocations_with_instruments(instrument_ids) -> list:
    """Ids of the allocations whose current version holds any of `instrument_ids` (one query)."""
    return list(
        AllocationLine.objects.order_by().filter(version_id__in=models_current_version(), instrument_id__in=list(instrument_ids))
        .values_list("allocation_id", flat=True).distinct()
    )


def allocations_with_price_alerts(instrument_ids) -> list:
    """Ids of the allocations with a NO_PRICE alert on any of `instrument_ids` (one query)."""
    return list(
        AllocationAlert.objects.order_by().filter(reason=AlertReason.NO_PRICE, instrument_id__in=list(instrument_ids))
        .values_list("allocation_id", flat=True).distinct()
    )


__all__ = ["allocation_alerts_refresh", "allocations_with_instruments", "allocations_with_price_alerts"]
