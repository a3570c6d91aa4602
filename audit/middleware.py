from django.urls import reverse

from .context import pop, push, request_context

API_PREFIX = "/api/"  # config/urls.py


class AuditContextMiddleware:
    """Make the request's user the actor of every audit entry written while it runs.

    Place it after AuthenticationMiddleware. The user is looked up only when an entry
    is written. API token requests are anonymous here; the API's token authentication
    sets their user once DRF has checked the token (credentials/authentication.py).
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.prefixes = None

    def __call__(self, request):
        if self.prefixes is None:
            self.prefixes = {"admin_prefix": reverse("admin:index"), "api_prefix": API_PREFIX}
        token = push(request_context(request, **self.prefixes))
        try:
            return self.get_response(request)
        finally:
            pop(token)
