"""Registered OIDC applications (clients): registration, lookup and authentication."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from broker.errors import OAuthError
from broker.storage.models import ClientRow, IssuedTokenRow, RefreshTokenRow
from broker.storage.types import utcnow
from config.client_metadata import GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN, ClientMetadata
from config.schema import ApplicationConfig
from federation.keys import MasterKey

SECRET_LABEL = "client-secret"
REGISTRATION_TOKEN_LABEL = "registration-access-token"
ORIGINS = ("config", "cli", "dcr")
# Each worker remembers a looked-up client this long: the token endpoint's hottest read.
# A disabled or re-registered client takes effect within this time in every worker.
CACHE_SECONDS = 2.0


@dataclasses.dataclass(frozen=True, slots=True)
class Client:
    """A registered application as the protocol code sees it."""

    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    signing_alg: str | None
    token_endpoint_auth_method: str = "client_secret_basic"
    token_endpoint_auth_signing_alg: str | None = None
    jwks: Mapping[str, Any] | None = None
    jwks_uri: str | None = None
    grant_types: tuple[str, ...] = (GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN)
    subject_type: str = "public"
    sector_identifier: str | None = None
    backchannel_logout_uri: str | None = None
    frontchannel_logout_uri: str | None = None
    allowed_audiences: tuple[str, ...] = ()
    backchannel_logout_session_required: bool = False
    frontchannel_logout_session_required: bool = False
    contacts: tuple[str, ...] = ()
    scope: str | None = None
    sector_identifier_uri: str | None = None
    organisation: str | None = None
    origin: str = "config"
    created_at: dt.datetime | None = None

    def allows(self, grant_type: str) -> bool:
        """Return True if the client is registered for ``grant_type`` (RFC 7591 §2)."""
        return grant_type in self.grant_types

    @property
    def sector(self) -> str:
        """The pairwise sector (OIDC Core §8.1): the registered identifier, else the redirect URIs' host."""
        if self.sector_identifier:
            return self.sector_identifier
        return (urlsplit(self.redirect_uris[0]).hostname or self.client_id) if self.redirect_uris else self.client_id


@dataclasses.dataclass(frozen=True, slots=True)
class NewClient:
    """A freshly registered (or re-keyed) client; the secrets are shown once and never stored.

    ``client_secret`` is empty for a ``private_key_jwt`` client; ``registration_access_token``
    is set only for dynamically registered clients (RFC 7592 §1).
    """

    client: Client
    client_secret: str
    registration_access_token: str | None = None


class UnknownClient(LookupError):
    """Raised when a client id names no client (or one of another origin than required)."""


class ClientRegistry:
    """Clients in the database; secrets kept only as keyed hashes (HMAC-SHA256)."""

    def __init__(self, sessions: sessionmaker[Session], master_key: MasterKey, *, cache_seconds: float = CACHE_SECONDS) -> None:
        self._sessions = sessions
        self._master = master_key
        self._secret_key = master_key.derive(SECRET_LABEL)
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Client, str]] = {}

    def sync_from_config(self, applications: Iterable[ApplicationConfig]) -> None:
        """Insert or update the applications registered in configuration (secrets resolved)."""
        with self._sessions.begin() as session:
            for app in applications:
                row = session.get(ClientRow, app.client_id) or ClientRow(client_id=app.client_id, created_at=utcnow())
                _apply(row, app)
                # A private_key_jwt client has no secret: an empty hash matches no presented secret.
                row.secret_hash = self._hash(app.client_secret.reveal()) if app.client_secret is not None else ""
                row.origin = "config"
                row.disabled = False
                session.add(row)
        self._cache.clear()

    def add(self, name: str, redirect_uris: list[str], post_logout_redirect_uris: list[str] | None = None) -> NewClient:
        """Register a confidential web application (client_secret_basic, code + refresh); return its
        id and secret (the secret only this once). Raises ValueError (the rule broken) for bad metadata.
        """
        try:
            metadata = ClientMetadata(name=name.strip(), redirect_uris=redirect_uris,
                                      post_logout_redirect_uris=post_logout_redirect_uris or [])
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise ValueError(metadata_problems(exc)) from None
        return self.register(metadata, origin="cli")

    def register(self, metadata: ClientMetadata, *, origin: str, organisation: str | None = None,
                 sector_identifier_uri: str | None = None, session: Session | None = None) -> NewClient:
        """Register a new client with a random id, a high-entropy secret if its method uses one,
        and (``origin="dcr"``) a registration access token (RFC 7591 §3.2.1, RFC 7592 §1).

        ``session``: add the row in the caller's transaction (committed by the caller).
        Returns the client with its secrets, shown only this once.
        """
        if origin not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}")
        secret = secrets.token_urlsafe(32) if metadata.has_secret else ""
        registration_token = secrets.token_urlsafe(32) if origin == "dcr" else None
        now = utcnow()
        row = ClientRow(client_id=f"{'dcr' if origin == 'dcr' else 'app'}-{secrets.token_hex(8)}", created_at=now,
                        origin=origin, disabled=False, organisation=organisation)
        _apply(row, metadata)
        row.sector_identifier_uri = sector_identifier_uri
        row.secret_hash = self._hash(secret) if secret else ""
        row.registration_token_hash = self._master.keyed_hash(REGISTRATION_TOKEN_LABEL, registration_token) if registration_token else None
        if session is not None:
            session.add(row)
            session.flush()
        else:
            with self._sessions.begin() as own:
                own.add(row)
        return NewClient(_client(row), secret, registration_token)

    def update(self, client_id: str, metadata: ClientMetadata, *, sector_identifier_uri: str | None = None,
               origin: str | None = None) -> NewClient:
        """Replace the client's metadata (RFC 7592 §2.2: every field, omitted ones reset).

        The secret is kept; a client moving to a secret method gets a new one, one moving to
        ``private_key_jwt`` loses it. Returns the client and any new secret ("" if none).
        Raises UnknownClient (absent, removed, or not of ``origin``).
        """
        secret = ""
        with self._sessions.begin() as session:
            row = self._row_for_update(session, client_id, origin)
            had_secret = bool(row.secret_hash)
            _apply(row, metadata)
            row.sector_identifier_uri = sector_identifier_uri
            if metadata.has_secret and not had_secret:
                secret = secrets.token_urlsafe(32)
                row.secret_hash = self._hash(secret)
            elif not metadata.has_secret:
                row.secret_hash = ""
            row.updated_at = utcnow()
            client = _client(row)
        self._cache.pop(client_id, None)
        return NewClient(client, secret)

    def rotate_secret(self, client_id: str) -> NewClient:
        """Give the client a new secret (the old one stops working); return it, shown only now.

        Raises UnknownClient, or ValueError if the client authenticates with private_key_jwt.
        """
        secret = secrets.token_urlsafe(32)
        with self._sessions.begin() as session:
            row = self._row_for_update(session, client_id, None)
            if row.token_endpoint_auth_method == "private_key_jwt":
                raise ValueError(f"{client_id} authenticates with private_key_jwt and has no secret; register new keys instead")
            row.secret_hash = self._hash(secret)
            row.updated_at = utcnow()
            client = _client(row)
        self._cache.pop(client_id, None)
        return NewClient(client, secret)

    def remove(self, client_id: str, *, origin: str | None = None) -> Client:
        """Disable the client for good and revoke every token issued to it (RFC 7592 §2.3).

        The row stays (disabled, secrets erased) so the audit trail keeps naming it and its id is
        never reused. Raises UnknownClient.
        """
        now = utcnow()
        with self._sessions.begin() as session:
            row = self._row_for_update(session, client_id, origin)
            row.disabled = True
            row.secret_hash = ""
            row.registration_token_hash = None
            row.updated_at = now
            client = _client(row)
            session.execute(update(IssuedTokenRow).where(IssuedTokenRow.client_id == client_id, IssuedTokenRow.revoked_at.is_(None))
                            .values(revoked_at=now))
            session.execute(update(RefreshTokenRow).where(RefreshTokenRow.client_id == client_id, RefreshTokenRow.revoked_at.is_(None))
                            .values(revoked_at=now))
        self._cache.pop(client_id, None)
        return client

    def by_registration_token(self, client_id: str, token: str) -> Client | None:
        """Return the enabled, dynamically registered client if ``token`` is its registration access
        token (RFC 7592 §2, compared in constant time), else None."""
        presented = self._master.keyed_hash(REGISTRATION_TOKEN_LABEL, token)
        with self._sessions() as session:
            row = session.get(ClientRow, client_id) if len(client_id) <= 128 else None
        stored = row.registration_token_hash if row is not None and not row.disabled and row.registration_token_hash else "0" * 64
        if not hmac.compare_digest(presented, stored) or row is None or row.disabled:
            return None
        return _client(row)

    def find(self, client_id: str) -> tuple[Client, bool] | None:
        """Return (client, disabled) for any client ever registered with this id, or None (for ``show``)."""
        with self._sessions() as session:
            row = session.get(ClientRow, client_id)
        return (_client(row), bool(row.disabled)) if row is not None else None

    def _row_for_update(self, session: Session, client_id: str, origin: str | None) -> ClientRow:
        row = session.execute(select(ClientRow).where(ClientRow.client_id == client_id).with_for_update()).scalar_one_or_none()
        if row is None or row.disabled or (origin is not None and row.origin != origin):
            raise UnknownClient(f"no client {client_id!r} is registered")
        return row

    def get(self, client_id: str) -> Client | None:
        """Return the enabled client with this id, or None."""
        found = self._lookup(client_id)
        return found[0] if found else None

    def _lookup(self, client_id: str) -> tuple[Client, str] | None:
        """Return (client, secret hash) of the enabled client, from the short cache or the database."""
        now = time.monotonic()
        cached = self._cache.get(client_id)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        with self._sessions() as session:
            row = session.get(ClientRow, client_id)
        if row is None or row.disabled:
            self._cache.pop(client_id, None)
            return None
        client = _client(row)
        if len(self._cache) > 10000:
            self._cache.clear()
        self._cache[client_id] = (now + self._cache_seconds, client, row.secret_hash)
        return client, row.secret_hash

    def authenticate(self, client_id: str, client_secret: str) -> Client:
        """Return the client if the secret is right. Raises OAuthError(invalid_client, 401) otherwise.

        RFC 6749 §2.3.1; the comparison is constant-time and an unknown client costs the same.
        """
        found = self._lookup(client_id) if len(client_id) <= 128 else None
        presented = self._hash(client_secret)
        stored = found[1] if found is not None else "0" * 64
        if not hmac.compare_digest(presented, stored) or found is None:
            raise OAuthError("invalid_client", "client authentication failed", status=401)
        return found[0]

    def all(self) -> list[Client]:
        """Return every enabled client."""
        with self._sessions() as session:
            rows = session.execute(select(ClientRow).where(ClientRow.disabled.is_(False))).scalars().all()
        return [_client(row) for row in rows]

    def _hash(self, secret: str) -> str:
        # Same value as MasterKey.keyed_hash(SECRET_LABEL, secret), with the subkey derived once.
        return hmac.new(self._secret_key, secret.encode(), hashlib.sha256).hexdigest()


def metadata_problems(error: Exception) -> str:
    """Return pydantic's ValidationError as one readable line per problem ("field: message")."""
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return str(error)
    lines = []
    for item in errors():
        where = ".".join(str(p) for p in item.get("loc", ()))
        message = str(item.get("msg", "")).removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)


def _apply(row: ClientRow, metadata: ClientMetadata) -> None:
    """Copy the registrable metadata onto the row (config, CLI and DCR alike)."""
    row.name = metadata.name
    row.redirect_uris = list(metadata.redirect_uris)
    row.post_logout_redirect_uris = list(metadata.post_logout_redirect_uris)
    row.signing_alg = metadata.signing_alg
    row.token_endpoint_auth_method = metadata.token_endpoint_auth_method
    row.token_endpoint_auth_signing_alg = metadata.token_endpoint_auth_signing_alg
    row.jwks = metadata.jwks
    row.jwks_uri = metadata.jwks_uri
    row.grant_types = list(metadata.grant_types)
    row.subject_type = metadata.subject_type
    row.sector_identifier = metadata.sector if metadata.subject_type == "pairwise" else None
    row.backchannel_logout_uri = metadata.backchannel_logout_uri
    row.backchannel_logout_session_required = metadata.backchannel_logout_session_required
    row.frontchannel_logout_uri = metadata.frontchannel_logout_uri
    row.frontchannel_logout_session_required = metadata.frontchannel_logout_session_required
    row.allowed_audiences = list(metadata.allowed_audiences)
    row.contacts = list(metadata.contacts)
    row.scope = metadata.scope


def client_from_row(row: ClientRow) -> Client:
    """Return the ``Client`` a stored row describes (for callers reading it in their own transaction)."""
    return _client(row)


def _client(row: ClientRow) -> Client:
    return Client(
        client_id=row.client_id,
        name=row.name,
        redirect_uris=tuple(row.redirect_uris),
        post_logout_redirect_uris=tuple(row.post_logout_redirect_uris),
        signing_alg=row.signing_alg,
        token_endpoint_auth_method=row.token_endpoint_auth_method or "client_secret_basic",
        token_endpoint_auth_signing_alg=row.token_endpoint_auth_signing_alg,
        jwks=row.jwks,
        jwks_uri=row.jwks_uri,
        grant_types=tuple(row.grant_types or ()),
        subject_type=row.subject_type or "public",
        sector_identifier=row.sector_identifier,
        backchannel_logout_uri=row.backchannel_logout_uri,
        frontchannel_logout_uri=row.frontchannel_logout_uri,
        allowed_audiences=tuple(row.allowed_audiences or ()),
        backchannel_logout_session_required=bool(row.backchannel_logout_session_required),
        frontchannel_logout_session_required=bool(row.frontchannel_logout_session_required),
        contacts=tuple(row.contacts or ()),
        scope=row.scope,
        sector_identifier_uri=row.sector_identifier_uri,
        organisation=row.organisation,
        origin=row.origin,
        created_at=row.created_at,
    )
