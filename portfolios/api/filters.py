"""Query-string filters of the list endpoints. A bad value is a 400 naming the parameter."""

import django_filters
from django import forms
from django.db.models import Exists, OuterRef
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from ..models import (
    AccountStatus,
    Allocation,
    AllocationLine,
    Configuration,
    FxRate,
    Instrument,
    InstrumentType,
    PortfolioAccount,
    Price,
)
from ..selectors import instruments_by_reference
from .fields import DATE_SCHEMA, IsoDateFormField, StrictBooleanFormField


@extend_schema_field(DATE_SCHEMA)
class IsoDateFilter(django_filters.DateFilter):
    field_class = IsoDateFormField


@extend_schema_field(OpenApiTypes.BOOL)
class StrictBooleanFilter(django_filters.Filter):
    field_class = StrictBooleanFormField


class InstrumentReferencesFormField(forms.CharField):
    """Comma-separated ISINs and/or UUIDs → the instruments (one query); unknown ones are an error."""

    def __init__(self, *args, many: bool = True, **kwargs):
        self.many = many
        super().__init__(*args, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        if not value:
            return None
        references = list(dict.fromkeys(r.strip() for r in value.split(",") if r.strip()))
        if not self.many and len(references) > 1:
            raise forms.ValidationError("one ISIN or UUID", code="invalid")
        found = instruments_by_reference(references)
        unknown = [r for r in references if r not in found]
        if unknown:
            # The references go in as params: a '%' in them must not be read as a format.
            raise forms.ValidationError(
                "no instrument with ISIN or UUID %(references)s", code="unknown", params={"references": ", ".join(unknown)}
            )
        return list({instrument.pk: instrument for instrument in found.values()}.values())


@extend_schema_field(OpenApiTypes.STR)
class InstrumentReferencesFilter(django_filters.Filter):
    field_class = InstrumentReferencesFormField


@extend_schema_field({"type": "string", "pattern": "^[^,]*$"})
class InstrumentReferenceFilter(InstrumentReferencesFilter):
    """One ISIN or UUID: no comma (a comma would name several)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, many=False, **kwargs)


class InstrumentFilter(django_filters.FilterSet):
    isin = django_filters.CharFilter(method="filter_isin")
    type = django_filters.ChoiceFilter(choices=InstrumentType.choices)
    tradable = StrictBooleanFilter()

    class Meta:
        model = Instrument
        fields = ["isin", "type", "tradable"]

    def filter_isin(self, queryset, name, value):
        return queryset.filter(isin=value.strip().upper())


class PriceFilter(django_filters.FilterSet):
    instrument_id = InstrumentReferenceFilter(method="filter_instrument",
                                               help_text="An ISIN or a UUID.")
    start = IsoDateFilter(field_name="effective_at", lookup_expr="gte", help_text="YYYY-MM-DD, inclusive.")
    end = IsoDateFilter(field_name="effective_at", lookup_expr="lte", help_text="YYYY-MM-DD, inclusive.")
    source = django_filters.CharFilter()

    class Meta:
        model = Price
        fields = ["instrument_id", "start", "end", "source"]

    def filter_instrument(self, queryset, name, value):
        return queryset.filter(instrument__in=value)


class FxRateFilter(django_filters.FilterSet):
    base = django_filters.CharFilter(method="filter_upper")
    quote = django_filters.CharFilter(method="filter_upper")
    start = IsoDateFilter(field_name="effective_at", lookup_expr="gte", help_text="YYYY-MM-DD, inclusive.")
    end = IsoDateFilter(field_name="effective_at", lookup_expr="lte", help_text="YYYY-MM-DD, inclusive.")

    class Meta:
        model = FxRate
        fields = ["base", "quote", "start", "end"]

    def filter_upper(self, queryset, name, value):
        return queryset.filter(**{name: value.strip().upper()})


class AllocationFilter(django_filters.FilterSet):
    instrument_ids = InstrumentReferencesFilter(
        method="filter_instruments",
        help_text="Comma-separated ISINs and/or UUIDs: allocations whose current version holds any of them.",
    )
    start_date = IsoDateFilter(field_name="created_at", lookup_expr="date__gte",
                               help_text="Created on or after (YYYY-MM-DD).")
    end_date = IsoDateFilter(field_name="created_at", lookup_expr="date__lte",
                             help_text="Created on or before (YYYY-MM-DD).")

    class Meta:
        model = Allocation
        fields = ["instrument_ids", "start_date", "end_date"]

    def filter_instruments(self, queryset, name, value):
        holds = AllocationLine.objects.filter(version=OuterRef("current_version"), instrument__in=value)
        return queryset.filter(Exists(holds))


class AccountFilter(django_filters.FilterSet):
    client_id = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=AccountStatus.choices)
    locked = StrictBooleanFilter()
    allocation_id = django_filters.UUIDFilter(field_name="configuration__allocation_id")

    class Meta:
        model = PortfolioAccount
        fields = ["client_id", "status", "locked", "allocation_id"]


class ConfigurationFilter(django_filters.FilterSet):
    allocation_id = django_filters.UUIDFilter()

    class Meta:
        model = Configuration
        fields = ["allocation_id"]
