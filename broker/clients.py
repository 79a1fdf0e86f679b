"""Registered OIDC applications (clients): registration, lookup and authentication."""

from __future__ import annotations

import dataclasses
import hmac
import secrets
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from broker.errors import OAuthError
from broker.storage.models import ClientRow
from broker.storage.types import utcnow
from config.schema import ApplicationConfig, check_absolute_url
from federation.keys import MasterKey

SECRET_LABEL = "client-secret"


@dataclasses.dataclass(frozen=True, slots=True)
class Client:
    """A registered application as the protocol code sees it."""

    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    signing_alg: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class NewClient:
    """A freshly registered client; ``client_secret`` is shown once and never stored."""

    client: Client
    client_secret: str


class ClientRegistry:
    """Clients in the database; secrets kept only as keyed hashes (HMAC-SHA256)."""

    def __init__(self, sessions: sessionmaker[Session], master_key: MasterKey) -> None:
        self._sessions = sessions
        self._master = master_key

    def sync_from_config(self, applications: Iterable[ApplicationConfig]) -> None:
        """Insert or update the applications registered in configuration (secrets resolved)."""
        with self._sessions.begin() as session:
            for app in applications:
                row = session.get(ClientRow, app.client_id) or ClientRow(client_id=app.client_id, created_at=utcnow())
                row.name = app.name
                row.secret_hash = self._hash(app.client_secret.reveal())
                row.redirect_uris = list(app.redirect_uris)
                row.post_logout_redirect_uris = list(app.post_logout_redirect_uris)
                row.signing_alg = app.signing_alg
                row.origin = "config"
                row.disabled = False
                session.add(row)

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
        )
        with self._sessions.begin() as session:
            session.add(row)
        return NewClient(_client(row), secret)

    def get(self, client_id: str) -> Client | None:
        """Return the enabled client with this id, or None."""
        with self._sessions() as session:
            row = session.get(ClientRow, client_id)
        return _client(row) if row is not None and not row.disabled else None

    def authenticate(self, client_id: str, client_secret: str) -> Client:
        """Return the client if the secret is right. Raises OAuthError(invalid_client, 401) otherwise.

        RFC 6749 §2.3.1; the comparison is constant-time and an unknown client costs the same.
        """
        with self._sessions() as session:
            row = session.get(ClientRow, client_id)
        presented = self._hash(client_secret)
        stored = row.secret_hash if row is not None else "0" * 64
        if not hmac.compare_digest(presented, stored) or row is None or row.disabled:
            raise OAuthError("invalid_client", "client authentication failed", status=401)
        return _client(row)

    def _hash(self, secret: str) -> str:
        return self._master.keyed_hash(SECRET_LABEL, secret)


def _client(row: ClientRow) -> Client:
    return Client(
        client_id=row.client_id,
        name=row.name,
        redirect_uris=tuple(row.redirect_uris),
        post_logout_redirect_uris=tuple(row.post_logout_redirect_uris),
        signing_alg=row.signing_alg,
    )
