import pytest

from tests.portfolios.api.conftest import client_for, error_fields, message_for, problem  # noqa: F401
from tests.rebalancing.conftest import D  # noqa: F401


@pytest.fixture
def chunk_size(settings):
    """Set settings.REBALANCE_CHUNK_SIZE for the test."""

    def set_size(size: int):
        settings.REBALANCE_CHUNK_SIZE = size

    return set_size

def run_chunks(execution) -> list:
    """Process every PENDING chunk of `execution` in this process, in order."""
    from rebalancing.models import ChunkStatus
    from rebalancing.services import execution_chunk_process

    ids = list(execution.chunks.filter(status=ChunkStatus.PENDING).order_by("number").values_list("pk", flat=True))
    return [execution_chunk_process(chunk_id=chunk_id) for chunk_id in ids]
