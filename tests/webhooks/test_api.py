"""/api/v1/webhooks/: through the URLs, with model permissions."""

import uuid

import pytest
from rest_framework.test import APIClient

from tests.factories import api_token_key, make_allocation
from webhooks.models import Delivery, DeliveryStatus, Subscription

pytestmark = pytest.mark.django_db
BASE = "/api/v1/webhooks/subscriptions/"


def client_for(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_key(user)}")
    return client


def test_create_answers_the_secret_once(api_client):
    response = api_client.post(BASE, {"url": "https://partner.example/h", "event_types": ["allocation.updated"]}, format="json")
    assert response.status_code == 201
    body = response.json()
    subscription = Subscription.objects.get()
    assert body == {
        "subscription_id": str(subscription.pk), "url": "https://partner.example/h",
        "event_types": ["allocation.updated"], "active": True, "secret": subscription.secret,
    }
    assert len(subscription.secret) >= 40
    shown = api_client.get(f"{BASE}{subscription.pk}/").json()
    assert "secret" not in shown and shown["subscription_id"] == str(subscription.pk)
    assert "secret" not in api_client.get(BASE).json()["data"][0]
    patched = api_client.patch(f"{BASE}{subscription.pk}/", {"active": False}, format="json")
    assert patched.status_code == 200 and "secret" not in patched.json() and patched.json()["active"] is False
    assert patched.json()["event_types"] == ["allocation.updated"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://partner.example/h", "event_types": ["*"]}, "url"),
        ({"url": "file:///etc/passwd", "event_types": ["*"]}, "url"),
        ({"url": "https://user:pw@partner.example/h", "event_types": ["*"]}, "url"),
        ({"url": "not a url", "event_types": ["*"]}, "url"),
        ({"url": "https://partner.example/h", "event_types": []}, "event_types"),
        ({"url": "https://partner.example/h", "event_types": ["allocation.deleted"]}, "event_types[0]"),
        ({"url": "https://partner.example/h"}, "event_types"),
    ],
)
def test_validation_errors_name_the_field(api_client, body, field):
    response = api_client.post(BASE, body, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert field in {e["field"] for e in response.json()["errors"]}
    assert not Subscription.objects.exists()


def test_patch_validates_too(api_client, subscribe):
    subscription = subscribe()
    response = api_client.patch(f"{BASE}{subscription.pk}/", {"url": "javascript:alert(1)"}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "url"


def test_delete_and_404(api_client, subscribe):
    subscription = subscribe()
    assert api_client.delete(f"{BASE}{subscription.pk}/").status_code == 204
    for ref in (subscription.pk, uuid.uuid4(), "not-a-uuid"):
        response = api_client.get(f"{BASE}{ref}/")
        assert response.status_code == 404 and response.json()["detail"] == f"no subscription with id {ref}"


def test_401_and_403(subscribe, user_with_perms):
    subscription = subscribe()
    assert APIClient().get(BASE).status_code == 401
    viewer = client_for(user_with_perms("webhooks.view_subscription"))
    assert viewer.get(BASE).status_code == 200
    assert viewer.get(f"{BASE}{subscription.pk}/").status_code == 200
    assert viewer.post(BASE, {"url": "https://a.example", "event_types": ["*"]}, format="json").status_code == 403
    assert viewer.patch(f"{BASE}{subscription.pk}/", {"active": False}, format="json").status_code == 403
    assert viewer.delete(f"{BASE}{subscription.pk}/").status_code == 403
    assert viewer.get("/api/v1/webhooks/deliveries/").status_code == 403
    nobody = client_for(user_with_perms(username="nobody"))
    assert nobody.get(BASE).status_code == 403


def test_idempotent_create(api_client):
    body = {"url": "https://partner.example/h", "event_types": ["*"]}
    first = api_client.post(BASE, body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = api_client.post(BASE, body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.json() == again.json() and Subscription.objects.count() == 1


def test_deliveries_are_listed_and_filtered(api_client, subscribe):
    one, two = subscribe(), subscribe()
    make_allocation()
    Delivery.objects.filter(subscription=two).update(status=DeliveryStatus.FAILED)
    rows = api_client.get("/api/v1/webhooks/deliveries/").json()
    assert rows["meta"]["total_count"] == 2
    row = api_client.get(f"/api/v1/webhooks/deliveries/?subscription_id={one.pk}").json()["data"]
    assert [(r["subscription_id"], r["event_type"], r["status"]) for r in row] == [
        (str(one.pk), "allocation.created", "PENDING")
    ]
    failed = api_client.get("/api/v1/webhooks/deliveries/?status=FAILED").json()["data"]
    assert [r["subscription_id"] for r in failed] == [str(two.pk)]
    for query, field in (("subscription_id=nope", "subscription_id"), ("status=LOST", "status")):
        response = api_client.get(f"/api/v1/webhooks/deliveries/?{query}")
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == field


@pytest.mark.parametrize("rows", [2, 12])
def test_delivery_list_query_count_is_fixed(api_client, subscribe, django_assert_num_queries, rows):
    subscribe()
    for _ in range(rows // 2):
        make_allocation()
    subscribe()
    make_allocation()
    # Token auth, count, page (with the event); throttling uses the cache.
    with django_assert_num_queries(3):
        assert len(api_client.get("/api/v1/webhooks/deliveries/").json()["data"]) == rows // 2 + 2
