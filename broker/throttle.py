"""Throttling of failed sign-in attempts, per account and per source address.

The broker stops accepting attempts for an account well before a directory's own lockout
threshold, so an attacker cannot lock staff out of Active Directory through the broker.
"""

from __future__ import annotations

import dataclasses
import hashlib

from broker.state import StateStore
from federation.directory_source import LockoutPolicy

NAMESPACE = "throttle"


@dataclasses.dataclass(frozen=True, slots=True)
class ThrottleLimits:
    """How many failures are allowed in ``window_seconds`` per account and per address."""

    account_failures: int = 5
    address_failures: int = 50
    window_seconds: int = 900


class Throttle:
    """Counts failures in the state store (shared by every worker and host)."""

    def __init__(self, state: StateStore, limits: ThrottleLimits) -> None:
        self._state = state
        self._limits = limits

    @property
    def window_seconds(self) -> int:
        """How long a blocked account or address waits, at most."""
        return self._limits.window_seconds

    def blocked(self, kind: str, account: str, address: str | None, *, lockout: LockoutPolicy | None = None) -> bool:
        """Return True if ``account`` or ``address`` used up its failures for ``kind`` (password, otp).

        With the directory's ``lockout`` policy, an account may fail at most one time fewer
        than the directory's threshold, so the directory never locks it because of us.
        """
        limit = self._limits.account_failures
        if lockout is not None:
            limit = min(limit, lockout.threshold - 1)
        keys = [_key(kind, "account", account)] + ([_key(kind, "address", address)] if address else [])
        counts = [int(found.get("n", 0)) if found else 0 for found in self._state.get_many(NAMESPACE, keys)]
        account_count, address_count = counts[0], (counts[1] if address else 0)
        return account_count >= limit or address_count >= self._limits.address_failures

    def failed(self, kind: str, account: str, address: str | None, *, lockout: LockoutPolicy | None = None) -> None:
        """Count one failure for ``account`` and ``address``.

        An account's failures are remembered at least as long as the directory's lockout
        observation window, so the count never resets before the directory's does.
        """
        window = self._limits.window_seconds
        if lockout is not None:
            window = max(window, lockout.window_seconds)
        self._state.incr(NAMESPACE, _key(kind, "account", account), window)
        if address:
            self._state.incr(NAMESPACE, _key(kind, "address", address), self._limits.window_seconds)


def _key(kind: str, scope: str, value: str) -> str:
    # Hashed: keys stay short and never hold an email address in clear.
    return f"{kind}:{scope}:{hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]}"
