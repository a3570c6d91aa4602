"""Helpers shared by the rebalancing admin pages: short ids, links, money, the
autocomplete list filter, CSV streaming and the exact search of order tables."""

import csv

from django import forms
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.contrib.admin.widgets import AutocompleteSelect
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from core import formatting
from core.ids import parse_uuid
from portfolios.models import Instrument, PortfolioAccount


def short_id(pk) -> str:
    """The UUID's last 8 hex digits (its random part): they differ between rows."""
    return formatting.short_id(pk)


def admin_link(view: str, pk, text) -> str:
    return format_html('<a href="{}">{}</a>', reverse(view, args=[pk]), text)


def money_text(value, currency: str = "") -> str:
    """In the currency's minor unit, thousands grouped: "134,455.44 EUR"."""
    return formatting.money(value, currency)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


# --- Filters and CSV ----------------------------------------------------------------------


class AutocompleteFilter(admin.FieldListFilter):
    """Filter by one related row picked with the admin's autocomplete (select2), so the
    sidebar never lists every account, instrument or execution of a large table. The
    related model's admin must have search_fields. Sets `<field>__<pk>__exact`."""

    template = "admin/rebalancing/tradeorder/autocomplete_filter.html"

    def __init__(self, field, request, params, model, model_admin, field_path):
        self.lookup_kwarg = f"{field_path}__{field.target_field.name}__exact"
        value = params.get(self.lookup_kwarg)
        self.lookup_val = value[-1] if isinstance(value, list) else value
        super().__init__(field, request, params, model, model_admin, field_path)
        self.admin_site = model_admin.admin_site
        self.title = field.verbose_name

    def expected_parameters(self):
        return [self.lookup_kwarg]

    def widget_html(self) -> str:
        """The autocomplete select, with the chosen row (one query) if there is one."""
        remote = self.field.remote_field.model
        widget = AutocompleteSelect(self.field, self.admin_site, attrs={
            "class": "ballast-autocomplete-filter", "data-filter-param": self.lookup_kwarg,
            "data-placeholder": f"Any {self.title}", "style": "width: 100%",
        })
        widget.choices = forms.ModelChoiceField(queryset=remote._default_manager.all(), required=False).choices
        value = self.lookup_val if parse_uuid(self.lookup_val or "") else None
        return widget.render(f"filter-{self.field_path}", value)

    def choices(self, changelist):
        yield {
            "selected": self.lookup_val is None,
            "query_string": changelist.get_query_string(remove=[self.lookup_kwarg]),
            "display": "All",
        }


class FilterOnlyChangeList(ChangeList):
    """The changelist's filtered, searched and sorted queryset without the page and counts
    (for the CSV export and the blotter)."""

    def get_results(self, request):
        self.result_count = self.full_result_count = None
        self.result_list = []


class _Echo:
    def write(self, value):
        return value


def csv_response(rows, filename: str) -> StreamingHttpResponse:
    """Stream `rows` (an iterable of tuples) as a CSV attachment."""
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse((writer.writerow(row) for row in rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def file_stamp() -> str:
    return timezone.localtime().strftime("%Y%m%d-%H%M%S")


class ExactSearchMixin:
    """Search orders by the exact client id of their account or their own full UUID (and,
    for trade orders, the exact ISIN): lookups the indexes answer, not ILIKE scans."""

    isin_search = False

    def get_search_results(self, request, queryset, search_term):
        """The term is resolved to account (and instrument) ids first, one small indexed
        query each, and the orders filtered by those literal ids: an OR of two IN
        (subquery) made PostgreSQL read all 5 million trade orders (bench/admin_lists.py)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        found = Q(pk__in=[])
        accounts = list(PortfolioAccount.objects.filter(client_id=term).values_list("pk", flat=True))
        if accounts:
            found |= Q(account_id__in=accounts)
        if self.isin_search:
            instruments = list(Instrument.objects.filter(isin=term.upper()).values_list("pk", flat=True))
            if instruments:
                found |= Q(instrument_id__in=instruments)
        order_id = parse_uuid(term)
        if order_id is not None:
            found |= Q(pk=order_id)
        return queryset.filter(found), False
