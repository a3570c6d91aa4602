"""Deliveries in the Standard Webhooks format, verified by the `standardwebhooks`
library itself, as a partner would; sent through a pooled client with separate
connect and read timeouts."""

import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import urllib3
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.factories import make_allocation
from webhooks import services, standard
from webhooks.models import Delivery, DeliveryStatus


@pytest.mark.django_db
def test_a_delivered_webhook_verifies_with_the_standardwebhooks_library(subscribe, receiver):
    subscription = subscribe(url=receiver.url, event_types=["allocation.created"])
    assert subscription.secret.startswith("whsec_")
    make_allocation()
    assert services.deliveries_send(subscription_id=subscription.pk).delivered == 1  # real clock
    [request] = receiver.requests
    headers, body = request["headers"], request["body"]
    event_id = json.loads(body)["id"]

    payload = Webhook(subscription.secret).verify(body, headers)  # the secret exactly as the API returned it
    assert payload["id"] == event_id and payload["type"] == "allocation.created"
    assert headers["webhook-id"] == event_id  # the id is signed: changing it breaks the signature

    with pytest.raises(WebhookVerificationError):
        Webhook(standard.secret_generate()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(subscription.secret).verify(body, {**headers, "webhook-id": "another-event"})
    with pytest.raises(WebhookVerificationError):
        Webhook(subscription.secret).verify(body.replace(b"allocation.created", b"allocation.updated"), headers)
    stale = str(int(headers["webhook-timestamp"]) - 3600)
    with pytest.raises(WebhookVerificationError):
        Webhook(subscription.secret).verify(body, {**headers, "webhook-timestamp": stale})

    # The deprecated Ballast-* headers still come, for one release.
    assert {"Ballast-Event-Id", "Ballast-Timestamp", "Ballast-Signature"} <= set(headers)


@pytest.mark.django_db
def test_a_secret_from_before_the_standard_verifies_as_its_bytes(subscribe, receiver):
    subscription = subscribe(url=receiver.url, event_types=["allocation.created"])
    subscription.secret = "pre-standard-secret_with-urlsafe-chars"
    subscription.save(update_fields=["secret"])
    make_allocation()
    services.deliveries_send(subscription_id=subscription.pk)
    [request] = receiver.requests
    Webhook(subscription.secret.encode()).verify(request["body"], request["headers"])


def test_the_signature_matches_the_specification_example():
    """The example of the Standard Webhooks specification, byte for byte."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    timestamp = 1614265330
    assert standard.signature(secret=secret, message_id="msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp=timestamp, body=body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )
    # And the library signs the same.
    webhook = Webhook(secret)
    assert webhook.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", datetime.fromtimestamp(timestamp, tz=UTC), body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_one_pooled_client_per_process_with_separate_connect_and_read_timeouts():
    pool = services.http_pool()
    assert pool is services.http_pool()
    timeout = pool.connection_pool_kw["timeout"]
    assert isinstance(timeout, urllib3.Timeout)
    assert (timeout.connect_timeout, timeout.read_timeout) == (services.CONNECT_TIMEOUT_SECONDS, services.READ_TIMEOUT_SECONDS)
    assert pool.connection_pool_kw["retries"].total is False  # our backoff retries, not urllib3


def test_connections_to_a_partner_are_reused(receiver_keepalive):
    url, connections = receiver_keepalive
    for _ in range(3):
        assert services.http_post(url, b"{}", {"Content-Type": "application/json"}).status_code == 200
    assert connections() == 1


def test_a_partner_that_accepts_but_never_answers_times_out_on_read():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/slow"
        started = time.monotonic()
        result = services.http_post(url, b"{}", {}, timeout=urllib3.Timeout(connect=1, read=0.5))
        elapsed = time.monotonic() - started
    assert result.status_code is None and "ReadTimeoutError" in result.error, result.error
    assert 0.4 < elapsed < 3


@pytest.fixture
def receiver_keepalive():
    """An HTTP/1.1 endpoint that keeps connections open and counts them."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    accepted = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            accepted.append(self.client_address)
            super().setup()

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks", lambda: len(accepted)
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
def test_deliveries_count_by_outcome_in_the_metrics(subscribe, receiver):
    from config.metrics import WEBHOOK_ATTEMPTS

    def count(outcome):
        return WEBHOOK_ATTEMPTS.labels(outcome=outcome)._value.get()

    before = {outcome: count(outcome) for outcome in ("delivered", "retry", "failed")}
    subscription = subscribe(url=receiver.url, event_types=["allocation.created"])
    receiver.statuses = [500]
    make_allocation()
    services.deliveries_send(subscription_id=subscription.pk)
    services.deliveries_send(subscription_id=subscription.pk, now=datetime.now(UTC) + timedelta(hours=1))
    assert Delivery.objects.get().status == DeliveryStatus.DELIVERED
    assert count("retry") - before["retry"] == 1
    assert count("delivered") - before["delivered"] == 1
    assert count("failed") == before["failed"]
