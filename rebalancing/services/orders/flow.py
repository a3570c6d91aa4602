"""The trade order status flow (spec §5): which status may follow which, and the
checks of the amounts the order services take (quanta, digits)."""

from decimal import ROUND_HALF_EVEN, Decimal

from core.errors import FieldError
from portfolios.models.fields import MONEY, PRICE, UNITS

from ...models import TradeOrderStatus

S = TradeOrderStatus
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY["decimal_places"])
UNITS_QUANTUM = Decimal(1).scaleb(-UNITS["decimal_places"])
PRICE_QUANTUM = Decimal(1).scaleb(-PRICE["decimal_places"])


# --- Trade order status flow ------------------------------------------------------

# Each status → the statuses it may move to (docs/orders.md). PARTIALLY_EXECUTED may
# repeat (another fill) and may be skipped; CANCELLED and REJECTED end an order that is
# not executing yet.
TRANSITIONS: dict[str, frozenset] = {
    S.PENDING_APPROVAL: frozenset({S.OPEN, S.CANCELLED, S.REJECTED}),
    S.OPEN: frozenset({S.ACCEPTED, S.CANCELLED, S.REJECTED, S.REPLACED}),
    S.ACCEPTED: frozenset({S.EXECUTABLE, S.CANCELLED, S.REJECTED}),
    S.EXECUTABLE: frozenset({S.SENT_TO_EXECUTION, S.CANCELLED, S.REJECTED}),
    S.SENT_TO_EXECUTION: frozenset({S.IN_EXECUTION, S.CANCELLED, S.REJECTED}),
    S.IN_EXECUTION: frozenset({S.PARTIALLY_EXECUTED, S.EXECUTED_IN_MARKET}),
    S.PARTIALLY_EXECUTED: frozenset({S.PARTIALLY_EXECUTED, S.EXECUTED_IN_MARKET}),
    S.EXECUTED_IN_MARKET: frozenset({S.SETTLED_IN_MARKET}),
    S.SETTLED_IN_MARKET: frozenset({S.SETTLED}),
    S.SETTLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.REPLACED: frozenset(),
}
# Made by a rebalance only (spec §4.6), never by a person or a partner.
# PENDING_APPROVAL orders move only with their execution (approve, reject, cancel:
# services/approval.py), in bulk.
SYSTEM_TRANSITIONS = frozenset({
    (S.OPEN, S.REPLACED),
    (S.PENDING_APPROVAL, S.OPEN), (S.PENDING_APPROVAL, S.CANCELLED), (S.PENDING_APPROVAL, S.REJECTED),
})
ENDED = frozenset({S.SETTLED, S.CANCELLED, S.REJECTED, S.REPLACED})
# Not settled and not ended: their cash and units are still on the way (PENDING_APPROVAL
# included: approved, they trade, so their cash and units are reserved meanwhile).
LIVE = tuple(s for s in S.values if s not in ENDED)
FILL_STATUSES = frozenset({S.PARTIALLY_EXECUTED, S.EXECUTED_IN_MARKET})


def allowed_transitions(status: str, *, system: bool = False) -> list[str]:
    """The statuses an order in `status` may move to, in flow order."""
    return [s for s in S.values if s in TRANSITIONS[status] and (system or (status, s) not in SYSTEM_TRANSITIONS)]


def decimal_errors(field: str, value, quantum: Decimal, max_digits: int) -> list[FieldError]:
    if not isinstance(value, Decimal) or not value.is_finite():
        return [FieldError(field, "must be a number")]
    if value <= 0:
        return [FieldError(field, "must be greater than 0")]
    places = -quantum.as_tuple().exponent
    if value.adjusted() >= max_digits - places:
        return [FieldError(field, f"at most {max_digits - places} digits before the decimal point")]
    if value != value.quantize(quantum, rounding=ROUND_HALF_EVEN):
        return [FieldError(field, f"at most {places} decimal places")]
    return []
