"""The engine's decimal context and the precisions of what it returns.

Every public entry point runs its arithmetic under ``ENGINE_CONTEXT`` (34
significant digits, ROUND_HALF_EVEN, signals trapped) through
``decimal.localcontext``, so the caller's context is never read nor changed.
Outputs are quantized to the database columns:

- units: 10 decimal places (rounded DOWN to the block size or default decimals)
- unit prices: 10 decimal places (ROUND_HALF_EVEN)
- money amounts: 8 decimal places (trade amounts ROUND_DOWN, reported totals
  ROUND_HALF_EVEN)
- weights: 12 decimal places (ROUND_HALF_EVEN)
"""

from decimal import (
    ROUND_DOWN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    FloatOperation,
    InvalidOperation,
    Overflow,
)

ENGINE_CONTEXT = Context(
    prec=34,
    rounding=ROUND_HALF_EVEN,
    Emax=999_999,
    Emin=-999_999,
    traps=[InvalidOperation, DivisionByZero, Overflow, FloatOperation],
)

UNITS_PLACES = 10
PRICE_PLACES = 10
MONEY_PLACES = 8
WEIGHT_PLACES = 12

Q_UNITS = Decimal(1).scaleb(-UNITS_PLACES)
Q_PRICE = Decimal(1).scaleb(-PRICE_PLACES)
Q_MONEY = Decimal(1).scaleb(-MONEY_PLACES)
Q_WEIGHT = Decimal(1).scaleb(-WEIGHT_PLACES)

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)

# Differences (in base currency) smaller than this are treated as zero: they
# are below the money precision and only come from rounding at 34 digits.
DUST = Q_MONEY

__all__ = [
    "DUST",
    "ENGINE_CONTEXT",
    "HUNDRED",
    "MONEY_PLACES",
    "ONE",
    "PRICE_PLACES",
    "Q_MONEY",
    "Q_PRICE",
    "Q_UNITS",
    "Q_WEIGHT",
    "ROUND_DOWN",
    "ROUND_HALF_EVEN",
    "UNITS_PLACES",
    "WEIGHT_PLACES",
    "ZERO",
]
