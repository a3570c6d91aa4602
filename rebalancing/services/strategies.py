"""Rebalancing strategies (spec §7): validation, and create / replace / delete on a
configuration or an allocation, and pause / resume.

A strategy belongs to one configuration (one account) or to one allocation (every
account following it without a strategy of its own). The rules, with the field named
in every error (``strategy.period_type`` from the API, ``period_type`` from the
admin):

- ``type`` is CALENDAR, THRESHOLD or CALENDAR_AND_THRESHOLD;
- CALENDAR needs ``period_type``, ``period_count`` (≥ 1) and ``anchor_date``;
- THRESHOLD needs ``absolute_drift`` and/or ``relative_drift``, each 0 < x ≤ 1;
- CALENDAR_AND_THRESHOLD needs both; a field the type does not use must be null;
- ``method`` is one of the four rebalance methods (FULL when left out);
- ``cooldown_days`` is null or an integer ≥ 0.

docs/automation.md says how strategies are evaluated.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_records
from core.dates import date_parse
from core.errors import Conflict, FieldError, InvalidInput, raise_if_errors
from portfolios.models import Allocation, Configuration, PeriodType
from portfolios.models.fields import WEIGHT
from portfolios.services import configuration_create, configuration_update

from ..models import Method, Strategy, StrategyType

CALENDAR_TYPES = (StrategyType.CALENDAR, StrategyType.CALENDAR_AND_THRESHOLD)
THRESHOLD_TYPES = (StrategyType.THRESHOLD, StrategyType.CALENDAR_AND_THRESHOLD)
CALENDAR_FIELDS = ("period_type", "period_count", "anchor_date")
DRIFT_FIELDS = ("absolute_drift", "relative_drift")
MAX_PERIOD_COUNT = 1000
MAX_COOLDOWN_DAYS = 3660
WEIGHT_QUANTUM = Decimal(1).scaleb(-WEIGHT["decimal_places"])


@dataclass(frozen=True)
class StrategyInput:
    """A validated strategy, as the service stores it. `paused` None keeps the current flag."""

    type: str
    period_type: str | None = None
    period_count: int | None = None
    anchor_date: date | None = None
    absolute_drift: Decimal | None = None
    relative_drift: Decimal | None = None
    method: str = Method.FULL
    cooldown_days: int | None = None
    paused: bool | None = None


STRATEGY_KEYS = tuple(f.name for f in fields(StrategyInput))


def _int(value, name: str, errors: list, minimum: int, maximum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        else:
            errors.append(FieldError(name, "must be a whole number"))
            return None
    if not minimum <= value <= maximum:
        errors.append(FieldError(name, f"must be between {minimum} and {maximum}"))
        return None
    return value


def _date(value, name: str, errors: list) -> date | None:
    if value is None:
        return None
    parsed, problem = date_parse(value)
    if problem:
        errors.append(FieldError(name, problem))
    return parsed


def _drift(value, name: str, errors: list) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        errors.append(FieldError(name, "must be a decimal number, e.g. \"0.05\""))
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        errors.append(FieldError(name, "must be a decimal number, e.g. \"0.05\""))
        return None
    if not number.is_finite() or not Decimal(0) < number <= Decimal(1):
        errors.append(FieldError(name, "must be greater than 0 and at most 1 (a fraction: 0.05 = 5 %)"))
        return None
    if number != number.quantize(WEIGHT_QUANTUM):
        errors.append(FieldError(name, f"at most {WEIGHT['decimal_places']} decimal places"))
        return None
    return number


def strategy_validate(data, *, prefix: str = "strategy.") -> StrategyInput:
    """Check a strategy given as a mapping of raw values (JSON from the API, or the
    admin form's cleaned data); return it typed.

    Raises InvalidInput naming every bad field as ``<prefix><field>``; with the default
    prefix a body that is not an object is reported on ``strategy`` itself.
    """
    field = prefix.rstrip(".") or "strategy"
    if not isinstance(data, Mapping):
        raise InvalidInput([FieldError(field, "must be an object with a type, or null")])
    errors = [
        FieldError(f"{prefix}{key}", f"is not a strategy field; the fields are {', '.join(STRATEGY_KEYS)}")
        for key in sorted(data, key=str) if key not in STRATEGY_KEYS
    ]

    def name(key: str) -> str:
        return f"{prefix}{key}"

    kind = data.get("type")
    if kind is None or kind == "":
        errors.append(FieldError(name("type"), f"is required: one of {', '.join(StrategyType.values)}"))
        kind = None
    elif kind not in StrategyType.values:
        errors.append(FieldError(name("type"), f"must be one of {', '.join(StrategyType.values)}"))
        kind = None

    period_type = data.get("period_type")
    if period_type is not None and period_type not in PeriodType.values:
        errors.append(FieldError(name("period_type"), f"must be one of {', '.join(PeriodType.values)}"))
        period_type = None
    period_count = _int(data.get("period_count"), name("period_count"), errors, 1, MAX_PERIOD_COUNT)
    anchor_date = _date(data.get("anchor_date"), name("anchor_date"), errors)
    absolute = _drift(data.get("absolute_drift"), name("absolute_drift"), errors)
    relative = _drift(data.get("relative_drift"), name("relative_drift"), errors)
    method = data.get("method")
    if method is None or method == "":
        method = Method.FULL
    elif method not in Method.values:
        errors.append(FieldError(name("method"), f"must be one of {', '.join(Method.values)}"))
    cooldown = _int(data.get("cooldown_days"), name("cooldown_days"), errors, 0, MAX_COOLDOWN_DAYS)
    paused = data.get("paused")
    if paused is not None and not isinstance(paused, bool):
        errors.append(FieldError(name("paused"), "must be true or false"))

    if kind is not None:
        given = {key for key in (*CALENDAR_FIELDS, *DRIFT_FIELDS) if data.get(key) is not None}
        if kind in CALENDAR_TYPES:
            for key in CALENDAR_FIELDS:
                if key not in given:
                    errors.append(FieldError(name(key), f"is required for a {kind} strategy"))
        else:
            for key in sorted(given & set(CALENDAR_FIELDS)):
                errors.append(FieldError(name(key), f"must be null: a {kind} strategy has no calendar"))
        if kind in THRESHOLD_TYPES:
            if not given & set(DRIFT_FIELDS):
                errors.append(FieldError(
                    name("absolute_drift"), f"a {kind} strategy needs absolute_drift and/or relative_drift"
                ))
        else:
            for key in sorted(given & set(DRIFT_FIELDS)):
                errors.append(FieldError(name(key), f"must be null: a {kind} strategy has no threshold"))
    raise_if_errors(errors)
    return StrategyInput(
        type=kind, period_type=period_type, period_count=period_count, anchor_date=anchor_date,
        absolute_drift=absolute, relative_drift=relative, method=method, cooldown_days=cooldown, paused=paused,
    )


def _apply(strategy: Strategy, data: StrategyInput) -> None:
    for key in STRATEGY_KEYS:
        if key == "paused":
            if data.paused is not None:
                strategy.paused = data.paused
            continue
        setattr(strategy, key, getattr(data, key))


def _owner_name(configuration, allocation) -> str:
    return f"account {configuration.pk}" if configuration is not None else f"allocation {allocation.pk}"


@transaction.atomic
def strategy_create(
    *, data: StrategyInput, configuration: Configuration | None = None, allocation: Allocation | None = None
) -> Strategy:
    """Give a configuration or an allocation (exactly one) its strategy. Conflict (409)
    when it already has one: replace it with `strategy_update`."""
    if (configuration is None) == (allocation is None):
        raise InvalidInput([FieldError("configuration", "give exactly one of a configuration and an allocation")])
    owner = {"configuration": configuration} if configuration is not None else {"allocation": allocation}
    if Strategy.objects.filter(**owner).exists():
        raise Conflict(
            f"{_owner_name(configuration, allocation)} already has a strategy; change that one instead",
            [FieldError(next(iter(owner)), "already has a strategy")],
        )
    strategy = Strategy(**owner)
    _apply(strategy, data)
    try:
        with transaction.atomic():
            strategy.save()
    except IntegrityError as exc:  # a concurrent request created it first
        raise Conflict(f"{_owner_name(configuration, allocation)} already has a strategy") from exc
    return strategy


@transaction.atomic
def strategy_update(*, strategy: Strategy, data: StrategyInput) -> Strategy:
    """Replace every field of `strategy` with `data` (the paused flag only when given).

    The strategy's calendar dates count from the day of this change: a date before
    it is never caught up (docs/automation.md). Saves nothing when nothing changes, so
    sending the same strategy again moves no date."""
    before = {key: getattr(strategy, key) for key in STRATEGY_KEYS}
    _apply(strategy, data)
    if any(getattr(strategy, key) != value for key, value in before.items()):
        strategy.save()
    return strategy


@transaction.atomic
def strategy_delete(*, strategy: Strategy) -> None:
    """Remove a strategy and its claims: the account (or the allocation's accounts)
    no longer rebalances by itself."""
    strategy.delete()


@transaction.atomic
def configuration_strategy_set(*, configuration: Configuration, data: StrategyInput | None) -> Strategy | None:
    """The configuration's strategy becomes `data` (a complete new state), or none at all."""
    current = Strategy.objects.select_for_update().filter(configuration=configuration).first()
    if data is None:
        if current is not None:
            strategy_delete(strategy=current)
        return None
    if current is None:
        return strategy_create(data=data, configuration=configuration)
    return strategy_update(strategy=current, data=data)


@transaction.atomic
def allocation_strategy_set(*, allocation: Allocation, data: StrategyInput | None) -> Strategy | None:
    """The allocation's strategy becomes `data`, or none: it applies to every account
    following the allocation without a strategy of its own."""
    current = Strategy.objects.select_for_update().filter(allocation=allocation).first()
    if data is None:
        if current is not None:
            strategy_delete(strategy=current)
        return None
    if current is None:
        return strategy_create(data=data, allocation=allocation)
    return strategy_update(strategy=current, data=data)


KEEP = object()  # "leave the strategy as it is" for configuration_update_with_strategy


@transaction.atomic
def configuration_create_with_strategy(
    *, account, allocation: Allocation, strategy: StrategyInput | None = None
) -> Configuration:
    """portfolios' `configuration_create`, then the configuration's strategy, in one
    transaction (the API's POST of a configuration)."""
    configuration = configuration_create(account=account, allocation=allocation)
    if strategy is not None:
        strategy_create(data=strategy, configuration=configuration)
    return configuration


@transaction.atomic
def configuration_update_with_strategy(
    *, configuration: Configuration, allocation: Allocation | None = None, strategy=KEEP
) -> Configuration:
    """portfolios' `configuration_update`, then the strategy replaced (a StrategyInput),
    removed (None) or kept (KEEP), in one transaction (the API's PATCH)."""
    configuration = configuration_update(configuration=configuration, allocation=allocation)
    if strategy is not KEEP:
        configuration_strategy_set(configuration=configuration, data=strategy)
    return configuration


@transaction.atomic
def strategies_pause(*, strategy_ids: Iterable, paused: bool = True) -> int:
    """Pause (or resume) strategies; returns how many changed. A paused strategy is
    skipped by the evaluation, and so are its accounts (they do not fall back to their
    allocation's strategy). Resuming catches up no date missed while paused.
    Each changed strategy gets its audit entry."""
    # Locked rows and a conditional update: two concurrent pauses record each change once.
    changing = list(
        Strategy.objects.select_for_update(of=("self",)).filter(pk__in=list(strategy_ids)).exclude(paused=paused)
        .order_by("pk")
    )
    count = Strategy.objects.filter(pk__in=[s.pk for s in changing]).exclude(paused=paused).update(
        paused=paused, updated_at=timezone.now()
    )
    audit_records(((strategy, {"paused": (not paused, paused)}) for strategy in changing), "update")
    return count


__all__ = [
    "KEEP",
    "STRATEGY_KEYS",
    "StrategyInput",
    "allocation_strategy_set",
    "configuration_create_with_strategy",
    "configuration_strategy_set",
    "configuration_update_with_strategy",
    "strategies_pause",
    "strategy_create",
    "strategy_delete",
    "strategy_update",
    "strategy_validate",
]
