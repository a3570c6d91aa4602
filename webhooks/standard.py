"""Standard Webhooks signatures (https://www.standardwebhooks.com/): the headers a
partner verifies with a ready-made library (`standardwebhooks` for Python, `svix`,
and their ports to other languages).

    webhook-id:        the event's id (the same on every retry: deduplicate on it)
    webhook-timestamp: unix seconds of this attempt
    webhook-signature: v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}.{body}")>

The key is the subscription's secret: secrets made since Standard Webhooks are
`whsec_<base64 of 32 random bytes>`, the format the libraries take as they are, and
the key is those bytes. An older secret (no `whsec_` prefix) is used as its UTF-8
bytes; a partner passes `secret.encode()` (bytes) to the library instead.
"""

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"


def secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_key(secret: str) -> bytes:
    """The HMAC key of `secret` as Standard Webhooks libraries derive it."""
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret[len(SECRET_PREFIX):])
    return secret.encode()


def signature(*, secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def headers(*, secret: str, message_id: str, timestamp: int, body: bytes) -> dict:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret=secret, message_id=message_id, timestamp=timestamp, body=body),
    }
