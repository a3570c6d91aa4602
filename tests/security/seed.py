"""A database with at least one row of every model the admin shows, so that object
pages (change, history, delete) are requested for an object that exists.

Domain rows come from the factories and services; any other registered model
(third-party ones, and those added later) gets a row built from its field types. A
model for which that fails is reported, and its object pages are requested with an
unknown id instead.
"""

import uuid
from datetime import time, timedelta
from decimal import Decimal

from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import models, transaction
from django.utils import timezone

from tests.factories import (
    AccountFactory,
    CashAccountFactory,
    FxRateFactory,
    InstrumentFactory,
    PositionFactory,
    PriceFactory,
    UserFactory,
    make_allocation,
    make_configuration,
)


def seed_domain() -> dict:
    """A small book: instruments with prices, an allocation, a configured account with
    holdings, FX, global preferences, an API idempotency record, celery schedules."""
    from portfolios.models import IdempotencyRecord
    from rebalancing import services as rebalancing_services

    owner = UserFactory(username="seed-owner")
    instruments = [InstrumentFactory(), InstrumentFactory()]
    for instrument in instruments:
        PriceFactory(instrument=instrument)
    FxRateFactory()
    allocation = make_allocation(dict(zip(instruments, [Decimal("0.6"), Decimal("0.4")], strict=True)), user=owner)
    account = AccountFactory()
    make_configuration(account=account, allocation=allocation)
    PositionFactory(account=account, instrument=instruments[0])
    CashAccountFactory(account=account)
    rebalancing_services.preferences_replace(values={}, user=owner)
    IdempotencyRecord.objects.create(
        user=owner, key="seed", method="POST", path="/api/v1/instruments/", request_hash="0" * 64,
        status_code=201, response_body="{}", content_type="application/json",
    )
    Group.objects.get_or_create(name="seed-group")
    call_command("install_schedules", verbosity=0)
    return {"instruments": instruments, "allocation": allocation, "account": account}


def seed_admin_models() -> tuple[dict, list]:
    """One row for every model registered in the admin: ({model: row}, [models without])."""
    seed_domain()
    rows, missing = {}, []
    for model in admin.site._registry:
        row = model._default_manager.order_by("pk").first() or build_row(model)
        if row is None:
            missing.append(model)
        else:
            rows[model] = row
    return rows, missing


def build_row(model, depth: int = 0):
    """A row with a plausible value in every required field; None if the model refuses it."""
    concrete = model._meta.concrete_model
    values = {}
    try:
        for field in concrete._meta.concrete_fields:
            if _fills_itself(field):
                continue
            if field.is_relation:
                related = field.related_model
                existing = None if field.one_to_one or depth else related._default_manager.first()
                target = existing or (build_row(related, depth + 1) if depth < 3 else None)
                if target is None:
                    return None
                values[field.name] = target
            else:
                values[field.name] = _value_for(field)
        with transaction.atomic():
            row = concrete._default_manager.create(**values)
    except Exception:  # noqa: BLE001 - a constraint, a validator, a field type we do not know
        return None
    return model._default_manager.get(pk=row.pk)


def _fills_itself(field) -> bool:
    if isinstance(field, models.AutoField | models.BigAutoField | models.SmallAutoField):
        return True
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return True
    return field.has_default() or field.null


def _value_for(field):
    if field.flatchoices:
        return field.flatchoices[0][0]
    kind = field.get_internal_type()
    if kind in {"CharField", "TextField", "SlugField"}:
        return "seed"[: field.max_length or 4]
    simple = {
        "EmailField": "seed@example.com",
        "URLField": "https://example.com/",
        "GenericIPAddressField": "192.0.2.1",
        "BooleanField": False,
        "DecimalField": Decimal(1),
        "FloatField": 1.0,
        "DateField": timezone.localdate(),
        "DateTimeField": timezone.now(),
        "TimeField": time(0),
        "DurationField": timedelta(hours=1),
        "UUIDField": uuid.uuid4(),
        "JSONField": {},
        "BinaryField": b"",
    }
    if kind in simple:
        return simple[kind]
    if "Integer" in kind:
        return 1
    raise LookupError(kind)
