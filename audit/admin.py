"""The audit log in the admin: one read-only list of every entry (each audited object's
History page is audit.history.AuditHistoryMixin)."""

from auditlog.models import LogEntry
from auditlog.render import render_logentry_changes_html
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db.models import Exists, OuterRef
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.text import capfirst

from .context import VIA_ADMIN, VIA_API_SESSION, VIA_API_TOKEN, VIA_COMMAND, VIA_PROCESS, VIA_TASK, VIA_WEB
from .registry import audited_models

class ModelFilter(admin.SimpleListFilter):
    """The audited models, by name: no query to list them."""

    title = "model"
    parameter_name = "model"

    def lookups(self, request, model_admin):
        return [(label, capfirst(model._meta.verbose_name)) for label, model in audited_models().items()]

    def queryset(self, request, queryset):
        model = audited_models().get(self.value() or "")
        return queryset.filter(content_type=ContentType.objects.get_for_model(model)) if model else queryset


class ViaFilter(admin.SimpleListFilter):
    title = "via"
    parameter_name = "via"
    CHOICES = (
        (VIA_ADMIN, "Admin"), (VIA_API_TOKEN, "API token"), (VIA_API_SESSION, "API (session)"), (VIA_WEB, "Web"),
        (VIA_TASK, "Celery task"), (VIA_COMMAND, "Management command"), (VIA_PROCESS, "Other process"),
    )

    def lookups(self, request, model_admin):
        return self.CHOICES

    def queryset(self, request, queryset):
        return queryset.filter(additional_data__via=self.value()) if self.value() else queryset


class ActorFilter(admin.SimpleListFilter):
    """Staff and API users who wrote entries, plus "nobody" (the system)."""

    title = "actor"
    parameter_name = "actor"
    SYSTEM = "system"

    def lookups(self, request, model_admin):
        # From the users, one index probe each into the log: not a DISTINCT over the whole log.
        actors = (
            get_user_model().objects.filter(Exists(LogEntry.objects.filter(actor=OuterRef("pk"))))
            .order_by("username").values_list("pk", "username")
        )
        return [(self.SYSTEM, "System (no user)"), *[(str(pk), name) for pk, name in actors]]

    def queryset(self, request, queryset):
        if self.value() == self.SYSTEM:
            return queryset.filter(actor__isnull=True)
        if self.value() and self.value().isdigit():
            return queryset.filter(actor_id=int(self.value()))
        return queryset


admin.site.unregister(LogEntry)  # auditlog's own admin; this one is read-only for everyone


@admin.register(LogEntry)
class AuditLogAdmin(admin.ModelAdmin):
    """Every audit entry, newest first. Nobody adds, changes or deletes one here,
    superusers included."""

    list_display = ("timestamp", "model", "object_link", "action", "event", "actor", "via", "changed_fields")
    list_select_related = ("content_type", "actor")
    list_filter = (ModelFilter, "action", ViaFilter, ActorFilter, "timestamp")
    search_fields = ("=object_pk", "object_repr", "=actor__username")
    search_help_text = "An object's full id, part of its name, or a username."
    ordering = ("-timestamp", "-id")
    show_full_result_count = False
    list_per_page = 100
    fields = ("timestamp", "model", "object_link", "object_pk", "action", "event", "actor", "actor_email", "via",
              "context", "remote_addr", "changes_table")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="model", ordering="content_type__model")
    def model(self, entry):
        model = entry.content_type.model_class()
        return capfirst(model._meta.verbose_name) if model else entry.content_type.model

    @admin.display(description="object")
    def object_link(self, entry):
        opts = entry.content_type
        try:
            url = reverse(f"admin:{opts.app_label}_{opts.model}_history", args=[entry.object_pk])
        except NoReverseMatch:
            return entry.object_repr
        return format_html('<a href="{}">{}</a>', url, entry.object_repr)

    @admin.display(description="event")
    def event(self, entry):
        return (entry.additional_data or {}).get("event", "")

    @admin.display(description="via")
    def via(self, entry):
        data = entry.additional_data or {}
        via = data.get("via", "")
        if data.get("token"):
            return f"{via} {data['token']}…"
        if data.get("system"):
            return f"{via}: {data['system']}"
        return via

    @admin.display(description="additional data")
    def context(self, entry):
        data = entry.additional_data or {}
        return "; ".join(f"{key}: {value}" for key, value in sorted(data.items())) or "—"

    @admin.display(description="changed")
    def changed_fields(self, entry):
        fields = ", ".join(sorted(entry.changes_dict or {}))
        return fields if len(fields) <= 80 else fields[:77] + "…"

    @admin.display(description="changes (before → after)")
    def changes_table(self, entry):
        return render_logentry_changes_html(entry) or "—"
