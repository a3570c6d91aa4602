"""The tax-aware step of previews and executions (§12, docs/tax.md): after the engine's
rebalance of an account whose preferences have `tax_aware` on, engine/tax.py reshapes
its orders (lots named, gain budget, short-term avoidance, loss harvesting, wash sale)
from the plain data of selectors/tax.py."""

from decimal import Decimal

from rebalancing import engine
from rebalancing.engine.tax import TaxData, TaxOutcome, TaxPreferences, lots_named, only_names_lots, tax_adjust

from ..selectors.book import Book
from ..selectors.tax import TaxBook, tax_book_load
from .bulk import JsonText

_SELL = engine.Side.SELL
_NONE: dict = {}  # an account without lots or loss sales (never changed)
_FX = engine.TransactionType.FX
# Results the tax-aware step looks at (a harvest may turn NO_TRADES into PROPOSED).
TAXED = frozenset({engine.ResultStatus.PROPOSED, engine.ResultStatus.NO_TRADES})


def tax_book_for(*, book: Book, account_ids, default, per_account, results=None) -> TaxBook | None:
    """The tax data of the accounts of `account_ids` whose effective preferences are
    tax-aware (None when there are none: no query).

    `results` (the plain rebalances of those accounts, when known) narrows the lots read
    to what the step looks at: the positions the results sell, and every position of the
    accounts that harvest losses (a harvest looks for loss lots in positions the run
    does not trade). The gain budget, short-term avoidance and the lots named only
    concern the sells; a wash-sale buy needs no lot. Without `results`, every lot."""
    aware, whole = [], []  # one pass over the accounts: this is per chunk, for a thousand of them
    days, gains = 0, False
    accounts = book.accounts
    for a in account_ids:
        if a not in accounts:
            continue
        values = per_account.get(a, default).values
        if values["tax_aware"]:
            aware.append(a)
            if values["wash_sale_days"] > days:
                days = values["wash_sale_days"]
            if values["harvest_losses"]:
                whole.append(a)
            if values["max_realized_gain"] is not None:
                gains = True
    if not aware:
        return None
    sold = None
    if results is None:
        whole = None
    else:
        taxed = set(aware)
        sold = (  # account by account (tax_book_load looks each account up once), read once
            (o.account_id, o.instrument_id)
            for result in results if result.orders and result.status in TAXED and result.account_id in taxed
            for o in result.orders if o.side == _SELL and o.transaction_type != _FX and o.instrument_id is not None
        )
    if len(aware) == len(account_ids):
        aware = account_ids  # every account: the same ids in the same order (an IdTuple keeps its text)
    tax = tax_book_load(
        book=book, account_ids=aware, wash_sale_days=days, price_source=book.price_source, sold=sold, whole=whole,
        gains=gains,
    )
    book.instruments.update(tax.rows)
    return tax


def _must_sell(book: Book, account_id, restrictions) -> frozenset:
    """Instruments held in the group that leave the model, or that a NO_HOLD rule sells."""
    targets = book.targets.get(account_id)
    wanted = {line.instrument_id for line in targets.lines} if targets is not None else set()
    out = set()
    stack = [book.snapshots[account_id]]
    while stack:
        node = stack.pop()
        out.update(p.instrument_id for p in node.positions if p.instrument_id not in wanted)
        stack.extend(node.sub_accounts)
    if restrictions is not None:
        out.update(i for i, rules in restrictions.rules.items() if engine.Rule.NO_HOLD in rules)
    return frozenset(out)


def tax_step(
    *, book: Book, tax: TaxBook, account_id, result: engine.RebalanceResult, preferences: TaxPreferences,
    default_decimals=None,
) -> TaxOutcome:
    """Reshape `result` by the account's tax preferences. Cheap when nothing applies: an
    account without sells, harvest or a wash-sale buy is returned as it is, with no lots."""
    lots = tax.lots.get(account_id, _NONE)
    losses = tax.loss_sales.get(account_id, _NONE) if tax.loss_sales else _NONE
    orders = result.orders
    for o in orders:
        if o.side == _SELL:
            break
    else:  # no sell
        if not preferences.harvest_losses and not (losses and orders):
            return TaxOutcome(result)
    pending = {}
    for o in book.outstanding.get(account_id) or ():
        if o.side == _SELL and o.units and o.instrument_id is not None:
            key = (o.account_id, o.instrument_id)
            pending[key] = pending.get(key, Decimal(0)) + o.units
    if only_names_lots(preferences, losses):  # the common case: no TaxData, no restrictions
        return lots_named(result, book.market_of(account_id), preferences, lots, book.on_date.toordinal(), pending)
    restrictions = book.restrictions.get(account_id)
    limits = preferences.avoid_short_term_gains or preferences.max_realized_gain is not None  # must_sell matters
    data = TaxData(
        lots=lots, on=book.on_date.toordinal(), realized_this_year=tax.realized.get(account_id, Decimal(0)),
        loss_sales=losses,
        must_sell=_must_sell(book, account_id, restrictions)
        if limits and preferences.sell_removed_lines_regardless else frozenset(),
        pending_sells=pending, substitutes=tax.substitutes, instruments=tax.instruments, prices=tax.prices,
        base_currency=book.accounts[account_id].base_currency,
    )
    return tax_adjust(result, book.market_of(account_id), preferences, data, restrictions, default_decimals)


def estimated_gain_json(outcome: TaxOutcome) -> dict:
    """`estimated_realized_gain` of a result: `{"short", "long", "unknown_cost_units"}` as strings."""
    return {
        "short": _text(outcome.short), "long": _text(outcome.long), "unknown_cost_units": _text(outcome.unknown_cost_units),
    }


def estimated_gain_text(outcome: TaxOutcome) -> JsonText:
    """estimated_gain_json as the JSON text itself (what a chunk writes: no dict, no
    json.dumps per result)."""
    return JsonText(
        f'{{"short":"{_text(outcome.short)}","long":"{_text(outcome.long)}",'
        f'"unknown_cost_units":"{_text(outcome.unknown_cost_units)}"}}'
    )


def tax_orders_text(outcome: TaxOutcome, texts: dict | None = None) -> JsonText:
    """tax_orders_json as the JSON text itself, written straight by the chunk. Ids and
    Decimals print without any character that JSON or COPY would escape. `texts`: id →
    its text, kept by the caller across outcomes (a chunk's sells share instruments)."""
    if texts is None:
        texts = {}
    parts = []
    last = account = None
    for s in outcome.sells:
        if s.account_id is not last:  # an account's sells share its id (and sub-portfolios theirs)
            last = s.account_id
            account = texts.get(last) or texts.setdefault(last, str(last))
        instrument = texts.get(s.instrument_id) or texts.setdefault(s.instrument_id, str(s.instrument_id))
        # "!s": str() itself, the same text as a Decimal's format() at a third of the cost
        gain = "null" if s.estimated_gain is None else f'"{s.estimated_gain!s}"'
        if len(s.lots) == 1:  # the common case: no list built
            (lot_id, units), = s.lots
            parts.append(f'["{account}","{instrument}",{gain},[["{lot_id!s}","{units!s}"]]]')
        else:
            lots = ",".join([f'["{lot_id!s}","{units!s}"]' for lot_id, units in s.lots])
            parts.append(f'["{account}","{instrument}",{gain},[{lots}]]')
    return JsonText("[" + ",".join(parts) + "]")


def tax_orders_json(outcome: TaxOutcome) -> list:
    """Per sell, as stored on the result (compact: a chunk writes one per sell):
    `[account_id, instrument_id, estimated_gain, [[lot_id, units], ...]]`, all text
    (`estimated_gain` null when every lot is of unknown cost). `tax_order_rows` reads it."""
    return [
        [
            str(s.account_id), str(s.instrument_id), None if s.estimated_gain is None else str(s.estimated_gain),
            [[str(lot_id), str(units)] for lot_id, units in s.lots],
        ]
        for s in outcome.sells
    ]


def tax_order_rows(stored) -> dict:
    """(account id text, instrument id text) → {"lots": [{"lot_id", "units"}], "estimated_gain"}
    of a result's stored `tax_orders`, as the API shows them."""
    return {
        (account_id, instrument_id): {
            "lots": [{"lot_id": lot_id, "units": _text(Decimal(units))} for lot_id, units in lots],
            "estimated_gain": None if gain is None else _text(Decimal(gain)),
        }
        for account_id, instrument_id, gain, lots in stored or ()
    }


def _text(value: Decimal) -> str:
    return "0" if value == 0 else format(value.normalize(), "f")
