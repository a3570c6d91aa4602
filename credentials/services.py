"""Making and purging API tokens (the only writes of this app)."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from knox.settings import knox_settings

from .models import ApiToken

NAME_MAX_LENGTH = ApiToken._meta.get_field("name").max_length


@transaction.atomic
def api_token_create(*, user, name: str = "", ttl: timedelta | None = None) -> tuple[ApiToken, str]:
    """A new token for `user`, expiring after `ttl` (default API_TOKEN_TTL_DAYS);
    returns the row and the key, which is never readable again."""
    return ApiToken.objects.create(user=user, expiry=ttl or knox_settings.TOKEN_TTL, name=name[:NAME_MAX_LENGTH])


def api_tokens_purge(*, now=None) -> int:
    """Delete expired tokens (they no longer authenticate anyway); return how many."""
    deleted, _ = ApiToken.objects.filter(expiry__lte=now or timezone.now()).delete()
    return deleted
