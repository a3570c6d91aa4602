"""Previews: what a rebalance would propose, computed by the engine, written nowhere."""

from dataclasses import dataclass
from datetime import date

from django.utils import timezone

from core.errors import FieldError, raise_if_errors
from core.ids import parse_uuid
from portfolios.models import AccountStatus
from rebalancing import engine

from ..selectors.book import Book, book_load
from .preferences import preferences_effective, preferences_validate

MAX_PREVIEW_ACCOUNTS = 500


@dataclass(frozen=True)
class Preview:
    results: list  # engine.RebalanceResult, in the order asked
    instruments: dict  # instrument id → portfolios Instrument, for ISINs and currencies


def _failed(account_id, reason: str) -> engine.RebalanceResult:
    return engine.RebalanceResult(account_id, engine.ResultStatus.FAILED, reason=reason)


def rebalance_account(
    *, book: Book, account_id, method: str, preferences: engine.Preferences, outstanding_orders=()
) -> engine.RebalanceResult:
    """Run the engine for one loaded account, after the rules that need no numbers."""
    account = book.accounts[account_id]
    if account.parent_id is not None:
        return _failed(account_id, f"account {account_id} is a sub-portfolio; rebalance its parent {account.parent_id}")
    if account.status != AccountStatus.ACTIVE:
        return _failed(account_id, f"account {account_id} is {account.status}; only ACTIVE accounts are rebalanced")
    targets = book.targets.get(account_id)
    if targets is None:
        if account.locked:
            return engine.RebalanceResult(account_id, engine.ResultStatus.SKIPPED_LOCKED, reason="account is locked")
        return _failed(account_id, f"account {account_id} has no configuration: no allocation to rebalance towards")
    if targets.error:
        return _failed(account_id, targets.error)
    return engine.rebalance(
        book.snapshots[account_id], targets.lines, book.markets[account.base_currency],
        preferences, engine.Method(method), outstanding_orders, book.restrictions.get(account_id),
    )


def adjustments_json(adjustments) -> list[dict]:
    """Engine Adjustments as the API and the execution results show them (§11):
    `{"instrument_id", "rule", "effect", "substitute_id"?, "list"}`, ids as text."""
    out = []
    for a in adjustments:
        row = {"instrument_id": str(a.instrument_id), "rule": str(a.rule), "effect": str(a.effect), "list": a.list_name}
        if a.substitute_id is not None:
            row["substitute_id"] = str(a.substitute_id)
        out.append(row)
    return out


def account_ids_validate(account_ids: list, *, limit: int, field: str = "accounts") -> list:
    """Parse and check a list of account ids: UUIDs, none twice, at most `limit`."""
    errors = []
    if not account_ids:
        errors.append(FieldError(field, "at least one account is required"))
    if len(account_ids) > limit:
        errors.append(FieldError(field, f"at most {limit} accounts per call, got {len(account_ids)}"))
    parsed, seen = [], {}
    for index, value in enumerate(account_ids):
        account_id = parse_uuid(value)
        if account_id is None:
            errors.append(FieldError(f"{field}[{index}]", f"{value} is not an account id (UUID)"))
        elif account_id in seen:
            errors.append(FieldError(f"{field}[{index}]", f"account {account_id} is already in {field}[{seen[account_id]}]"))
        else:
            seen[account_id] = index
            parsed.append(account_id)
    raise_if_errors(errors)
    return parsed


def rebalance_preview(
    *,
    account_ids: list,
    method: str = engine.Method.FULL,
    rebalance_date: date | None = None,
    preference_overrides: dict | None = None,
) -> Preview:
    """Propose the orders for up to 500 accounts without writing anything.

    Loads everything in a fixed number of queries whatever the number of accounts,
    the kept outstanding orders of each account group included (§4.6), exactly as
    an execution does.
    `preference_overrides` apply to this call only, on top of each account's own.
    Raises InvalidInput naming bad account ids (`accounts[3]`) or preferences
    (`preferences.min_trade_amount`).
    """
    account_ids = account_ids_validate(account_ids, limit=MAX_PREVIEW_ACCOUNTS)
    if method not in engine.Method.__members__:
        raise_if_errors([FieldError("method", f"must be one of {', '.join(engine.Method)}")])
    overrides = preferences_validate(dict(preference_overrides or {}), prefix="preferences.")
    on_date = rebalance_date or timezone.localdate()
    default, per_account = preferences_effective(account_ids=account_ids, call_overrides=overrides)
    book = book_load(account_ids=account_ids, on_date=on_date, price_source=default.values["price_source"])
    raise_if_errors(
        [FieldError(f"accounts[{i}]", f"no account with id {a}") for i, a in enumerate(account_ids) if a not in book.accounts]
    )
    engine_preferences = {}

    def preferences_of(account_id):
        effective = per_account.get(account_id, default)
        key = id(effective)
        if key not in engine_preferences:
            engine_preferences[key] = effective.for_engine()
        return engine_preferences[key]

    results = [
        rebalance_account(
            book=book, account_id=a, method=method, preferences=preferences_of(a),
            outstanding_orders=book.outstanding.get(a, ()),
        )
        for a in account_ids
    ]
    return Preview(results=results, instruments=book.instruments)
