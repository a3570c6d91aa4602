"""An audited object's History page in the admin: its audit entries."""

from urllib.parse import unquote

from auditlog.models import LogEntry
from django.contrib.admin.views.main import PAGE_VAR
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.text import capfirst

from .registry import is_audited

HISTORY_PER_PAGE = 50


def _changes_rows(entry: LogEntry) -> list[tuple]:
    return [(field, *values) for field, values in sorted((entry.changes_dict or {}).items())]


class AuditHistoryMixin:
    """An audited model's History page shows its audit entries (who, when, via, each
    field before → after), newest first, instead of Django's admin log (which knows
    only admin form saves). Other models keep Django's page."""

    def history_view(self, request, object_id, extra_context=None):
        if not is_audited(self.model):
            return super().history_view(request, object_id, extra_context)
        obj = self.get_object(request, unquote(object_id))
        if obj is None or not self.has_view_or_change_permission(request, obj):
            # Django's own answers: a redirect for an unknown id, 403 without permission.
            return super().history_view(request, object_id, extra_context)
        entries = (
            LogEntry.objects.get_for_object(obj).select_related("actor").order_by("-timestamp", "-id")
        )
        paginator = self.get_paginator(request, entries, HISTORY_PER_PAGE)
        page = paginator.get_page(request.GET.get(PAGE_VAR, 1))
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "title": f"Change history: {obj}",
            "subtitle": None,
            "module_name": str(capfirst(opts.verbose_name_plural)),
            "object": obj,
            "opts": opts,
            "entries": [(entry, _changes_rows(entry)) for entry in page],
            "page_obj": page,
            "page_var": PAGE_VAR,
            "audit_log_url": reverse("admin:auditlog_logentry_changelist") + f"?q={obj.pk}",
            "may_see_audit_log": request.user.has_perm("auditlog.view_logentry"),
            "preserved_filters": self.get_preserved_filters(request),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/audit/object_history.html", context)
