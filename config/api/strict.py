"""Refuse what a request body carries in vain.

`UnknownFieldsRefused`, mixed in front of an input serializer: a body field the
serializer does not know is a 400 naming it (`{"field": "alocation", "message":
"unknown field; the fields accepted are ..."}`) instead of being ignored, so a typo never
looks like a request that was honoured. The OpenAPI document says the same
(`additionalProperties: false` on every request body, config/api/schema.py).
"""

from rest_framework import serializers


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
        return super().to_internal_value(data)
