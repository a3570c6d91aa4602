"""`?offset=&limit=` pagination with the body `{"meta": {...}, "data": [...]}`."""

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response

from core.counting import COUNT_AHEAD, capped_count, count_cap


class MetaDataPagination(LimitOffsetPagination):
    """Two queries per page: one COUNT and the page itself.

    `limit` defaults to 100 and is capped at 1000 (a larger value is lowered, and
    `meta.limit` says so); a value that is not a whole number in range is a 400.
    """

    default_limit = 100
    max_limit = 1000

    def _parameter(self, request, name: str, default: int, minimum: int) -> int:
        raw = request.query_params.get(name)
        if raw in (None, ""):
            return default
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise ValidationError({name: [f"must be a whole number ≥ {minimum}, got {raw!r}"]})
        return value

    def get_limit(self, request):
        return min(self._parameter(request, self.limit_query_param, self.default_limit, 1), self.max_limit)

    def get_offset(self, request):
        return self._parameter(request, self.offset_query_param, 0, 0)

    def get_paginated_response(self, data):
        return Response(
            {
                "meta": {"offset": self.offset, "limit": self.limit, "count": len(data), "total_count": self.count},
                "data": data,
            }
        )

    def get_schema_operation_parameters(self, view):
        """`limit` ≥ 1 and `offset` ≥ 0, as `_parameter` enforces (a larger limit is lowered, not refused)."""
        parameters = super().get_schema_operation_parameters(view)
        minimums = {self.limit_query_param: 1, self.offset_query_param: 0}
        for parameter in parameters:
            parameter["schema"]["minimum"] = minimums[parameter["name"]]
        return parameters

    def get_paginated_response_schema(self, schema):
        integer = {"type": "integer", "minimum": 0}
        return {
            "type": "object",
            "required": ["meta", "data"],
            "properties": {
                "meta": {
                    "type": "object",
                    "required": ["offset", "limit", "count", "total_count"],
                    "properties": {
                        "offset": {**integer, "example": 0},
                        "limit": {**integer, "example": self.default_limit},
                        "count": {**integer, "description": "Rows in this page."},
                        "total_count": {**integer, "description": "Rows matching the query, on all pages."},
                    },
                },
                "data": schema,
            },
        }


class CappedCountPagination(MetaDataPagination):
    """For lists of millions of rows (trade orders): `total_count` is counted only up to
    COUNT_AHEAD rows past the page's end (core.counting), so no page COUNTs the whole
    table. `meta.total_count_exact` is false when there are more rows than counted;
    `total_count` is then a lower bound (the rows counted)."""

    def get_count(self, queryset):
        offset, limit = self.get_offset(self.request), self.get_limit(self.request)
        self.cap = count_cap(offset, limit)
        return capped_count(queryset, self.cap)

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        response.data["meta"]["total_count_exact"] = self.count <= self.cap
        return response

    def get_paginated_response_schema(self, schema):
        answer = super().get_paginated_response_schema(schema)
        meta = answer["properties"]["meta"]
        meta["required"] = [*meta["required"], "total_count_exact"]
        meta["properties"]["total_count"] = {
            "type": "integer", "minimum": 0,
            "description": f"Rows matching the query, counted up to {COUNT_AHEAD:,} past this page's end: exact when "
            "`total_count_exact` is true, else a lower bound.",
        }
        meta["properties"]["total_count_exact"] = {
            "type": "boolean", "description": "False when more rows match than were counted.",
        }
        return answer
