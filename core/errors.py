"""Domain errors raised by services; the API turns them into problem details
(config/api/exceptions.py) and the admin into form errors or messages."""

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str  # a path such as "allocation[1].weight"; "" for the request as a whole
    message: str


class DomainError(Exception):
    status = 400
    title = "Invalid request"

    def __init__(self, detail: str, errors: list[FieldError] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors or [])


class InvalidInput(DomainError):
    """400: the request breaks a validation rule; `errors` names every bad field."""

    status = 400
    title = "Invalid input"

    def __init__(self, errors: list[FieldError], detail: str | None = None):
        super().__init__(detail or "; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in errors), errors)


class BusinessRuleViolation(DomainError):
    """422: well-formed, but a business rule refuses it (e.g. account not ACTIVE)."""

    status = 422
    title = "Business rule violated"


class Conflict(DomainError):
    """409: conflicts with the current state (duplicate, still in use, bad transition)."""

    status = 409
    title = "Conflict"


class NotFound(DomainError):
    status = 404
    title = "Not found"


def raise_if_errors(errors: list[FieldError]) -> None:
    if errors:
        raise InvalidInput(errors)


class Forbidden(DomainError):
    """403: the user may not do this to this object (e.g. approve their own execution),
    whatever model permissions they hold."""

    status = 403
    title = "Permission denied"
