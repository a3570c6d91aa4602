"""Trade order transitions and settlement (spec §5), portfolio orders (spec §6).

The rules and every choice made where the spec is open are in docs/orders.md.
"""

from .flow import TRANSITIONS, allowed_transitions
from .portfolio_orders import portfolio_order_create, portfolio_order_status_derive, portfolio_order_status_refresh
from .trade_orders import trade_order_transition, trade_orders_fill, trade_orders_transition

__all__ = [
    "TRANSITIONS",
    "allowed_transitions",
    "portfolio_order_create",
    "portfolio_order_status_derive",
    "portfolio_order_status_refresh",
    "trade_order_transition",
    "trade_orders_fill",
    "trade_orders_transition",
]
