"""The `data` of each event type, built from the changed rows (docs/webhooks.md lists them).

Called by `events.record` only when a subscription wants the event, so the queries
they make (noted on each) cost nothing otherwise. Decimals are strings, as in the API.
"""

from decimal import Decimal


def _text(value):
    return None if value is None else str(value)


def _time(value):
    return None if value is None else value.isoformat()


def allocation_payload(allocation) -> dict:
    """The allocation and its current version's lines (one query for the lines)."""
    version = allocation.current_version
    lines = version.lines.select_related("instrument").order_by("id") if version else []
    return {
        "allocation_id": str(allocation.pk),
        "name": allocation.name,
        "base_currency": allocation.base_currency,
        "version": version.version if version else None,
        "effective_from": _text(version.effective_from) if version else None,
        "weight_type": version.weight_type if version else None,
        "allocation": [
            {
                "instrument_id": str(line.instrument_id),
                "isin": line.instrument.isin,
                "weight": _text(line.weight),
                "min_weight": _text(line.min_weight),
                "max_weight": _text(line.max_weight),
            }
            for line in lines
        ],
        "updated_at": _time(allocation.updated_at),
    }


def configuration_payload(configuration) -> dict:
    """No query."""
    return {
        "account_id": str(configuration.account_id),
        "allocation_id": str(configuration.allocation_id),
        "created_at": _time(configuration.created_at),
        "updated_at": _time(configuration.updated_at),
    }


def execution_payload(execution_id) -> dict:
    """The execution as it is now in this transaction (one query)."""
    from rebalancing.models import Execution

    execution = Execution.objects.get(pk=execution_id)
    return {
        "execution_id": str(execution.pk),
        "status": execution.status,
        "trigger": execution.trigger,
        "method": execution.method,
        "rebalance_date": _text(execution.rebalance_date),
        "allocation_id": _text(execution.allocation_id),
        "total": execution.total,
        "done": execution.done,
        "started_at": _time(execution.started_at),
        "finished_at": _time(execution.finished_at),
    }


def trade_order_payload(order, *, previous_status: str) -> dict:
    """No query."""
    return {
        "order_id": str(order.pk),
        "account_id": str(order.account_id),
        "instrument_id": str(order.instrument_id),
        "side": order.side,
        "status": order.status,
        "previous_status": previous_status,
        "units": _text(order.units),
        "executed_units": _text(order.executed_units),
        "executed_amount": _text(order.executed_amount),
        "currency": order.currency,
        "execution_id": _text(order.execution_id),
        "portfolio_order_id": _text(order.portfolio_order_id),
        "updated_at": _time(order.updated_at),
    }


def portfolio_order_created_payload(portfolio_order, trade_orders) -> dict:
    """No query: the portfolio order and the trade orders it was split into; the amount
    as the API shows it ("400", not "400.00000000")."""
    return {
        "portfolio_order_id": str(portfolio_order.pk),
        "account_id": str(portfolio_order.account_id),
        "side": portfolio_order.side,
        "cash_amount": format(Decimal(portfolio_order.cash_amount).normalize(), "f"),
        "currency": portfolio_order.currency,
        "status": portfolio_order.status,
        "initiation": portfolio_order.initiation,
        "user_id": portfolio_order.user_id,
        "trade_order_ids": [str(order.pk) for order in trade_orders],
        "created_at": _time(portfolio_order.created_at),
    }


def portfolio_order_payload(portfolio_order, *, status: str, previous_status: str) -> dict:
    """No query."""
    return {
        "portfolio_order_id": str(portfolio_order.pk),
        "account_id": str(portfolio_order.account_id),
        "side": portfolio_order.side,
        "cash_amount": _text(portfolio_order.cash_amount),
        "currency": portfolio_order.currency,
        "status": status,
        "previous_status": previous_status,
    }
