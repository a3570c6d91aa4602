"""The signature partners check: `Ballast-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>`.

`timestamp` is the `Ballast-Timestamp` header (unix seconds) and `body` the raw
request body, byte for byte. docs/webhooks.md shows the partner's side.
"""

import hashlib
import hmac
import time

SCHEME = "v1"
TOLERANCE_SECONDS = 300


def signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """The header value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def verify(*, secret: str, header: str, timestamp: str | int, body: bytes, now: float | None = None,
           tolerance: int = TOLERANCE_SECONDS) -> bool:
    """True when `header` signs `body` at `timestamp` and the timestamp is within
    `tolerance` seconds of `now` (a replayed old request fails)."""
    try:
        timestamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret=secret, timestamp=timestamp, body=body)
    # Several comma-separated signatures may come while a secret is rotated.
    return any(hmac.compare_digest(expected, candidate.strip()) for candidate in header.split(","))
