"""Subscriptions (the secret never shown but once, on creation) and deliveries with
every attempt, and the "Resend" action."""

import json

from django.contrib import admin, messages
from django.utils.html import format_html

from . import services
from .models import Delivery, DeliveryAttempt, Subscription


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["url", "types", "active", "created_at"]
    list_filter = ["active"]
    search_fields = ["url"]
    fields = ["id", "url", "event_types", "active", "created_at"]
    readonly_fields = ["id", "created_at"]  # `secret` is not editable, so never in the form

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "url":
            kwargs["assume_scheme"] = "https"  # Django 6's default; silences its warning
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description="event types")
    def types(self, obj):
        return ", ".join(obj.event_types)

    def save_model(self, request, obj, form, change):
        # The model's validators (URL, event types) ran in the form; saving is all that is left.
        super().save_model(request, obj, form, change)
        if not change:
            self.message_user(
                request, f"The signing secret of this subscription, shown only now: {obj.secret}", messages.WARNING
            )


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["at", "status_code", "latency_ms", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-at", "-id"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "event_type", "subscription", "status", "attempts", "last_status_code", "created_at", "next_attempt_at"]
    list_filter = ["status", "event__type", "subscription"]
    list_select_related = ["event", "subscription"]
    ordering = ["-id"]
    show_full_result_count = False
    inlines = [DeliveryAttemptInline]
    fields = [
        "id", "event_link", "subscription", "status", "attempts", "created_at", "first_attempt_at", "next_attempt_at",
        "delivered_at", "last_status_code", "last_error", "payload",
    ]
    readonly_fields = fields
    actions = ["resend"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="event type", ordering="event__type")
    def event_type(self, obj):
        return obj.event.type

    @admin.display(description="event")
    def event_link(self, obj):
        return f"{obj.event.type} {obj.event_id} at {obj.event.created_at:%Y-%m-%d %H:%M:%S}"

    @admin.display(description="data")
    def payload(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.event.payload, indent=2, ensure_ascii=False))

    @admin.action(description="Resend the selected deliveries", permissions=["change"])
    def resend(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        count = services.deliveries_resend(delivery_ids=ids)
        skipped = len(ids) - count
        self.message_user(request, f"{count} deliveries will be sent again." + (
            f" {skipped} were still PENDING and left as they are." if skipped else ""
        ), messages.SUCCESS)
