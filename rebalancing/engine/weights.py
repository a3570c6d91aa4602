"""Target weights on a date: STATIC, FLOATING and PERIODICAL (§2.1).

The database side resolves prices: call ``drift_start`` to learn t0 (None for
STATIC), load the latest prices at or before t0 and at or before D, then call
``floating_weights`` or ``target_lines_on``.

    raw_i = w_i × P_i(D) / P_i(t0)        floating_i = raw_i / Σ_j raw_j

Cash lines have a constant price (their raw is their weight; FX moves are not
drift, as prices are in each instrument's own currency). Futures lines drift by
their own price, but the sum Σ_j runs over the non-futures lines only: the
non-futures keep summing to 1 and a future keeps its leverage share of the
drifted portfolio value (futures P&L is ignored). Results are quantized to 12
decimal places and the rounding residue is put on the largest non-futures
weight, so the non-futures weights sum exactly to what they summed to before.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal, localcontext

from .precision import ENGINE_CONTEXT, ONE, Q_WEIGHT, ZERO
from .schedule import reset_date_on_or_before
from .types import InvalidInputError, MissingPriceError, PeriodType, TargetLine, WeightType, id_key


def drift_start(
    weight_type: WeightType,
    effective_from: date,
    d: date,
    period_type: PeriodType | None = None,
    period_count: int | None = None,
) -> date | None:
    """Return t0, the date the weights drift from on ``d`` (None for STATIC).

    FLOATING → ``effective_from``; PERIODICAL → the last reset at or before ``d``.
    Raises ``InvalidInputError`` when ``d`` is before ``effective_from`` or a
    PERIODICAL version lacks its period.
    """
    if weight_type == WeightType.STATIC:
        return None
    if d < effective_from:
        raise InvalidInputError(f"{d.isoformat()} is before the version's effective_from {effective_from.isoformat()}")
    if weight_type == WeightType.FLOATING:
        return effective_from
    if weight_type == WeightType.PERIODICAL:
        if period_type is None or period_count is None:
            raise InvalidInputError("a PERIODICAL version needs a period type and count")
        return reset_date_on_or_before(effective_from, period_type, period_count, d)
    raise InvalidInputError(f"unknown weight type {weight_type!r}")


def floating_weights(
    weights: Mapping[Hashable, Decimal],
    prices_at_t0: Mapping[Hashable, Decimal | None],
    prices_at_d: Mapping[Hashable, Decimal | None],
    *,
    futures: Collection[Hashable] = frozenset(),
    cash: Collection[Hashable] = frozenset(),
    t0: date | None = None,
    d: date | None = None,
    labels: Mapping[Hashable, str] | None = None,
) -> dict[Hashable, Decimal]:
    """Return the weights drifted from t0 to D, 12 dp.

    ``futures`` and ``cash`` name the futures and cash (currency) lines; cash
    lines need no prices. ``t0``, ``d`` and ``labels`` (id → ISIN) only make
    the ``MissingPriceError`` message readable.
    """
    with localcontext(ENGINE_CONTEXT):
        keys = sorted(weights, key=id_key)
        raw: dict[Hashable, Decimal] = {}
        for iid in keys:
            w = weights[iid]
            if w < ZERO:
                raise InvalidInputError(f"negative weight for {iid}")
            if iid in cash:
                raw[iid] = w
                continue
            label = labels.get(iid, str(iid)) if labels else str(iid)
            p0 = prices_at_t0.get(iid)
            if p0 is None:
                raise MissingPriceError(label, t0)
            pd = prices_at_d.get(iid)
            if pd is None:
                raise MissingPriceError(label, d)
            if p0 <= ZERO or pd <= ZERO:
                raise InvalidInputError(f"price for {label} is not positive")
            raw[iid] = w * pd / p0
        base = [iid for iid in keys if iid not in futures]
        total_raw = sum((raw[i] for i in base), ZERO)
        total_w = sum((weights[i] for i in base), ZERO)
        if total_raw <= ZERO:
            raise InvalidInputError("the non-futures weights sum to zero")
        scale = total_w / total_raw
        out = {iid: (raw[iid] * scale).quantize(Q_WEIGHT) for iid in keys}
        if base:
            residue = total_w.quantize(Q_WEIGHT) - sum((out[i] for i in base), ZERO)
            if residue:
                # ``base`` is in id order and max() keeps the first of equals.
                largest = max(base, key=out.__getitem__)
                out[largest] += residue
        return out


def target_lines_on(
    lines: Sequence[TargetLine],
    weight_type: WeightType,
    *,
    prices_at_t0: Mapping[Hashable, Decimal | None] | None = None,
    prices_at_d: Mapping[Hashable, Decimal | None] | None = None,
    futures: Collection[Hashable] = frozenset(),
    cash: Collection[Hashable] = frozenset(),
    t0: date | None = None,
    d: date | None = None,
    labels: Mapping[Hashable, str] | None = None,
) -> tuple[TargetLine, ...]:
    """Return the version's lines with their weights on D.

    STATIC returns ``lines`` unchanged. FLOATING/PERIODICAL drift the weights
    (see ``floating_weights``; on a reset date pass the same prices twice, or
    skip the call). The min/max band moves with its weight (same distance),
    clamped to [0, 1].
    """
    if weight_type == WeightType.STATIC:
        return tuple(lines)
    if prices_at_t0 is None or prices_at_d is None:
        raise InvalidInputError("floating weights need prices at t0 and at D")
    drifted = floating_weights(
        {line.instrument_id: line.weight for line in lines},
        prices_at_t0,
        prices_at_d,
        futures=futures,
        cash=cash,
        t0=t0,
        d=d,
        labels=labels,
    )
    out = []
    with localcontext(ENGINE_CONTEXT):
        for line in lines:
            w = drifted[line.instrument_id]
            delta = w - line.weight
            lo = line.min_weight
            hi = line.max_weight
            if lo is not None:
                lo = min(max(lo + delta, ZERO), w)
            if hi is not None:
                hi = max(min(hi + delta, ONE), w)
            out.append(replace(line, weight=w, min_weight=lo, max_weight=hi))
    return tuple(out)
