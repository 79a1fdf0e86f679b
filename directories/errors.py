"""The directories package's root error type and its stable error codes."""

from __future__ import annotations

import enum


class DirectoryErrorCode(enum.StrEnum):
    """Stable codes for every way a directory operation can fail.

    The code is what the audit log records; people only ever see a generic message.
    """

    INVALID_CREDENTIALS = "invalid_credentials"
    ACCOUNT_DISABLED = "account_disabled"
    ACCOUNT_LOCKED = "account_locked"
    ACCOUNT_EXPIRED = "account_expired"
    PASSWORD_EXPIRED = "password_expired"
    PASSWORD_MUST_CHANGE = "password_must_change"
    LOGON_NOT_PERMITTED = "logon_not_permitted"
    EMPTY_PASSWORD = "empty_password"
    UNAVAILABLE = "directory_unavailable"
    MISCONFIGURED = "directory_misconfigured"


class DirectoryError(Exception):
    """Raised by every directory operation that fails.

    ``code`` is stable and safe to log; ``detail`` may name the directory and the
    precise reason (for the audit log) but never contains a password.
    """

    def __init__(self, code: DirectoryErrorCode, detail: str = "") -> None:
        super().__init__(f"{code.value}: {detail}" if detail else code.value)
        self.code = code
        self.detail = detail
