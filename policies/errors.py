"""The policies package's root error type and its stable error codes."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class PolicyErrorCode(enum.StrEnum):
    """Stable codes for every way the policy engine or its governance can fail.

    The code is what the audit log records and what callers branch on; the message
    and ``problems`` are for people reading the log or the console.
    """

    INVALID_INPUT = "policy_invalid_input"
    SCHEMA_INVALID = "policy_schema_invalid"
    BUNDLE_INVALID = "policy_bundle_invalid"
    BUNDLE_TESTS_FAILED = "policy_bundle_tests_failed"
    ENVIRONMENT_INVALID = "policy_environment_invalid"
    EVALUATION_FAILED = "policy_evaluation_failed"
    UNKNOWN_VERSION = "policy_unknown_version"
    VERSION_EXISTS = "policy_version_exists"
    NOT_AUTHORISED = "policy_not_authorised"
    SAME_PERSON_APPROVAL = "policy_same_person_approval"
    INVALID_STATE = "policy_invalid_state"
    NO_ACTIVE_BUNDLE = "policy_no_active_bundle"


class PolicyError(Exception):
    """Raised by every policy operation that fails.

    ``code`` is stable and safe to log; ``detail`` says what went wrong in one line;
    ``problems`` lists every individual problem found (e.g. every validation error of
    a refused bundle, every failing test case), so nothing is reported one at a time.
    """

    def __init__(self, code: PolicyErrorCode, detail: str = "", problems: Iterable[str] = ()) -> None:
        self.code = code
        self.detail = detail
        self.problems: tuple[str, ...] = tuple(problems)
        message = f"{code.value}: {detail}" if detail else code.value
        if self.problems:
            message += "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)
