"""Helpers shared by the rebalancing admin pages: short ids, links, money, the
autocomplete list filter, CSV streaming and the exact search of order tables."""

import csv
import datetime

from django import forms
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.templatetags.admin_list import result_headers, result_hidden_fields
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import display_for_field, display_for_value, lookup_field
from django.contrib.admin.views.main import ORDER_VAR, ChangeList
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from django.db import models
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext

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


# --- Rows of large lists ----------------------------------------------------------------


class FastRowsChangeList(ChangeList):
    """A changelist whose rows are rendered as Django's own `items_for_result` renders
    them (the same cells, classes, links and empty values), with each column resolved
    once per page instead of once per cell, and each row handed to the template as one
    string: on a 100-row page of 13 columns the per-cell lookups and template loop were
    most of the page's time (bench/admin_lists.py). The change_list.html of the admin
    includes `cl.fast_results` (templates/admin/ballast_result_list.html)."""

    def get_ordering(self, request, queryset):
        # Sort only by the columns the headers offer (get_sortable_by): a typed ?o= of
        # another column would sort the whole table without an index.
        if self.sortable_by is not None and self.params.get(ORDER_VAR):
            kept = []
            for part in self.params[ORDER_VAR].split("."):
                index = part.rpartition("-")[2]
                if index.isdigit() and int(index) < len(self.list_display) and (
                    self.list_display[int(index)] in self.sortable_by
                ):
                    kept.append(part)
            self.params[ORDER_VAR] = ".".join(kept)
        return super().get_ordering(request, queryset)

    def fast_results(self) -> dict:
        headers = list(result_headers(self))
        return {
            "result_headers": headers,
            "num_sorted_fields": sum(1 for h in headers if h["sortable"] and h["sorted"]),
            "result_hidden_fields": list(result_hidden_fields(self)),
            "results": [[row] for row in fast_rows(self)],
        }


def _column(model_admin, opts, name):
    """(kind, field or attribute): "field" for a concrete model field named as such,
    "admin" for a method of the ModelAdmin or a callable, else "lookup" (Django's
    lookup_field per cell)."""
    if callable(name):
        return "admin", name
    if isinstance(name, str) and "__" not in name:
        try:
            field = opts.get_field(name)
        except FieldDoesNotExist:
            field = None
        if field is not None and field.concrete and not field.auto_created and field.name == name:
            return "field", field
        if field is None and hasattr(model_admin, name) and name != "__str__":
            return "admin", getattr(model_admin, name)
    return "lookup", None


def fast_rows(cl):
    """One SafeString per result row, cell for cell what admin_list.items_for_result makes
    (no list_editable: these lists have none)."""
    model_admin, opts = cl.model_admin, cl.lookup_opts
    default_empty = model_admin.get_empty_value_display()
    pk = opts.pk.attname
    columns, first_link = [], True
    for index, name in enumerate(cl.list_display):
        kind, target = _column(model_admin, opts, name)
        if cl.list_display_links is None:
            link = False
        else:
            link = (first_link and not cl.list_display_links) or name in cl.list_display_links
        tag = ("th" if first_link else "td") if link else "td"
        if link:
            first_link = False
        classes = ["action-checkbox"] if name == "action_checkbox" else [f"field-{_field_class(name, index)}"]
        if kind == "field" and isinstance(target, (models.DateField, models.TimeField, models.ForeignKey)):
            classes.append("nowrap")
        empty = getattr(target, "empty_value_display", default_empty) if kind == "admin" else default_empty
        boolean = getattr(target, "boolean", False) if kind == "admin" else False
        if name == "action_checkbox" and getattr(target, "__func__", None) is admin.ModelAdmin.action_checkbox:
            kind = "checkbox"  # Django's own checkbox, without a widget template per row
        elif kind == "field" and getattr(target, "flatchoices", None):
            try:
                kind, target = "choices", (target, dict(target.flatchoices))  # built once, not per cell
            except TypeError:  # list-like choices: Django's own path per cell
                pass
        columns.append((name, kind, target, link, tag, classes, empty, boolean))
    preserved = {"preserved_filters": cl.preserved_filters, "opts": cl.opts}
    for result in cl.result_list:
        cells = []
        for name, kind, target, link, tag, classes, empty, boolean in columns:
            row_classes = list(classes)
            try:
                if kind == "checkbox":
                    label = format_html(gettext("Select this object for an action - {}"), result)
                    shown = mark_safe(
                        f'<input type="checkbox" name="{ACTION_CHECKBOX_NAME}" value="{conditional_escape(str(result.pk))}"'
                        f' class="action-select" aria-label="{conditional_escape(label)}">'
                    )
                elif kind == "choices":
                    field, labels = target
                    value = getattr(result, field.name)
                    if isinstance(value, str) and value.strip() == "":
                        value = ""
                    try:
                        shown = labels.get(value, empty)
                    except TypeError:  # an unhashable value: Django's own path
                        shown = display_for_field(value, field, empty, avoid_link=link)
                elif kind == "field":
                    value = getattr(result, target.name)
                    if isinstance(value, str) and value.strip() == "":
                        value = ""
                    if isinstance(target.remote_field, models.ManyToOneRel):
                        shown = empty if value is None else value
                    else:
                        shown = display_for_field(value, target, empty, avoid_link=link)
                elif kind == "admin":
                    value = target(result)
                    if isinstance(value, str) and value.strip() == "":
                        value = ""
                    shown = display_for_value(value, empty, boolean)
                    if isinstance(value, (datetime.date, datetime.time)):
                        row_classes.append("nowrap")
                else:
                    shown, extra = _lookup_cell(cl, result, name, default_empty, link)
                    row_classes += extra
            except ObjectDoesNotExist:
                shown = empty
            if link:
                try:
                    url = cl.url_for_result(result)
                except NoReverseMatch:
                    inner = conditional_escape(shown)
                else:
                    url = add_preserved_filters(preserved, url)
                    opener = result.serializable_value(str(cl.to_field) if cl.to_field else pk)
                    popup = f' data-popup-opener="{conditional_escape(opener)}"' if cl.is_popup else ""
                    inner = f'<a href="{conditional_escape(url)}"{popup}>{conditional_escape(shown)}</a>'
            else:
                inner = conditional_escape(shown)
            cells.append(f'<{tag} class="{" ".join(row_classes)}">{inner}</{tag}>')
        yield mark_safe("".join(cells))


def _field_class(name, index) -> str:
    """The column's name in its cell's class, as Django writes it."""
    if callable(name):
        return f"lambda{index}" if name.__name__ == "<lambda>" else name.__name__
    return name


def _lookup_cell(cl, result, name, empty, link):
    """A cell the generic way (Django's lookup_field), for columns _column could not place."""
    field, attr, value = lookup_field(name, result, cl.model_admin)
    empty = getattr(attr, "empty_value_display", empty)
    if isinstance(value, str) and value.strip() == "":
        value = ""
    if field is None or field.auto_created:
        boolean = getattr(attr, "boolean", False)
        if isinstance(attr, property) and hasattr(attr, "fget"):
            boolean = getattr(attr.fget, "boolean", False)
        extra = ["nowrap"] if isinstance(value, (datetime.date, datetime.time)) else []
        return display_for_value(value, empty, boolean), extra
    if isinstance(field.remote_field, models.ManyToOneRel):
        field_value = getattr(result, field.name)
        shown = empty if field_value is None else field_value
    else:
        shown = display_for_field(value, field, empty, avoid_link=link)
    extra = ["nowrap"] if isinstance(field, (models.DateField, models.TimeField, models.ForeignKey)) else []
    return shown, extra
