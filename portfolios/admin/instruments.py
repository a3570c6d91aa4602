"""Instruments and market data (prices, FX rates), plus the API's idempotency records."""

from django.contrib import admin

from ..forms import InstrumentForm
from ..models import FxRate, IdempotencyRecord, Instrument, InstrumentType, Price
from .base import ReadOnlyAdmin, ServiceAdmin, UUIDSearchMixin


@admin.register(Instrument)
class InstrumentAdmin(UUIDSearchMixin, ServiceAdmin):
    """instrument_create / instrument_update; type and currency are fixed after creation."""

    form = InstrumentForm
    list_display = ("name", "isin", "type", "currency", "tradable", "block_size", "futures_cost", "updated_at")
    list_filter = ("type", "tradable", "currency")
    search_fields = ("^isin", "name")
    search_help_text = "ISIN (or its start), part of the name, or the full UUID."
    fields = ("isin", "name", "type", "currency", "tradable", "block_size", "futures_cost", "id", "created_at", "updated_at")
    readonly_fields = ("id", "created_at", "updated_at")
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        # Allocations and holdings depend on them; instrument_update refuses a change.
        return ("type", "currency", *fields) if obj is not None else fields

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        # Autocomplete offers only what the field can hold; the services still judge.
        asking_for = request.GET.get("model_name")
        if asking_for == "allocationline":
            results = results.filter(tradable=True)
        elif asking_for == "position":
            results = results.exclude(type=InstrumentType.CASH)
        return results, may_have_duplicates


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    """A large table: no full count, no filter that scans for distinct values."""

    list_display = ("instrument", "source", "effective_at", "value", "currency", "updated_at")
    list_select_related = ("instrument",)
    list_filter = ("instrument__type",)
    date_hierarchy = "effective_at"
    search_fields = ("=instrument__isin", "instrument__name", "=source")
    search_help_text = "ISIN, part of the instrument's name, or a source."
    autocomplete_fields = ("instrument",)
    readonly_fields = ("created_at", "updated_at")
    show_full_result_count = False

    @admin.display(description="currency", ordering="instrument__currency")
    def currency(self, obj):
        return obj.instrument.currency


@admin.register(FxRate)
class FxRateAdmin(admin.ModelAdmin):
    list_display = ("base", "quote", "effective_at", "rate", "updated_at")
    list_filter = ("base", "quote")
    date_hierarchy = "effective_at"
    search_fields = ("=base", "=quote")
    readonly_fields = ("created_at", "updated_at")
    show_full_result_count = False


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdmin):
    """The API's stored first responses, for support; written only by the API."""

    list_display = ("key", "user", "method", "path", "status_code", "created_at")
    list_select_related = ("user",)
    list_filter = ("method", "status_code")
    search_fields = ("=key", "path")
    ordering = ("-created_at",)
    fields = ("user", "key", "method", "path", "request_hash", "status_code", "content_type", "response_body",
              "created_at")
    readonly_fields = fields
    show_full_result_count = False
