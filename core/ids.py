"""Id helpers shared by the apps: parsing ids from user input, and formatting many ids
once for one PostgreSQL array parameter."""

import uuid
from collections.abc import Iterable


def parse_uuid(value: str) -> uuid.UUID | None:
    """The UUID `value` spells, or None when it spells none."""
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


class IdTuple(tuple):
    """Ids that several queries send: `uuid_array` formats them once, not per query
    (formatting a UUID is about a microsecond; a chunk sends its thousand ids ten times)."""

    literal: str | None = None


def uuid_array(ids: Iterable) -> str:
    """A PostgreSQL array literal of UUIDs, for one `%s::uuid[]` parameter."""
    if type(ids) is not IdTuple:
        return "{" + ",".join(map(str, ids)) + "}"
    if ids.literal is None:
        ids.literal = uuid_array(tuple(ids))
    return ids.literal
