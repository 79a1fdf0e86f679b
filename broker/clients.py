"""Registered OIDC applications (clients): registration, lookup and authentication."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from broker.errors import OAuthError
from broker.storage.models import ClientRow
from broker.storage.types import utcnow
from config.schema import GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN, ApplicationConfig, check_absolute_url, is_loopback
from federation.keys import MasterKey

SECRET_LABEL = "client-secret"
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
    """A freshly registered client; ``client_secret`` is shown once and never stored."""

    client: Client
    client_secret: str


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
                row.name = app.name
                # A private_key_jwt client has no secret: an empty hash matches no presented secret.
                row.secret_hash = self._hash(app.client_secret.reveal()) if app.client_secret is not None else ""
                row.redirect_uris = list(app.redirect_uris)
                row.post_logout_redirect_uris = list(app.post_logout_redirect_uris)
                row.signing_alg = app.signing_alg
                row.token_endpoint_auth_method = app.token_endpoint_auth_method
                row.token_endpoint_auth_signing_alg = app.token_endpoint_auth_signing_alg
                row.jwks = app.jwks
                row.jwks_uri = app.jwks_uri
                row.grant_types = list(app.grant_types)
                row.subject_type = app.subject_type
                row.sector_identifier = app.sector if app.subject_type == "pairwise" else None
                row.backchannel_logout_uri = app.backchannel_logout_uri
                row.frontchannel_logout_uri = app.frontchannel_logout_uri
                row.allowed_audiences = list(app.allowed_audiences)
                row.origin = "config"
                row.disabled = False
                session.add(row)
        self._cache.clear()

    def add(self, name: str, redirect_uris: list[str], post_logout_redirect_uris: list[str] | None = None) -> NewClient:
        """Register a new client with a random id and secret; return both (the secret only this once).

        Raises ValueError for an invalid name or redirect URI.
        """
        if not name.strip() or len(name) > 200:
            raise ValueError("the name must be 1 to 200 characters")
        if not redirect_uris:
            raise ValueError("at least one redirect URI is needed")
        for uri in [*redirect_uris, *(post_logout_redirect_uris or [])]:
            check_absolute_url(uri)
            if uri.startswith("http://") and not is_loopback(uri):
                raise ValueError(f"{uri} must be https:// (plain http only on a loopback address)")
        client_id = f"app-{secrets.token_hex(8)}"
        secret = secrets.token_urlsafe(32)
        row = ClientRow(
            client_id=client_id,
            name=name.strip(),
            secret_hash=self._hash(secret),
            redirect_uris=list(redirect_uris),
            post_logout_redirect_uris=list(post_logout_redirect_uris or []),
            signing_alg=None,
            origin="cli",
            created_at=utcnow(),
            disabled=False,
            token_endpoint_auth_method="client_secret_basic",
            grant_types=[GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN],
            subject_type="public",
            allowed_audiences=[],
        )
        with self._sessions.begin() as session:
            session.add(row)
        return NewClient(_client(row), secret)

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
    )
