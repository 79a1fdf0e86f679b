"""The broker's root error type and its stable codes, and OAuth 2.0 protocol errors."""

from __future__ import annotations

import enum


class BrokerErrorCode(enum.StrEnum):
    """Stable codes for broker failures that are not protocol errors."""

    NOT_INITIALISED = "not_initialised"
    MISCONFIGURED = "misconfigured"
    UNKNOWN_CLIENT = "unknown_client"
    INVALID_REDIRECT_URI = "invalid_redirect_uri"
    LOGIN_FAILED = "login_failed"
    SESSION_EXPIRED = "session_expired"
    BAD_REQUEST = "bad_request"
    ACCESS_DENIED = "access_denied"
    STEP_UP_REQUIRED = "step_up_required"
    MFA_FAILED = "mfa_failed"
    THROTTLED = "throttled"


class BrokerError(Exception):
    """Raised for broker failures; ``code`` is stable, ``message`` is safe to show a person."""

    def __init__(self, code: BrokerErrorCode, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class OAuthError(Exception):
    """An OAuth 2.0 / OIDC error response (RFC 6749 §4.1.2.1, §5.2; OIDC Core §3.1.2.6).

    ``error`` is the registered code, ``description`` a human-readable sentence safe to
    return to the client; ``status`` applies to direct (non-redirect) responses.
    """

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def to_json(self) -> dict[str, str]:
        """Return the JSON error body of RFC 6749 §5.2."""
        return {"error": self.error, "error_description": self.description}
