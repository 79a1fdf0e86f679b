"""Identity-source capabilities as small protocols (compare Dex's connector interfaces).

Each source states which capabilities it provides by implementing them; the broker asks
``isinstance(source, PasswordSource)`` rather than a type name.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from federation.identity import Identity


@runtime_checkable
class IdentitySource(Protocol):
    """Anything that can authenticate people of one organisation."""

    @property
    def id(self) -> str:
        """The source's id from configuration, unique across the broker."""
        ...

    @property
    def organisation(self) -> str:
        """The id of the member organisation this source serves."""
        ...


@runtime_checkable
class PasswordSource(IdentitySource, Protocol):
    """A source that checks a username and password itself (a directory)."""

    def authenticate_password(self, username: str, password: str) -> Identity:
        """Return the identity of the person whose password this is.

        Raises FederationError: INVALID_CREDENTIALS, ACCOUNT_NOT_ACTIVE,
        PASSWORD_CHANGE_REQUIRED or SOURCE_UNAVAILABLE; ``reason`` holds the precise cause.
        """
        ...


@runtime_checkable
class RefreshableSource(IdentitySource, Protocol):
    """A source that can re-check a signed-in person without their credentials."""

    def refresh(self, identity: Identity) -> Identity:
        """Return the identity as the source now sees it.

        Raises FederationError(ACCOUNT_NOT_ACTIVE) for a leaver or a disabled account,
        SOURCE_UNAVAILABLE when the source cannot be reached.
        """
        ...
