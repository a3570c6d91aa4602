"""Portfolio accounts, their holdings and their configurations."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record, audit_records, text
from core.errors import BusinessRuleViolation, Conflict, FieldError, raise_if_errors
from webhooks import events
from webhooks.payloads import configuration_payload

from ..models import (
    AccountStatus,
    AccountType,
    Allocation,
    CashAccount,
    CashKind,
    Configuration,
    InstrumentType,
    PortfolioAccount,
    Position,
)
from ..models.fields import MONEY, UNITS, is_currency_code
from ..selectors import instruments_by_reference
from .lots import LotInput, lot_inputs_errors, positions_set

UNITS_QUANTUM = Decimal(1).scaleb(-UNITS["decimal_places"])
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY["decimal_places"])


def _parent_errors(account: PortfolioAccount, parent: PortfolioAccount | None) -> list[FieldError]:
    """Sub-portfolios are one level deep: a parent is never itself a sub-portfolio."""
    if parent is None:
        return []
    if account.pk and parent.pk == account.pk:
        return [FieldError("parent_id", "an account cannot be its own parent")]
    if parent.parent_id is not None:
        return [FieldError("parent_id", f"{parent.pk} is itself a sub-portfolio; sub-portfolios are one level deep")]
    if account.pk and account.children.exists():
        return [FieldError("parent_id", "this account has sub-portfolios of its own, so it cannot become one")]
    return []


@transaction.atomic
def account_create(
    *,
    client_id: str,
    base_currency: str,
    account_type: str = AccountType.PORTFOLIO,
    status: str = AccountStatus.ACTIVE,
    parent: PortfolioAccount | None = None,
    locked: bool = False,
) -> PortfolioAccount:
    account = PortfolioAccount(
        client_id=client_id, base_currency=base_currency, account_type=account_type,
        status=status, parent=parent, locked=locked,
    )
    errors = _parent_errors(account, parent)
    if not client_id or not client_id.strip():
        errors.append(FieldError("client_id", "must not be blank"))
    if not is_currency_code(base_currency or ""):
        errors.append(FieldError("base_currency", f"{base_currency} is not an ISO 4217 currency code"))
    raise_if_errors(errors)
    account.save()
    return account


@transaction.atomic
def account_update(
    *, account: PortfolioAccount, status: str | None = None, locked: bool | None = None,
    parent: PortfolioAccount | None = None, set_parent: bool = False,
) -> PortfolioAccount:
    """Change status, lock flag and/or parent (`set_parent=True` with `parent=None` detaches).

    A CLOSED account stays closed: reopening would resurrect a client relationship
    that operations has ended.
    """
    account = PortfolioAccount.objects.select_for_update().get(pk=account.pk)
    if status is not None and status != account.status and account.status == AccountStatus.CLOSED:
        raise BusinessRuleViolation(
            f"account {account.pk} is CLOSED and cannot become {status}",
            [FieldError("status", "a CLOSED account cannot be reopened")],
        )
    if set_parent:
        raise_if_errors(_parent_errors(account, parent))
        account.parent = parent
    if status is not None:
        account.status = status
    if locked is not None:
        account.locked = locked
    account.save()
    return account


@transaction.atomic
def accounts_set_locked(*, account_ids, locked: bool) -> int:
    """Lock or unlock many accounts in one statement; returns how many changed.
    Each changed account gets its audit entry (one more SELECT and one INSERT)."""
    changing = PortfolioAccount.objects.select_for_update().filter(pk__in=list(account_ids)).exclude(locked=locked)
    accounts = list(changing.order_by("pk").only("pk", "client_id"))
    count = PortfolioAccount.objects.filter(pk__in=[a.pk for a in accounts]).update(locked=locked)
    audit_records(((account, {"locked": (not locked, locked)}) for account in accounts), "update")
    return count


@dataclass(frozen=True)
class PositionInput:
    instrument_id: str  # ISIN or UUID
    units: Decimal
    lots: list[LotInput] | None = None  # None: units added become one lot of unknown cost (§12)


@dataclass(frozen=True)
class CashInput:
    currency: str
    balance: Decimal
    is_default: bool = False
    kind: str = CashKind.CASH


@transaction.atomic
def holdings_replace(
    *, account: PortfolioAccount, positions: list[PositionInput], cash: list[CashInput], on_date: date | None = None,
) -> None:
    """Replace the account's positions and cash with the custodian's full snapshot, atomically.

    Positions of zero units are dropped; cash is held in cash accounts, never as a
    CASH-instrument position. Lots (§12, docs/tax.md): a position sent with `lots`
    gets exactly those (their units must add up to the position's); without them,
    units added become one lot of unknown cost dated `on_date` (today), and units
    removed are relieved by the account's `lot_method` and recorded as realized at the
    latest stored price (two more reads, the lots' writes in bulk).
    """
    on_date = on_date or timezone.localdate()
    instruments = instruments_by_reference(p.instrument_id for p in positions)
    errors: list[FieldError] = []
    seen_instruments: dict[object, int] = {}
    new_positions = []
    for index, position in enumerate(positions):
        path = f"positions[{index}]"
        instrument = instruments.get(position.instrument_id)
        if instrument is None:
            errors.append(FieldError(f"{path}.instrument_id", f"no instrument with ISIN or UUID {position.instrument_id}"))
        elif instrument.type == InstrumentType.CASH:
            errors.append(FieldError(f"{path}.instrument_id", "cash is reported under `cash`, not as a position"))
        elif instrument.pk in seen_instruments:
            errors.append(FieldError(f"{path}.instrument_id", f"{instrument.label} is already in positions[{seen_instruments[instrument.pk]}]"))
        else:
            seen_instruments[instrument.pk] = index
        if position.units < 0:
            errors.append(FieldError(f"{path}.units", "must not be negative (no short positions)"))
        elif position.units != position.units.quantize(UNITS_QUANTUM):
            errors.append(FieldError(f"{path}.units", f"at most {UNITS['decimal_places']} decimal places"))
        if position.lots is not None and instrument is not None and position.units >= 0:
            errors += lot_inputs_errors(
                position.lots, units=position.units, currency=instrument.currency, path=path, today=on_date
            )
        if instrument is not None and position.units > 0:
            new_positions.append(Position(account=account, instrument=instrument, units=position.units))
    seen_cash: dict[tuple, int] = {}
    defaults = [i for i, c in enumerate(cash) if c.is_default]
    for index, line in enumerate(cash):
        path = f"cash[{index}]"
        if not is_currency_code(line.currency or ""):
            errors.append(FieldError(f"{path}.currency", f"{line.currency} is not an ISO 4217 currency code"))
        if line.kind not in CashKind.values:
            errors.append(FieldError(f"{path}.kind", f"must be one of {', '.join(CashKind.values)}"))
        key = (line.currency, line.kind)
        if key in seen_cash:
            errors.append(FieldError(f"{path}.currency", f"{line.currency} {line.kind} is already in cash[{seen_cash[key]}]"))
        seen_cash.setdefault(key, index)
        if line.balance != line.balance.quantize(MONEY_QUANTUM):
            errors.append(FieldError(f"{path}.balance", f"at most {MONEY['decimal_places']} decimal places"))
    if len(defaults) > 1:
        errors.extend(FieldError(f"cash[{i}].is_default", "only one cash account can be the default") for i in defaults[1:])
    raise_if_errors(errors)

    PortfolioAccount.objects.select_for_update().filter(pk=account.pk).exists()
    before = _holdings_text(
        ((p.instrument.label, p.units) for p in account.positions.select_related("instrument")),
        account.cash_accounts.all(),
    )
    after = _holdings_text(((p.instrument.label, p.units) for p in new_positions), cash)
    changes = {name: (before[name], after[name]) for name in before if before[name] != after[name]}
    if changes:
        audit_record(account, "replace_holdings", changes)
    # Positions and lots through their one writer (services/lots.py).
    held = set(account.positions.values_list("instrument_id", flat=True))
    units = {(account.pk, i): Decimal(0) for i in held}
    units.update({(account.pk, p.instrument.pk): p.units for p in new_positions})
    positions_set(
        units=units, on_date=on_date,
        lots={(account.pk, instruments[p.instrument_id].pk): p.lots for p in positions if p.lots is not None and p.units > 0},
    )
    account.cash_accounts.all().delete()
    CashAccount.objects.bulk_create(
        CashAccount(account=account, currency=c.currency, balance=c.balance, is_default=c.is_default, kind=c.kind)
        for c in cash
    )


def _holdings_text(positions, cash) -> dict:
    """Positions and cash as the audit trail shows them, in a fixed order:
    {"positions": "IE00B4L5Y983 10; …", "cash": "EUR CASH 1000 (default); …"}."""
    return {
        "positions": "; ".join(f"{label} {text(units)}" for label, units in sorted(positions)) or "none",
        "cash": "; ".join(
            f"{c.currency} {c.kind} {text(c.balance)}{' (default)' if c.is_default else ''}"
            for c in sorted(cash, key=lambda c: (c.currency, c.kind))
        ) or "none",
    }


def _configuration_rules(account: PortfolioAccount) -> None:
    if account.account_type != AccountType.PORTFOLIO:
        raise BusinessRuleViolation(
            f"account {account.pk} is of type {account.account_type}; only PORTFOLIO accounts follow an allocation",
            [FieldError("account_id", "account_type must be PORTFOLIO")],
        )
    if account.parent_id is not None:
        raise BusinessRuleViolation(
            f"account {account.pk} is a sub-portfolio; it is rebalanced as part of its parent {account.parent_id}",
            [FieldError("account_id", "a sub-portfolio follows its parent's configuration")],
        )
    if account.status == AccountStatus.CLOSED:
        raise BusinessRuleViolation(
            f"account {account.pk} is CLOSED", [FieldError("account_id", "a CLOSED account cannot be configured")]
        )


@transaction.atomic
def configuration_create(*, account: PortfolioAccount, allocation: Allocation) -> Configuration:
    """Make `account` follow `allocation`. Only the target changes; nothing trades."""
    _configuration_rules(account)
    if Configuration.objects.filter(account=account).exists():
        raise Conflict(f"account {account.pk} already has a configuration; PATCH it to change the allocation")
    try:
        with transaction.atomic():
            configuration = Configuration.objects.create(account=account, allocation=allocation)
    except IntegrityError as exc:  # a concurrent request created it first
        raise Conflict(f"account {account.pk} already has a configuration") from exc
    events.record("configuration.created", lambda: configuration_payload(configuration))
    return configuration


@transaction.atomic
def configuration_update(*, configuration: Configuration, allocation: Allocation | None = None) -> Configuration:
    if allocation is not None:
        configuration.allocation = allocation
    configuration.save()
    events.record("configuration.updated", lambda: configuration_payload(configuration))
    return configuration
