from tests.portfolios.api.conftest import client_for, error_fields, message_for, problem  # noqa: F401
from tests.rebalancing.conftest import D  # noqa: F401
