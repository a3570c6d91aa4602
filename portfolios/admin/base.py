"""What the portfolios admins share."""

from django.contrib import admin

from audit.history import AuditHistoryMixin
from core import formatting
from core.ids import parse_uuid


class ServiceAdmin(AuditHistoryMixin, admin.ModelAdmin):
    """An admin whose form is a portfolios.forms.ServiceModelForm.

    For an audited model (audit.registry), the History page shows the audit trail.

    The form has already had the services validate everything; here its `apply` writes
    through them for real. Django saves neither the object nor the inline rows itself.
    """

    def save_model(self, request, obj, form, change):
        saved = form.apply(user=request.user)
        # The service may have created its own instance; the admin goes on with `obj`
        # (log entry, redirect), so make it the saved row.
        obj.pk = saved.pk
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        # form.apply wrote the inline rows; the change message reads these lists.
        for formset in formsets:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []


class ReadOnlyAdmin(AuditHistoryMixin, admin.ModelAdmin):
    """View only: these rows are produced by services (or the audit trail), never typed in.
    For an audited model (executions, trade orders), the History page shows the audit trail."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline:
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class UUIDSearchMixin:
    """Also find a row by its full UUID pasted into the search box (or autocomplete)."""

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        uuid = parse_uuid(search_term.strip())
        if uuid is not None:
            results = results | queryset.filter(pk=uuid)
        return results, may_have_duplicates


def percent(value, places: int = 2, sign: bool = False) -> str:
    """0.1234 → "12.34 %" (weights are stored as fractions of 1), thousands grouped."""
    return formatting.percent(value, places, sign)


def plain(value) -> str:
    """A Decimal without trailing zeros or exponent: 0.600000000000 → "0.6"."""
    if value is None:
        return "—"
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
