"""Admin of imports: upload a file (CSV or XLSX; the work runs in Celery), watch its
progress, read its errors, accept a reconciliation's breaks, download the break report.
Thin adapters over imports.services."""

import csv

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from audit.history import AuditHistoryMixin
from audit.services import text
from core.errors import DomainError
from core.ids import parse_uuid
from portfolios.models import Allocation
from rebalancing.selectors.orders import rows_xlsx

from .. import services
from ..models import AccountMatch, ImportBreak, ImportJob, ImportKind, ImportMode, ImportStatus
from ..selectors import allocation_rows, break_report_rows, import_progress_of

BREAKS_SHOWN = 500
# What each kind of import writes, beyond imports.add_importjob.
KIND_PERMISSIONS = {
    ImportKind.HOLDINGS: ("portfolios.change_position", "portfolios.change_cashaccount"),
    ImportKind.PRICES: ("portfolios.add_price", "portfolios.change_price"),
    ImportKind.FX_RATES: ("portfolios.add_fxrate", "portfolios.change_fxrate"),
    ImportKind.FILLS: ("rebalancing.change_tradeorder",),
}


class UploadForm(forms.Form):
    kind = forms.ChoiceField(choices=ImportKind.choices, initial=ImportKind.HOLDINGS)
    file = forms.FileField(help_text="CSV (UTF-8, header row) or XLSX (first sheet); the columns are listed below, "
                                     "the rules in docs/imports.md.")
    mode = forms.ChoiceField(choices=ImportMode.choices, initial=ImportMode.APPLY,
                             help_text="Holdings only: RECONCILE lists the breaks and writes nothing until you accept them.")
    match = forms.ChoiceField(choices=AccountMatch.choices, initial=AccountMatch.ACCOUNT_ID,
                              help_text="Holdings only: what the account_id column holds.")
    tolerance = forms.DecimalField(min_value=0, initial=0, max_digits=28, decimal_places=10,
                                   help_text="RECONCILE only: differences up to this are not breaks.")


class AllocationImportForm(forms.Form):
    allocation = forms.ModelChoiceField(
        queryset=Allocation.objects.order_by("name"), required=False,
        help_text="Empty: a new allocation. Otherwise the file becomes its new version (the old ones are kept).",
    )
    file = forms.FileField(help_text="CSV or XLSX: instrument_id (ISIN or UUID), weight; optional min_weight, max_weight.")
    name = forms.CharField(required=False, help_text="A new allocation's name (a version keeps the allocation's).")
    base_currency = forms.CharField(required=False, max_length=3, help_text="Default EUR, or the allocation's.")
    normalize = forms.BooleanField(required=False, help_text="Weights in any positive scale (e.g. 50/50).")
    effective_from = forms.DateField(required=False, help_text="Default today.")


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class Echo:
    def write(self, value):
        return value


@admin.register(ImportJob)
class ImportJobAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ("created_at", "kind", "mode", "status", "file_name", "rows", "accounts_changed", "break_count",
                    "error_count", "created_by")
    list_filter = ("kind", "mode", "status")
    list_select_related = ("created_by",)
    search_fields = ("file_name", "sha256")
    show_full_result_count = False
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in ImportJob._meta.fields if f.name not in ("errors",)]
    exclude = ("errors",)
    change_form_template = "admin/imports/importjob/change_form.html"

    def has_change_permission(self, request, obj=None):
        return False  # produced by the services; accepting breaks has its own view

    def has_delete_permission(self, request, obj=None):
        return False  # the record of what was received

    def get_urls(self):
        own = [
            path("allocation/", self.admin_site.admin_view(self.allocation_view), name="imports_allocation"),
            path("allocation/<path:allocation_id>/export/", self.admin_site.admin_view(self.allocation_export_view),
                 name="imports_allocation_export"),
            path("<path:object_id>/accept/", self.admin_site.admin_view(self.accept_view), name="imports_importjob_accept"),
            path("<path:object_id>/breaks.csv", self.admin_site.admin_view(self.breaks_view),
                 name="imports_importjob_breaks"),
        ]
        return own + super().get_urls()

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            if not request.user.has_perms(KIND_PERMISSIONS[data["kind"]]):
                raise PermissionDenied
            upload = data["file"]
            try:
                job, _ = services.import_create(
                    kind=data["kind"], upload=upload, file_name=upload.name, user=request.user,
                    mode=data["mode"] if data["kind"] == ImportKind.HOLDINGS else ImportMode.APPLY,
                    match=data["match"], tolerance=data["tolerance"],
                )
            except DomainError as exc:
                form.add_error(None, exc.detail)
            else:
                self.message_user(request, f"{job.file_name} received; it is being checked.", messages.SUCCESS)
                return redirect(reverse("admin:imports_importjob_change", args=[job.pk]))
        context = {
            **self.admin_site.each_context(request), "title": "Import a file", "form": form, "opts": self.model._meta,
            "has_view_permission": self.has_view_permission(request),
        }
        return TemplateResponse(request, "admin/imports/importjob/upload.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if job is not None:
            breaks = list(ImportBreak.objects.filter(import_job=job).select_related("account", "instrument")
                          .order_by("account__client_id", "instrument__isin", "currency")[:BREAKS_SHOWN])
            for b in breaks:
                b.book_text = "none" if b.book is None else text(b.book)
                b.file_text = "not in the file" if b.file is None else text(b.file)
                b.difference_text = text(b.difference)
            extra.update(
                job=job, progress=import_progress_of(job), breaks=breaks, breaks_shown=BREAKS_SHOWN,
                polling=job.status in (ImportStatus.PENDING, ImportStatus.RUNNING),
                can_accept=job.status == ImportStatus.AWAITING_ACCEPTANCE and self.may_accept(request),
                accept_url=reverse("admin:imports_importjob_accept", args=[job.pk]),
                breaks_url=reverse("admin:imports_importjob_breaks", args=[job.pk]),
            )
        return super().change_view(request, object_id, form_url, extra)

    def may_accept(self, request) -> bool:
        return request.user.has_perms(("imports.change_importjob", *KIND_PERMISSIONS[ImportKind.HOLDINGS]))

    def accept_view(self, request, object_id):
        if request.method != "POST":
            return redirect(reverse("admin:imports_importjob_change", args=[object_id]))
        if not self.may_accept(request):
            raise PermissionDenied
        job = self.get_object(request, object_id)
        if job is None:
            return redirect(reverse("admin:imports_importjob_changelist"))
        break_ids = None if "accept_all" in request.POST else request.POST.getlist("break_id")
        if break_ids == []:
            self.message_user(request, "Select the breaks to accept, or accept all.", messages.WARNING)
        else:
            try:
                job = services.breaks_accept(job=job, break_ids=break_ids, user=request.user)
            except DomainError as exc:
                self.message_user(request, exc.detail, messages.ERROR)
            else:
                self.message_user(request, f"Accepted: {job.rows_changed} rows written in {job.accounts_changed} accounts.",
                                  messages.SUCCESS)
        return redirect(reverse("admin:imports_importjob_change", args=[object_id]))

    # Model portfolios from and to spreadsheets ------------------------------------------

    def allocation_view(self, request):
        """Import a spreadsheet of lines as a new allocation or a new version of one;
        export one. Needs the allocation permissions (add for new, change for a version)."""
        if not request.user.has_perm("portfolios.view_allocation"):
            raise PermissionDenied
        form = AllocationImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            allocation = data["allocation"]
            needed = "portfolios.change_allocation" if allocation else "portfolios.add_allocation"
            if not request.user.has_perm(needed):
                raise PermissionDenied
            upload = data["file"]
            try:
                saved = services.allocation_import(
                    data=upload.read(), file_name=upload.name, allocation=allocation, name=data["name"],
                    base_currency=data["base_currency"], normalize=data["normalize"],
                    effective_from=data["effective_from"], user=request.user,
                )
            except DomainError as exc:
                for error in exc.errors or []:
                    form.add_error(None, f"{error.field}: {error.message}" if error.field else error.message)
                if not exc.errors:
                    form.add_error(None, exc.detail)
            else:
                version = saved.current_version.version
                self.message_user(request, f"{saved} now has version {version} from {upload.name}.", messages.SUCCESS)
                return redirect(reverse("admin:portfolios_allocation_change", args=[saved.pk]))
        context = {
            **self.admin_site.each_context(request), "title": "Model portfolio from a spreadsheet", "form": form,
            "opts": self.model._meta, "allocations": Allocation.objects.select_related("current_version").order_by("name"),
        }
        return TemplateResponse(request, "admin/imports/importjob/allocation.html", context)

    def allocation_export_view(self, request, allocation_id):
        if not request.user.has_perm("portfolios.view_allocation"):
            raise PermissionDenied
        allocation = Allocation.objects.filter(pk=parse_uuid(allocation_id)).first() if parse_uuid(allocation_id) else None
        if allocation is None:
            raise Http404("no such allocation")
        rows = allocation_rows(allocation)
        stem = f"allocation-{allocation.pk}"
        if request.GET.get("format") == "xlsx":
            response = HttpResponse(rows_xlsx(rows, sheet="allocation"), content_type=XLSX)
            response["Content-Disposition"] = f'attachment; filename="{stem}.xlsx"'
            return response
        writer = csv.writer(Echo())
        response = StreamingHttpResponse((writer.writerow(row) for row in rows), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{stem}.csv"'
        return response

    def breaks_view(self, request, object_id):
        job = self.get_object(request, object_id)
        if job is None or not self.has_view_permission(request, job):
            raise PermissionDenied
        writer = csv.writer(Echo())
        response = StreamingHttpResponse((writer.writerow(row) for row in break_report_rows(job)), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="breaks-{job.pk}.csv"'
        return response
