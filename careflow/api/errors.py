"""Errors only the HTTP adapter can raise: malformed requests, not malformed data.

Each class is one thing a client can fix; ``http_status`` and ``code`` (OperationOutcome issue
type) are read by :mod:`careflow.api.error_mapping`, the single place errors become responses.
"""

from __future__ import annotations

from careflow.errors import CareflowError


class ApiError(CareflowError):
    """Base of request-level errors."""

    http_status: int = 400
    code: str = "invalid"

    def __init__(self, message: str, *, expression: str | None = None) -> None:
        self.expression = expression
        super().__init__(message)


class InvalidJson(ApiError):
    """The body is not parseable JSON (or not UTF-8)."""

    code = "structure"


class InvalidRequest(ApiError):
    """The request is well-formed HTTP but breaks a FHIR REST rule (id mismatch, bad header, ...)."""


class InvalidId(ApiError):
    """A logical id does not match the FHIR id syntax [A-Za-z0-9-.]{1,64}."""


class UnknownResourceType(ApiError):
    """The URL names a resource type this server does not serve."""

    http_status = 404
    code = "not-supported"


class UnknownOperation(ApiError):
    """The URL names an operation ($name) this server does not define on that type."""

    http_status = 404
    code = "not-supported"


class UnknownRoute(ApiError):
    """No FHIR interaction lives at this URL."""

    http_status = 404
    code = "not-found"


class MethodNotAllowed(ApiError):
    """The URL exists but not with this HTTP method."""

    http_status = 405
    code = "not-supported"


class UnsupportedMediaType(ApiError):
    """The body is not JSON (we speak application/fhir+json and application/json only)."""

    http_status = 415
    code = "not-supported"


class NotAcceptable(ApiError):
    """The client asked (Accept or _format) for a representation we cannot produce, such as XML."""

    http_status = 406
    code = "not-supported"


class PayloadTooLarge(ApiError):
    """The body exceeds the server's size cap."""

    http_status = 413
    code = "too-long"


class BusinessRuleViolation(ApiError):
    """The request is valid FHIR but the server's rules refuse it (FHIR: 422 Unprocessable Entity)."""

    http_status = 422
    code = "business-rule"


class Unauthenticated(ApiError):
    """No usable credentials: the bearer token is missing, expired, badly signed or not for us (401).

    ``error`` is the RFC 6750 error code the ``WWW-Authenticate`` header carries (``invalid_token``,
    ``invalid_request``, or None when no token was sent at all, as RFC 6750 section 3.1 asks)."""

    http_status = 401
    code = "login"

    def __init__(self, message: str, *, error: str | None = "invalid_token") -> None:
        self.error = error
        super().__init__(message)


class Forbidden(ApiError):
    """A valid caller whose granted scopes do not cover this interaction on this type (403)."""

    http_status = 403
    code = "forbidden"
