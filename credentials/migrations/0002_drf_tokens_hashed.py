"""DRF's plain-text tokens become hashed API tokens: the keys partners hold keep
working (until they expire), and no key stays readable in the database."""

from datetime import timedelta

from django.conf import settings
from django.db import migrations
from django.utils import timezone


def hash_drf_tokens(apps, schema_editor):
    from knox.crypto import hash_token
    from knox.settings import CONSTANTS

    Token = apps.get_model("authtoken", "Token")
    ApiToken = apps.get_model("credentials", "ApiToken")
    expiry = timezone.now() + timedelta(days=settings.API_TOKEN_TTL_DAYS)
    ApiToken.objects.bulk_create(
        ApiToken(
            digest=hash_token(token.key), token_key=token.key[: CONSTANTS.TOKEN_KEY_LENGTH], user_id=token.user_id,
            expiry=expiry, name="from the former token endpoint",
        )
        for token in Token.objects.all()
    )
    Token.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("credentials", "0001_initial"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [migrations.RunPython(hash_drf_tokens, migrations.RunPython.noop)]
