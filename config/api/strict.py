"""Refuse what a request body carries in vain, or in a JSON type it does not document.

`UnknownFieldsRefused`, mixed in front of an input serializer: a body field the
serializer does not know is a 400 naming it (`{"field": "alocation", "message":
"unknown field; the fields accepted are ..."}`) instead of being ignored, so a typo never
looks like a request that was honoured. The OpenAPI document says the same
(`additionalProperties: false` on every request body, config/api/schema.py).

Both it and the PATCH bodies' `StrictFieldsMixin` also take each field only in the JSON
type the document gives it (`json_type_errors`): DRF would turn `1` into the name "1",
`"true"` into a boolean, `""` into null and `1e2`, `" 1"` or a float into a decimal. A
decimal is a string in plain form (api.md), never a binary float.
"""

import re

from rest_framework import serializers

# A decimal as the document's pattern has it (config/api/schema.py): plain form, ASCII digits.
PLAIN_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
DECIMAL_MESSAGE = 'must be a decimal in a string, digits with an optional "-" and ".", such as "12.5"'
STRING, INTEGER, BOOLEAN, ARRAY, OBJECT = "a string", "a whole number", "true or false", "a list", "an object"


def _json_type(field) -> str | None:
    """The JSON type a field takes, as the document states it; None: not checked here."""
    if isinstance(field, serializers.BooleanField):
        return BOOLEAN
    if isinstance(field, serializers.IntegerField):
        return INTEGER
    if isinstance(field, (serializers.CharField, serializers.ChoiceField, serializers.DecimalField,
                          serializers.DateField, serializers.UUIDField)):
        return STRING
    if isinstance(field, (serializers.ListField, serializers.ListSerializer)):
        return ARRAY
    if isinstance(field, (serializers.DictField, serializers.Serializer)):
        return OBJECT
    return None


def _is(value, kind: str) -> bool:
    if kind == BOOLEAN:
        return isinstance(value, bool)
    if kind == INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, {STRING: str, ARRAY: list, OBJECT: dict}[kind])


def json_type_errors(fields, data: dict) -> dict:
    """{field name: [message]} for each value of `data` not in its field's JSON type (null
    aside: the field says whether it takes it); the items of a list of scalars too."""
    errors = {}
    for name, value in data.items():
        field = fields.get(name)
        kind = _json_type(field) if field is not None and not field.read_only else None
        if kind is None or value is None:
            continue
        if isinstance(field, serializers.DecimalField):
            if not isinstance(value, str) or not PLAIN_DECIMAL.fullmatch(value):
                errors[name] = [DECIMAL_MESSAGE]
        elif not _is(value, kind):
            errors[name] = [f"must be {kind}"]
        elif kind == ARRAY and isinstance(field, serializers.ListField):
            child = _json_type(field.child)
            if child in (STRING, INTEGER, BOOLEAN):
                bad = {index: [f"must be {child}"] for index, item in enumerate(value) if not _is(item, child)}
                if bad:
                    errors[name] = bad
    return errors


class UnknownFieldsRefused:
    def to_internal_value(self, data):
        if isinstance(data, dict):
            known = set(self.fields)
            unknown = sorted(str(name) for name in data if name not in known)
            if unknown:
                accepted = ", ".join(sorted(n for n, f in self.fields.items() if not f.read_only))
                raise serializers.ValidationError(
                    {name: [f"unknown field; the fields accepted are {accepted}"] for name in unknown}
                )
        return with_json_types(self, data, super().to_internal_value)


def with_json_types(serializer, data, to_internal_value):
    """`to_internal_value(data)`, refusing too the values not in their field's JSON type:
    one 400 names every bad field, a type error in place of DRF's message for the field."""
    errors = json_type_errors(serializer.fields, data) if isinstance(data, dict) else {}
    try:
        value = to_internal_value(data)
    except serializers.ValidationError as exc:
        if errors and isinstance(exc.detail, dict):
            raise serializers.ValidationError({**exc.detail, **errors}) from exc
        raise
    if errors:
        raise serializers.ValidationError(errors)
    return value
