"""The API's JSON parser: strict JSON, bounded in size and depth.

DRF's own parser accepts `NaN` and `Infinity` (Python's json does), fails with a
RecursionError (a 500) on a body of a thousand nested arrays, and reads a body of any
size. This one answers each with problem details naming the rule: 413 for a body above
settings.DATA_UPLOAD_MAX_MEMORY_SIZE, 400 for nesting deeper than MAX_DEPTH, 400 naming
the field (`allocation[1].weight`) for a bare NaN or Infinity.
"""

import json

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser

MAX_DEPTH = 32  # no request of this API nests deeper than 4


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"

    def __init__(self, detail=None, code=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        super().__init__(detail or f"The request body is too large: at most {limit} bytes are accepted.", code)


class _NotANumber:
    def __init__(self, text: str):
        self.text = text


def _check(data) -> None:
    """Walk the parsed body without recursion: depth, and the path of a NaN/Infinity."""
    errors = {}
    stack = [(data, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise exceptions.ParseError(f"JSON parse error - the body nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((item, f"{path}.{key}" if path else str(key), depth + 1) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value))
        elif isinstance(value, _NotANumber):
            errors[path] = [f"{value.text} is not a number: JSON has no NaN or Infinity"]
    if errors:
        raise exceptions.ValidationError(dict(sorted(errors.items())))


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        length = request.META.get("CONTENT_LENGTH") if request is not None else None
        try:
            declared = int(length or 0)
        except ValueError:
            declared = 0
        if limit is not None and declared > limit:
            raise RequestTooLarge(f"The request body has {declared} bytes: at most {limit} bytes are accepted.")
        raw = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(raw) > limit:
            raise RequestTooLarge()
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(raw.decode(encoding), parse_constant=_NotANumber)
        except RecursionError:
            raise exceptions.ParseError(f"JSON parse error - the body nests deeper than {MAX_DEPTH} levels") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        _check(data)
        return data
