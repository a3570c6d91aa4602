"""Rounding units down to what an instrument can trade (§5).

Units are rounded DOWN to the instrument's block size, else to the default
decimals of its type (capped at 10, the units column). A block size finer than
10 decimal places is further rounded down to 10.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal, localcontext

from .precision import ENGINE_CONTEXT, ONE, Q_UNITS, UNITS_PLACES, ZERO
from .types import DEFAULT_DECIMALS, Instrument, InstrumentType, InvalidInputError


class UnitRounder:
    """Round raw units down for one instrument. Build once, call per order."""

    __slots__ = ("block", "quantum", "fix")

    def __init__(self, instrument: Instrument, default_decimals: Mapping[InstrumentType, int] = DEFAULT_DECIMALS):
        block = instrument.block_size
        if block is not None:
            if block <= ZERO:
                raise InvalidInputError(f"block size of {instrument.label} is not positive")
            self.block = block
            exponent = block.as_tuple().exponent
            # Normalise "1E+1"-style results and cut finer-than-column blocks.
            self.fix = ONE if exponent > 0 else Q_UNITS if exponent < -UNITS_PLACES else None
            self.quantum = None
        else:
            places = default_decimals.get(instrument.type)
            if places is None:
                places = DEFAULT_DECIMALS.get(instrument.type, 0)
            places = max(0, min(int(places), UNITS_PLACES))
            self.block = None
            self.fix = None
            self.quantum = ONE.scaleb(-places)

    def __call__(self, raw: Decimal) -> Decimal:
        """Return ``raw`` (≥ 0) rounded down; 0 when less than one step."""
        block = self.block
        if block is None:
            return raw.quantize(self.quantum, ROUND_DOWN)
        units = (raw // block) * block
        if self.fix is not None:
            units = units.quantize(self.fix, ROUND_DOWN)
        return units


def round_units(
    raw: Decimal, instrument: Instrument, default_decimals: Mapping[InstrumentType, int] = DEFAULT_DECIMALS
) -> Decimal:
    """Round ``raw`` units down to the instrument's block size or default decimals."""
    with localcontext(ENGINE_CONTEXT):
        return UnitRounder(instrument, default_decimals)(raw)
