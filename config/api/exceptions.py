"""One exception handler: every API error becomes RFC 9457 problem details.

DRF's own errors (validation, authentication, permission, 404, 405, parse errors,
throttling) and the domain errors of `core.errors` come out alike:

    {"type": "urn:ballast:problem:invalid-input", "title": "Invalid input", "status": 400,
     "detail": "allocation[1].weight: A valid number is required.",
     "errors": [{"field": "allocation[1].weight", "message": "A valid number is required."}]}

with the content type `application/problem+json`. Anything else (a bug) is logged
with its traceback (and so reported to Sentry when SENTRY_DSN is set) and answered

    {"type": "urn:ballast:problem:internal-error", "title": "Internal Server Error",
     "status": 500, "detail": "...", "correlation_id": "<the request id>"}

The correlation id is the request's id (`X-Request-ID`, on every log line of the
request): a partner quotes it, an operator finds the traceback with it.
"""

import logging
from http import HTTPStatus

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import set_rollback

from config.observability import current_request_id
from core.errors import DomainError, FieldError

from .parsers import RequestTooLarge

logger = logging.getLogger("ballast.api")

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:ballast:problem:"

_SLUGS = {
    400: "bad-request",
    401: "not-authenticated",
    403: "permission-denied",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "request-too-large",
    415: "unsupported-media-type",
    422: "business-rule-violated",
    429: "throttled",
    500: "internal-error",
}


def flatten_errors(detail, path: str = "") -> list[FieldError]:
    """Turn DRF's nested error structure into field paths such as `allocation[1].weight`.

    Dict keys are joined with ".", list positions (and the integer keys ListField
    uses) become `[i]`, and `non_field_errors` belong to the enclosing path.
    """
    if isinstance(detail, dict):
        errors = []
        for key, value in detail.items():
            if key == api_settings.NON_FIELD_ERRORS_KEY:
                sub = path
            elif isinstance(key, int):
                sub = f"{path}[{key}]"
            else:
                sub = f"{path}.{key}" if path else str(key)
            errors.extend(flatten_errors(value, sub))
        return errors
    if isinstance(detail, list | tuple):
        errors = []
        for index, item in enumerate(detail):
            if isinstance(item, dict | list | tuple):
                errors.extend(flatten_errors(item, f"{path}[{index}]"))
            else:
                errors.append(FieldError(path, str(item)))
        return errors
    return [FieldError(path, str(detail))]


def summarize(errors: list[FieldError]) -> str:
    return "; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in errors)


def problem_response(
    *, status: int, detail: str, title: str | None = None, slug: str | None = None,
    errors: list[FieldError] | None = None, headers: dict | None = None, extra: dict | None = None,
) -> Response:
    body = {
        "type": TYPE_PREFIX + (slug or _SLUGS.get(status, "error")),
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    body.update(extra or {})
    return Response(body, status=status, headers=headers, content_type=PROBLEM_CONTENT_TYPE)


def _domain_slug(exc: DomainError) -> str:
    return "invalid-input" if exc.status == 400 else _SLUGS.get(exc.status, "error")


def internal_error_response(exc, context) -> Response:
    """A bug: log it with the traceback, roll back, answer 500 problem details naming
    the request id and nothing of the error."""
    request = context.get("request")
    correlation_id = current_request_id() or getattr(request, "request_id", None) or ""
    view = context.get("view")
    logger.error(
        "unhandled error in %s %s (%s)", getattr(request, "method", "?"), getattr(request, "path", "?"),
        type(view).__name__ if view is not None else "?", exc_info=exc,
    )
    set_rollback()
    return problem_response(
        status=500, slug="internal-error",
        detail=f"An unexpected error occurred. Quote the correlation id {correlation_id} when reporting it.",
        extra={"correlation_id": correlation_id},
    )


def problem_details_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: domain and DRF errors → problem details; anything else
    → 500 problem details with a correlation id (and a logged traceback)."""
    if isinstance(exc, DomainError):
        set_rollback()
        return problem_response(
            status=exc.status, title=exc.title, slug=_domain_slug(exc), detail=exc.detail,
            errors=exc.errors if exc.errors or exc.status == 400 else None,
        )
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            serializers.as_serializer_error(exc)  # keeps message_dict's field names
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    if not isinstance(exc, exceptions.APIException):
        return internal_error_response(exc, context)

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    set_rollback()
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_errors(exc.detail)
        return problem_response(
            status=exc.status_code, title="Invalid input", slug="invalid-input",
            detail=summarize(errors) or "Invalid input.", errors=errors, headers=headers,
        )
    slug = "malformed-request" if isinstance(exc, exceptions.ParseError) else None
    return problem_response(status=exc.status_code, slug=slug, detail=str(exc.detail), headers=headers)


# --- OpenAPI ------------------------------------------------------------------------

class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(help_text='Path of the bad field, e.g. "allocation[1].weight"; "" for the whole request.')
    message = serializers.CharField()


class ProblemDetailsSerializer(serializers.Serializer):
    """RFC 9457 problem details, as every error of this API is answered."""

    type = serializers.CharField(help_text="A URN naming the kind of problem, e.g. urn:ballast:problem:not-found.")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    errors = FieldErrorSerializer(many=True, required=False, help_text="Validation errors: every bad field.")
    correlation_id = serializers.CharField(
        required=False, help_text="500 only: the request id (X-Request-ID) to quote when reporting the error."
    )


_PROBLEM_DESCRIPTIONS = {
    400: "Malformed or invalid request; `errors` names every bad field.",
    401: "No or invalid credentials.",
    403: "The user lacks the model permission this needs.",
    404: "No such object.",
    409: "Conflicts with the current state, or an Idempotency-Key reused with another body.",
    413: "The request body is larger than the API accepts (2.5 MB).",
    415: "The body's media type is not one this endpoint takes.",
    422: "Well-formed, but a business rule refuses it.",
    429: "Too many attempts; retry after the Retry-After header's seconds.",
}


def problems(*statuses: int) -> dict:
    """extend_schema `responses` entries for these error statuses, plus 401 and 403
    (every endpoint can answer them), all as `application/problem+json`."""
    from drf_spectacular.utils import OpenApiResponse

    return {
        (status, PROBLEM_CONTENT_TYPE): OpenApiResponse(
            response=ProblemDetailsSerializer, description=_PROBLEM_DESCRIPTIONS[status]
        )
        for status in sorted({401, 403, *statuses})
    }
