"""Benchmark the rebalancing engine: accounts per second per (lines, method).

Builds synthetic accounts (UUID ids, three currencies, every line drifted by up
to ±20 %, some cash, one account in five with a kept order) with 10 and 50
lines and rebalances each with every method on one core.

    .venv/bin/python bench/engine.py [--accounts N] [--lines 10 50] [--profile] [--no-multi] [--no-restrictions]

Also a multi-currency case (§9: EUR and USD cash lines, AUTO, EXPLICIT, EXPLICIT with
repatriation) and a restrictions case (§11: the same book unrestricted and restricted).

Target: ≥ 20,000 accounts/s for 10-line accounts under FULL (CPython 3.11).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rebalancing.engine import (  # noqa: E402
    AccountSnapshot,
    CashAccount,
    FxMode,
    Instrument,
    InstrumentType,
    Market,
    Method,
    OrderStatus,
    OutstandingOrder,
    Position,
    Preferences,
    Restriction,
    Restrictions,
    Rule,
    Side,
    TargetLine,
    rebalance,
)

CURRENCIES = ("EUR", "USD", "CHF")
FX = {"EUR": Decimal(1), "USD": Decimal("0.9213"), "CHF": Decimal("1.0412")}
TYPES = (InstrumentType.EQUITY, InstrumentType.ETF, InstrumentType.FUND, InstrumentType.CRYPTO)


def build(n_accounts: int, n_lines: int, seed: int = 7):
    """Return (market, targets, accounts): one model, many drifted accounts."""
    rng = random.Random(seed)
    instruments = {}
    prices = {}
    for _ in range(n_lines):
        iid = uuid.UUID(int=rng.getrandbits(128))
        kind = rng.choice(TYPES)
        block = {InstrumentType.CRYPTO: Decimal("0.00000001"), InstrumentType.FUND: None}.get(kind, Decimal(1))
        instruments[iid] = Instrument(iid, kind, rng.choice(CURRENCIES), block_size=block)
        prices[iid] = Decimal(rng.randint(500, 50_000)) / 100
    market = Market(instruments, prices, FX)
    ids = list(instruments)
    raw = [rng.randint(1, 100) for _ in ids]
    weights = [Decimal(r) / sum(raw) for r in raw]
    weights = [w.quantize(Decimal("1e-12")) for w in weights]
    weights[0] += 1 - sum(weights)
    targets = tuple(TargetLine(i, w) for i, w in zip(ids, weights))
    accounts = []
    for _ in range(n_accounts):
        total = Decimal(rng.randint(10_000, 1_000_000))
        positions = []
        for iid, w in zip(ids, weights):
            drift = Decimal(rng.randint(80, 120)) / 100
            p = prices[iid] / FX[instruments[iid].currency]
            units = (total * w * drift / p).quantize(Decimal(1))
            if units:
                positions.append(Position(iid, units))
        cash = (CashAccount("EUR", Decimal(rng.randint(-2_000, 20_000)), is_default=True),)
        account_id = uuid.UUID(int=rng.getrandbits(128))
        orders = ()
        if rng.random() < 0.2:  # one in five accounts has an order in flight
            iid = rng.choice(ids)
            orders = (
                OutstandingOrder(account_id, iid, Side.BUY, "BUY", Decimal(10), 10 * prices[iid], OrderStatus.ACCEPTED),
            )
        accounts.append(
            (AccountSnapshot(account_id, "EUR", positions=tuple(positions), cash_accounts=cash), orders)
        )
    return market, targets, accounts


def build_multi(n_accounts: int, n_lines: int, seed: int = 11):
    """The multi-currency case (§9): the same book with a CASH instrument per currency,
    cash lines EUR 1 % and USD 1 % (the other weights scaled to 98 %), EUR cash on the
    default account and, for every other account, a USD cash account too."""
    market, targets, accounts = build(n_accounts, n_lines, seed)
    rng = random.Random(seed + 1)  # not build's sequence: its ids would come again
    cash_ids = {c: uuid.UUID(int=rng.getrandbits(128)) for c in CURRENCIES}
    instruments = dict(market.instruments)
    instruments.update({iid: Instrument(iid, InstrumentType.CASH, c) for c, iid in cash_ids.items()})
    market = Market(instruments, market.prices, FX)
    lines = [TargetLine(t.instrument_id, (t.weight * Decimal("0.98")).quantize(Decimal("1e-12"))) for t in targets]
    lines[0] = TargetLine(lines[0].instrument_id, lines[0].weight + Decimal("0.98") - sum(t.weight for t in lines))
    targets = (*lines, TargetLine(cash_ids["EUR"], Decimal("0.01")), TargetLine(cash_ids["USD"], Decimal("0.01")))
    multi = []
    for n, (account, orders) in enumerate(accounts):
        cash = account.cash_accounts
        if n % 2:
            cash = (*cash, CashAccount("USD", Decimal(rng.randint(0, 5_000))))
        multi.append((AccountSnapshot(account.id, "EUR", positions=account.positions, cash_accounts=cash), orders))
    return market, targets, multi


def build_restricted(n_accounts: int, n_lines: int, seed: int = 13):
    """The restrictions case (§11, issue #15): the book of ``build`` with a FIRM list of
    50 NO_HOLD entries on instruments outside the model (sanctioned issuers) for every
    account, and for every tenth account an ACCOUNT list on the model's lines too:
    NO_BUY with a substitute, NO_BUY, NO_SELL and NO_HOLD. Returns (market, targets,
    accounts) with each account's Restrictions object (one per distinct set of lists,
    as book_load builds them)."""
    market, targets, accounts = build(n_accounts, n_lines, seed)
    rng = random.Random(seed + 1)
    instruments, prices = dict(market.instruments), dict(market.prices)
    sanctioned = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(50)]
    for iid in sanctioned:
        instruments[iid] = Instrument(iid, InstrumentType.EQUITY, "EUR", block_size=Decimal(1))
        prices[iid] = Decimal(10)
    substitute = uuid.UUID(int=rng.getrandbits(128))
    instruments[substitute] = Instrument(substitute, InstrumentType.ETF, "EUR", block_size=Decimal(1))
    prices[substitute] = Decimal("25.50")
    market = Market(instruments, prices, FX)
    firm = [Restriction(iid, Rule.NO_HOLD, "Sanctions") for iid in sanctioned]
    lines = [t.instrument_id for t in targets]
    own = [
        Restriction(lines[0], Rule.NO_BUY, "Client ESG"), Restriction(lines[1], Rule.NO_BUY, "Client ESG"),
        Restriction(lines[2], Rule.NO_SELL, "Client ESG"), Restriction(lines[3], Rule.NO_HOLD, "Client ESG"),
    ]
    everyone = Restrictions(firm)
    tenth = Restrictions(firm + own, {lines[0]: (substitute,)})
    return market, targets, [(a, o, tenth if n % 10 == 0 else everyone) for n, (a, o) in enumerate(accounts)]


def run(data, method: Method, prefs: Preferences, repeat: int) -> float:
    """Return the best accounts per CPU second of ``repeat`` passes.

    CPU time of this process, not wall time: other processes on the machine
    then disturb the figure less.
    """
    market, targets, accounts = data
    rebalance(accounts[0][0], targets, market, prefs, method)  # warm up the model cache
    best = 0.0
    for _ in range(repeat):
        start = time.process_time()
        for account, orders, *restrictions in accounts:
            rebalance(account, targets, market, prefs, method, orders, *restrictions)
        best = max(best, len(accounts) / (time.process_time() - start))
    return best


def build_lots(accounts, market, seed: int = 13) -> dict:
    """Three lots per position (§12): a third of the units each, bought 800, 300 and 60
    days before day 740_000 at 70 %, 100 % and 130 % of today's price."""
    rng = random.Random(seed)
    lots = {}
    for account, _ in accounts:
        per = {}
        for p in account.positions:
            price = market.prices[p.instrument_id]
            third = (p.units / 3).quantize(Decimal("0.0001"), "ROUND_DOWN")
            parts = (third, third, p.units - 2 * third) if third > 0 else (p.units,)
            per[(account.id, p.instrument_id)] = tuple(
                (uuid.UUID(int=rng.getrandbits(128)), 740_000 - days, units, (price * f).quantize(Decimal("0.0001")))
                for units, days, f in zip(parts, (800, 300, 60), (Decimal("0.7"), Decimal(1), Decimal("1.3")))
            )
        lots[account.id] = per
    return lots


def ordered(lots: dict) -> dict:
    """The same lots as an engine.tax.AcquiredLots per position (they are built oldest
    first), as executions pass them: a FIFO sell reads only the lots it reaches."""
    from rebalancing.engine.tax import AcquiredLots

    class InOrder(AcquiredLots):
        __slots__ = ("lots",)

        def __init__(self, lots):
            self.lots = lots

        def __iter__(self):
            return iter(self.lots)

        def __len__(self):
            return len(self.lots)

        def __getitem__(self, index):
            return self.lots[index]

    return {account_id: {key: InOrder(rows) for key, rows in per.items()} for account_id, per in lots.items()}


def run_tax(data, lots, prefs: Preferences, tax_prefs, repeat: int) -> float:
    """Accounts per CPU second: rebalance, then the tax-aware step (accounts with sells only)."""
    from rebalancing.engine.tax import TaxData, tax_adjust

    market, targets, accounts = data
    best = 0.0
    for _ in range(repeat):
        start = time.process_time()
        for account, orders in accounts:
            result = rebalance(account, targets, market, prefs, Method.FULL, orders)
            if any(o.side == Side.SELL for o in result.orders):
                tax_adjust(result, market, tax_prefs, TaxData(lots=lots[account.id], on=740_000, base_currency="EUR"))
        best = max(best, len(accounts) / (time.process_time() - start))
    return best


def tax_case(args, prefs: Preferences) -> None:
    from rebalancing.engine.tax import TaxPreferences

    print("tax-aware (3 lots per position, FIFO; the step runs for accounts with sells; lots as tuples, or in "
          "acquisition order as executions pass them), FULL:")
    print(f"{'lines':>5}  {'tax':<22} {'accounts/s':>12} {'of plain':>9}")
    for n_lines in args.lines:
        data = build(args.accounts, n_lines)
        lots = build_lots(data[2], data[0])
        plain = run(data, Method.FULL, prefs, args.repeat)
        print(f"{n_lines:>5}  {'plain':<22} {plain:>12,.0f} {'100 %':>9}")
        for name, tax_prefs, given in (
            ("lots named", TaxPreferences(tax_aware=True), lots),
            ("lots named, in order", TaxPreferences(tax_aware=True), ordered(lots)),
            ("+ budget 0 + no short", TaxPreferences(tax_aware=True, max_realized_gain=Decimal(0),
                                                     avoid_short_term_gains=True), lots),
        ):
            rate = run_tax(data, given, prefs, tax_prefs, args.repeat)
            print(f"{n_lines:>5}  {name:<22} {rate:>12,.0f} {100 * rate / plain:>8.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=20_000, help="accounts per (lines, method) [20000]")
    parser.add_argument("--lines", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--repeat", type=int, default=3, help="passes per row; the best is shown [3]")
    parser.add_argument("--profile", action="store_true", help="cProfile 10-line FULL instead")
    parser.add_argument("--no-multi", action="store_true", help="skip the multi-currency case")
    parser.add_argument("--no-restrictions", action="store_true", help="skip the restrictions case")
    parser.add_argument("--no-tax", action="store_true", help="skip the tax-aware case")
    args = parser.parse_args()
    prefs = Preferences(positive_cash_buffer_pct=Decimal(1), min_trade_amount=Decimal(10))
    if args.profile:
        import cProfile
        import pstats

        data = build(args.accounts, 10)
        cProfile.runctx("run(data, Method.FULL, prefs, 1)", globals(), locals(), "/tmp/engine.prof")
        pstats.Stats("/tmp/engine.prof").sort_stats("tottime").print_stats(15)
        return
    print(f"python {sys.version.split()[0]}, {args.accounts} accounts per row, best of {args.repeat}")
    print(f"{'lines':>5}  {'method':<22} {'accounts/s':>12} {'orders/account':>15}")
    for n_lines in args.lines:
        data = build(args.accounts, n_lines)
        for method in Method:
            rate = run(data, method, prefs, args.repeat)
            market, targets, accounts = data
            orders = sum(len(rebalance(a, targets, market, prefs, method, o).orders) for a, o in accounts[:500])
            print(f"{n_lines:>5}  {method.value:<22} {rate:>12,.0f} {orders / min(500, len(accounts)):>15.1f}")
    if not args.no_restrictions:
        print("restrictions (a FIRM list of 50 entries outside the model on every account, an ACCOUNT list on four "
              "model lines on every tenth), FULL:")
        print(f"{'lines':>5}  {'book':<22} {'accounts/s':>12} {'ratio':>15}")
        for n_lines in args.lines:
            restricted = build_restricted(args.accounts, n_lines)
            plain = (restricted[0], restricted[1], [(a, o) for a, o, _ in restricted[2]])
            rates = [run(plain, Method.FULL, prefs, args.repeat), run(restricted, Method.FULL, prefs, args.repeat)]
            print(f"{n_lines:>5}  {'unrestricted':<22} {rates[0]:>12,.0f}")
            print(f"{n_lines:>5}  {'restricted':<22} {rates[1]:>12,.0f} {100 * rates[1] / rates[0]:>14.1f}%")
    if not args.no_tax:
        tax_case(args, prefs)
    if args.no_multi:
        return
    print("multi-currency (EUR 1 % + USD 1 % cash lines, EUR and USD cash), FULL:")
    print(f"{'lines':>5}  {'fx_mode':<22} {'accounts/s':>12} {'orders/account':>15} {'FX/account':>11}")
    for n_lines in args.lines:
        data = build_multi(args.accounts, n_lines)
        for name, mode in (("AUTO", Preferences(fx_mode=FxMode.AUTO)), ("EXPLICIT", Preferences(fx_mode=FxMode.EXPLICIT)),
                           ("EXPLICIT + repatriate", Preferences(fx_mode=FxMode.EXPLICIT, fx_repatriate=True))):
            p = replace(prefs, fx_mode=mode.fx_mode, fx_repatriate=mode.fx_repatriate)
            rate = run(data, Method.FULL, p, args.repeat)
            market, targets, accounts = data
            sample = [rebalance(a, targets, market, p, Method.FULL, o) for a, o in accounts[:500]]
            orders = sum(len(r.orders) for r in sample) / len(sample)
            fx = sum(1 for r in sample for o in r.orders if o.transaction_type == "FX") / len(sample)
            print(f"{n_lines:>5}  {name:<22} {rate:>12,.0f} {orders:>15.1f} {fx:>11.2f}")


if __name__ == "__main__":
    main()
