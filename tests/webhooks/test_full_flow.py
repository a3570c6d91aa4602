"""A partner receives the whole life of a rebalance, signed and in order: allocation
created → execution held for approval → approved by a second person → an order
settled into the holdings; the first delivery fails twice and is retried."""

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portfolios import services as portfolio_services
from portfolios.models import CashAccount, Position
from rebalancing.models import ExecutionStatus, TradeOrder, TradeOrderStatus
from rebalancing.services import execution_create, preferences_replace, trade_order_transition
from rebalancing.services.approval import execution_approve
from tests.factories import AccountFactory, CashAccountFactory, InstrumentFactory, PriceFactory, make_allocation
from tests.rebalancing.executions.conftest import run_chunks
from webhooks import services, signing
from webhooks.models import Delivery, DeliveryAttempt, DeliveryStatus

pytestmark = pytest.mark.django_db
D = date(2026, 3, 2)
S = TradeOrderStatus


def test_a_partner_receives_the_flow_from_allocation_to_settlement_signed_with_retries(
    subscribe, receiver, user_with_perms
):
    requester = user_with_perms("rebalancing.execute_rebalance", username="requester")
    approver = user_with_perms("rebalancing.approve_execution", username="approver")
    subscription = subscribe(url=receiver.url)

    alpha, beta = InstrumentFactory(name="Alpha ETF"), InstrumentFactory(name="Beta ETF")
    for instrument in (alpha, beta):
        PriceFactory(instrument=instrument, effective_at=D, value=Decimal("10"))
    allocation = make_allocation({alpha: "0.5", beta: "0.5"}, effective_from=date(2026, 1, 1))
    account = AccountFactory()
    CashAccountFactory(account=account, balance=Decimal("1000"))
    portfolio_services.configuration_create(account=account, allocation=allocation)
    preferences_replace(values={"approval_order_count": 1})  # two orders need a second person

    execution = execution_create(account_ids=[str(account.pk)], user=requester, rebalance_date=D, method="FULL")
    run_chunks(execution)
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.AWAITING_APPROVAL
    execution = execution_approve(execution=execution, user=approver, comment="within mandate")
    assert execution.status == ExecutionStatus.COMPLETED

    order = TradeOrder.objects.get(execution=execution, instrument=alpha)
    assert (order.side, order.status, order.units) == ("BUY", S.OPEN, Decimal(50))
    for status in (S.ACCEPTED, S.EXECUTABLE, S.SENT_TO_EXECUTION, S.IN_EXECUTION):
        trade_order_transition(order=order, status=status, user=approver)
    trade_order_transition(order=order, status=S.EXECUTED_IN_MARKET, executed_units=Decimal(50),
                           executed_price=Decimal("10"), user=approver)
    trade_order_transition(order=order, status=S.SETTLED_IN_MARKET, user=approver)
    trade_order_transition(order=order, status=S.SETTLED, user=approver)
    assert Position.objects.get(account=account, instrument=alpha).units == Decimal(50)
    assert CashAccount.objects.get(account=account).balance == Decimal(500)

    # The partner's endpoint fails twice; the sender backs off and tries the same event again.
    receiver.statuses = [500, 500]
    now = timezone.now() + timedelta(seconds=1)
    for _ in range(10):
        outcome = services.deliveries_send(subscription_id=subscription.pk, now=now)
        if outcome.next_due is None:
            break
        now = outcome.next_due + timedelta(seconds=1)
    assert not Delivery.objects.exclude(status=DeliveryStatus.DELIVERED).exists()

    bodies = []
    for request in receiver.requests:  # every request, the failed ones too, carries a valid signature
        headers = request["headers"]
        assert signing.verify(
            secret=subscription.secret, header=headers["Ballast-Signature"], timestamp=headers["Ballast-Timestamp"],
            body=request["body"], now=int(headers["Ballast-Timestamp"]),
        )
        assert not signing.verify(
            secret=subscription.secret, header=headers["Ballast-Signature"], timestamp=headers["Ballast-Timestamp"],
            body=request["body"] + b" ",  # a byte added in transit
            now=int(headers["Ballast-Timestamp"]),
        )
        bodies.append(json.loads(request["body"]))
    assert [r["status"] for r in receiver.requests[:3]] == [500, 500, 200]
    assert bodies[0]["id"] == bodies[1]["id"] == bodies[2]["id"] and bodies[0]["type"] == "allocation.created"
    delivered = bodies[2:]
    assert len({b["id"] for b in delivered}) == len(delivered)  # each event once after the retries

    executions = [b["data"]["status"] for b in delivered if b["type"] == "execution.status_changed"]
    assert executions[0] == "PENDING" and executions[-2:] == ["AWAITING_APPROVAL", "COMPLETED"]
    orders = [b["data"]["status"] for b in delivered
              if b["type"] == "trade_order.status_changed" and b["data"]["order_id"] == str(order.pk)]
    assert orders == ["ACCEPTED", "EXECUTABLE", "SENT_TO_EXECUTION", "IN_EXECUTION", "EXECUTED_IN_MARKET",
                      "SETTLED_IN_MARKET", "SETTLED"]
    types = [b["type"] for b in delivered]
    assert types.index("allocation.created") < types.index("configuration.created") \
        < types.index("execution.status_changed") < types.index("trade_order.status_changed")

    head = Delivery.objects.order_by("id").first()
    attempts = list(DeliveryAttempt.objects.filter(delivery=head).order_by("at"))
    assert [a.status_code for a in attempts] == [500, 500, 200]
