"""Settings for the test suite: SQLite unless DATABASE_URL is set (CI sets it)."""

from .base import *  # noqa: F403

DEBUG = False
SECRET_KEY = "test-only-key"
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = False

# Serve static files straight from the apps: no collectstatic needed outside production.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# Each pytest-xdist process gets its own queue (and folders), so a test's worker
# never picks up a task sent by a test running in another process.
import os  # noqa: E402

_TEST_RUNNER = os.environ.get("PYTEST_XDIST_WORKER", "main")
CELERY_TASK_DEFAULT_QUEUE = f"ballast-test-{_TEST_RUNNER}"
if not REDIS_URL:  # noqa: F405
    _folder = VAR_DIR / "test-celery" / _TEST_RUNNER  # noqa: F405
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_folder / "queue"),
        "data_folder_out": str(_folder / "queue"),
        "control_folder": str(_folder / "control"),
        "store_processed": False,
    }
    for _path in ("queue", "control"):
        (_folder / _path).mkdir(parents=True, exist_ok=True)
