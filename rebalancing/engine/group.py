"""An account group against a prepared model: the engine's shared internals.

`prepare_model` turns a Market, the target lines, a base currency and the default
decimals into a `PreparedModel` (prices × FX, rounders, target weights), cached per
input objects; `build_group` walks an account and its sub-accounts into a `Group` of
`Line`s with cash, totals and outstanding orders counted. Valuation (valuation.py)
and rebalancing (rebalance.py) both work on a `Group`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

from .precision import ONE, Q_PRICE, ZERO
from .rounding import UnitRounder
from .types import (
    KEPT_STATUSES,
    AccountSnapshot,
    AvailableCash,
    CashAccountKind,
    DataError,
    FuturesCost,
    InstrumentType,
    InvalidInputError,
    Market,
    MissingFxRateError,
    MissingPriceError,
    OutstandingOrder,
    Side,
    TargetLine,
    TransactionType,
    UnknownInstrumentError,
    id_key,
)

_CASH = InstrumentType.CASH
_FUTURE = InstrumentType.FUTURE
_CASH_KIND = CashAccountKind.CASH
_ALL = AvailableCash.ALL_ACCOUNTS
_CASH_ONLY = AvailableCash.CASH_ACCOUNTS_ONLY
_DEFAULT_ONLY = AvailableCash.DEFAULT_ACCOUNT_ONLY
_DEPOSIT = TransactionType.DEPOSIT
_WITHDRAWAL = TransactionType.WITHDRAWAL
_FX = TransactionType.FX
_BUY = Side.BUY
_IMMEDIATE = FuturesCost.IMMEDIATE


class Info:
    """What the engine needs of one instrument on one market, in base currency."""

    __slots__ = (
        "iid",
        "inst",
        "key",
        "price",
        "unit_price",
        "fx",
        "pf",
        "currency",
        "future",
        "immediate",
        "tradable",
        "target",
        "w",
        "cash",
        # unit rounding (see UnitRounder): block size, or quantum of the default decimals
        "block",
        "quantum",
        "fix",
    )

    def retargeted(self, target: TargetLine) -> Info:
        """A copy for another target line of the same instrument (restrictions.py)."""
        info = Info()
        info.iid, info.inst, info.key, info.price, info.unit_price = self.iid, self.inst, self.key, self.price, self.unit_price
        info.fx, info.pf, info.currency, info.future, info.immediate = self.fx, self.pf, self.currency, self.future, self.immediate
        info.tradable, info.cash, info.block, info.quantum, info.fix = self.tradable, self.cash, self.block, self.quantum, self.fix
        info.target = target
        info.w = target.weight
        return info


assert len(Info.__slots__) == 17  # Info.retargeted copies every slot but target and w


class PreparedModel:
    """Everything derived from (market, targets, base currency, default decimals)."""

    __slots__ = (
        "market", "targets", "base", "decimals", "infos", "lines", "index", "w_cash", "fx_cache", "error",
        "cash_w", "cash_bands", "_cash_ids", "_cash_targets", "limits", "_drift_weights",
    )

    def drift_weights(self) -> tuple:
        """(target weight, 1 / weight or None when 0) per line, in ``lines`` order: the
        drift of every account valued against this model ranks its lines with them."""
        out = self._drift_weights
        if out is None:
            out = self._drift_weights = tuple((i.w, ONE / i.w if i.w else None) for i in self.lines)
        return out

    def cash_targets(self) -> dict:
        """Currency → cash target weight (§9): each CASH line sets its own currency's;
        cash weight added by restrictions (``w_cash`` above the lines') goes to the base
        currency. Computed once (restrictions set ``w_cash`` before any use)."""
        out = self._cash_targets
        if out is not None and out[0] == self.w_cash:
            return out[1]
        rest = self.w_cash - sum(self.cash_w.values(), ZERO)
        targets = dict(self.cash_w)
        if rest:
            targets[self.base] = targets.get(self.base, ZERO) + rest
        self._cash_targets = (self.w_cash, targets)
        return targets

    def cash_instrument(self, currency: str):
        """The id of the market's CASH instrument of ``currency`` (None when there is none)."""
        ids = self._cash_ids
        if ids is None:
            ids = self._cash_ids = _cash_ids(self.market)
        return ids.get(currency)

    def fx(self, currency: str) -> Decimal:
        rate = self.fx_cache.get(currency)
        if rate is None:
            rate = self.market.fx_rates.get(currency)
            if rate is None:
                raise MissingFxRateError(currency, self.base, self.market.as_of)
            if rate <= ZERO:
                raise InvalidInputError(f"FX rate for {currency}/{self.base} is not positive")
            self.fx_cache[currency] = rate
        return rate

    def info(self, iid) -> Info:
        """Return the instrument's info, creating it for a holding outside the model."""
        info = self.infos.get(iid)
        if info is None:
            info = self.make_info(iid, None)
            self.infos[iid] = info
        return info

    def make_info(self, iid, target: TargetLine | None) -> Info:
        market = self.market
        inst = market.instruments.get(iid)
        if inst is None:
            raise UnknownInstrumentError(iid)
        info = Info()
        info.iid = iid
        info.inst = inst
        info.key = id_key(iid)
        info.currency = inst.currency
        info.future = inst.type == _FUTURE
        info.immediate = info.future and inst.futures_cost == _IMMEDIATE
        info.tradable = inst.tradable
        info.target = target
        info.w = target.weight if target is not None else ZERO
        info.cash = inst.type == _CASH
        if info.cash:
            info.price = info.unit_price = ONE
            info.fx = info.pf = self.fx(inst.currency)
            info.block = info.quantum = info.fix = None
            return info
        price = market.prices.get(iid)
        if price is None:
            raise MissingPriceError(inst.label, market.as_of)
        if price <= ZERO:
            raise InvalidInputError(f"price for {inst.label} is not positive")
        info.price = price
        info.unit_price = price.quantize(Q_PRICE)
        info.fx = self.fx(inst.currency)
        info.pf = price * info.fx
        rounder = UnitRounder(inst, self.decimals)
        info.block = rounder.block
        info.quantum = rounder.quantum
        info.fix = rounder.fix
        return info


_MODELS: dict = {}
_MODELS_MAX = 64
_CASH_IDS: dict = {}


def _cash_ids(market: Market) -> dict:
    """Currency → the market's CASH instrument id (the first by id), cached per Market."""
    hit = _CASH_IDS.get(id(market))
    if hit is not None and hit[0] is market:
        return hit[1]
    ids: dict = {}
    for iid, inst in sorted(market.instruments.items(), key=lambda kv: id_key(kv[0])):
        if inst.type == _CASH:
            ids.setdefault(inst.currency, iid)
    if len(_CASH_IDS) >= _MODELS_MAX:
        _CASH_IDS.clear()
    _CASH_IDS[id(market)] = (market, ids)  # holds the market: its id is not reused meanwhile
    return ids


def prepare_model(
    market: Market, targets: Sequence[TargetLine], base: str, decimals: Mapping, reuse: PreparedModel | None = None
) -> PreparedModel:
    """Return the prepared model, cached by object identity when ``targets`` is a tuple.

    ``reuse``: a model of the same market, base currency and decimals whose prepared
    lines are taken for the target lines it was prepared from (the same TargetLine
    objects), instead of preparing them again; such a model is not cached.
    Raises the ``DataError`` of a bad target line (unknown instrument, missing
    price or FX, duplicate, negative weight) at every use.
    """
    cacheable = type(targets) is tuple and reuse is None
    reused = reuse.infos if reuse is not None else None
    if cacheable:
        key = (id(market), id(targets), base, id(decimals))
        model = _MODELS.get(key)
        # The entry holds the objects, so their ids cannot be reused meanwhile.
        if model is not None and model.market is market and model.targets is targets and model.decimals is decimals:
            if model.error is not None:
                raise model.error.with_traceback(None)  # no traceback build-up
            return model
    model = PreparedModel()
    model.market = market
    model.targets = targets
    model.base = base
    model.decimals = decimals
    model.infos = {}
    model.fx_cache = {base: ONE} if reuse is None else reuse.fx_cache  # the same market: the same rates
    model.error = None
    model.cash_w = {}
    model.cash_bands = {}
    model.limits = False
    model._drift_weights = None
    model._cash_ids = None
    model._cash_targets = None
    try:
        lines = []
        w_cash = ZERO
        for t in targets:
            w = t.weight
            if w < ZERO:
                raise InvalidInputError(f"negative target weight for {t.instrument_id}")
            iid = t.instrument_id
            if iid in model.infos:
                raise InvalidInputError(f"{model.infos[iid].inst.label} appears twice in the target lines")
            info = reused.get(iid) if reused is not None else None
            if info is None:
                info = model.make_info(iid, t)
            elif info.target is not t:  # the same instrument on the same market: only the target differs
                info = info.retargeted(t)
            model.infos[iid] = info
            if info.inst.type == _CASH:
                w_cash += w
                cur = info.currency
                model.cash_w[cur] = model.cash_w.get(cur, ZERO) + w
                if t.max_weight is not None and t.max_weight > ZERO:
                    model.cash_bands[cur] = (t.min_weight if t.min_weight is not None else ZERO, t.max_weight)
            else:
                lines.append(info)
        lines.sort(key=lambda i: i.key)
        model.lines = lines
        model.index = {info.iid: i for i, info in enumerate(lines)}
        model.w_cash = w_cash
        # Does a non-cash line have a min or max weight (valuation.group_drift checks them)?
        model.limits = any(i.target.min_weight is not None or i.target.max_weight is not None for i in lines)
    except DataError as exc:
        model.error = exc
    if cacheable:
        if len(_MODELS) >= _MODELS_MAX:
            _MODELS.clear()
        _MODELS[key] = model
    if model.error is not None:
        raise model.error.with_traceback(None)
    return model


class Line:
    """One instrument of the group for one run, internal and mutable (base currency).

    Class attributes are the defaults (no ``__slots__``: a line sets only
    what differs, which is most of the cost of building one).
    """

    info: Info
    units = ZERO
    locked_units = ZERO
    value = ZERO
    holdings: tuple | list = ()  # [(account id, sellable units)], unlocked accounts, root first
    sellable = ZERO  # value of the sellable units
    kept_buy = ZERO
    kept_sell = ZERO
    # the rebalancer's plan: overweight excess, value to sell, sell whole, value to buy
    excess = ZERO
    sell = ZERO
    whole = False
    buy = ZERO
    # restrictions (restrictions.py): never bought; sold whole in every method
    no_buy = False
    force_whole = False


class Group:
    """The valued group, internal. Cash figures are in base currency.

    ``cash_before``: counted cash as held. ``cash_total``: the cash in the total
    value. ``cash_unlocked`` / ``cash_locked``: counted cash after the
    outstanding orders the method counts. ``cash_cur``: the unlocked part per
    currency, in that currency (§9). ``default_currency``: the currency of the
    root account's default cash account (else the base currency): FX orders pay
    from it. ``drift``: the group's ``Drift`` when the rebalance was asked for it.
    """

    __slots__ = (
        "lines", "total", "cash_before", "cash_total", "cash_unlocked", "cash_locked", "cash_cur", "default_currency",
        "drift",
    )


def _walk(account: AccountSnapshot, locked: bool, out: list) -> None:
    out.append((account, locked))
    subs = account.sub_accounts
    if subs:
        if len(subs) > 1:
            subs = sorted(subs, key=lambda a: id_key(a.id))
        for sub in subs:
            _walk(sub, locked or sub.locked, out)


def _cash_value(by_currency: dict, fx) -> Decimal:
    if len(by_currency) == 1:
        for cur, amount in by_currency.items():
            return amount * fx(cur)
    total = ZERO
    for cur in sorted(by_currency):
        total += by_currency[cur] * fx(cur)
    return total


def _order_sort_key(o: OutstandingOrder):
    return (
        id_key(o.account_id),
        id_key(o.instrument_id) if o.instrument_id is not None else (-1,),
        str(o.side),
        str(o.transaction_type),
        str(o.status),
        o.units if o.units is not None else ZERO,
        o.trade_amount if o.trade_amount is not None else ZERO,
        o.currency or "",
    )


def build_group(
    account: AccountSnapshot,
    model: PreparedModel,
    scope: AvailableCash,
    kept_orders: Iterable[OutstandingOrder] = (),
    apply_orders: bool = False,
    futures_fee: Decimal = ZERO,
) -> Group:
    """Value the group; count the kept outstanding orders (§4.6).

    ``apply_orders`` False (all methods but FULL_INCLUDING_ORDERS): kept buys
    reduce cash by their cash cost, withdrawals reduce cash and the total, the
    per-instrument kept buy/sell values are recorded for netting, and kept
    sells are taken out of the sellable units. True: every kept order is
    applied to holdings and cash first. ``futures_fee`` is a fraction.
    """
    if scope == _ALL:
        count_all, count_cash_kind = True, False
    elif scope == _CASH_ONLY:
        count_all, count_cash_kind = False, True
    elif scope == _DEFAULT_ONLY:
        count_all, count_cash_kind = False, False
    else:
        raise InvalidInputError(f"unknown available_cash {scope!r}")

    if account.sub_accounts:
        accounts: list = []
        _walk(account, account.locked, accounts)
    else:
        accounts = [(account, account.locked)]
    # Units per line, as [[account index, units], ...] in account order: target
    # lines by their index in the model, other holdings by id in ``extra``. A
    # group of one account (the common case) keeps a target line's units as a
    # bare Decimal instead: building the lists is a good part of the cost.
    index = model.index
    held: list = [None] * len(model.lines)
    extra: dict = {}
    cash: list = []  # per account index: {currency: counted balance}
    single = len(accounts) == 1
    for n, (acc, _locked) in enumerate(accounts):
        for p in acc.positions:
            u = p.units
            if not u:
                continue
            if u < ZERO:
                raise InvalidInputError(f"negative units of {p.instrument_id} in account {acc.id}")
            i = index.get(p.instrument_id)
            if i is None:
                entries = extra.setdefault(p.instrument_id, [])
            else:
                entries = held[i]
                if single:
                    held[i] = u if entries is None else entries + u
                    continue
                if entries is None:
                    held[i] = [[n, u]]
                    continue
            if entries and entries[-1][0] == n:
                entries[-1][1] += u
            else:
                entries.append([n, u])
        counted: dict = {}
        for ca in acc.cash_accounts:
            if count_all or (ca.kind == _CASH_KIND if count_cash_kind else ca.is_default):
                cur = ca.currency
                counted[cur] = counted.get(cur, ZERO) + ca.balance
        cash.append(counted)

    kept_buy: dict = {}
    kept_sell: dict = {}
    kept_sell_units: dict = {}  # (iid, account index) -> units
    total_delta: dict = {}  # account index -> {currency: amount}: changes the total and cash
    cash_delta: dict = {}  # account index -> {currency: amount}: changes cash only
    kept = [o for o in kept_orders if o.status in KEPT_STATUSES] if kept_orders else None
    if kept:
        _count_orders(
            kept, accounts, model, held, extra, kept_buy, kept_sell, kept_sell_units, total_delta, cash_delta,
            apply_orders, futures_fee,
        )

    # Lines: target lines in id order, then the other holdings in id order.
    pairs = zip(model.lines, held)
    if extra:
        infos = sorted((model.info(iid) for iid in extra), key=lambda i: i.key)
        pairs = [*pairs, *((info, extra[info.iid]) for info in infos)]
    lines = []
    total = ZERO
    for info, entries in pairs:
        ln = Line()
        ln.info = info
        if kept_buy:
            ln.kept_buy = kept_buy.get(info.iid, ZERO)
        if kept_sell:
            ln.kept_sell = kept_sell.get(info.iid, ZERO)
        if not entries:
            if info.target is not None and not info.cash:
                lines.append(ln)
            continue
        if info.cash:  # a currency held as a position: cash of its account
            for n, u in entries:
                counted = cash[n]
                counted[info.currency] = counted.get(info.currency, ZERO) + u
            continue
        if type(entries) is not list and kept_sell_units:
            entries = [[0, entries]]
        if type(entries) is not list:  # one account: the bare units
            ln.units = entries
            ln.value = value = entries * info.pf
            if account.locked:
                ln.locked_units = entries
            else:
                ln.holdings = ((account.id, entries),)
                ln.sellable = value
            if not info.future:
                total += value
            lines.append(ln)
            continue
        else:
            holdings = []
            units = ZERO
            locked_units = ZERO
            sellable = ZERO
            for n, u in entries:
                units += u
                acc, locked = accounts[n]
                if locked:
                    locked_units += u
                    continue
                if kept_sell_units:
                    u -= kept_sell_units.get((info.iid, n), ZERO)
                if u > ZERO:
                    holdings.append((acc.id, u))
                    sellable += u
            if not units and info.target is None:
                continue
            ln.locked_units = locked_units
            ln.holdings = holdings
            ln.sellable = sellable * info.pf
        ln.units = units
        ln.value = value = units * info.pf
        if not info.future:
            total += value
        lines.append(ln)

    # Cash in base currency, accounts in canonical order.
    fx = model.fx
    cash_before = ZERO
    cash_total = ZERO
    cash_unlocked = ZERO
    cash_locked = ZERO
    cash_cur: dict = {}
    for n, counted in enumerate(cash):
        before = _cash_value(counted, fx) if counted else ZERO
        cash_before += before
        current = before
        locked = accounts[n][1]
        if not locked:
            for cur, amount in counted.items():
                cash_cur[cur] = cash_cur.get(cur, ZERO) + amount
        if total_delta:
            d = total_delta.get(n)
            if d:
                current += _cash_value(d, fx)
                if not locked:
                    _add_amounts(cash_cur, d)
        cash_total += current
        if cash_delta:
            d = cash_delta.get(n)
            if d:
                current += _cash_value(d, fx)
                if not locked:
                    _add_amounts(cash_cur, d)
        if locked:
            cash_locked += current
        else:
            cash_unlocked += current
    default_currency = account.base_currency
    for ca in account.cash_accounts:
        if ca.is_default:
            default_currency = ca.currency
            break

    g = Group()
    g.lines = lines
    g.total = total + cash_total
    g.cash_before = cash_before
    g.cash_total = cash_total
    g.cash_unlocked = cash_unlocked
    g.cash_locked = cash_locked
    g.cash_cur = cash_cur
    g.default_currency = default_currency
    g.drift = None  # rebalance(..., drift=True) sets it (valuation.group_drift)
    return g


def _add_amounts(into: dict, amounts: dict) -> None:
    for cur, amount in amounts.items():
        into[cur] = into.get(cur, ZERO) + amount


def _count_orders(
    kept, accounts, model, held, extra, kept_buy, kept_sell, kept_sell_units, total_delta, cash_delta, apply, fee
) -> None:
    """Fold the kept outstanding orders into holdings, cash and netting values."""
    index = {acc.id: n for n, (acc, _locked) in enumerate(accounts)}
    if len(kept) > 1:
        kept.sort(key=_order_sort_key)
    fx = model.fx
    instruments = model.market.instruments
    for o in kept:
        n = index.get(o.account_id)
        if n is None:
            raise InvalidInputError(f"outstanding order for account {o.account_id}, outside the group")
        inst = instruments.get(o.instrument_id) if o.instrument_id is not None else None
        if inst is None and (o.instrument_id is not None or o.currency is None):
            raise UnknownInstrumentError(o.instrument_id)
        tt = o.transaction_type
        counted = o.counted
        if tt == _DEPOSIT or tt == _WITHDRAWAL:
            if not counted:
                continue
            cur = o.currency or inst.currency
            amount = o.trade_amount if o.trade_amount is not None else o.units or ZERO
            if tt == _WITHDRAWAL:
                amount = -amount
            elif not apply:
                continue  # a deposit counts once it is applied (FULL_INCLUDING_ORDERS)
            per = total_delta.setdefault(n, {})
            per[cur] = per.get(cur, ZERO) + amount
            continue
        if tt == _FX:
            if not counted:
                continue
            # A kept FX order moves cash between two currencies (§9): the bought
            # currency is the instrument's, the paying one the order's.
            units = o.units or ZERO
            paid = o.trade_amount or ZERO
            sign = ONE if o.side == _BUY else -ONE
            per = (total_delta if apply else cash_delta).setdefault(n, {})
            per[inst.currency] = per.get(inst.currency, ZERO) + sign * units
            pay = o.currency or inst.currency
            per[pay] = per.get(pay, ZERO) - sign * paid
            continue
        if inst.type == _CASH:
            continue
        iid = o.instrument_id
        cur = o.currency or inst.currency
        units = o.units or ZERO
        amount = o.trade_amount
        if amount is None:
            amount = units * model.info(iid).price
        future = inst.type == _FUTURE
        if o.side == _BUY:
            if future:
                cost = amount * fee if inst.futures_cost == _IMMEDIATE else ZERO
            else:
                cost = amount
            if apply:
                _add_units(model, held, extra, iid, n, units)
                delta = total_delta.setdefault(n, {})
            else:
                kept_buy[iid] = kept_buy.get(iid, ZERO) + amount * fx(cur)
                delta = cash_delta.setdefault(n, {})
            if cost and counted:
                delta[cur] = delta.get(cur, ZERO) - cost
        elif apply:
            _add_units(model, held, extra, iid, n, -units)
            if not future and counted:
                delta = total_delta.setdefault(n, {})
                delta[cur] = delta.get(cur, ZERO) + amount
        else:
            kept_sell[iid] = kept_sell.get(iid, ZERO) + amount * fx(cur)
            key = (iid, n)
            kept_sell_units[key] = kept_sell_units.get(key, ZERO) + units


def _add_units(model: PreparedModel, held: list, extra: dict, iid, n: int, units: Decimal) -> None:
    """Add ``units`` (may be negative; the result is floored at 0) to account ``n``'s position."""
    i = model.index.get(iid)
    if i is None:
        entries = extra.setdefault(iid, [])
    else:
        entries = held[i]
        if entries is None:
            entries = held[i] = []
        elif type(entries) is not list:  # one account's bare units
            entries = held[i] = [[0, entries]]
    for k, entry in enumerate(entries):
        if entry[0] == n:
            entry[1] += units
            if entry[1] <= ZERO:
                del entries[k]
            return
    if units > ZERO:
        entries.append([n, units])
        entries.sort(key=lambda e: e[0])


__all__ = ["Group", "Info", "Line", "PreparedModel", "build_group", "prepare_model"]
