"""How fast clients may go: the API's per-user rate and the login lockout backend.

- `UserRateThrottle`: every API request of an authenticated user counts against
  `settings.API_THROTTLE_RATE` ("1000/min" unless `API_THROTTLE_RATE` says otherwise),
  kept in the default cache (Redis when `REDIS_URL` is set, so every web process
  shares the count). One token per user, so per user is per token. Over the rate:
  429 problem details with `Retry-After`.
- `LoginLockoutBackend`: django-axes' lockout check (first in
  AUTHENTICATION_BACKENDS), for every `authenticate()` that carries a request: the
  admin login form and the API token endpoint alike.
"""

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from rest_framework import throttling


class UserRateThrottle(throttling.UserRateThrottle):
    """DRF's per-user throttle, with the rate read from settings on every request.

    DRF's own reads `DEFAULT_THROTTLE_RATES` once, at import, so a changed setting
    (another environment, a test's override) would go unnoticed.
    """

    scope = "user"

    def get_rate(self):
        return settings.API_THROTTLE_RATE


class LoginLockoutBackend(AxesStandaloneBackend):
    """Refuse to authenticate a username + address that django-axes has locked out.

    Axes' own backend raises when `authenticate()` is called without a request. Such
    calls come from code, not from a client (management commands, the shell, tests):
    there is no address to lock and nobody guessing, so they skip the check here. Every
    login a client can reach (the admin form, `POST /api/v1/auth/token/`) passes its request.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
