"""Allocations (model portfolios): edited as a whole; every save is a new version."""

from decimal import Decimal

from django.contrib import admin
from django.db.models import Count, Exists, OuterRef, Prefetch, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from core import charts, formatting
from rebalancing.admin.executions import EXECUTE_PERMISSION, rebalance_allocations_now
from rebalancing.selectors.book import allocation_constituents
from rebalancing.services import global_preferences

from .. import services
from ..api.fields import DATE_MESSAGE, parse_iso_date
from ..forms import AllocationForm, AllocationLineForm, AllocationLineFormSet
from ..models import (
    Allocation,
    AllocationLine,
    AllocationVersion,
    Configuration,
    InstrumentType,
    WeightType,
)
from ..selectors import MissingMarketData
from .restrictions import NeedsAttentionFilter, needs_attention_text
from .base import ReadOnlyAdmin, ReadOnlyInline, ServiceAdmin, UUIDSearchMixin, percent, plain


def _period(version: AllocationVersion) -> str:
    if version.weight_type != WeightType.PERIODICAL:
        return version.weight_type
    return f"{version.weight_type} (every {version.period_count} × {version.period_type})"


class AllocationLineWeightsForm(AllocationLineForm):
    """Weights in the inputs without the column's trailing zeros (0.6, not 0.600000000000);
    the same Decimals, so an untouched line does not count as changed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            for name in ("weight", "min_weight", "max_weight"):
                value = getattr(self.instance, name, None)
                if value is not None:
                    self.initial[name] = formatting.trimmed(value, 0)


class AllocationLineInline(admin.TabularInline):
    """The current version's lines, as the starting point of the next version.

    Saving never edits these rows: AllocationForm hands the lines to
    allocation_update, which stores them as a new version.
    """

    model = AllocationLine
    fk_name = "allocation"
    form = AllocationLineWeightsForm
    formset = AllocationLineFormSet
    fields = ("instrument", "weight", "min_weight", "max_weight")
    autocomplete_fields = ("instrument",)
    verbose_name = "line"
    verbose_name_plural = "lines (saving stores them as a new version)"

    def get_extra(self, request, obj=None, **kwargs):
        return 3 if obj is None else 1

    # Lines are part of the allocation: whoever may change the allocation may change
    # its lines, whatever the line model's own permissions say.
    def _may_edit(self, request, obj):
        return request.user.has_perm("portfolios.add_allocation" if obj is None else "portfolios.change_allocation")

    def has_add_permission(self, request, obj=None):
        return self._may_edit(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._may_edit(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._may_edit(request, obj)

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("portfolios.view_allocation") or self._may_edit(request, obj)


@admin.register(Allocation)
class AllocationAdmin(UUIDSearchMixin, ServiceAdmin):
    form = AllocationForm
    inlines = [AllocationLineInline]
    list_display = (
        "display_name", "base_currency", "version_number", "weight_type", "effective_from",
        "line_count", "account_count", "owner", "updated_at",
    )
    list_select_related = ("current_version", "owner")
    list_filter = (NeedsAttentionFilter, "base_currency", "current_version__weight_type")
    search_fields = ("name",)
    search_help_text = "Name, UUID, or the ISIN of an instrument in the current version."
    readonly_fields = (
        "id", "owner", "current_version_display", "weight_sum", "needs_attention", "created_at", "updated_at",
    )
    show_full_result_count = False
    actions = ["rebalance_now"]

    class Media:
        js = ("portfolios/allocation_weights.js",)

    def has_execute_rebalance_permission(self, request):
        return request.user.has_perm(EXECUTE_PERMISSION)

    @admin.action(
        description="Rebalance every account following the selected allocations", permissions=["execute_rebalance"]
    )
    def rebalance_now(self, request, queryset):
        """One execution per selected allocation (execution_create(allocation=...)), after
        a page that asks for the method and the rebalance date."""
        return rebalance_allocations_now(self, request, queryset)

    def get_queryset(self, request):
        lines = (
            AllocationLine.objects.filter(version_id=OuterRef("current_version_id"))
            .order_by().values("version_id").annotate(n=Count("pk")).values("n")
        )
        accounts = (
            Configuration.objects.filter(allocation_id=OuterRef("pk"))
            .order_by().values("allocation_id").annotate(n=Count("pk")).values("n")
        )
        return (
            super().get_queryset(request)
            .select_related("current_version")
            .annotate(line_count=Coalesce(Subquery(lines), 0), account_count=Coalesce(Subquery(accounts), 0))
        )

    @admin.display(description="needs attention")
    def needs_attention(self, obj):
        """Model lines that cannot be traded today (docs/restrictions.md)."""
        return needs_attention_text(obj)

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term:
            holds = AllocationLine.objects.filter(version_id=OuterRef("current_version_id"), instrument__isin__iexact=term)
            results = results | queryset.filter(Exists(holds))
        return results, may_have_duplicates

    def get_fieldsets(self, request, obj=None):
        fieldsets = [(None, {"fields": ("name", "base_currency")})]
        if obj is None or self.has_change_permission(request, obj):
            fieldsets.append((
                "New version" if obj is not None else "First version",
                {
                    "fields": ("weight_type", "period_type", "period_count", "effective_from", "normalize"),
                    "description": "Saving stores these settings and the lines below as a new version; "
                    "the versions before it are kept unchanged." if obj is not None else None,
                },
            ))
        if obj is not None:
            fieldsets.append(("Current version", {"fields": ("current_version_display", "weight_sum", "needs_attention")}))
            fieldsets.append(("Record", {"fields": ("id", "owner", "created_at", "updated_at"), "classes": ("collapse",)}))
        return fieldsets

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["versions"] = self.version_rows(obj) if obj is not None else []
        context["floating"] = self.floating_weights(request, obj) if obj is not None else None
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def version_rows(self, allocation: Allocation) -> list[dict]:
        """Every version, newest first, with its lines (three queries)."""
        versions = (
            AllocationVersion.objects.filter(allocation=allocation)
            .select_related("created_by")
            .prefetch_related(Prefetch("lines", queryset=AllocationLine.objects.select_related("instrument")))
            .order_by("-version")
        )
        return [
            {
                "version": version,
                "url": reverse("admin:portfolios_allocationversion_change", args=[version.pk]),
                "weight_type": _period(version),
                "lines": [(line.instrument.label, percent(line.weight)) for line in version.lines.all()],
                "is_current": version.pk == allocation.current_version_id,
            }
            for version in versions
        ]

    def floating_weights(self, request, allocation: Allocation) -> dict:
        """The "Floating weights" panel: allocation_constituents on `?effective_at=`
        (default today), or why it cannot be computed (a missing price)."""
        raw = request.GET.get("effective_at", "").strip()
        on_date = parse_iso_date(raw) if raw else timezone.localdate()
        panel = {"effective_at": raw or on_date.isoformat(), "error": "", "lines": [], "version": None}
        if on_date is None:
            panel["error"] = f"effective_at {DATE_MESSAGE}."
            return panel
        try:
            data = allocation_constituents(
                allocation=allocation, on_date=on_date, price_source=global_preferences().values["price_source"]
            )
        except MissingMarketData as exc:
            panel["error"] = str(exc)
            return panel
        panel.update(
            reset_date=data["reset_date"],
            version=data["version"],
            lines=[
                {
                    "instrument": line["instrument"].label,
                    "name": line["instrument"].name,
                    "weight": percent(line["weight"]),
                    "floating_weight": plain(line["floating_weight"]),
                    "floating_percent": percent(line["floating_weight"]),
                }
                for line in data["constituents"]
            ],
            chart=charts.paired_bar_chart(
                [{"label": line["instrument"].name, "values": (line["weight"], line["floating_weight"])}
                 for line in data["constituents"]],
                title="Target and floating weights", series=("target", "floating"),
                chart_id="chart-allocation-weights", value_text=percent,
            ),
        )
        return panel

    @admin.display(description="allocation", ordering="name")
    def display_name(self, obj):
        return str(obj)

    @admin.display(description="version", ordering="current_version__version")
    def version_number(self, obj):
        return f"v{obj.current_version.version}" if obj.current_version else "—"

    @admin.display(description="weight type", ordering="current_version__weight_type")
    def weight_type(self, obj):
        return obj.current_version.weight_type if obj.current_version else "—"

    @admin.display(description="effective from", ordering="current_version__effective_from")
    def effective_from(self, obj):
        return obj.current_version.effective_from if obj.current_version else "—"

    @admin.display(description="lines", ordering="line_count")
    def line_count(self, obj):
        return obj.line_count

    @admin.display(description="accounts", ordering="account_count")
    def account_count(self, obj):
        return obj.account_count

    @admin.display(description="current version")
    def current_version_display(self, obj):
        version = obj.current_version
        if version is None:
            return "—"
        return format_html(
            '<a href="{}">v{}</a>, {}, effective from {}',
            reverse("admin:portfolios_allocationversion_change", args=[version.pk]),
            version.version, _period(version), version.effective_from,
        )

    @admin.display(description="sum of weights (saved)")
    def weight_sum(self, obj):
        """The current version's weights as stored (one query)."""
        rows = AllocationLine.objects.filter(version_id=obj.current_version_id).values_list("instrument__type", "weight")
        base = sum((w for t, w in rows if t != InstrumentType.FUTURE), Decimal(0))
        futures = sum((w for t, w in rows if t == InstrumentType.FUTURE), Decimal(0))
        text = f"{percent(base)} (non-future lines)"
        if futures:
            text += f"; futures add {percent(futures)} of exposure on top"
        return text

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Versions and lines are read-only on their own but go with their allocation.
        perms_needed -= {str(model._meta.verbose_name) for model in (AllocationVersion, AllocationLine)}
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, obj):
        services.allocation_delete(allocation=obj)

    def delete_queryset(self, request, queryset):
        for allocation in queryset:
            services.allocation_delete(allocation=allocation)

    def construct_change_message(self, request, form, formsets, add=False):
        version = form.instance.current_version
        if version is None:
            return super().construct_change_message(request, form, formsets, add)
        return f"Saved version {version.version}: {version.change_summary}"


class VersionLineInline(ReadOnlyInline, admin.TabularInline):
    model = AllocationLine
    fk_name = "version"
    fields = ("instrument", "instrument_id_type", "weight", "min_weight", "max_weight")
    readonly_fields = fields
    verbose_name_plural = "lines of this version"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("instrument")


@admin.register(AllocationVersion)
class AllocationVersionAdmin(ReadOnlyAdmin):
    """Versions are written only by allocation_create / allocation_update."""

    list_display = ("allocation", "version", "effective_from", "weight_type", "created_by", "created_at", "change_summary")
    list_select_related = ("allocation", "created_by")
    list_filter = ("weight_type",)
    search_fields = ("allocation__name", "change_summary")
    date_hierarchy = "effective_from"
    fields = (
        "allocation", "version", "name", "effective_from", "weight_type", "period_type", "period_count",
        "created_by", "created_at", "change_summary",
    )
    readonly_fields = fields
    inlines = [VersionLineInline]
    show_full_result_count = False


@admin.register(AllocationLine)
class AllocationLineAdmin(ReadOnlyAdmin):
    """Lines of every version; they change only as part of a new version."""

    list_display = ("allocation", "version_number", "instrument", "weight", "min_weight", "max_weight")
    list_select_related = ("allocation", "version", "instrument")
    list_filter = ("instrument__type",)
    search_fields = ("=instrument__isin", "instrument__name", "allocation__name")
    readonly_fields = ("allocation", "version", "instrument", "instrument_id_type", "weight", "min_weight", "max_weight")
    fields = readonly_fields
    show_full_result_count = False

    @admin.display(description="version", ordering="version__version")
    def version_number(self, obj):
        return f"v{obj.version.version}"
