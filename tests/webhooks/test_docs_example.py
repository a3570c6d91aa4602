"""docs/webhooks.md's verification examples, run against a real signed delivery."""

import re
from pathlib import Path

import pytest

from tests.factories import make_allocation
from webhooks import services, standard

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def doc_example(heading: str) -> dict:
    text = DOC.read_text()
    section = text.split(heading, 1)[1]
    namespace = {}
    exec(compile(re.search(r"```python\n(.*?)```", section, re.S).group(1), str(DOC), "exec"), namespace)  # noqa: S102
    return namespace


@pytest.fixture
def delivered(subscribe, receiver):
    subscription = subscribe(url=receiver.url)
    make_allocation()
    assert services.deliveries_send(subscription_id=subscription.pk).delivered == 1  # real clock: fresh timestamp
    [request] = receiver.requests
    return subscription.secret, request["headers"], request["body"]


@pytest.mark.django_db
def test_the_documented_verification_accepts_a_real_delivery_and_refuses_a_forgery(delivered):
    verify = doc_example("### Verifying a delivery (Python)")["verify"]
    secret, headers, body = delivered

    assert verify(secret, headers, body)["type"] == "allocation.created"
    assert verify(standard.secret_generate(), headers, body) is None
    assert verify(secret, headers, body.replace(b'"allocation.created"', b'"allocation.updated"')) is None
    stale = {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 3600)}
    assert verify(secret, stale, body) is None


@pytest.mark.django_db
def test_the_documented_deprecated_verification_still_holds(delivered):
    verify = doc_example("### Deprecated: the Ballast-* headers")["verify_deprecated"]
    secret, headers, body = delivered

    assert verify(secret, headers, body) is True
    assert verify("another-secret", headers, body) is False
    assert verify(secret, headers, body.replace(b'"allocation.created"', b'"allocation.updated"')) is False
    stale = {**headers, "Ballast-Timestamp": str(int(headers["Ballast-Timestamp"]) - 3600)}
    assert verify(secret, stale, body) is False
