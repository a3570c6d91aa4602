"""Production settings pass Django's deploy check and refuse to start without their secrets.

Each test starts `manage.py` in a fresh process with config.settings.production, as
a deployment would: settings are read once per process.
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]


def manage(*args: str, **env: str | None) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "ballast.example.com",
    }
    for name, value in env.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        cwd=BASE_DIR, env=environment, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize("debug", [None, "true"], ids=["default", "DJANGO_DEBUG=true"])
def test_production_passes_the_deploy_check_without_a_warning(debug):
    # DJANGO_DEBUG=true must not switch DEBUG on in production.
    result = manage("check", "--deploy", "--fail-level", "WARNING", DJANGO_DEBUG=debug)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # "0 silenced": nothing passes by being listed in SILENCED_SYSTEM_CHECKS.
    assert "System check identified no issues (0 silenced)." in result.stdout, output
    assert "WARNINGS:" not in output and "(security." not in output and "(axes." not in output, output


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DJANGO_SECRET_KEY": None}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": "short-and-guessable"}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_ALLOWED_HOSTS": None}, "DJANGO_ALLOWED_HOSTS"),
    ],
    ids=["no-secret-key", "empty-secret-key", "short-secret-key", "no-allowed-hosts"],
)
def test_production_refuses_to_start_without_its_secrets(env, named):
    result = manage("check", **env)
    assert result.returncode != 0, result.stdout
    assert "ImproperlyConfigured" in result.stderr and named in result.stderr, result.stderr[-2000:]


def test_session_age_comes_from_the_environment():
    code = (
        "from django.conf import settings; "
        "print(settings.SESSION_COOKIE_AGE, settings.SESSION_EXPIRE_AT_BROWSER_CLOSE)"
    )
    result = manage("shell", "--no-imports", "-v", "0", "-c", code, DJANGO_SESSION_COOKIE_AGE="1800")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1800", "True"]
    result = manage("shell", "--no-imports", "-v", "0", "-c", code)
    assert result.stdout.split() == [str(8 * 3600), "True"]
