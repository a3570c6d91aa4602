"""Restriction lists (entries inline, CSV import), substitutes, and model alerts in the admin.

Writes go through portfolios.services: a list and its inline entries are saved by
`restriction_list_create` / `restriction_list_update` (the whole list, validated, one
audit entry); the CSV import by `restriction_entries_add`.
"""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Exists, OuterRef
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path

from core.errors import DomainError

from .. import services
from ..models import AccountRestrictionList, AllocationAlert, RestrictionEntry, RestrictionList, Substitute
from .base import ReadOnlyAdmin


class RestrictionEntryInline(admin.TabularInline):
    model = RestrictionEntry
    fields = ("instrument", "rule", "reason", "effective_from", "effective_to")
    autocomplete_fields = ("instrument",)
    extra = 1

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("instrument")


class CsvImportForm(forms.Form):
    file = forms.FileField(help_text="Columns: instrument_id (ISIN or UUID), rule, reason, effective_from, effective_to.")


@admin.register(RestrictionList)
class RestrictionListAdmin(admin.ModelAdmin):
    inlines = [RestrictionEntryInline]
    list_display = ("name", "scope", "entry_count", "account_count", "updated_at")
    list_filter = ("scope",)
    search_fields = ("name",)
    fields = ("name", "scope")
    show_full_result_count = False
    change_form_template = "admin/portfolios/restrictionlist/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            entry_count=Count("entries", distinct=True), account_count=Count("assignments", distinct=True)
        )

    @admin.display(description="entries", ordering="entry_count")
    def entry_count(self, obj):
        return obj.entry_count

    @admin.display(description="accounts", ordering="account_count")
    def account_count(self, obj):
        return obj.account_count

    def save_model(self, request, obj, form, change):
        pass  # saved with its entries in save_related, by one service call

    def save_related(self, request, form, formsets, change):
        entries = []
        for formset in formsets:
            for row in formset.forms:
                data = getattr(row, "cleaned_data", None)
                if not data or data.get("DELETE") or not data.get("instrument"):
                    continue
                entries.append(services.EntryInput(
                    str(data["instrument"].pk), data["rule"], data.get("reason") or "",
                    data.get("effective_from"), data.get("effective_to"),
                ))  # fmt: skip
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        obj = form.instance
        values = {"name": form.cleaned_data["name"], "scope": form.cleaned_data["scope"], "entries": entries}
        if change:
            saved = services.restriction_list_update(restriction_list=obj, user=request.user, **values)
        else:
            saved = services.restriction_list_create(user=request.user, **values)
            obj.pk = saved.pk
        obj.refresh_from_db()

    def get_urls(self):
        return [
            path("<uuid:list_id>/import/", self.admin_site.admin_view(self.import_view), name="portfolios_restrictionlist_import"),
            *super().get_urls(),
        ]

    def import_view(self, request, list_id):
        restriction_list = RestrictionList.objects.filter(pk=list_id).first()
        if restriction_list is None or not self.has_change_permission(request, restriction_list):
            return redirect("admin:portfolios_restrictionlist_changelist")
        form = CsvImportForm(request.POST or None, request.FILES or None)
        errors = []
        if request.method == "POST" and form.is_valid():
            try:
                content = form.cleaned_data["file"].read().decode("utf-8")
                entries = services.restriction_entries_parse_csv(content)
                added = services.restriction_entries_add(restriction_list=restriction_list, entries=entries, user=request.user)
            except UnicodeDecodeError:
                errors = ["the file is not UTF-8 text"]
            except DomainError as exc:
                errors = [f"{e.field}: {e.message}" if e.field else e.message for e in exc.errors] or [exc.detail]
            else:
                self.message_user(request, f"{added} entries imported into {restriction_list}.", messages.SUCCESS)
                return redirect("admin:portfolios_restrictionlist_change", restriction_list.pk)
        context = {
            **self.admin_site.each_context(request), "title": f"Import entries into {restriction_list}",
            "opts": self.model._meta, "original": restriction_list, "form": form, "errors": errors,
        }
        return TemplateResponse(request, "admin/portfolios/restrictionlist/import.html", context)


@admin.register(Substitute)
class SubstituteAdmin(ReadOnlyAdmin):
    """Substitutes are set per instrument through `PUT /api/v1/substitutes/{instrument_id}/`
    (one audited replacement of the whole ordered list); the admin shows them."""

    list_display = ("instrument", "rank", "substitute")
    list_select_related = ("instrument", "substitute")
    search_fields = ("instrument__name", "instrument__isin")
    fields = ("instrument", "rank", "substitute")
    readonly_fields = fields


@admin.register(RestrictionEntry)
class RestrictionEntryAdmin(ReadOnlyAdmin):
    """Every entry of every list, to answer "which lists restrict this instrument?";
    entries are edited on their list's page."""

    list_display = ("instrument", "rule", "restriction_list", "reason", "effective_from", "effective_to")
    list_select_related = ("instrument", "restriction_list")
    list_filter = ("rule", "restriction_list__scope")
    search_fields = ("instrument__isin", "instrument__name", "restriction_list__name")
    show_full_result_count = False


@admin.register(AccountRestrictionList)
class AccountRestrictionListAdmin(ReadOnlyAdmin):
    """Which accounts an ACCOUNT list is assigned to; assigned from the account list's
    action or through the API (`restriction_list_ids`), both audited."""

    list_display = ("account", "restriction_list", "created_at")
    list_select_related = ("account", "restriction_list")
    list_filter = ("restriction_list",)
    search_fields = ("account__client_id", "restriction_list__name")
    show_full_result_count = False


@admin.register(AllocationAlert)
class AllocationAlertAdmin(ReadOnlyAdmin):
    """Why allocations need attention today; computed by `allocation_alerts_refresh`."""

    list_display = ("allocation", "instrument", "reason", "since", "notified_on")
    list_select_related = ("allocation", "instrument")
    list_filter = ("reason",)
    search_fields = ("allocation__name", "instrument__isin", "instrument__name")


class NeedsAttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "needs_attention"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        alerts = Exists(AllocationAlert.objects.filter(allocation_id=OuterRef("pk")))
        if self.value() == "yes":
            return queryset.filter(alerts)
        if self.value() == "no":
            return queryset.exclude(alerts)
        return queryset


def needs_attention_text(allocation) -> str:
    """The allocation's alerts in words, e.g. "IE00B4L5Y983: Instrument not tradable"."""
    rows = AllocationAlert.objects.filter(allocation=allocation).select_related("instrument").order_by("instrument__name")
    return "; ".join(f"{a.instrument.label}: {a.get_reason_display()} (since {a.since})" for a in rows) or "—"
