from .accounts import AccountStatus, AccountType, CashAccount, CashKind, Configuration, PortfolioAccount, Position
from .allocations import (
    Allocation,
    AllocationLine,
    AllocationVersion,
    InstrumentIdType,
    PeriodType,
    WeightType,
)
from .idempotency import IdempotencyRecord
from .lots import Lot, LotMethod, RealizedGain, Term
from .instruments import FuturesCost, FxRate, Instrument, InstrumentType, Price
from .restrictions import (
    AccountRestrictionList,
    AlertReason,
    AllocationAlert,
    RestrictedWeightTo,
    RestrictionEntry,
    RestrictionList,
    RestrictionRule,
    RestrictionScope,
    Substitute,
)

__all__ = [
    "AccountRestrictionList",
    "AlertReason",
    "AllocationAlert",
    "RestrictedWeightTo",
    "RestrictionEntry",
    "RestrictionList",
    "RestrictionRule",
    "RestrictionScope",
    "Substitute",
    "AccountStatus",
    "AccountType",
    "Allocation",
    "AllocationLine",
    "AllocationVersion",
    "CashAccount",
    "CashKind",
    "Configuration",
    "FuturesCost",
    "FxRate",
    "IdempotencyRecord",
    "Instrument",
    "InstrumentIdType",
    "InstrumentType",
    "PeriodType",
    "PortfolioAccount",
    "Lot",
    "LotMethod",
    "Position",
    "RealizedGain",
    "Term",
    "Price",
    "WeightType",
]
