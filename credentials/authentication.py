"""`Authorization: Token <key>` against hashed tokens, telling the audit trail who acts."""

from hmac import compare_digest

from django.utils import timezone
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.crypto import hash_token
from knox.settings import CONSTANTS
from rest_framework import exceptions

from audit.context import act_as_api_token

from .models import ApiToken


class TokenAuthentication(KnoxTokenAuthentication):
    """django-rest-knox's token check in one query: the rows whose `token_key` is the
    key's start, with their user; the key's digest must match one that has not expired.
    Knox's own check also reads and deletes the user's other expired tokens on every
    request; here expired tokens are refused and purged daily instead
    (`credentials.tasks.api_tokens_purge_task`).

    Once the token is accepted, its user is the actor of every audit entry the request
    writes, marked "api-token" with the key's first 8 characters."""

    def authenticate_credentials(self, token):
        key = token.decode("utf-8") if isinstance(token, bytes) else token
        failed = exceptions.AuthenticationFailed("Invalid token.")
        try:
            digest = hash_token(key)
        except (TypeError, ValueError):
            raise failed from None
        now = timezone.now()
        for candidate in ApiToken.objects.filter(token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH]).select_related("user"):
            if not compare_digest(digest, candidate.digest):
                continue
            if candidate.expiry is not None and candidate.expiry <= now:
                raise exceptions.AuthenticationFailed("Token expired.")
            user, _ = self.validate_user(candidate)
            act_as_api_token(user=user, key=key)
            return user, candidate
        raise failed
