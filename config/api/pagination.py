"""`?offset=&limit=` pagination with the body `{"meta": {...}, "data": [...]}`."""

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response


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
