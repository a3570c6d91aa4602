"""Writes. Every state change of the portfolios app goes through one of these."""

from .accounts import (
    CashInput,
    PositionInput,
    account_create,
    account_update,
    accounts_set_locked,
    configuration_create,
    configuration_update,
    holdings_replace,
)
from .allocations import (
    AllocationInput,
    LineInput,
    allocation_create,
    allocation_delete,
    allocation_input_from_version,
    allocation_update,
    allocation_validate,
)
from .alerts import allocation_alerts_refresh
from .idempotency import idempotency_claim, idempotency_complete, idempotency_records_purge, idempotency_release
from .instruments import FxRateRow, PriceRow, fx_rates_upsert, instrument_create, instrument_update, prices_upsert
from .lots import LotBook, LotInput, positions_set
from .restrictions import (
    EntryInput,
    account_restriction_lists_set,
    accounts_restriction_list_assign,
    restriction_entries_add,
    restriction_entries_parse_csv,
    restriction_list_create,
    restriction_list_delete,
    restriction_list_update,
    substitutes_replace,
)

__all__ = [
    "AllocationInput",
    "CashInput",
    "EntryInput",
    "account_restriction_lists_set",
    "accounts_restriction_list_assign",
    "allocation_alerts_refresh",
    "restriction_entries_add",
    "restriction_entries_parse_csv",
    "restriction_list_create",
    "restriction_list_delete",
    "restriction_list_update",
    "substitutes_replace",
    "FxRateRow",
    "LineInput",
    "LotBook",
    "LotInput",
    "positions_set",
    "PositionInput",
    "PriceRow",
    "account_create",
    "account_update",
    "accounts_set_locked",
    "allocation_create",
    "allocation_delete",
    "allocation_input_from_version",
    "allocation_update",
    "allocation_validate",
    "configuration_create",
    "configuration_update",
    "fx_rates_upsert",
    "holdings_replace",
    "idempotency_claim",
    "idempotency_complete",
    "idempotency_records_purge",
    "idempotency_release",
    "instrument_create",
    "instrument_update",
    "prices_upsert",
]
