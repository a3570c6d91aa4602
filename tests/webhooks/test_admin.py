"""Admin: the secret stays hidden, attempts are shown inline, "Resend" sends again."""

import pytest
from django.utils import timezone

from tests.factories import make_allocation
from webhooks import events, services
from webhooks.models import Delivery, DeliveryStatus, Subscription

pytestmark = pytest.mark.django_db


def test_the_secret_is_not_in_the_subscription_form(admin_client, subscribe):
    subscription = subscribe()
    page = admin_client.get(f"/admin/webhooks/subscription/{subscription.pk}/change/").content.decode()
    assert subscription.url in page and subscription.secret not in page
    assert admin_client.get("/admin/webhooks/subscription/").status_code == 200


def test_adding_in_the_admin_shows_the_secret_once_and_validates(admin_client):
    response = admin_client.post(
        "/admin/webhooks/subscription/add/", {"url": "ftp://x.example/", "event_types": '["*"]', "active": "on"}
    )
    assert response.status_code == 200 and not Subscription.objects.exists()
    response = admin_client.post(
        "/admin/webhooks/subscription/add/",
        {"url": "https://x.example/h", "event_types": '["allocation.created"]', "active": "on"}, follow=True,
    )
    subscription = Subscription.objects.get()
    assert subscription.secret in response.content.decode()


def test_a_delivery_page_lists_its_attempts(admin_client, subscribe, receiver):
    subscription = subscribe(url=receiver.url)
    make_allocation()
    receiver.statuses = [500]
    services.deliveries_send(subscription_id=subscription.pk, now=timezone.now())
    delivery = Delivery.objects.get()
    page = admin_client.get(f"/admin/webhooks/delivery/{delivery.pk}/change/").content.decode()
    assert "HTTP 500" in page and "allocation.created" in page
    listing = admin_client.get("/admin/webhooks/delivery/?status__exact=PENDING")
    assert listing.status_code == 200 and "allocation.created" in listing.content.decode()


def test_resend_action(admin_client, subscribe, monkeypatch):
    queued = []
    monkeypatch.setattr(events, "enqueue", lambda ids: queued.extend(ids))
    subscribe()
    make_allocation()
    Delivery.objects.update(status=DeliveryStatus.FAILED)
    delivery = Delivery.objects.get()
    response = admin_client.post(
        "/admin/webhooks/delivery/", {"action": "resend", "_selected_action": [delivery.pk]}, follow=True
    )
    assert "1 deliveries will be sent again" in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
