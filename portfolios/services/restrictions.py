"""Restriction lists, their entries and assignments, and substitutes (spec §11).

Every write validates everything first (InvalidInput naming each bad field), then
changes the rows in one transaction with its audit entry: a list's name, scope and
entries before → after (on the list), an account's lists (on the account), an
instrument's substitutes (on the instrument).
"""

import csv
import io
from dataclasses import dataclass
from datetime import date

from django.db import transaction

from audit.services import audit_record, audit_records
from core.errors import Conflict, FieldError, InvalidInput, raise_if_errors
from core.ids import parse_uuid

from ..models import (
    AccountRestrictionList,
    Instrument,
    PortfolioAccount,
    RestrictionEntry,
    RestrictionList,
    RestrictionRule,
    RestrictionScope,
    Substitute,
)
from ..selectors import instruments_by_reference

MAX_ENTRIES = 10_000
CSV_COLUMNS = ("instrument_id", "rule", "reason", "effective_from", "effective_to")


@dataclass(frozen=True)
class EntryInput:
    instrument_id: str  # ISIN or UUID
    rule: str
    reason: str = ""
    effective_from: date | None = None
    effective_to: date | None = None


def _entries_validate(entries: list[EntryInput], prefix: str = "entries") -> list[tuple[EntryInput, Instrument]]:
    errors = []
    if len(entries) > MAX_ENTRIES:
        errors.append(FieldError(prefix, f"at most {MAX_ENTRIES} entries, got {len(entries)}"))
    instruments = instruments_by_reference(e.instrument_id for e in entries)
    valid = []
    for index, entry in enumerate(entries):
        path = f"{prefix}[{index}]"
        instrument = instruments.get(str(entry.instrument_id)) if entry.instrument_id else None
        if instrument is None:
            errors.append(FieldError(f"{path}.instrument_id", f"no instrument with ISIN or UUID {entry.instrument_id}"))
        if entry.rule not in RestrictionRule.values:
            errors.append(FieldError(f"{path}.rule", f"must be one of {', '.join(RestrictionRule.values)}"))
        if len(entry.reason or "") > 200:
            errors.append(FieldError(f"{path}.reason", "at most 200 characters"))
        if entry.effective_from and entry.effective_to and entry.effective_to < entry.effective_from:
            errors.append(FieldError(f"{path}.effective_to", "must not be before effective_from"))
        valid.append((entry, instrument))
    raise_if_errors(errors)
    return valid


def _entries_text(restriction_list: RestrictionList) -> str:
    """The entries as the audit trail shows them: "NO_BUY IE00B4L5Y983 (tobacco) 2026-01-01–; …"."""
    rows = restriction_list.entries.select_related("instrument").order_by("rule", "instrument__isin", "id")
    return "; ".join(
        f"{e.rule} {e.instrument.label}{f' ({e.reason})' if e.reason else ''}"
        f"{' ' + (e.effective_from.isoformat() if e.effective_from else '') + '–' + (e.effective_to.isoformat() if e.effective_to else '') if e.effective_from or e.effective_to else ''}"
        for e in rows
    )


def _state(restriction_list: RestrictionList) -> dict:
    return {"name": restriction_list.name, "scope": restriction_list.scope, "entries": _entries_text(restriction_list)}


def _name_errors(name: str, scope: str, current: RestrictionList | None) -> list[FieldError]:
    errors = []
    if not name or not name.strip():
        errors.append(FieldError("name", "must not be blank"))
    elif len(name) > 200:
        errors.append(FieldError("name", "at most 200 characters"))
    elif RestrictionList.objects.filter(name=name.strip()).exclude(pk=current.pk if current else None).exists():
        errors.append(FieldError("name", f"a restriction list named {name.strip()!r} exists already"))
    if scope not in RestrictionScope.values:
        errors.append(FieldError("scope", f"must be one of {', '.join(RestrictionScope.values)}"))
    elif current is not None and scope == RestrictionScope.FIRM and current.assignments.exists():
        errors.append(FieldError("scope", "the list is assigned to accounts: remove the assignments before making it FIRM"))
    return errors


def _write_entries(restriction_list: RestrictionList, valid) -> None:
    RestrictionEntry.objects.bulk_create(
        RestrictionEntry(
            restriction_list=restriction_list, instrument=instrument, rule=entry.rule, reason=entry.reason or "",
            effective_from=entry.effective_from, effective_to=entry.effective_to,
        )
        for entry, instrument in valid
    )


@transaction.atomic
def restriction_list_create(*, name: str, scope: str = RestrictionScope.ACCOUNT, entries: list[EntryInput], user=None) -> RestrictionList:
    """Create a list with its entries."""
    errors = _name_errors(name, scope, None)
    try:
        valid = _entries_validate(entries)
    except InvalidInput as exc:
        errors.extend(exc.errors)
    raise_if_errors(errors)
    restriction_list = RestrictionList.objects.create(name=name.strip(), scope=scope)
    _write_entries(restriction_list, valid)
    audit_record(restriction_list, "create", {k: (None, v) for k, v in _state(restriction_list).items()}, actor=user)
    return restriction_list


@transaction.atomic
def restriction_list_update(
    *, restriction_list: RestrictionList, name: str, scope: str, entries: list[EntryInput], user=None
) -> RestrictionList:
    """Replace the list's name, scope and all of its entries (PUT)."""
    restriction_list = RestrictionList.objects.select_for_update().get(pk=restriction_list.pk)
    errors = _name_errors(name, scope, restriction_list)
    try:
        valid = _entries_validate(entries)
    except InvalidInput as exc:
        errors.extend(exc.errors)
    raise_if_errors(errors)
    before = _state(restriction_list)
    restriction_list.name, restriction_list.scope = name.strip(), scope
    restriction_list.save()
    restriction_list.entries.all().delete()
    _write_entries(restriction_list, valid)
    after = _state(restriction_list)
    changes = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    if changes:
        audit_record(restriction_list, "update", changes, actor=user)
    return restriction_list


@transaction.atomic
def restriction_entries_add(*, restriction_list: RestrictionList, entries: list[EntryInput], user=None) -> int:
    """Add entries to a list (the admin's CSV import); returns how many."""
    restriction_list = RestrictionList.objects.select_for_update().get(pk=restriction_list.pk)
    valid = _entries_validate(entries)
    before = _entries_text(restriction_list)
    _write_entries(restriction_list, valid)
    audit_record(restriction_list, "import_entries", {"entries": (before, _entries_text(restriction_list))}, actor=user)
    return len(valid)


def restriction_entries_parse_csv(content: str) -> list[EntryInput]:
    """Parse CSV with the columns instrument_id (ISIN or UUID), rule, reason?,
    effective_from?, effective_to? (dates YYYY-MM-DD); InvalidInput names `line N.column`."""
    reader = csv.DictReader(io.StringIO(content.lstrip("\ufeff")))
    missing = [c for c in ("instrument_id", "rule") if c not in (reader.fieldnames or [])]
    if missing:
        raise InvalidInput([FieldError("file", f"missing column(s) {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}")])
    entries, errors = [], []
    for number, row in enumerate(reader, start=2):
        dates = {}
        for column in ("effective_from", "effective_to"):
            value = (row.get(column) or "").strip()
            try:
                dates[column] = date.fromisoformat(value) if value else None
            except ValueError:
                errors.append(FieldError(f"line {number}.{column}", f"{value} is not a date (YYYY-MM-DD)"))
        entries.append(EntryInput(
            (row.get("instrument_id") or "").strip(), (row.get("rule") or "").strip().upper(),
            (row.get("reason") or "").strip(), dates.get("effective_from"), dates.get("effective_to"),
        ))
    raise_if_errors(errors)
    try:
        _entries_validate(entries, prefix="line")
    except InvalidInput as exc:  # "line[0].rule" → "line 2.rule"
        raise InvalidInput([_csv_field(e) for e in exc.errors]) from None
    return entries


def _csv_field(error: FieldError) -> FieldError:
    if error.field.startswith("line["):
        index, _, rest = error.field[5:].partition("]")
        return FieldError(f"line {int(index) + 2}{rest}", error.message)
    return error


@transaction.atomic
def restriction_list_delete(*, restriction_list: RestrictionList, user=None) -> None:
    """Delete a list and its entries; Conflict (409) while it is assigned to an account."""
    count = restriction_list.assignments.count()
    if count:
        raise Conflict(f"restriction list {restriction_list.pk} is assigned to {count} account(s); remove it from them first")
    before = _state(restriction_list)
    audit_record(restriction_list, "delete", {k: (v, None) for k, v in before.items()}, actor=user)
    restriction_list.delete()


def _lists_text(names) -> str:
    return ", ".join(sorted(names))


@transaction.atomic
def account_restriction_lists_set(*, account: PortfolioAccount, list_ids: list, user=None, field: str = "restriction_list_ids") -> list:
    """Make `list_ids` the account's ACCOUNT lists (FIRM lists apply to everyone and are
    refused here); returns the list ids in name order."""
    errors, parsed = [], []
    for index, value in enumerate(list_ids):
        list_id = parse_uuid(value)
        if list_id is None:
            errors.append(FieldError(f"{field}[{index}]", f"{value} is not a restriction list id (UUID)"))
        elif list_id in parsed:
            errors.append(FieldError(f"{field}[{index}]", f"restriction list {list_id} is given twice"))
        else:
            parsed.append(list_id)
    found = {row.pk: row for row in RestrictionList.objects.filter(pk__in=parsed)}
    for index, list_id in enumerate(parsed):
        row = found.get(list_id)
        if row is None:
            errors.append(FieldError(f"{field}[{index}]", f"no restriction list with id {list_id}"))
        elif row.scope != RestrictionScope.ACCOUNT:
            errors.append(FieldError(f"{field}[{index}]", f"{row.name} is a FIRM list: it applies to every account already"))
    raise_if_errors(errors)
    current = {a.restriction_list_id: a.restriction_list.name for a in account.restriction_assignments.select_related("restriction_list")}
    wanted = set(parsed)
    if wanted != set(current):
        AccountRestrictionList.objects.filter(account=account).exclude(restriction_list_id__in=wanted).delete()
        AccountRestrictionList.objects.bulk_create(
            [AccountRestrictionList(account=account, restriction_list_id=i) for i in wanted - set(current)]
        )
        audit_record(account, "update", {
            "restriction_lists": (_lists_text(current.values()), _lists_text(found[i].name for i in wanted)),
        }, actor=user)
    return [row.pk for row in sorted((found[i] for i in wanted), key=lambda r: r.name)]


@transaction.atomic
def accounts_restriction_list_assign(*, account_ids, restriction_list: RestrictionList, user=None) -> int:
    """Add one ACCOUNT list to many accounts (the admin's bulk action); returns how many
    accounts gained it. One audit entry per changed account, one INSERT."""
    if restriction_list.scope != RestrictionScope.ACCOUNT:
        raise InvalidInput([FieldError("restriction_list", f"{restriction_list.name} is a FIRM list: it applies to every account already")])
    have = set(
        AccountRestrictionList.objects.filter(restriction_list=restriction_list, account_id__in=list(account_ids))
        .values_list("account_id", flat=True)
    )
    accounts = list(PortfolioAccount.objects.filter(pk__in=[a for a in account_ids if a not in have]))
    AccountRestrictionList.objects.bulk_create(
        [AccountRestrictionList(account=account, restriction_list=restriction_list) for account in accounts]
    )
    audit_records(
        ((account, {"restriction_lists": ("", f"+ {restriction_list.name}")}) for account in accounts), "update", actor=user
    )
    return len(accounts)


@transaction.atomic
def substitutes_replace(*, instrument: Instrument, substitutes: list, user=None) -> list[Instrument]:
    """Make `substitutes` (ISINs or UUIDs, in order of preference) the instrument's
    substitutes; `[]` removes them. An instrument may not substitute itself."""
    found = instruments_by_reference(str(s) for s in substitutes)
    errors, resolved = [], []
    for index, reference in enumerate(substitutes):
        substitute = found.get(str(reference))
        if substitute is None:
            errors.append(FieldError(f"substitutes[{index}]", f"no instrument with ISIN or UUID {reference}"))
        elif substitute.pk == instrument.pk:
            errors.append(FieldError(f"substitutes[{index}]", "an instrument may not substitute itself"))
        elif substitute in resolved:
            errors.append(FieldError(f"substitutes[{index}]", f"{substitute.label} is given twice"))
        else:
            resolved.append(substitute)
    raise_if_errors(errors)
    before = [row.substitute for row in instrument.substitute_rows.select_related("substitute")]
    if [s.pk for s in before] != [s.pk for s in resolved]:
        instrument.substitute_rows.all().delete()
        Substitute.objects.bulk_create(
            Substitute(instrument=instrument, substitute=s, rank=rank) for rank, s in enumerate(resolved, start=1)
        )
        audit_record(instrument, "update", {
            "substitutes": (", ".join(s.label for s in before), ", ".join(s.label for s in resolved)),
        }, actor=user)
    return resolved


__all__ = [
    "CSV_COLUMNS",
    "EntryInput",
    "account_restriction_lists_set",
    "accounts_restriction_list_assign",
    "restriction_entries_add",
    "restriction_entries_parse_csv",
    "restriction_list_create",
    "restriction_list_delete",
    "restriction_list_update",
    "substitutes_replace",
]
