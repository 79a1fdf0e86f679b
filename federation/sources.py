"""Identity-source capabilities as small protocols (compare Dex's connector interfaces).

Each source states which capabilities it provides by implementing them; the broker asks
``isinstance(source, PasswordSource)`` rather than a type name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from federation.identity import AssuranceLevel, Identity


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


@dataclasses.dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """What the broker asks of an upstream identity provider for one sign-in.

    ``callback_url`` is where the upstream must send the person back (our redirect URI or
    assertion consumer service); ``min_assurance`` asks for at least that level (OIDC
    ``acr_values``, SAML ``RequestedAuthnContext``); ``force_authn`` asks the upstream to
    authenticate again (``prompt=login``, ``ForceAuthn``).
    """

    callback_url: str
    login_hint: str | None = None
    min_assurance: AssuranceLevel | None = None
    force_authn: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class UpstreamStart:
    """Where to send the browser, and the state the broker keeps (server-side, single use,
    bound to the browser) until the callback: nonce, PKCE verifier, request id ..."""

    url: str
    state: Mapping[str, Any]


@runtime_checkable
class CallbackSource(IdentitySource, Protocol):
    """A source that signs people in elsewhere and sends them back (upstream OIDC or SAML)."""

    @property
    def display_name(self) -> str:
        """What people choose on the organisation list, e.g. "NHS smartcard (CIS2)"."""
        ...

    def start(self, request: UpstreamRequest) -> UpstreamStart:
        """Return the redirect to the upstream and the state to keep. Raises FederationError."""
        ...

    def finish(self, params: Mapping[str, str], state: Mapping[str, Any], callback_url: str) -> Identity:
        """Validate the upstream's answer (``params``: the callback's query or form) against
        ``state``; return the canonical identity.

        Raises FederationError: INVALID_TOKEN for anything forged, replayed, expired or
        mismatched; ACCOUNT_NOT_ACTIVE when the upstream refused the person; SOURCE_UNAVAILABLE.
        """
        ...
