"""Allocations (model portfolios): the line rules of spec §2, enforced here only.

The API, the admin and the demo loader all go through `allocation_validate`,
`allocation_create` and `allocation_update`, so they can never disagree.
"""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record, text
from core.errors import Conflict, FieldError, raise_if_errors
from core.ids import parse_uuid
from webhooks import events
from webhooks.payloads import allocation_payload

from ..models import (
    Allocation,
    AllocationLine,
    AllocationVersion,
    Instrument,
    InstrumentIdType,
    InstrumentType,
    WeightType,
)
from ..models.fields import WEIGHT, is_currency_code
from ..selectors import instruments_by_reference
from .alerts import allocation_alerts_refresh

ONE = Decimal(1)
WEIGHT_QUANTUM = Decimal(1).scaleb(-WEIGHT["decimal_places"])


@dataclass(frozen=True)
class LineInput:
    instrument_id: str  # an ISIN or a UUID, as the caller sent it
    weight: Decimal
    instrument_id_type: str | None = None  # ISIN | UUID; None: taken from the value's shape
    min_weight: Decimal | None = None
    max_weight: Decimal | None = None


@dataclass(frozen=True)
class AllocationInput:
    lines: list[LineInput]
    name: str = ""
    base_currency: str = "EUR"
    weight_type: str = WeightType.STATIC
    period_type: str | None = None
    period_count: int | None = None
    effective_from: date | None = None
    normalize: bool = False


@dataclass(frozen=True)
class ValidLine:
    instrument: Instrument
    instrument_id_type: str
    weight: Decimal
    min_weight: Decimal | None
    max_weight: Decimal | None


@dataclass(frozen=True)
class ValidAllocation:
    data: AllocationInput
    effective_from: date
    lines: list[ValidLine] = field(default_factory=list)


def _normalized(weights: list[Decimal]) -> list[Decimal]:
    """Divide by the sum and round to the stored precision; the rounding remainder goes
    to the largest weight so the stored weights still sum to exactly 1."""
    total = sum(weights)
    scaled = [(w / total).quantize(WEIGHT_QUANTUM) for w in weights]
    if scaled:
        largest = max(range(len(scaled)), key=lambda i: (scaled[i], -i))
        scaled[largest] += ONE - sum(scaled)
    return scaled


def allocation_validate(*, data: AllocationInput, current: Allocation | None = None) -> ValidAllocation:
    """Check every rule of spec §2 and return the lines ready to store.

    Raises InvalidInput naming every bad field, e.g. `allocation[1].weight`.
    One query (the instruments); `current` should come with its current_version.
    """
    errors: list[FieldError] = []
    if data.base_currency and not is_currency_code(data.base_currency):
        errors.append(FieldError("base_currency", f"{data.base_currency} is not an ISO 4217 currency code"))
    if data.weight_type == WeightType.PERIODICAL:
        if not data.period_type:
            errors.append(FieldError("period_type", "required when weight_type is PERIODICAL"))
        if not data.period_count or data.period_count < 1:
            errors.append(FieldError("period_count", "required when weight_type is PERIODICAL, at least 1"))
    else:
        if data.period_type:
            errors.append(FieldError("period_type", "only a PERIODICAL allocation has a period"))
        if data.period_count is not None:
            errors.append(FieldError("period_count", "only a PERIODICAL allocation has a period"))
    effective_from = data.effective_from or timezone.localdate()
    if current is not None and current.current_version is not None:
        previous = current.current_version.effective_from
        if effective_from < previous:
            errors.append(
                FieldError("effective_from", f"must not be before the current version's effective_from ({previous})")
            )
    if not data.lines:
        errors.append(FieldError("allocation", "at least one line is required"))

    instruments = instruments_by_reference(line.instrument_id for line in data.lines)
    resolved: list[Instrument | None] = []
    first_seen: dict[object, int] = {}
    for index, line in enumerate(data.lines):
        path = f"allocation[{index}]"
        is_uuid = parse_uuid(line.instrument_id) is not None
        if line.instrument_id_type and line.instrument_id_type not in InstrumentIdType.values:
            errors.append(FieldError(f"{path}.instrument_id_type", "must be ISIN or UUID"))
        elif line.instrument_id_type and (line.instrument_id_type == InstrumentIdType.UUID) != is_uuid:
            errors.append(
                FieldError(f"{path}.instrument_id", f"{line.instrument_id} is not a {line.instrument_id_type}, as instrument_id_type says")
            )
        instrument = instruments.get(line.instrument_id)
        resolved.append(instrument)
        if instrument is None:
            errors.append(FieldError(f"{path}.instrument_id", f"no instrument with ISIN or UUID {line.instrument_id}"))
        else:
            if not instrument.tradable:
                errors.append(FieldError(f"{path}.instrument_id", f"{instrument.label} is not tradable"))
            if instrument.pk in first_seen:
                errors.append(
                    FieldError(f"{path}.instrument_id", f"{instrument.label} is already in allocation[{first_seen[instrument.pk]}]")
                )
            first_seen.setdefault(instrument.pk, index)
        if line.weight is None or line.weight <= 0:
            errors.append(FieldError(f"{path}.weight", "must be greater than 0 (no short positions)"))

    raise_if_errors(errors)

    is_future = [instrument.type == InstrumentType.FUTURE for instrument in resolved]
    weights = [line.weight for line in data.lines]
    mins = [line.min_weight for line in data.lines]
    maxs = [line.max_weight for line in data.lines]
    base_indexes = [i for i, future in enumerate(is_future) if not future]
    base_sum = sum((weights[i] for i in base_indexes), Decimal(0))
    if data.normalize:
        if base_sum == 0:
            errors.append(FieldError("allocation", "normalize needs at least one non-future line"))
        else:
            for i, weight in zip(base_indexes, _normalized([weights[i] for i in base_indexes])):
                weights[i] = weight
                # The band is given on the caller's scale too.
                mins[i] = None if mins[i] is None else (mins[i] / base_sum).quantize(WEIGHT_QUANTUM)
                maxs[i] = None if maxs[i] is None else (maxs[i] / base_sum).quantize(WEIGHT_QUANTUM)
    elif base_sum != ONE:
        errors.append(
            FieldError("allocation", f"weights of the non-future lines must sum to exactly 1, they sum to {base_sum}; "
                       "send normalize: true to scale them")
        )
    for index in range(len(data.lines)):
        path = f"allocation[{index}]"
        places, whole = WEIGHT["decimal_places"], WEIGHT["max_digits"] - WEIGHT["decimal_places"]
        if weights[index].as_tuple().exponent < -places:
            errors.append(FieldError(f"{path}.weight", f"at most {places} decimal places"))
        if weights[index].adjusted() >= whole:
            errors.append(FieldError(f"{path}.weight", f"must be below {10 ** whole}"))
        for name, band in (("min_weight", mins[index]), ("max_weight", maxs[index])):
            if band is not None and band.as_tuple().exponent < -places:
                errors.append(FieldError(f"{path}.{name}", f"at most {places} decimal places"))
        if mins[index] is not None and not (0 <= mins[index] <= weights[index]):
            errors.append(FieldError(f"{path}.min_weight", "must satisfy 0 ≤ min_weight ≤ weight"))
        if maxs[index] is not None and not (weights[index] <= maxs[index] <= 1):
            errors.append(FieldError(f"{path}.max_weight", "must satisfy weight ≤ max_weight ≤ 1"))
    raise_if_errors(errors)

    lines = [
        ValidLine(
            instrument=instrument,
            instrument_id_type=line.instrument_id_type
            or (InstrumentIdType.UUID if parse_uuid(line.instrument_id) else InstrumentIdType.ISIN),
            weight=weights[i],
            min_weight=mins[i],
            max_weight=maxs[i],
        )
        for i, (line, instrument) in enumerate(zip(data.lines, resolved))
    ]
    return ValidAllocation(data=data, effective_from=effective_from, lines=lines)


def _change_summary(previous: AllocationVersion | None, valid: ValidAllocation) -> str:
    if previous is None:
        return "Created with " + ", ".join(f"{line.instrument.label} {line.weight.normalize()}" for line in valid.lines)
    before = {line.instrument_id: line for line in previous.lines.select_related("instrument")}
    after = {line.instrument.pk: line for line in valid.lines}
    parts = []
    for pk, line in after.items():
        if pk not in before:
            parts.append(f"added {line.instrument.label} {line.weight.normalize()}")
        elif before[pk].weight != line.weight:
            parts.append(f"{line.instrument.label} {before[pk].weight.normalize()} → {line.weight.normalize()}")
    parts += [f"removed {line.instrument.label}" for pk, line in before.items() if pk not in after]
    if previous.weight_type != valid.data.weight_type:
        parts.append(f"weight type {previous.weight_type} → {valid.data.weight_type}")
    if previous.name != valid.data.name:
        parts.append(f"name {previous.name!r} → {valid.data.name!r}")
    return "; ".join(parts) or "same lines, new version"


def _lines_text(lines) -> str:
    """The lines as the audit trail shows them: "IE00B4L5Y983 0.6 [0.55–0.65]; …", largest first."""
    def one(line):
        band = ""
        if line.min_weight is not None or line.max_weight is not None:
            band = f" [{text(line.min_weight) if line.min_weight is not None else ''}–" \
                   f"{text(line.max_weight) if line.max_weight is not None else ''}]"
        return f"{line.instrument.label} {text(line.weight)}{band}"
    return "; ".join(one(line) for line in sorted(lines, key=lambda line: (-line.weight, line.instrument.label)))


def _version_state(allocation: Allocation, version: AllocationVersion | None, lines) -> dict:
    """What the audit trail compares between two versions of an allocation."""
    if version is None:
        return {}
    period = f"{version.period_count} {version.period_type}" if version.period_type else None
    return {
        "name": allocation.name, "base_currency": allocation.base_currency, "version": version.version,
        "effective_from": version.effective_from, "weight_type": version.weight_type, "period": period,
        "lines": _lines_text(lines),
    }


def _audit_version(allocation: Allocation, previous: AllocationVersion | None, before: dict, user) -> None:
    """One audit entry per new version: the allocation created, or its changed fields
    and lines before → after (a new version is a change of the allocation)."""
    after = _version_state(allocation, allocation.current_version, allocation.current_version.lines.select_related("instrument"))
    changes = {name: (before.get(name), value) for name, value in after.items() if before.get(name) != value}
    audit_record(allocation, "update" if previous else "create", changes, actor=user,
                 summary=allocation.current_version.change_summary)


def _save_version(*, allocation: Allocation, valid: ValidAllocation, user) -> AllocationVersion:
    previous = allocation.current_version
    version = AllocationVersion.objects.create(
        allocation=allocation,
        version=(previous.version + 1) if previous else 1,
        name=valid.data.name,
        effective_from=valid.effective_from,
        weight_type=valid.data.weight_type,
        period_type=valid.data.period_type if valid.data.weight_type == WeightType.PERIODICAL else None,
        period_count=valid.data.period_count if valid.data.weight_type == WeightType.PERIODICAL else None,
        created_by=user if user and user.is_authenticated else None,
        change_summary=_change_summary(previous, valid),
    )
    AllocationLine.objects.bulk_create(
        AllocationLine(
            allocation=allocation,
            version=version,
            instrument=line.instrument,
            instrument_id_type=line.instrument_id_type,
            weight=line.weight,
            min_weight=line.min_weight,
            max_weight=line.max_weight,
        )
        for line in valid.lines
    )
    allocation.current_version = version
    allocation.save(update_fields=["current_version", "name", "base_currency", "updated_at"])
    return version


@transaction.atomic
def allocation_create(*, data: AllocationInput, user=None) -> Allocation:
    """Create an allocation and its first version."""
    valid = allocation_validate(data=data)
    allocation = Allocation.objects.create(
        name=data.name, base_currency=data.base_currency or "EUR",
        owner=user if user and user.is_authenticated else None,
    )
    _save_version(allocation=allocation, valid=valid, user=user)
    _audit_version(allocation, None, {}, user)
    events.record("allocation.created", lambda: allocation_payload(allocation))
    allocation_alerts_refresh(allocation_ids=[allocation.pk])
    return allocation


@transaction.atomic
def allocation_update(*, allocation: Allocation, data: AllocationInput, user=None) -> Allocation:
    """Replace the allocation's whole state with a new version; older versions stay."""
    # Lock the row so two concurrent updates cannot both claim the next version number.
    allocation = Allocation.objects.select_for_update(of=("self",)).select_related("current_version").get(pk=allocation.pk)
    valid = allocation_validate(data=data, current=allocation)
    previous = allocation.current_version
    before = _version_state(allocation, previous, previous.lines.select_related("instrument") if previous else [])
    allocation.name = data.name
    allocation.base_currency = data.base_currency or allocation.base_currency
    _save_version(allocation=allocation, valid=valid, user=user)
    _audit_version(allocation, previous, before, user)
    events.record("allocation.updated", lambda: allocation_payload(allocation))
    allocation_alerts_refresh(allocation_ids=[allocation.pk])
    return allocation


@transaction.atomic
def allocation_delete(*, allocation: Allocation) -> None:
    """Delete an allocation with its versions; refused while a configuration uses it."""
    count = allocation.configurations.count()
    if count:
        raise Conflict(f"allocation {allocation.pk} is used by {count} configuration(s); move them to another allocation first")
    version = allocation.current_version
    before = _version_state(allocation, version, version.lines.select_related("instrument") if version else [])
    audit_record(allocation, "delete", {name: (value, None) for name, value in before.items()})
    Allocation.objects.filter(pk=allocation.pk).update(current_version=None)
    allocation.delete()


def allocation_input_from_version(allocation: Allocation) -> AllocationInput:
    """The current state as input, e.g. to pre-fill a form (one query for the lines)."""
    version = allocation.current_version
    lines = version.lines.select_related("instrument").order_by("-weight", "id") if version else []
    return AllocationInput(
        lines=[
            LineInput(
                instrument_id=line.instrument.isin if line.instrument_id_type == InstrumentIdType.ISIN else str(line.instrument_id),
                instrument_id_type=line.instrument_id_type,
                weight=line.weight,
                min_weight=line.min_weight,
                max_weight=line.max_weight,
            )
            for line in lines
        ],
        name=allocation.name,
        base_currency=allocation.base_currency,
        weight_type=version.weight_type if version else WeightType.STATIC,
        period_type=version.period_type if version else None,
        period_count=version.period_count if version else None,
        effective_from=version.effective_from if version else None,
    )


__all__ = [
    "AllocationInput",
    "LineInput",
    "allocation_create",
    "allocation_delete",
    "allocation_input_from_version",
    "allocation_update",
    "allocation_validate",
]
