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


@dataclasses.dataclass(frozen=True, slots=True)
class UpstreamSession:
    """The upstream identity provider's session behind one sign-in: what logout in either
    direction and the upstream's session lifetime need.

    ``subject`` is the upstream's ``sub`` (OIDC) or NameID value (SAML); ``session_id`` its
    ``sid`` (OIDC Front/Back-Channel Logout) or ``SessionIndex`` (SAML Core §2.7.2);
    ``id_token`` the ID token to send back as ``id_token_hint`` (RP-Initiated Logout §2);
    ``name_id`` the whole SAML NameID (value, format, qualifiers) a LogoutRequest must repeat
    (SAML Core §3.7.1); ``not_after`` when the upstream's authentication stops vouching for
    the person (SAML ``SessionNotOnOrAfter``, or the source's configured maximum age), None
    if the upstream sets no bound.
    """

    source: str
    subject: str
    authenticated_at: Any  # datetime.datetime (aware, UTC)
    session_id: str | None = None
    id_token: str | None = None
    name_id: Mapping[str, str] | None = None
    not_after: Any = None  # datetime.datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class UpstreamLogoutNotice:
    """A verified logout sent by an upstream: end the broker sessions of ``subject`` and/or
    upstream session ``session_id`` at ``source``; ``token_id`` (jti / request ID) and
    ``expires_at`` (epoch seconds) let the broker refuse a replay until it would expire anyway."""

    source: str
    subject: str | None
    session_id: str | None
    token_id: str
    expires_at: float


@runtime_checkable
class SessionSource(CallbackSource, Protocol):
    """An upstream whose sign-ins carry a session the broker records (for logout and lifetime)."""

    def finish_session(self, params: Mapping[str, str], state: Mapping[str, Any],
                       callback_url: str) -> tuple[Identity, UpstreamSession]:
        """As ``finish``, also returning the upstream session. Raises FederationError as ``finish``."""
        ...


@runtime_checkable
class LogoutSource(IdentitySource, Protocol):
    """An upstream that can be asked to end its session when the person signs out of the broker."""

    def logout_url(self, session: UpstreamSession, *, return_url: str, state: str) -> str | None:
        """Return where to send the browser to sign out at the upstream (coming back to
        ``return_url`` with ``state``), or None if the upstream offers no logout.

        Raises FederationError(SOURCE_UNAVAILABLE) if the upstream's metadata cannot be had.
        """
        ...


@runtime_checkable
class BackchannelLogoutSource(IdentitySource, Protocol):
    """An upstream that tells the broker, server to server, that a session ended there."""

    def verify_logout_token(self, token: str) -> UpstreamLogoutNotice:
        """Return the logout the token announces once every check has passed (OIDC
        Back-Channel Logout 1.0 §2.6). Raises FederationError(INVALID_TOKEN) with the reason."""
        ...
