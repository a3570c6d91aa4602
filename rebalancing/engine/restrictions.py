"""Restrictions and substitutes applied to one account group (§11).

`restrict` runs after the group has been built against the plain model. It

1. redirects the weight of every model line the account may not buy (NO_BUY or
   NO_HOLD): a NO_BUY (or frozen) line keeps the weight its current holding covers,
   at most its target (the position "may stay"); a NO_HOLD line keeps nothing. The
   rest goes to the first substitute the account may buy that is tradable and has a
   price, else per ``Preferences.restricted_weight_to``: CASH (the cash target
   grows) or PRO_RATA (the model's other buyable, tradable non-cash non-future
   lines grow in proportion to their weights; with none, CASH). The weights still
   add up exactly as before;
2. rebuilds the group against that model when anything moved (only then);
3. marks the lines: NO_SELL positions are held like locked ones (HELD when the
   rebalance would have sold them), NO_HOLD positions are sold whole in every
   method (SOLD), and no line that may not be bought is ever bought.

What depends only on the restrictions and the model (which target lines are
blocked, which prepared lines carry a rule) is cached by object identity, so an
account whose restrictions touch nothing it holds or targets costs one cached
look-up, not one per line. An adjusted model reuses the plain model's prepared
lines, copying only the ones whose target changed.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

from .group import build_group, prepare_model
from .precision import DUST, ENGINE_CONTEXT, ONE, ZERO
from .types import (
    Adjustment,
    Effect,
    InstrumentType,
    RestrictedWeightTo,
    Restrictions,
    Rule,
    TargetLine,
    id_key,
)

_NO_BUY = Rule.NO_BUY
_NO_SELL = Rule.NO_SELL
_NO_HOLD = Rule.NO_HOLD
_CASH = InstrumentType.CASH
_FUTURE = InstrumentType.FUTURE

_BLOCKED: dict = {}
_CACHE_MAX = 256


def blocked_lines(restrictions: Restrictions, targets) -> tuple:
    """The target lines the account may not buy, as (TargetLine, rules), by id; cached."""
    key = (id(restrictions), id(targets))
    hit = _BLOCKED.get(key)
    if hit is not None and hit[0] is restrictions and hit[1] is targets:
        return hit[2]
    rules = restrictions.rules
    found = []
    for t in targets:
        per = rules.get(t.instrument_id)
        if per is not None and (_NO_BUY in per or _NO_HOLD in per):
            found.append((t, per))
    found.sort(key=lambda item: id_key(item[0].instrument_id))
    found = tuple(found)
    if type(targets) is tuple:
        if len(_BLOCKED) >= _CACHE_MAX:
            _BLOCKED.clear()
        _BLOCKED[key] = (restrictions, targets, found)  # holding both keeps their ids
    return found


def _buyable(restrictions: Restrictions, market, iid) -> bool:
    """May the account buy ``iid``: not restricted, known, tradable, priced."""
    if not restrictions.may_buy(iid):
        return False
    inst = market.instruments.get(iid)
    if inst is None or not inst.tradable:
        return False
    if inst.type == _CASH:
        return True
    price = market.prices.get(iid)
    return price is not None and price > ZERO


def _shift(t_min, t_max, amount):
    """A band moved up by ``amount`` with its target (max capped at 1)."""
    low = t_min + amount if t_min is not None else None
    high = t_max + amount if t_max is not None else None
    if high is not None and high > ONE:
        high = ONE
    return low, high


def _adjusted_model(model, new_targets: tuple, extra_cash: Decimal):
    """The prepared model of the adjusted targets: the plain ``model``'s prepared lines
    are reused for the lines the restrictions left as they were, so only the changed
    lines are prepared again (most restricted accounts keep a share of their own, so
    few adjusted models are alike: no cache)."""
    # A list is never cached by prepare_model: this object is ours to change.
    adjusted = prepare_model(model.market, list(new_targets), model.base, model.decimals, reuse=model)
    if extra_cash:
        adjusted.w_cash += extra_cash
    return adjusted


def restricted_targets(targets, market, prefs, restrictions: Restrictions, held: dict | None = None) -> tuple:
    """The public form of ``_restricted_targets``, under ENGINE_CONTEXT: the caller's
    context (28 digits by default) would round the shares and break their exact sum."""
    with localcontext(ENGINE_CONTEXT):
        return _restricted_targets(targets, market, prefs, restrictions, held)


def _restricted_targets(targets, market, prefs, restrictions: Restrictions, held: dict | None = None) -> tuple:
    """The target lines once the lines the account may not buy are redirected (step 1).

    ``held``: instrument id → the share of the account's total value it holds now
    (a NO_BUY or frozen line keeps up to that much). Returns (target lines by id,
    extra cash target weight, adjustments), or None when nothing changes. The new
    weights plus the extra cash weight add up exactly to the old ones (a future's
    weight, which is exposure, is dropped when no substitute fits).
    """
    blocked = blocked_lines(restrictions, targets)
    if not blocked:
        return None
    held = held or {}
    adjustments = []
    # [weight, min, max, the original line while unchanged]: an unchanged line keeps its
    # TargetLine object, so the adjusted model reuses the plain model's prepared line.
    lines = {t.instrument_id: [t.weight, t.min_weight, t.max_weight, t] for t in targets}
    extra_cash = ZERO
    blocked_ids = {t.instrument_id for t, _ in blocked}
    changed = False
    for t, per in blocked:
        iid = t.instrument_id
        w = t.weight
        frozen = _NO_SELL in per
        rule = _NO_HOLD if _NO_HOLD in per and not frozen else (_NO_BUY if _NO_BUY in per else _NO_HOLD)
        keep = ZERO
        if frozen or _NO_HOLD not in per:
            share = held.get(iid, ZERO)
            keep = share if share < w else w
        moved = w - keep
        if moved <= ZERO:
            continue  # the holding covers the target: nothing to buy, nothing changes
        changed = True
        line = lines[iid]
        if keep > ZERO:
            line[0], line[1], line[2], line[3] = keep, None, None, None
        else:
            del lines[iid]
        future = market.instruments[iid].type == _FUTURE
        name = per[rule]
        substitute = next((s for s in restrictions.substitutes.get(iid, ()) if _buyable(restrictions, market, s)), None)
        if substitute is not None:
            target = lines.get(substitute)
            if target is None:
                band = (t.min_weight, t.max_weight) if not keep else (None, None)
                lines[substitute] = [moved, *band, None]
            else:
                target[0] += moved
                target[1], target[2] = _shift(target[1], target[2], moved)
                target[3] = None
            adjustments.append(Adjustment(iid, rule, Effect.SUBSTITUTED, name, substitute))
            continue
        receivers = []
        if prefs.restricted_weight_to == RestrictedWeightTo.PRO_RATA and not future:
            for other in targets:
                oid = other.instrument_id
                if oid in blocked_ids or oid == iid:
                    continue
                inst = market.instruments[oid]
                if inst.type == _CASH or inst.type == _FUTURE or not inst.tradable:
                    continue
                receivers.append(other)
        if receivers:
            receivers.sort(key=lambda r: id_key(r.instrument_id))
            weights = sum((r.weight for r in receivers), ZERO)
            left = moved
            for n, r in enumerate(receivers):
                # The last one takes what is left: the weights still add up exactly.
                share = left if n == len(receivers) - 1 else moved * r.weight / weights
                left -= share
                target = lines[r.instrument_id]
                target[0] += share
                target[1], target[2] = _shift(target[1], target[2], share)
                target[3] = None
            adjustments.append(Adjustment(iid, rule, Effect.PRO_RATA, name))
        else:
            if not future:  # a future's weight is exposure, not value: it is dropped
                extra_cash += moved
            adjustments.append(Adjustment(iid, rule, Effect.TO_CASH, name))
    if not changed:
        return None
    new_targets = tuple(
        sorted(
            (line[3] if line[3] is not None else TargetLine(iid, line[0], line[1], line[2]) for iid, line in lines.items()),
            key=lambda t: id_key(t.instrument_id),
        )
    )
    return new_targets, extra_cash, tuple(adjustments)


def _line_rules(restrictions: Restrictions, model):
    """The rules of each prepared line of ``model`` (``model.lines`` order; None where
    none applies), or None when no rule touches any of them."""
    rules = restrictions.rules
    found = tuple(rules.get(info.iid) for info in model.lines)
    return found if any(per is not None for per in found) else None


_PLANS: dict = {}


def _plan(restrictions: Restrictions, targets, model) -> tuple:
    """(blocked_lines, _line_rules) of a plain model, in one cached look-up per account."""
    key = (id(restrictions), id(model))
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is restrictions and hit[1] is model and hit[2] is targets:
        return hit[3]
    plan = (blocked_lines(restrictions, targets), _line_rules(restrictions, model))
    if type(targets) is tuple:
        if len(_PLANS) >= _CACHE_MAX:
            _PLANS.clear()
        _PLANS[key] = (restrictions, model, targets, plan)  # holding them keeps their ids
    return plan


def restrict(account, targets, market, prefs, model, g, restrictions: Restrictions, build_args: tuple):
    """Apply ``restrictions`` to the built group ``g``; return (model, group, adjustments).

    ``build_args``: (scope, outstanding orders, apply_orders, futures fee) to rebuild
    the group against the adjusted model.
    """
    rules = restrictions.rules
    blocked, marks = _plan(restrictions, targets, model)
    lines = g.lines
    n = len(model.lines)
    if not blocked and marks is None and len(lines) == n:
        return model, g, ()  # the usual case: no rule on anything the account holds or targets
    adjustments: list = []
    adjusted = False
    if blocked:
        total = g.total
        held = {}
        if total > ZERO:
            # The group's first lines are the model's, in its order (group.build_group).
            index, lines = model.index, g.lines
            for t, _ in blocked:
                i = index.get(t.instrument_id)  # None: a cash line (held as cash, not as a line)
                if i is not None and lines[i].value:
                    held[t.instrument_id] = lines[i].value / total
        redirected = _restricted_targets(targets, market, prefs, restrictions, held)
        if redirected is not None:
            new_targets, extra_cash, done = redirected
            adjustments.extend(done)
            model = _adjusted_model(model, new_targets, extra_cash)
            g = build_group(account, model, *build_args)
            adjusted = True

    total = g.total
    if adjusted:
        lines = g.lines
        n = len(model.lines)
        marks = _line_rules(restrictions, model)
    if marks is not None:
        for ln, per in zip(lines, marks):
            if per is not None:
                _mark(ln, per, total, adjustments)
    for ln in lines[n:]:  # holdings outside the model
        per = rules.get(ln.info.iid)
        if per is not None:
            _mark(ln, per, total, adjustments)
    return model, g, tuple(adjustments)


def _mark(ln, per, total, adjustments: list) -> None:
    """Step 3 for one line: never bought, held (NO_SELL) or sold whole (NO_HOLD)."""
    info = ln.info
    if _NO_BUY in per or _NO_HOLD in per:
        ln.no_buy = True
    if _NO_SELL in per:
        if ln.sellable > DUST:
            over = not info.w or ln.value > info.w * total + DUST or (_NO_HOLD in per)
            if over and info.tradable:
                adjustments.append(Adjustment(info.iid, _NO_SELL, Effect.HELD, per[_NO_SELL]))
            ln.locked_units = ln.units
            ln.holdings = ()
            ln.sellable = ZERO
    elif _NO_HOLD in per and ln.sellable > DUST and info.tradable:
        ln.force_whole = True
        adjustments.append(Adjustment(info.iid, _NO_HOLD, Effect.SOLD, per[_NO_HOLD]))


__all__ = ["blocked_lines", "restrict", "restricted_targets"]
