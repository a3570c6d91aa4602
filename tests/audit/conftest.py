import pytest

from tests.portfolios.api.conftest import client_for  # noqa: F401
from tests.rebalancing.conftest import D, account_with, fifty_fifty  # noqa: F401


def entries_for(obj):
    """The audit entries of `obj`, oldest first."""
    from auditlog.models import LogEntry

    return list(LogEntry.objects.get_for_object(obj).select_related("actor").order_by("timestamp", "id"))
