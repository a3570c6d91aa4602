"""API tokens in the admin: list, revoke (delete), and make one for a user (its key is
shown once, in the message after saving)."""

from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from knox.settings import CONSTANTS, knox_settings
from knox.models import get_digest_token

from .models import ApiToken


class ApiTokenCreateForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["user", "name", "expiry"]
        help_texts = {"expiry": "Empty: the default lifetime (API_TOKEN_TTL_DAYS) from now."}


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "user", "created", "expiry", "state")
    list_select_related = ("user",)
    list_filter = ("created", "expiry")
    search_fields = ("=token_key", "name", "user__username")
    search_help_text = "A key's first 15 characters, a token name, or a username."
    ordering = ("-created",)
    raw_id_fields = ("user",)
    show_full_result_count = False
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        return ["user", "name", "expiry"] if obj is None else ["user", "name", "prefix", "created", "expiry", "state"]

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("user", "prefix", "created", "state")

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiTokenCreateForm
        return super().get_form(request, obj, **kwargs)

    @admin.display(description="key starts with")
    def prefix(self, token):
        return f"{token.token_key[:8]}…"

    @admin.display(description="state")
    def state(self, token):
        return "expired" if token.expired else "active"

    def save_model(self, request, obj, form, change):
        if not change:
            digest, key = get_digest_token()
            obj.digest = digest
            obj.token_key = key[: CONSTANTS.TOKEN_KEY_LENGTH]
            if obj.expiry is None:
                obj.expiry = timezone.now() + knox_settings.TOKEN_TTL
            super().save_model(request, obj, form, change)
            self.message_user(
                request, f"The key of token {obj.name or obj.token_key[:8]} (shown only now): {key}", messages.WARNING
            )
            return
        super().save_model(request, obj, form, change)

    @admin.action(description="Revoke (delete) the selected tokens", permissions=["delete"])
    def revoke(self, request, queryset):
        count, _ = queryset.delete()
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)


def _unregister_other_token_admins() -> None:
    """DRF's plain-text tokens and knox's own model are not used: hide their admins."""
    from knox.models import AuthToken as KnoxAuthToken
    from rest_framework.authtoken.models import TokenProxy

    for model in (TokenProxy, KnoxAuthToken):
        if admin.site.is_registered(model):
            admin.site.unregister(model)


_unregister_other_token_admins()
