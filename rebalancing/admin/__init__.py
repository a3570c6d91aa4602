"""The rebalancing admin, one module per topic; importing them registers their admins."""

from . import automation, executions, orders, preferences  # noqa: F401
