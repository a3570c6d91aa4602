"""docs/webhooks.md's verification example, run against a real signed delivery."""

import re
from pathlib import Path

import pytest

from tests.factories import make_allocation
from webhooks import services

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def doc_example() -> str:
    text = DOC.read_text()
    section = text.split("### Verifying a signature (Python)", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.django_db
def test_the_documented_verification_accepts_a_real_delivery_and_refuses_a_forgery(subscribe, receiver):
    namespace = {}
    exec(compile(doc_example(), str(DOC), "exec"), namespace)  # noqa: S102 (our own doc)
    verify = namespace["verify"]

    subscription = subscribe(url=receiver.url)
    make_allocation()
    assert services.deliveries_send(subscription_id=subscription.pk).delivered == 1  # real clock: fresh timestamp
    [request] = receiver.requests
    headers, body = request["headers"], request["body"]

    assert verify(subscription.secret, headers, body) is True
    assert verify("another-secret", headers, body) is False
    assert verify(subscription.secret, headers, body.replace(b'"allocation.created"', b'"allocation.updated"')) is False
    stale = {**headers, "Ballast-Timestamp": str(int(headers["Ballast-Timestamp"]) - 3600)}
    assert verify(subscription.secret, stale, body) is False
