"""Writes of the rebalancing app, and the preview (which writes nothing)."""

from .orders import (
    TRANSITIONS,
    allowed_transitions,
    portfolio_order_create,
    portfolio_order_status_refresh,
    trade_order_transition,
    trade_orders_transition,
)
from .executions import (
    MAX_EXECUTION_ACCOUNTS,
    ChunkOutcome,
    execution_cancel,
    execution_chunk_fail,
    execution_chunk_process,
    execution_create,
    execution_fail,
    execution_plan,
)
from .automation import EvaluationSummary, SavingsPlanSummary, savings_plans_run, strategies_evaluate
from .preferences import (
    PREFERENCE_FIELDS,
    EffectivePreferences,
    account_preferences,
    global_preferences,
    preferences_effective,
    preferences_replace,
    preferences_validate,
)
from .preview import (
    MAX_PREVIEW_ACCOUNTS,
    Preview,
    account_ids_validate,
    adjustments_json,
    rebalance_account,
    rebalance_preview,
)

__all__ = [
    "EvaluationSummary",
    "SavingsPlanSummary",
    "savings_plans_run",
    "strategies_evaluate",
    "MAX_EXECUTION_ACCOUNTS",
    "ChunkOutcome",
    "execution_cancel",
    "execution_chunk_fail",
    "execution_chunk_process",
    "execution_create",
    "execution_fail",
    "execution_plan",
    "TRANSITIONS",
    "allowed_transitions",
    "portfolio_order_create",
    "portfolio_order_status_refresh",
    "trade_order_transition",
    "trade_orders_transition",
    "MAX_PREVIEW_ACCOUNTS",
    "Preview",
    "account_ids_validate",
    "adjustments_json",
    "rebalance_account",
    "rebalance_preview",
    "PREFERENCE_FIELDS",
    "EffectivePreferences",
    "account_preferences",
    "global_preferences",
    "preferences_effective",
    "preferences_replace",
    "preferences_validate",
]
