"""What every directory offers to the layers above it."""

from __future__ import annotations

from typing import Protocol

from directories.records import AccountRecord


class Directory(Protocol):
    """A directory of accounts that can check a password.

    Implementations: ``directories.static.StaticDirectory`` (a YAML file, for the demo and
    unit tests) and the LDAP / Active Directory directories.
    """

    @property
    def id(self) -> str:
        """The directory's id from configuration (unique across the broker)."""
        ...

    def authenticate(self, username: str, password: str) -> AccountRecord:
        """Check ``password`` for ``username`` and return the account's record.

        Raises ``DirectoryError`` with ``INVALID_CREDENTIALS`` for an unknown user or a
        wrong password (indistinguishably, also in timing), ``EMPTY_PASSWORD`` before any
        check for an empty or whitespace-only password, a status code (``ACCOUNT_DISABLED``,
        ``ACCOUNT_LOCKED`` ...) for an account that may not sign in, and ``UNAVAILABLE``
        when no server answers.
        """
        ...

    def lookup(self, username: str) -> AccountRecord | None:
        """Return the current record for ``username`` (no password check), or None if unknown.

        Raises ``DirectoryError(UNAVAILABLE)`` when no server answers.
        """
        ...
