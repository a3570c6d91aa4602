"""Settings for the test suite: SQLite unless DATABASE_URL is set (CI sets it)."""

from pathlib import Path

from .base import *  # noqa: F403

DEBUG = False
SECRET_KEY = "test-only-key"
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests send hundreds of requests a minute as one user id: only tests/security throttles.
API_THROTTLE_RATE = "1000000/min"
CELERY_TASK_ALWAYS_EAGER = False
# No recovery sweep thread in the test workers (rebalancing/tasks.py): tests call
# executions_sweep themselves, and a sweeper left running by one test's worker would send
# again the chunks of the tests that follow it in the same process.
REBALANCE_SWEEP_SECONDS = 0

# Serve static files straight from the apps: no collectstatic needed outside production.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# Each test process gets its own queue (and folders), so a test's worker never picks
# up a task sent by another pytest-xdist process or by another test run on the same
# Redis.
import tempfile  # noqa: E402
import uuid  # noqa: E402

CELERY_TASK_DEFAULT_QUEUE = f"ballast-test-{uuid.uuid4().hex[:12]}"
if not REDIS_URL:  # noqa: F405
    _folder = Path(tempfile.mkdtemp(prefix="ballast-celery-"))  # noqa: F405
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_folder / "queue"),
        "data_folder_out": str(_folder / "queue"),
        "control_folder": str(_folder / "control"),
        "store_processed": False,
    }
    for _path in ("queue", "control"):
        (_folder / _path).mkdir(parents=True, exist_ok=True)
