"""The outbox, signed delivery, retries with backoff, giving up, order and resend."""

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from portfolios import services as portfolio_services
from tests.factories import AccountFactory, make_allocation
from webhooks import events, services, signing
from webhooks.models import Delivery, DeliveryAttempt, DeliveryStatus, Event, Subscription

pytestmark = pytest.mark.django_db


def later(**delta):
    return timezone.now() + timedelta(seconds=1, **delta)


def test_nobody_subscribed_records_nothing_and_costs_no_query(django_assert_num_queries):
    Subscription.objects.count()  # warm nothing but the connection
    events._active_subscriptions()
    with django_assert_num_queries(0):
        assert events.record("allocation.created", lambda: pytest.fail("payload built for nobody")) is None
    assert not Event.objects.exists()


def test_an_event_goes_to_each_active_subscription_that_wants_it(subscribe):
    everything = subscribe()
    allocations = subscribe(event_types=["allocation.created", "allocation.updated"])
    subscribe(event_types=["trade_order.status_changed"])
    subscribe(active=False)
    make_allocation()
    [event] = Event.objects.all()
    assert event.type == "allocation.created"
    assert {d.subscription_id for d in event.deliveries.all()} == {everything.pk, allocations.pk}
    assert set(event.deliveries.values_list("status", flat=True)) == {DeliveryStatus.PENDING}


def test_a_rolled_back_change_leaves_no_event(subscribe):
    subscribe()
    with pytest.raises(RuntimeError), transaction.atomic():
        make_allocation()
        assert Event.objects.count() == 1  # recorded inside the transaction ...
        raise RuntimeError("the change fails after the event was recorded")
    assert not Event.objects.exists() and not Delivery.objects.exists()  # ... and gone with it


def test_a_refused_change_records_nothing(subscribe):
    subscribe()
    with pytest.raises(Exception):
        make_allocation(weights={})  # no lines: InvalidInput
    assert not Event.objects.exists()


def test_a_new_subscription_is_seen_at_once_despite_the_cache(subscribe):
    events._active_subscriptions()  # cached: nobody
    subscription = subscribe(event_types=["allocation.created"])
    make_allocation()
    assert Delivery.objects.get().subscription == subscription


@pytest.mark.django_db(transaction=True)
def test_the_send_is_enqueued_only_after_commit(subscribe, monkeypatch):
    sent = []
    monkeypatch.setattr(events, "enqueue", lambda ids: sent.append(list(ids)))
    subscription = subscribe()
    with transaction.atomic():
        make_allocation()
        assert sent == []
    assert sent == [[subscription.pk]]


def _verified(request, secret):
    headers = request["headers"]
    assert headers["Content-Type"] == "application/json"
    body = json.loads(request["body"])
    assert headers["Ballast-Event-Id"] == body["id"]
    assert headers["Ballast-Signature"].startswith("v1=")
    assert signing.verify(
        secret=secret, header=headers["Ballast-Signature"], timestamp=headers["Ballast-Timestamp"],
        body=request["body"], now=int(headers["Ballast-Timestamp"]),
    )
    return body


def test_a_flow_is_delivered_signed_in_order_with_retries(subscribe, receiver):
    from rebalancing.services import execution_cancel, execution_create

    subscription = subscribe(url=receiver.url)
    allocation = make_allocation(name="Growth")
    lines = [portfolio_services.LineInput(instrument_id=str(line.instrument_id), weight=line.weight)
             for line in allocation.current_version.lines.all()]
    portfolio_services.allocation_update(
        allocation=allocation, data=portfolio_services.AllocationInput(lines=lines, name="Growth II")
    )
    account = AccountFactory()
    portfolio_services.configuration_create(account=account, allocation=allocation)
    execution = execution_create(account_ids=[account.pk])
    execution_cancel(execution=execution)

    receiver.statuses = [500, 500]
    t0 = later()
    first = services.deliveries_send(subscription_id=subscription.pk, now=t0)
    assert (first.sent, first.delivered) == (1, 0) and first.next_due > t0
    assert first.next_due <= t0 + timedelta(seconds=36)  # 30 s, jittered by at most 20 %
    second = services.deliveries_send(subscription_id=subscription.pk, now=t0 + timedelta(seconds=10))
    assert second.sent == 0 and second.next_due == first.next_due  # not before its time
    services.deliveries_send(subscription_id=subscription.pk, now=t0 + timedelta(minutes=1))
    done = services.deliveries_send(subscription_id=subscription.pk, now=t0 + timedelta(minutes=5))
    assert done.delivered == 5 and done.next_due is None

    bodies = [_verified(r, subscription.secret) for r in receiver.requests]
    assert [r["status"] for r in receiver.requests] == [500, 500] + [200] * 5
    assert bodies[0]["id"] == bodies[1]["id"] == bodies[2]["id"]  # the same event, retried
    assert [b["type"] for b in bodies[2:]] == [
        "allocation.created", "allocation.updated", "configuration.created",
        "execution.status_changed", "execution.status_changed",
    ]
    assert bodies[2]["data"]["name"] == "Growth" and bodies[3]["data"]["name"] == "Growth II"
    assert bodies[3]["data"]["version"] == 2
    assert bodies[4]["data"] == {
        "account_id": str(account.pk), "allocation_id": str(allocation.pk),
        "created_at": bodies[4]["data"]["created_at"], "updated_at": bodies[4]["data"]["updated_at"],
    }
    assert [b["data"]["status"] for b in bodies[5:]] == ["PENDING", "CANCELLED"]
    assert bodies[5]["data"]["execution_id"] == str(execution.pk)
    assert set(bodies[2]) == {"id", "type", "created_at", "data"}

    head = Delivery.objects.order_by("id").first()
    assert head.status == DeliveryStatus.DELIVERED and head.attempts == 3
    attempts = list(DeliveryAttempt.objects.filter(delivery=head).order_by("at"))
    assert [a.status_code for a in attempts] == [500, 500, 200]
    assert "500" in attempts[0].error and attempts[2].error == ""
    assert all(a.latency_ms >= 0 for a in attempts)
    assert not Delivery.objects.exclude(status=DeliveryStatus.DELIVERED).exists()


def test_trade_and_portfolio_order_status_changes_are_events(subscribe):
    from rebalancing.models import PortfolioOrder, TradeOrder
    from rebalancing.services import trade_order_transition
    from tests.factories import InstrumentFactory

    subscribe(event_types=["trade_order.status_changed", "portfolio_order.status_changed"])
    account = AccountFactory()
    portfolio_order = PortfolioOrder.objects.create(account=account, side="BUY", cash_amount=100, currency="EUR")
    order = TradeOrder.objects.create(
        account=account, instrument=InstrumentFactory(), side="BUY", transaction_type="BUY", units=1, unit_price=10,
        trade_amount=10, currency="EUR", execution_method="UNITS", portfolio_order=portfolio_order,
    )
    trade_order_transition(order=order, status="ACCEPTED")
    [trade, portfolio] = Event.objects.order_by("created_at", "deliveries__id")
    assert trade.type == "trade_order.status_changed"
    assert (trade.payload["status"], trade.payload["previous_status"]) == ("ACCEPTED", "OPEN")
    assert portfolio.type == "portfolio_order.status_changed"
    assert (portfolio.payload["status"], portfolio.payload["previous_status"]) == ("IN_PROGRESS", "OPEN")


def test_after_24_hours_of_failures_a_delivery_fails_and_the_next_goes(subscribe, receiver):
    subscription = subscribe(url=receiver.url)
    make_allocation()
    make_allocation()
    receiver.statuses = [503] * 50
    t0 = later()
    moment = t0
    while moment < t0 + timedelta(hours=23):
        outcome = services.deliveries_send(subscription_id=subscription.pk, now=moment)
        assert outcome.failed == 0
        assert outcome.next_due - moment <= timedelta(hours=1)  # the backoff is capped
        moment = outcome.next_due
    head, second = Delivery.objects.order_by("id")
    assert head.status == DeliveryStatus.PENDING and second.attempts == 0  # the second waits its turn
    receiver.statuses = [503]
    outcome = services.deliveries_send(subscription_id=subscription.pk, now=t0 + timedelta(hours=24, minutes=5))
    assert outcome.failed == 1 and outcome.delivered == 1
    head.refresh_from_db()
    second.refresh_from_db()
    assert head.status == DeliveryStatus.FAILED and head.attempts == head.attempt_log.count() > 10
    assert second.status == DeliveryStatus.DELIVERED


def test_the_backoff_doubles_up_to_an_hour():
    for attempts, base in [(1, 30), (2, 60), (3, 120), (7, 1920), (8, 3600), (20, 3600)]:
        delay = services.retry_delay(attempts).total_seconds()
        assert base * 0.8 <= delay <= min(base * 1.2, 3600)


def test_one_sender_per_subscription(subscribe, receiver):
    subscription = subscribe(url=receiver.url)
    make_allocation()
    now = later()
    held = services._claim(subscription.pk, now)
    assert held is not None
    assert services.deliveries_send(subscription_id=subscription.pk, now=now).claimed is False
    assert receiver.requests == []
    # A dead sender's claim lapses.
    assert services.deliveries_send(subscription_id=subscription.pk, now=now + services.LEASE * 2).delivered == 1


def test_an_inactive_subscription_is_not_sent_to(subscribe, receiver):
    subscription = subscribe(url=receiver.url)
    make_allocation()
    services.subscription_update(subscription=subscription, active=False)
    assert services.deliveries_send(subscription_id=subscription.pk, now=later()).claimed is False
    services.subscription_update(subscription=subscription, active=True)
    assert services.deliveries_send(subscription_id=subscription.pk, now=later()).delivered == 1


def test_a_connection_error_and_a_redirect_are_failures(subscribe, receiver):
    closed = subscribe(url="http://127.0.0.1:9/nothing-listens")
    make_allocation()
    services.deliveries_send(subscription_id=closed.pk, now=later())
    attempt = DeliveryAttempt.objects.get()
    assert attempt.status_code is None and attempt.error
    assert Delivery.objects.get().status == DeliveryStatus.PENDING

    redirected = subscribe(url=receiver.url, event_types=["allocation.updated"])
    receiver.statuses = [302]
    allocation = make_allocation()
    portfolio_services.allocation_update(
        allocation=allocation, data=portfolio_services.allocation_input_from_version(allocation)
    )
    services.deliveries_send(subscription_id=redirected.pk, now=later())
    assert Delivery.objects.get(subscription=redirected).last_status_code == 302
    assert Delivery.objects.get(subscription=redirected).status == DeliveryStatus.PENDING


def test_resend_sends_a_delivered_event_again(subscribe, receiver):
    subscription = subscribe(url=receiver.url)
    make_allocation()
    services.deliveries_send(subscription_id=subscription.pk, now=later())
    delivery = Delivery.objects.get()
    assert services.deliveries_resend(delivery_ids=[delivery.pk]) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.first_attempt_at is None
    services.deliveries_send(subscription_id=subscription.pk, now=later())
    assert len(receiver.requests) == 2 and receiver.bodies[0] == receiver.bodies[1]
    assert services.deliveries_resend(delivery_ids=[]) == 0


def test_dispatch_finds_the_subscriptions_with_due_deliveries(subscribe, monkeypatch):
    queued = []
    monkeypatch.setattr(events, "enqueue", lambda ids: queued.extend(ids))
    due = subscribe()
    subscribe(event_types=["trade_order.status_changed"])
    make_allocation()
    assert services.deliveries_dispatch(now=later()) == [due.pk] == queued


def test_signature_verification():
    body = b'{"id":"1"}'
    header = signing.signature(secret="s3cret", timestamp=1700000000, body=body)
    assert signing.verify(secret="s3cret", header=header, timestamp="1700000000", body=body, now=1700000100)
    assert not signing.verify(secret="other", header=header, timestamp="1700000000", body=body, now=1700000100)
    assert not signing.verify(secret="s3cret", header=header, timestamp="1700000000", body=body + b" ", now=1700000100)
    assert not signing.verify(secret="s3cret", header=header, timestamp="1700000001", body=body, now=1700000100)
    assert not signing.verify(secret="s3cret", header=header, timestamp="1700000000", body=body, now=1700009999)
    assert not signing.verify(secret="s3cret", header=header, timestamp="soon", body=body)


def test_headers_are_spelled_as_documented(subscribe, receiver):
    subscription = subscribe(url=receiver.url)
    make_allocation()
    services.deliveries_send(subscription_id=subscription.pk, now=later())
    names = set(receiver.requests[0]["headers"])
    assert {"Ballast-Event-Id", "Ballast-Timestamp", "Ballast-Signature"} <= names
    assert receiver.requests[0]["raw_headers"]["content-type"] == "application/json"
