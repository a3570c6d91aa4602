from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from portfolios import services
from portfolios.models import Allocation, IdempotencyRecord, PortfolioAccount, Price
from tests.factories import InstrumentFactory, UserFactory, api_token_key

from .conftest import problem

ALLOCATIONS = "/api/v1/portfolios/allocations/"
PRICES = "/api/v1/prices/"
ACCOUNTS = "/api/v1/portfolios/accounts/"


@pytest.fixture
def instrument(db):
    return InstrumentFactory()


def allocation_body(instrument, weight="1"):
    return {"name": "Idem", "allocation": [{"instrument_id": instrument.isin, "instrument_id_type": "ISIN", "weight": weight}]}


def post(client, url, body, key):
    return client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_allocation_replay_returns_the_first_response_and_creates_one(api_client, instrument):
    first = post(api_client, ALLOCATIONS, allocation_body(instrument), "key-1")
    assert first.status_code == 201
    again = post(api_client, ALLOCATIONS, allocation_body(instrument), "key-1")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Allocation.objects.count() == 1
    assert IdempotencyRecord.objects.count() == 1


def test_key_order_of_the_body_does_not_matter(api_client, instrument):
    body = allocation_body(instrument)
    post(api_client, ALLOCATIONS, body, "key-1")
    reordered = dict(reversed(list(body.items())))
    assert post(api_client, ALLOCATIONS, reordered, "key-1")["Idempotent-Replayed"] == "true"
    assert Allocation.objects.count() == 1


def test_same_key_different_body_is_409(api_client, instrument):
    post(api_client, ALLOCATIONS, allocation_body(instrument), "key-1")
    body = problem(post(api_client, ALLOCATIONS, {**allocation_body(instrument), "name": "Other"}, "key-1"), 409)
    assert "different request" in body["detail"]
    assert Allocation.objects.count() == 1


def test_same_key_on_another_endpoint_is_409(api_client, instrument):
    post(api_client, ALLOCATIONS, allocation_body(instrument), "key-1")
    problem(post(api_client, ACCOUNTS, allocation_body(instrument), "key-1"), 409)


def test_prices_replay(api_client, instrument):
    payload = {"prices": [{"instrument_id": instrument.isin, "effective_at": "2026-03-02", "value": "10"}]}
    first = post(api_client, PRICES, payload, "prices-1")
    assert (first.status_code, first.json()) == (200, {"upserted": 1})
    Price.objects.update(value=99)  # a second upsert would write 10 again
    again = post(api_client, PRICES, payload, "prices-1")
    assert (again.status_code, again.json()) == (200, {"upserted": 1})
    assert Price.objects.get().value == 99
    changed = {"prices": [{**payload["prices"][0], "value": "11"}]}
    problem(post(api_client, PRICES, changed, "prices-1"), 409)


def test_without_a_key_every_post_does_the_work(api_client, db):
    for _ in range(2):
        assert api_client.post(ACCOUNTS, {"client_id": "C", "base_currency": "EUR"}, format="json").status_code == 201
    assert PortfolioAccount.objects.count() == 2
    assert not IdempotencyRecord.objects.exists()


def test_a_validation_error_is_replayed_as_is(api_client, instrument):
    first = post(api_client, ALLOCATIONS, allocation_body(instrument, weight="0.5"), "bad-1")
    problem(first, 400)
    again = post(api_client, ALLOCATIONS, allocation_body(instrument, weight="0.5"), "bad-1")
    assert problem(again, 400) == first.json()
    assert again["Idempotent-Replayed"] == "true"


def test_in_flight_duplicate_is_409(api_client, instrument):
    post(api_client, ALLOCATIONS, allocation_body(instrument), "busy")
    IdempotencyRecord.objects.update(status_code=None, response_body=None)  # as while the first still runs
    body = problem(post(api_client, ALLOCATIONS, allocation_body(instrument), "busy"), 409)
    assert "still being processed" in body["detail"]
    assert Allocation.objects.count() == 1


def test_keys_are_per_user(api_client, client_for, instrument):
    post(api_client, ALLOCATIONS, allocation_body(instrument), "shared")
    other = client_for(UserFactory(username="other", is_superuser=True))
    assert post(other, ALLOCATIONS, allocation_body(instrument), "shared").status_code == 201
    assert Allocation.objects.count() == 2


def test_an_expired_key_is_forgotten(api_client, instrument, settings):
    post(api_client, ALLOCATIONS, allocation_body(instrument), "old")
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS + 1))
    again = post(api_client, ALLOCATIONS, {**allocation_body(instrument), "name": "New"}, "old")
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again
    assert Allocation.objects.count() == 2
    assert IdempotencyRecord.objects.count() == 1


def test_a_server_error_releases_the_key(superuser, instrument, monkeypatch):

    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_key(superuser)}")

    def broken(**kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(services, "allocation_create", broken)
    assert post(client, ALLOCATIONS, allocation_body(instrument), "retry-me").status_code == 500
    assert not IdempotencyRecord.objects.exists()
    monkeypatch.undo()
    assert post(client, ALLOCATIONS, allocation_body(instrument), "retry-me").status_code == 201


@pytest.mark.parametrize("key", ["", "   ", "k" * 256])
def test_a_bad_key_is_400(api_client, instrument, key):
    body = problem(post(api_client, ALLOCATIONS, allocation_body(instrument), key), 400)
    assert body["errors"][0]["field"] == "Idempotency-Key"
    assert not Allocation.objects.exists()


def test_purge_deletes_only_expired_records(superuser, settings):
    now = timezone.now()
    for key in ("a", "b", "c"):
        services.idempotency_claim(user=superuser, key=key, method="POST", path="/", request_hash=key)
    IdempotencyRecord.objects.filter(key__in=["a", "b"]).update(
        created_at=now - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS + 60)
    )
    assert services.idempotency_records_purge() == 2
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["c"]
    assert services.idempotency_records_purge() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_of_one_key_let_exactly_one_through(is_postgres):
    """Two processes racing for the same new key: one owns it, the other sees it in flight."""
    import threading

    from django.db import connection

    from core.errors import Conflict

    if not is_postgres:
        pytest.skip("needs PostgreSQL (row locks and concurrent connections)")
    user = UserFactory(username="racer")
    barrier = threading.Barrier(4)
    outcomes = []

    def claim():
        try:
            barrier.wait()
            services.idempotency_claim(user=user, key="race", method="POST", path="/x/", request_hash="h")
            outcomes.append("claimed")
        except Conflict:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["claimed", "conflict", "conflict", "conflict"]
    assert IdempotencyRecord.objects.filter(key="race").count() == 1
