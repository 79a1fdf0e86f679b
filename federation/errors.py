"""The federation package's root error type and its stable error codes."""

from __future__ import annotations

import enum


class FederationErrorCode(enum.StrEnum):
    """Stable codes for failures of identity sources and the trust fabric."""

    INVALID_CREDENTIALS = "invalid_credentials"
    ACCOUNT_NOT_ACTIVE = "account_not_active"
    PASSWORD_CHANGE_REQUIRED = "password_change_required"
    SOURCE_UNAVAILABLE = "source_unavailable"
    UNKNOWN_REALM = "unknown_realm"
    MISCONFIGURED = "misconfigured"
    INVALID_TOKEN = "invalid_token"
    KEY_ERROR = "key_error"


class FederationError(Exception):
    """Raised by identity sources and the trust fabric.

    ``code`` is stable; ``reason`` is precise and meant for the audit log (never a secret);
    what a person sees is chosen by the broker from ``code`` alone.
    """

    def __init__(self, code: FederationErrorCode, reason: str = "") -> None:
        super().__init__(f"{code.value}: {reason}" if reason else code.value)
        self.code = code
        self.reason = reason
