"""Model portfolios from spreadsheets (issue #19 point 4): a CSV or XLSX of lines
becomes a new allocation, or a new version of one, through the allocation services,
so every line rule of domain.md §2 applies, each error naming its line.

django-import-export was considered: it maps one row to one model row and saves rows
one by one, while an allocation version is all its lines or none, validated together
(sum to 1, no instrument twice) by `allocation_validate`. So the file is read here
(small: a model has tens of lines) and handed to the same services as the API.
"""

import csv
import io
import re
from datetime import date
from decimal import Decimal, InvalidOperation

from core.errors import FieldError, InvalidInput

from portfolios.models import Allocation
from portfolios.services import AllocationInput, LineInput, allocation_create, allocation_update

COLUMNS = ("instrument_id", "weight", "min_weight", "max_weight", "instrument_id_type")
IGNORED = ("isin", "instrument_name")  # written by the export for people; read back without complaint
LINE_FIELD = re.compile(r"^allocation\[(\d+)\]\.?(.*)$")
MAX_LINES = 10_000


def _rows(data: bytes, file_name: str) -> list[list[str]]:
    if file_name.lower().endswith(".xlsx"):
        from openpyxl import load_workbook

        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            return [["" if v is None else str(v) for v in row] for row in workbook.worksheets[0].iter_rows(values_only=True)]
        finally:
            workbook.close()
    try:
        return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    except UnicodeDecodeError as exc:
        raise InvalidInput([FieldError("file", "not UTF-8 text (or an .xlsx workbook)")]) from exc


def _decimal(text: str, field: str, line: int, errors: list) -> Decimal | None:
    if not text.strip():
        return None
    try:
        value = Decimal(text.strip())
        if not value.is_finite():
            raise InvalidOperation
        return value
    except InvalidOperation:
        errors.append(FieldError(f"line {line}.{field}", f"{text!r} is not a number"))
        return None


def allocation_import(
    *, data: bytes, file_name: str, allocation: Allocation | None = None, name: str = "", base_currency: str = "EUR",
    normalize: bool = False, effective_from: date | None = None, user=None,
) -> Allocation:
    """Create an allocation from the file's lines (columns `instrument_id, weight`,
    optional `min_weight, max_weight, instrument_id_type`), or give `allocation` a new
    version with them (keeping its name, currency and weight type unless told). All
    lines or none: InvalidInput names every bad `line N.field` (1 = the first data row)."""
    rows = [row for row in _rows(data, file_name) if any(cell.strip() for cell in row)]
    if not rows:
        raise InvalidInput([FieldError("file", "the file is empty (a header row is required)")])
    header = [cell.strip().lower() for cell in rows[0]]
    errors = [FieldError(f"line 0.{name_}", "unknown column; expected " + ", ".join(COLUMNS))
              for name_ in header if name_ not in COLUMNS + IGNORED]
    errors += [FieldError(f"line 0.{required}", "required column is missing")
               for required in ("instrument_id", "weight") if required not in header]
    if len(rows) - 1 > MAX_LINES:
        errors.append(FieldError("file", f"at most {MAX_LINES} lines"))
    if errors:
        raise InvalidInput(errors)
    at = {name_: header.index(name_) for name_ in COLUMNS if name_ in header}
    lines = []
    for number, row in enumerate(rows[1:], start=1):
        row = row + [""] * (len(header) - len(row))
        cell = {name_: row[index].strip() for name_, index in at.items()}
        weight = _decimal(cell["weight"], "weight", number, errors)
        if weight is None and not cell["weight"]:
            errors.append(FieldError(f"line {number}.weight", "required"))
        lines.append(LineInput(
            instrument_id=cell["instrument_id"], weight=weight if weight is not None else Decimal(0),
            instrument_id_type=cell.get("instrument_id_type") or None,
            min_weight=_decimal(cell.get("min_weight", ""), "min_weight", number, errors),
            max_weight=_decimal(cell.get("max_weight", ""), "max_weight", number, errors),
        ))
    if errors:
        raise InvalidInput(errors)
    current = allocation.current_version if allocation is not None else None
    request = AllocationInput(
        lines=lines,
        name=name or (allocation.name if allocation is not None else ""),
        base_currency=base_currency or (allocation.base_currency if allocation is not None else "EUR"),
        weight_type=current.weight_type if current is not None else AllocationInput.weight_type,
        period_type=current.period_type if current is not None else None,
        period_count=current.period_count if current is not None else None,
        effective_from=effective_from, normalize=normalize,
    )
    try:
        if allocation is None:
            return allocation_create(data=request, user=user)
        return allocation_update(allocation=allocation, data=request, user=user)
    except InvalidInput as exc:
        raise InvalidInput([_by_line(error) for error in exc.errors]) from exc


def _by_line(error: FieldError) -> FieldError:
    """`allocation[2].weight` → `line 3.weight`: the file's words, not the API's."""
    match = LINE_FIELD.match(error.field)
    if not match:
        return error
    return FieldError(f"line {int(match.group(1)) + 1}.{match.group(2) or 'instrument_id'}", error.message)
