"""`Idempotency-Key` on POST: a retry with the same key and body replays the first answer.

Mix `IdempotentMixin` in front of any APIView or viewset. For a POST with the
header, after authentication and permission checks:

- a new key is claimed (a row of `IdempotencyRecord`, shared by every process), the
  view runs, and its answer is stored unless it is a 5xx (the key is then released);
- the same key with the same method, path and body returns the stored answer again
  (status, content type and the body's exact bytes), with `Idempotent-Replayed: true`,
  without running the view;
- the same key with another request, or while the first is still running: 409.

Keys are per user and honoured for settings.IDEMPOTENCY_KEY_TTL_SECONDS.
"""

import hashlib
import json

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError

from portfolios import services

from .exceptions import PROBLEM_CONTENT_TYPE, problems
from .schema import SPACE, RequestRulesSchema

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    name=HEADER,
    # What `initial` enforces: 1 to 255 characters, not all blank.
    type={"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": f"[^{SPACE}]"},
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "Any unique string (e.g. a UUID), at most 255 characters. Repeating the request with the same key "
        "and body within 24 h returns the first response again without doing the work twice; the same key "
        "with a different body is a 409."
    ),
)


def idempotency_key(request) -> str | None:
    """The request's `Idempotency-Key`, or None without one; 400 naming the header
    unless it is 1 to 255 characters, not all blank."""
    key = request.headers.get(HEADER)
    if key is not None and (not key.strip() or len(key) > MAX_KEY_LENGTH):
        raise ValidationError({HEADER: [f"must be a non-blank string of at most {MAX_KEY_LENGTH} characters"]})
    return key


class IdempotentSchema(RequestRulesSchema):
    """Documents the `Idempotency-Key` header on every POST operation, and the answers
    it can cause there whatever the view declares: 400 (a malformed key) and 409 (a
    key reused with another request)."""

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        if self.method == "POST":
            parameters = [*parameters, IDEMPOTENCY_PARAMETER]
        return parameters

    def _get_response_bodies(self, direction="response"):
        # Below get_response_serializers(), which @extend_schema(responses=...) replaces.
        responses = super()._get_response_bodies(direction)
        if self.method == "POST" and direction == "response":
            for (status, media_type), problem in problems(400, 409).items():
                if str(status) not in responses:
                    responses[str(status)] = self._get_response_for_code(problem, str(status), [media_type], direction)
        return responses


class _Replay(Exception):
    def __init__(self, response: HttpResponse):
        super().__init__("idempotent replay")
        self.response = response


def request_fingerprint(request) -> str:
    """SHA-256 of the method, the full path and the canonical JSON body."""
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    payload = "\n".join([request.method, request.get_full_path(), body])
    return hashlib.sha256(payload.encode()).hexdigest()


class IdempotentMixin:
    schema = IdempotentSchema()
    _idempotency_record = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttling
        self._idempotency_record = None
        if request.method != "POST":
            return
        key = idempotency_key(request)
        if key is None:
            return
        claim = services.idempotency_claim(
            user=request.user, key=key, method=request.method, path=request.get_full_path(),
            request_hash=request_fingerprint(request),
        )
        if claim.replay is not None:
            record = claim.replay
            # The first answer's bytes, status and content type, as they were sent.
            content_type = record.content_type or (  # a record stored before content types were
                PROBLEM_CONTENT_TYPE if record.status_code >= 400 else "application/json"
            )
            response = HttpResponse(
                (record.response_body or "").encode("utf-8"), status=record.status_code, content_type=content_type
            )
            response["Idempotent-Replayed"] = "true"
            raise _Replay(response)
        self._idempotency_record = claim.record

    def handle_exception(self, exc):
        if isinstance(exc, _Replay):
            return exc.response
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        record, self._idempotency_record = self._idempotency_record, None
        if record is not None:
            if response.status_code >= 500:
                services.idempotency_release(record=record)
            else:
                if hasattr(response, "render"):
                    response.render()  # the exact bytes the client gets (Django would render it next)
                services.idempotency_complete(
                    record=record, status_code=response.status_code, body=response.content,
                    content_type=response.get("Content-Type", ""),
                )
        return response

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        except Exception:
            # An unhandled error (a 500) never reached finalize_response: free the key.
            record, self._idempotency_record = self._idempotency_record, None
            if record is not None:
                services.idempotency_release(record=record)
            raise
