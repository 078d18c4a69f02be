"""Every exception the sandbox raises on purpose, in two trees.

The library's, raised to the Python caller (a test, the CLI)::

    SandboxError                  root: ``except SandboxError`` catches them all
    ├── ExpectationFailed         a control call was refused or an expectation about the
    │                             sandbox was not met (also an AssertionError)
    ├── SandboxServerError        the sandbox itself failed while serving: a bug
    ├── SettingsError             (sandbox.settings) a configuration problem
    ├── ScenarioError             (sandbox.scenario.loader) a scenario file that cannot run
    ├── TlsError                  (sandbox.tls) the kept local CA cannot be used
    └── InvalidSignature          (sandbox.webhooks.signing) a receiver's failed check

The HTTP side, each carrying CHeKT's error code and answered with the single envelope::

    ApiError                      -> {"error": {"code", "message", "request_id", "field"?}}
                                     (on /ext/v1 also "detail": the field, or null)
    ├── BadRequest                400 bad_request
    ├── Unauthorized              401 (RFC 6750 challenge in WWW-Authenticate)
    ├── PermissionDenied          403 permission_denied (insufficient_scope challenge)
    ├── NotFound                  404 not_found
    ├── MethodNotAllowed          405 method_not_allowed
    ├── RequestTimeout            408 request_timeout
    ├── Conflict                  409 conflict / idempotency_conflict
    ├── PayloadTooLarge           413 payload_too_large
    ├── RateLimited               429 rate_limited (Retry-After, X-RateLimit-*)
    ├── UnsupportedMediaType      415 unsupported_media_type
    ├── HeadersTooLarge           431 request_header_fields_too_large
    └── ValidationFailed          422 validation_failed (+ field)
    OAuthError                    RFC 6749 §5.2 body {"error", "error_description"}
"""

from __future__ import annotations

from typing import Any


class SandboxError(Exception):
    """The root of the library's own errors."""


class ExpectationFailed(SandboxError, AssertionError):
    """A control call was refused, or an expectation about the sandbox was not met."""


class SandboxServerError(SandboxError, RuntimeError):
    """The sandbox itself failed while serving (a bug): raised on the thread that owns it."""


class ApiError(Exception):
    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field
        self.headers = headers or {}

    def body(self, request_id: str, *, detail: bool = False) -> dict[str, Any]:
        """``detail``: the dealer API's (``/ext/v1``) envelope also names the field at fault
        as ``detail`` (null when none is)."""
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "request_id": request_id,
        }
        if self.field is not None:
            error["field"] = self.field
        if detail:
            error["detail"] = self.field
        return {"error": error}


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class Unauthorized(ApiError):
    """401. ``error`` is the RFC 6750 attribute; ``None`` means no credentials were sent."""

    status = 401
    code = "unauthorized"

    def __init__(self, message: str, *, code: str | None = None, error: str | None = None):
        challenge = 'Bearer realm="chekt"'
        if error is not None:
            challenge += f', error="{error}", error_description="{_quote(message)}"'
        super().__init__(message, code=code, headers={"WWW-Authenticate": challenge})


class PermissionDenied(ApiError):
    status = 403
    code = "permission_denied"

    def __init__(self, message: str, *, scope: str | None = None) -> None:
        headers = {}
        if scope is not None:
            headers["WWW-Authenticate"] = (
                f'Bearer realm="chekt", error="insufficient_scope", scope="{scope}"'
            )
        super().__init__(message)
        self.headers = headers


class NotFound(ApiError):
    status = 404
    code = "not_found"


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"


class RequestTimeout(ApiError):
    status = 408
    code = "request_timeout"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"


class HeadersTooLarge(ApiError):
    status = 431
    code = "request_header_fields_too_large"


class ValidationFailed(ApiError):
    status = 422
    code = "validation_failed"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


class OAuthError(Exception):
    """A token-endpoint error, rendered as RFC 6749 §5.2 ``{error, error_description}``."""

    def __init__(
        self, error: str, description: str, *, status: int = 400, basic_challenge: bool = False
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.basic_challenge = basic_challenge
        self.cors = False


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")
