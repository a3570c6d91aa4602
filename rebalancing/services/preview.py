"""Previews: what a rebalance would propose, computed by the engine, written nowhere."""

from dataclasses import dataclass
from datetime import date

from django.utils import timezone

from core.errors import FieldError, raise_if_errors
from core.ids import parse_uuid
from portfolios.models import AccountStatus
from portfolios.selectors import instruments_by_reference
from rebalancing import engine

from ..selectors.book import Book, book_load
from .preferences import book_options, preferences_effective, preferences_validate
from .tax import TAXED, tax_book_for, tax_step

MAX_PREVIEW_ACCOUNTS = 500
_METHODS = {m.value: m for m in engine.Method}  # calling the Enum class per account costs a microsecond


@dataclass(frozen=True)
class Preview:
    results: list  # engine.RebalanceResult, in the order asked
    instruments: dict  # instrument id → portfolios Instrument, for ISINs and currencies
    book: Book | None = None  # for each order's cash accounts and each result's price fallbacks
    tax: dict | None = None  # account id → engine.tax.TaxOutcome (tax-aware accounts only, §12)

    def tax_of(self, account_id):
        return (self.tax or {}).get(account_id)

    def cash_accounts(self, order) -> tuple:
        return order_cash_accounts(self.book, order) if self.book is not None else (None, None)

    def price_fallbacks(self, account_id) -> list:
        return account_price_fallbacks(self.book, account_id) if self.book is not None else []


def order_cash_accounts(book: Book, order) -> tuple:
    """(cash account id, counter cash account id) of an engine OrderProposal (§10): the
    account paying or receiving; for an FX order the paying (default) account and the
    bought currency's account (None: created when the order settles)."""
    if order.transaction_type == engine.TransactionType.FX:
        bought = book.instruments[order.instrument_id].currency
        paying = book.cash_account_in(order.account_id, order.currency) or book.default_cash_account(order.account_id)
        return paying, book.cash_account_in(order.account_id, bought)
    return book.cash_account_for(order.account_id, order.currency), None


def account_price_fallbacks(book: Book, account_id) -> list:
    """The instruments the account holds or targets that the live price connector did not
    price (§9), as text ids in order; [] when its prices are the stored ones."""
    fallbacks = book.price_fallbacks.get(book.price_sources.get(account_id, book.price_source))
    if not fallbacks:
        return []
    mine = set()
    stack = [book.snapshots.get(account_id)] if account_id in book.snapshots else []
    while stack:
        node = stack.pop()
        mine.update(p.instrument_id for p in node.positions)
        stack.extend(node.sub_accounts)
    targets = book.targets.get(account_id)
    if targets is not None:
        mine.update(line.instrument_id for line in targets.lines)
    return [str(pk) for pk in fallbacks if pk in mine]


def instrument_ids_resolve(values, *, field: str = "instrument_ids") -> frozenset | None:
    """The instruments named by ISIN or UUID (§10), or None when `values` is None.
    Raises InvalidInput naming each unknown one (`instrument_ids[2]`)."""
    if values is None:
        return None
    if not isinstance(values, list) or not values:
        raise_if_errors([FieldError(field, "must be a non-empty list of ISINs or instrument UUIDs")])
    found = instruments_by_reference(str(v) for v in values)
    raise_if_errors([
        FieldError(f"{field}[{i}]", f"no instrument with ISIN or UUID {v}") for i, v in enumerate(values) if str(v) not in found
    ])
    return frozenset(found[str(v)].pk for v in values)


def _failed(account_id, reason: str) -> engine.RebalanceResult:
    return engine.RebalanceResult(account_id, engine.ResultStatus.FAILED, reason=reason)


def rebalance_account(
    *, book: Book, account_id, method: str, preferences: engine.Preferences, outstanding_orders=(),
    instrument_ids: frozenset | None = None, drift: bool = False,
) -> engine.RebalanceResult:
    """Run the engine for one loaded account, after the rules that need no numbers.
    `drift`: the result also carries the account's drift as held (`result.drift`)."""
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
    # Without price-source overrides or restrictions (the usual book), no look-up by account
    # id for them: hashing a UUID is a Python call, and this runs for every account.
    market = book.market_of(account_id) if book.price_sources else book.markets[(account.base_currency, book.price_source)]
    return engine.rebalance(
        book.snapshots[account_id], targets.lines, market, preferences, _METHODS.get(method) or engine.Method(method),
        outstanding_orders,
        book.restrictions.get(account_id) if book.restrictions else None, instrument_ids, drift=drift,
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
    instrument_ids: list | None = None,
) -> Preview:
    """Propose the orders for up to 500 accounts without writing anything.

    Loads everything in a fixed number of queries whatever the number of accounts,
    the kept outstanding orders of each account group included (§4.6), exactly as
    an execution does.
    `preference_overrides` apply to this call only, on top of each account's own.
    `instrument_ids` (ISINs or UUIDs, §10): only lines of those instruments get orders.
    With `use_price_connector`, the connector's prices come first (and are stored as
    quotes: the one write a preview makes). Raises InvalidInput naming bad account ids
    (`accounts[3]`), instruments (`instrument_ids[0]`) or preferences
    (`preferences.min_trade_amount`).
    """
    account_ids = account_ids_validate(account_ids, limit=MAX_PREVIEW_ACCOUNTS)
    selected = instrument_ids_resolve(instrument_ids)
    if method not in engine.Method.__members__:
        raise_if_errors([FieldError("method", f"must be one of {', '.join(engine.Method)}")])
    overrides = preferences_validate(dict(preference_overrides or {}), prefix="preferences.")
    on_date = rebalance_date or timezone.localdate()
    default, per_account = preferences_effective(account_ids=account_ids, call_overrides=overrides)
    book = book_load(account_ids=account_ids, on_date=on_date, **book_options(default, per_account))
    raise_if_errors(
        [FieldError(f"accounts[{i}]", f"no account with id {a}") for i, a in enumerate(account_ids) if a not in book.accounts]
    )
    engine_preferences = {}

    def preferences_of(account_id):
        effective = per_account.get(account_id, default)
        key = effective.engine_key()  # accounts with equal values share one object (the engine's caches)
        if key not in engine_preferences:
            engine_preferences[key] = effective.for_engine()
        return engine_preferences[key]

    results = [
        rebalance_account(
            book=book, account_id=a, method=method, preferences=preferences_of(a),
            outstanding_orders=book.outstanding.get(a, ()), instrument_ids=selected,
        )
        for a in account_ids
    ]
    taxes = {}
    tax = tax_book_for(book=book, account_ids=account_ids, default=default, per_account=per_account, results=results)
    if tax is not None:
        for index, result in enumerate(results):
            effective = per_account.get(result.account_id, default)
            if effective.values["tax_aware"] and result.status in TAXED:
                outcome = tax_step(
                    book=book, tax=tax, account_id=result.account_id, result=result,
                    preferences=effective.for_tax(), default_decimals=preferences_of(result.account_id).default_decimals,
                )
                results[index] = outcome.result
                taxes[result.account_id] = outcome
    return Preview(results=results, instruments=book.instruments, book=book, tax=taxes)
