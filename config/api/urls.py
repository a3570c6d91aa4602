"""/api/v1/: the token endpoint, the OpenAPI document and its UI, and every app's routes."""

import hashlib

from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.urls import include, path, re_path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import NotFound, Throttled, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from credentials.services import NAME_MAX_LENGTH, api_token_create

from .exceptions import problems

MAX_FAILED_LOGINS = 10
FAILED_LOGIN_WINDOW_SECONDS = 300


def _failures_key(request) -> str:
    username = str(request.data.get("username", "")).lower() if isinstance(request.data, dict) else ""
    digest = hashlib.sha256(f"{request.META.get('REMOTE_ADDR', '')}\n{username}".encode()).hexdigest()
    return f"api-token-failures:{digest}"


def _count_failure(key: str) -> None:
    if not cache.add(key, 1, FAILED_LOGIN_WINDOW_SECONDS):
        try:
            cache.incr(key)
        except ValueError:  # expired in between
            cache.set(key, 1, FAILED_LOGIN_WINDOW_SECONDS)


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})
    name = serializers.CharField(
        required=False, allow_blank=True, max_length=NAME_MAX_LENGTH,
        help_text="Optional: what the token is for, shown in the admin where tokens are revoked.",
    )


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(
        help_text="The key, shown only now (only a hash of it is stored); valid for API_TOKEN_TTL_DAYS (90 days unless configured)."
    )


class TokenView(APIView):
    """Exchange a username and password for a new API token.

    Each call makes a new token (a user may hold several, each named, each expiring
    after API_TOKEN_TTL_DAYS); only its hash is stored. Failed passwords count towards
    the django-axes lockout, as on the admin login.
    """

    authentication_classes = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]
    throttle_classes = []

    @extend_schema(
        summary="Obtain an API token",
        description=(
            "Send it as `Authorization: Token <key>`. Each call makes a new token, valid for API_TOKEN_TTL_DAYS "
            "(90 days unless configured); revoke tokens in the admin (API credentials → API tokens)."
        ),
        request=TokenRequestSerializer,
        responses={200: TokenSerializer, **{k: v for k, v in problems(400, 429).items() if k[0] in (400, 429)}},
        auth=[],
    )
    def post(self, request):
        # Slow down password guessing (django-axes does not cover this endpoint): after
        # MAX_FAILED_LOGINS failures for one username from one address, 429 until the
        # window passes. Only failures count, so clients that log in often are not limited.
        failures_key = _failures_key(request)
        if cache.get(failures_key, 0) >= MAX_FAILED_LOGINS:
            raise Throttled(wait=FAILED_LOGIN_WINDOW_SECONDS)
        credentials = AuthTokenSerializer(data=request.data, context={"request": request})
        if not credentials.is_valid():
            _count_failure(failures_key)
            raise ValidationError(credentials.errors)
        request_fields = TokenRequestSerializer(data=request.data)
        request_fields.is_valid(raise_exception=True)
        _, key = api_token_create(user=credentials.validated_data["user"], name=request_fields.validated_data.get("name", ""))
        return Response({"token": key})


class NoSuchEndpointView(APIView):
    """Unknown paths under /api/v1/ answer a 404 problem, not Django's HTML page."""

    schema = None  # not an operation
    permission_classes = [IsAuthenticated]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        raise NotFound(f"no endpoint {request.path} (every path ends with /)")


urlpatterns = [
    path("auth/token/", TokenView.as_view(), name="auth-token"),
    path("schema/", SpectacularJSONAPIView.as_view(permission_classes=[IsAuthenticated]), name="schema"),
    path(
        "docs/",
        login_required(
            # GET only: DRF's OPTIONS answer cannot be rendered by this HTML view (it was a 500).
            SpectacularSwaggerView.as_view(
                url_name="schema", permission_classes=[IsAuthenticated], http_method_names=["get", "head"]
            ),
            login_url="admin:login",
        ),
        name="docs",
    ),
    path("", include("portfolios.api.urls")),
    path("", include("rebalancing.api.urls")),
    path("", include("webhooks.urls")),
    # Keep last: anything not matched above is a 404 problem.
    re_path(r"^.*$", NoSuchEndpointView.as_view()),
]
