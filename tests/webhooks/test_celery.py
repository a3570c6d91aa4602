"""End to end through the real broker and a worker: commit → task → signed POST."""

import time

import pytest
from celery.contrib.testing.worker import start_worker

from config.celery import app
from tests.factories import make_allocation
from webhooks import signing
from webhooks.models import Delivery, DeliveryStatus


@pytest.mark.django_db(transaction=True)
def test_a_committed_change_reaches_the_partner_through_a_worker(subscribe, receiver):
    subscription = subscribe(url=receiver.url, event_types=["allocation.created"])
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        make_allocation()  # commits: the send task is enqueued
        deadline = time.monotonic() + 30
        while not Delivery.objects.filter(status=DeliveryStatus.DELIVERED).exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    assert Delivery.objects.get().status == DeliveryStatus.DELIVERED
    [request] = receiver.requests
    headers = request["headers"]
    assert signing.verify(
        secret=subscription.secret, header=headers["Ballast-Signature"], timestamp=headers["Ballast-Timestamp"],
        body=request["body"],
    )
