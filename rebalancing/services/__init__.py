"""Writes of the rebalancing app, and the preview (which writes nothing)."""

from .preferences import (
    PREFERENCE_FIELDS,
    EffectivePreferences,
    account_preferences,
    global_preferences,
    preferences_effective,
    preferences_replace,
    preferences_validate,
)
from .preview import MAX_PREVIEW_ACCOUNTS, Preview, account_ids_validate, rebalance_account, rebalance_preview

__all__ = [
    "MAX_PREVIEW_ACCOUNTS",
    "Preview",
    "account_ids_validate",
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
