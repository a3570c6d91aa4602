"""The OpenAPI document: the schema class of every view, and the post-processing
(drf-spectacular's POSTPROCESSING_HOOKS)."""

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


def query_parameters_may_be_empty(result, generator, request, public):
    """An optional query parameter sent empty (`?start=`) is the parameter left out: the
    filters and the pagination ignore it. The document says so (`allowEmptyValue`)."""
    for path in result.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                if parameter.get("in") == "query" and not parameter.get("required"):
                    parameter["allowEmptyValue"] = True
    return result


def request_bodies_closed(result, generator, request, public):
    """Every JSON request body component (`…Request`, split from the responses by
    COMPONENT_SPLIT_REQUEST) takes no field it does not list: the serializers refuse
    unknown fields (config/api/strict.py), and the document says so. A multipart form
    (a file upload) is left open: its other parts are ignored. A file upload is required,
    and when sent as the body (`text/csv`), not empty."""
    multipart = set()
    for path in result.get("paths", {}).values():
        for operation in path.values():
            request_body = operation.get("requestBody", {}) if isinstance(operation, dict) else {}
            content = request_body.get("content", {})
            if "text/csv" in content:
                request_body["required"] = True  # an upload without its file is refused
            for media_type, body in content.items():
                reference = body.get("schema", {}).get("$ref", "")
                if media_type == "multipart/form-data" and reference:
                    multipart.add(reference.rsplit("/", 1)[-1])
                if media_type == "text/csv" and body.get("schema", {}).get("type") == "string":
                    body["schema"]["minLength"] = 1
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if (name.endswith("Request") and name not in multipart and component.get("type") == "object"
                and "properties" in component):
            component["additionalProperties"] = False
    return result


# --- The rules of request fields, stated ------------------------------------------------
#
# drf-spectacular documents a field's type and its validators, not what DRF's fields
# refuse by themselves. `RequestRulesSchema` (settings DEFAULT_SCHEMA_CLASS) adds those to
# every request body, so a body the document allows is one the fields take:
# - a string field refuses NUL characters, and, not allowing blank, one of spaces only
#   (DRF strips it first);
# - a decimal is a plain decimal string ("12.5", ".5", "-3") within the field's digits;
# - a list that refuses to be empty (`allow_empty=False`) has at least one item.

def _character_class(characters) -> str:
    """A regex character class body of `characters`, as ECMA and Python read it alike."""
    codes = sorted(ord(c) for c in characters)
    runs, start = [], None
    for index, code in enumerate(codes):
        start = code if start is None else start
        if index + 1 == len(codes) or codes[index + 1] != code + 1:
            runs.append(f"\\u{start:04x}" + (f"-\\u{code:04x}" if code != start else ""))
            start = None
    return "".join(runs)


# What str.strip() removes (DRF trims strings with it), named one by one: `\s` means
# ASCII whitespace to a validator reading the pattern as ASCII, Unicode whitespace to Python.
SPACE = _character_class(chr(code) for code in range(0x3001) if chr(code).isspace())
NO_NUL = r"^[^\u0000]*$"
NOT_BLANK = rf"^[^\u0000]*[^\u0000{SPACE}][^\u0000]*$"


def decimal_pattern(max_digits: int | None, decimal_places: int | None, sign: str | None = None) -> str:
    """The strings a DRF DecimalField of these bounds takes, in plain form; `sign`
    "not_negative" (≥ 0) or "positive" (> 0: some digit is not 0)."""
    whole = "+" if max_digits is None else "{1,%d}" % max(max_digits - (decimal_places or 0), 1)
    places = "*" if decimal_places is None else "{0,%d}" % decimal_places
    fraction = "+" if decimal_places is None else "{1,%d}" % decimal_places
    start = {None: "^-?", "not_negative": "^", "positive": "^(?=[0-9.]*[1-9])"}[sign]
    if decimal_places == 0:
        return rf"{start}[0-9]{whole}$"
    return rf"{start}(?:[0-9]{whole}(?:\.[0-9]{places})?|\.[0-9]{fraction})$"


def percentage_pattern(decimal_places: int) -> str:
    """A decimal string from 0 to 100 with at most `decimal_places` places."""
    return rf"^(?:100(?:\.0{{0,{decimal_places}}})?|[0-9]{{1,2}}(?:\.[0-9]{{0,{decimal_places}}})?|\.[0-9]{{1,{decimal_places}}})$"


def states(field, **rules):
    """Give `field` rules its service enforces (and names) for the document to state:
    JSON schema keywords (`minItems=1`, `format="uuid"`), or for a decimal `sign=`
    "positive" / "not_negative" and `percentage=True`. Returns the field.

    The rules go on a subclass made for the field: DRF copies declared fields by calling
    their class again with the same arguments, which would drop an attribute."""
    cls = field.__class__
    field.__class__ = type(cls.__name__, (cls,), {"schema_rules": {**getattr(cls, "schema_rules", {}), **rules}})
    return field


def request_field_rules(field, schema: dict) -> None:
    """Add to `schema` (a request field's) what the field refuses beyond its validators."""
    if not isinstance(schema, dict) or "$ref" in schema or "allOf" in schema or "enum" in schema:
        return
    rules = dict(getattr(field, "schema_rules", {}))
    sign, percentage = rules.pop("sign", None), rules.pop("percentage", False)
    if isinstance(field, serializers.DecimalField) and schema.get("type") == "string":
        schema["pattern"] = (percentage_pattern(field.decimal_places) if percentage
                             else decimal_pattern(field.max_digits, field.decimal_places, sign))
        if field.max_digits is None:
            schema.setdefault("maxLength", field.MAX_STRING_LENGTH)
    elif (isinstance(field, serializers.CharField) and not isinstance(field, serializers.ChoiceField)
          and schema.get("type") == "string" and "pattern" not in schema and "format" not in schema
          and "format" not in rules and "pattern" not in rules):
        schema["pattern"] = NO_NUL if field.allow_blank or not field.trim_whitespace else NOT_BLANK
    elif isinstance(field, (serializers.ListField, serializers.ListSerializer)) and schema.get("type") == "array":
        if not field.allow_empty and not schema.get("minItems"):
            schema["minItems"] = 1
    schema.update(rules)


class RequestRulesSchema(AutoSchema):
    """drf-spectacular's AutoSchema, with `request_field_rules` on every request field."""

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if direction == "request":
            request_field_rules(field, schema)
        return schema


def request_bodies_required(result, generator, request, public):
    """A JSON request body that has required fields, or may be null, is itself required:
    without a body the request is refused (a body left out is not a `null` body)."""
    schemas = result.get("components", {}).get("schemas", {})
    for path in result.get("paths", {}).values():
        for operation in path.values():
            request_body = operation.get("requestBody") if isinstance(operation, dict) else None
            schema = (request_body or {}).get("content", {}).get("application/json", {}).get("schema")
            if not schema:
                continue
            if "$ref" in schema:
                schema = schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
            if schema.get("required") or schema.get("nullable"):
                request_body["required"] = True
    return result
