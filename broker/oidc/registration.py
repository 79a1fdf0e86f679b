"""Dynamic client registration (RFC 7591) and its management protocol (RFC 7592), no Flask.

- ``POST /register`` needs an initial access token (RFC 7591 §3, Bearer): an application team
  registers its own client. The metadata is validated by ``config.client_metadata.ClientMetadata``,
  the same rules as configuration and the command line. The answer (201, §3.2.1) carries
  ``client_id``, a high-entropy ``client_secret`` for the secret methods, a
  ``registration_access_token`` and the ``registration_client_uri``.
- ``GET / PUT / DELETE`` on the registration client URI with that token (RFC 7592 §2.1–§2.3):
  read, replace, remove. The token is bound to its client: another client's token is 401.
- Refusals are RFC 7591 §3.2.2 errors (``invalid_redirect_uri``, ``invalid_client_metadata``,
  ``invalid_software_statement``) or RFC 6750 ``invalid_token`` (401), each audited.

Only the code flow is registrable here (response type ``code``, grants ``authorization_code``
and ``refresh_token``); ``client_credentials`` and token exchange name the services a client may
call, which only an administrator grants (``supercloud clients add``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from broker.audit import AuditEvent
from broker.clients import Client, ClientRegistry, NewClient, UnknownClient, metadata_problems
from broker.errors import OAuthError
from broker.initial_access import InitialAccessToken, InitialAccessTokens
from broker.storage.types import utcnow
from config.client_metadata import GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN, ClientMetadata, check_client_uri

MAX_BODY_BYTES = 64 * 1024
SECTOR_FETCH_TIMEOUT = 5.0
MAX_SECTOR_BYTES = 64 * 1024
REGISTRABLE_GRANTS = (GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN)
# Metadata we understand but cannot honour: ignoring it would silently weaken what the client
# asked for (OIDC Registration §2), so it is refused instead.
UNSUPPORTED = {
    "id_token_encrypted_response_alg": "encrypted ID tokens are not supported",
    "id_token_encrypted_response_enc": "encrypted ID tokens are not supported",
    "userinfo_signed_response_alg": "userinfo is answered as plain JSON, not a signed JWT",
    "userinfo_encrypted_response_alg": "encrypted userinfo is not supported",
    "userinfo_encrypted_response_enc": "encrypted userinfo is not supported",
    "request_object_signing_alg": "request objects are not supported",
    "request_object_encryption_alg": "request objects are not supported",
    "request_object_encryption_enc": "request objects are not supported",
    "request_uris": "request objects are not supported",
    "authorization_signed_response_alg": "JWT-secured authorization responses are not supported",
    "tls_client_auth_subject_dn": "mutual-TLS client authentication is not supported",
    "require_pushed_authorization_requests": "pushed authorization requests are not supported",
    "dpop_bound_access_tokens": "DPoP is not supported",
}
# Fields the server sets: ignored in a request (RFC 7592 §2.2).
SERVER_FIELDS = frozenset({"registration_access_token", "registration_client_uri", "client_secret_expires_at", "client_id_issued_at"})
STRING_FIELDS = ("client_name", "token_endpoint_auth_method", "jwks_uri", "id_token_signed_response_alg", "subject_type",
                 "sector_identifier_uri", "backchannel_logout_uri", "frontchannel_logout_uri", "token_endpoint_auth_signing_alg",
                 "scope", "software_statement", "client_id", "client_secret")
LIST_FIELDS = ("redirect_uris", "post_logout_redirect_uris", "grant_types", "response_types", "contacts")
BOOL_FIELDS = ("backchannel_logout_session_required", "frontchannel_logout_session_required")

SectorFetcher = Callable[[str], Any]


def fetch_sector_uris(url: str) -> Any:
    """GET ``url`` (no redirects, bounded time and size) and return its JSON. Raises OSError or ValueError."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=SECTOR_FETCH_TIMEOUT) as response:
            body = response.read(MAX_SECTOR_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise ValueError(f"it answered HTTP {exc.code}") from None
    if len(body) > MAX_SECTOR_BYTES:
        raise ValueError("the document is larger than 64 KiB")
    return json.loads(body)


def _error(error: str, description: str, status: int = 400) -> OAuthError:
    return OAuthError(error, description[:500], status=status)


def _invalid_token(description: str) -> OAuthError:
    return OAuthError("invalid_token", description, status=401)


def bearer_token(authorization: str | None) -> str | None:
    """Return the token of an ``Authorization: Bearer`` header (RFC 6750 §2.1), or None."""
    if not authorization or not authorization[:7].lower() == "bearer ":
        return None
    token = authorization[7:].strip()
    return token or None


class DynamicRegistration:
    """The registration endpoint and the client configuration endpoint."""

    def __init__(
        self,
        *,
        db: sessionmaker[Session],
        clients: ClientRegistry,
        initial_tokens: InitialAccessTokens,
        issuer: str,
        default_alg: str,
        audit: Callable[[AuditEvent], object],
        fetch_sector: SectorFetcher = fetch_sector_uris,
    ) -> None:
        self._db = db
        self._clients = clients
        self._tokens = initial_tokens
        self._issuer = issuer
        self._default_alg = default_alg
        self._audit = audit
        self._fetch_sector = fetch_sector

    @property
    def endpoint(self) -> str:
        """The registration endpoint (RFC 7591 §3; ``registration_endpoint`` in discovery)."""
        return f"{self._issuer}/register"

    def client_uri(self, client_id: str) -> str:
        """The client configuration endpoint of ``client_id`` (RFC 7592 §1)."""
        return f"{self.endpoint}/{client_id}"

    # --- RFC 7591 §3: register --------------------------------------------------------------

    def register(self, body: bytes, content_type: str | None, authorization: str | None, *, ip: str | None) -> dict[str, Any]:
        """Register a client; return the 201 body (RFC 7591 §3.2.1).

        Raises OAuthError: invalid_token (401) without a usable initial access token;
        invalid_redirect_uri / invalid_client_metadata / invalid_software_statement (400).
        Every outcome is audited with the initial access token's id, never the token.
        """
        initial: InitialAccessToken | None = None
        try:
            initial = self._initial_token(authorization)
            request = _parse_body(body, content_type)
            metadata, sector_uri = self._metadata(request)
            with self._db.begin() as session:
                if not self._tokens.consume(session, initial.id):
                    raise _invalid_token("the initial access token is expired, revoked or used up")
                new = self._clients.register(metadata, origin="dcr", organisation=initial.organisation,
                                             sector_identifier_uri=sector_uri, session=session)
        except OAuthError as exc:
            self._audit(AuditEvent("client_registration", "failure", ip=ip,
                                   details={"error": exc.error, "reason": exc.description,
                                            "initial_access_token": initial.id if initial else None}))
            raise
        self._audit(AuditEvent("client_registration", "success", client_id=new.client.client_id, ip=ip,
                               details={"initial_access_token": initial.id, "organisation": initial.organisation,
                                        "name": new.client.name, "redirect_uris": list(new.client.redirect_uris),
                                        "token_endpoint_auth_method": new.client.token_endpoint_auth_method}))
        return self._response(new.client, client_secret=new.client_secret or None, registration_token=new.registration_access_token)

    # --- RFC 7592 §2: read, update, delete ------------------------------------------------

    def read(self, client_id: str, authorization: str | None, *, ip: str | None) -> dict[str, Any]:
        """Return the client's registration (RFC 7592 §2.1). Raises OAuthError(invalid_token, 401)."""
        client, token = self._authorised(client_id, authorization, "read", ip)
        self._audit(AuditEvent("client_registration_read", "success", client_id=client.client_id, ip=ip))
        return self._response(client, client_secret=None, registration_token=token)

    def update(self, client_id: str, body: bytes, content_type: str | None, authorization: str | None, *,
               ip: str | None) -> dict[str, Any]:
        """Replace the client's metadata with the request's (RFC 7592 §2.2); return the new registration.

        Raises OAuthError: invalid_token (401); invalid_client_metadata / invalid_redirect_uri (400)
        for bad metadata, a different ``client_id``, or a ``client_secret`` that is not the current one.
        """
        client, token = self._authorised(client_id, authorization, "update", ip)
        try:
            request = _parse_body(body, content_type)
            if request.get("client_id") != client_id:
                raise _error("invalid_client_metadata", "the body's client_id must be this client's id (RFC 7592 §2.2)")
            if "client_secret" in request and not self._secret_matches(client, request["client_secret"]):
                raise _error("invalid_client_metadata", "client_secret, if sent, must be the current secret; it cannot be chosen")
            metadata, sector_uri = self._metadata(request)
            updated: NewClient = self._clients.update(client_id, metadata, sector_identifier_uri=sector_uri, origin="dcr")
        except UnknownClient:
            raise _invalid_token("the registration access token is not valid for this client") from None
        except OAuthError as exc:
            self._audit(AuditEvent("client_registration_update", "failure", client_id=client_id, ip=ip,
                                   details={"error": exc.error, "reason": exc.description}))
            raise
        self._audit(AuditEvent("client_registration_update", "success", client_id=client_id, ip=ip,
                               details={"redirect_uris": list(updated.client.redirect_uris),
                                        "token_endpoint_auth_method": updated.client.token_endpoint_auth_method,
                                        "new_secret": bool(updated.client_secret)}))
        return self._response(updated.client, client_secret=updated.client_secret or None, registration_token=token)

    def delete(self, client_id: str, authorization: str | None, *, ip: str | None) -> None:
        """Deregister the client (RFC 7592 §2.3): disabled, its tokens revoked, its registration
        token void. Raises OAuthError(invalid_token, 401)."""
        self._authorised(client_id, authorization, "delete", ip)
        try:
            self._clients.remove(client_id, origin="dcr")
        except UnknownClient:
            raise _invalid_token("the registration access token is not valid for this client") from None
        self._audit(AuditEvent("client_registration_delete", "success", client_id=client_id, ip=ip))

    # --- helpers ------------------------------------------------------------------------------

    def _initial_token(self, authorization: str | None) -> InitialAccessToken:
        token = bearer_token(authorization)
        if token is None:
            raise _invalid_token("registration needs an initial access token (Authorization: Bearer ...)")
        record = self._tokens.find(token)
        if record is None:
            raise _invalid_token("the initial access token is not valid")
        why = record.why_unusable(utcnow())
        if why is not None:
            raise _invalid_token(f"the initial access token is {why}")
        return record

    def _authorised(self, client_id: str, authorization: str | None, action: str, ip: str | None) -> tuple[Client, str]:
        token = bearer_token(authorization)
        client = self._clients.by_registration_token(client_id, token) if token else None
        if client is None or token is None:
            reason = "no registration access token" if token is None else "the registration access token is not valid for this client"
            self._audit(AuditEvent(f"client_registration_{action}", "failure", client_id=client_id[:128] or None, ip=ip,
                                   details={"error": "invalid_token", "reason": reason}))
            raise _invalid_token(reason)
        return client, token

    def _secret_matches(self, client: Client, secret: object) -> bool:
        if not isinstance(secret, str):
            return False
        try:
            self._clients.authenticate(client.client_id, secret)
        except OAuthError:
            return False
        return True

    def _metadata(self, request: Mapping[str, Any]) -> tuple[ClientMetadata, str | None]:
        """Map RFC 7591 / OIDC Registration names onto ``ClientMetadata``; return it and the
        validated ``sector_identifier_uri``. Raises OAuthError (400)."""
        if "software_statement" in request:
            raise _error("invalid_software_statement", "software statements are not accepted here; send the metadata itself")
        for name, why in UNSUPPORTED.items():
            if name in request and request[name] not in (None, [], ""):
                raise _error("invalid_client_metadata", f"{name}: {why}")
        _check_types(request)
        redirect_uris = request.get("redirect_uris")
        if not redirect_uris:
            raise _error("invalid_redirect_uri", "redirect_uris is required: at least one https URI (http only on loopback)")
        response_types = request.get("response_types", ["code"])
        if response_types != ["code"]:
            raise _error("invalid_client_metadata", "response_types must be [\"code\"]: only the authorization code flow is offered")
        grant_types = request.get("grant_types", [GRANT_AUTHORIZATION_CODE])
        if GRANT_AUTHORIZATION_CODE not in grant_types:
            raise _error("invalid_client_metadata", "grant_types must include authorization_code to go with response_types [\"code\"] "
                         "(RFC 7591 §2.1)")
        extra = [g for g in grant_types if g not in REGISTRABLE_GRANTS]
        if extra:
            raise _error("invalid_client_metadata", f"grant_types {extra} cannot be self-registered: only authorization_code and "
                         "refresh_token (an administrator registers service clients)")
        alg = request.get("id_token_signed_response_alg")
        if alg is not None and alg not in ("ES256", "RS256"):
            raise _error("invalid_client_metadata", "id_token_signed_response_alg must be ES256 or RS256")
        method = request.get("token_endpoint_auth_method", "client_secret_basic")
        if method not in ("client_secret_basic", "client_secret_post", "private_key_jwt"):
            raise _error("invalid_client_metadata", "token_endpoint_auth_method must be client_secret_basic, client_secret_post "
                         "or private_key_jwt (public clients are not supported)")
        subject_type = request.get("subject_type", "public")
        sector_uri = request.get("sector_identifier_uri")
        sector = None
        if sector_uri is not None:
            sector = self._check_sector(sector_uri, redirect_uris)
        fields = {
            "name": request.get("client_name") or urlsplit(redirect_uris[0]).hostname or "unnamed application",
            "redirect_uris": redirect_uris,
            "post_logout_redirect_uris": request.get("post_logout_redirect_uris", []),
            "signing_alg": alg,
            "token_endpoint_auth_method": method,
            "token_endpoint_auth_signing_alg": request.get("token_endpoint_auth_signing_alg"),
            "jwks": request.get("jwks"),
            "jwks_uri": request.get("jwks_uri"),
            "grant_types": grant_types,
            "subject_type": subject_type,
            "sector_identifier": sector if subject_type == "pairwise" else None,
            "backchannel_logout_uri": request.get("backchannel_logout_uri"),
            "backchannel_logout_session_required": request.get("backchannel_logout_session_required", False),
            "frontchannel_logout_uri": request.get("frontchannel_logout_uri"),
            "frontchannel_logout_session_required": request.get("frontchannel_logout_session_required", False),
            "contacts": request.get("contacts", []),
            "scope": request.get("scope"),
        }
        try:
            return ClientMetadata.model_validate(fields), sector_uri
        except ValidationError as exc:
            raise _validation_error(exc) from None

    def _check_sector(self, sector_uri: str, redirect_uris: list[str]) -> str:
        """Validate ``sector_identifier_uri`` (OIDC Registration §5): an https URL whose JSON array
        holds every redirect URI. Return its host, the pairwise sector. Raises OAuthError (400)."""
        try:
            check_client_uri(sector_uri)
        except ValueError as exc:
            raise _error("invalid_client_metadata", f"sector_identifier_uri: {exc}") from None
        try:
            listed = self._fetch_sector(sector_uri)
        except (OSError, ValueError) as exc:
            raise _error("invalid_client_metadata", f"sector_identifier_uri could not be read as JSON: {str(exc)[:200]}") from None
        if not isinstance(listed, list) or not all(isinstance(u, str) for u in listed):
            raise _error("invalid_client_metadata", "sector_identifier_uri must answer a JSON array of URIs (OIDC Registration §5)")
        missing = [u for u in redirect_uris if u not in listed]
        if missing:
            raise _error("invalid_redirect_uri", f"redirect URIs not listed at sector_identifier_uri: {missing}")
        return urlsplit(sector_uri).hostname or sector_uri

    def _response(self, client: Client, *, client_secret: str | None, registration_token: str | None) -> dict[str, Any]:
        """The client information response (RFC 7591 §3.2.1, RFC 7592 §3)."""
        body: dict[str, Any] = {"client_id": client.client_id}
        if client_secret:
            body["client_secret"] = client_secret
            body["client_secret_expires_at"] = 0
        if client.created_at is not None:
            body["client_id_issued_at"] = int(client.created_at.timestamp())
        if registration_token:
            body["registration_access_token"] = registration_token
        body["registration_client_uri"] = self.client_uri(client.client_id)
        body.update(client_metadata(client, self._default_alg))
        return body


def client_metadata(client: Client, default_alg: str) -> dict[str, Any]:
    """Return the client's registered metadata under RFC 7591 / OIDC Registration names."""
    body: dict[str, Any] = {
        "client_name": client.name,
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "grant_types": list(client.grant_types),
        "response_types": ["code"] if GRANT_AUTHORIZATION_CODE in client.grant_types else [],
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "id_token_signed_response_alg": client.signing_alg or default_alg,
        "subject_type": client.subject_type,
    }
    optional = {
        "jwks": client.jwks,
        "jwks_uri": client.jwks_uri,
        "token_endpoint_auth_signing_alg": client.token_endpoint_auth_signing_alg,
        "sector_identifier_uri": client.sector_identifier_uri,
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "frontchannel_logout_uri": client.frontchannel_logout_uri,
        "scope": client.scope,
    }
    body.update({k: v for k, v in optional.items() if v})
    if client.backchannel_logout_uri:
        body["backchannel_logout_session_required"] = client.backchannel_logout_session_required
    if client.frontchannel_logout_uri:
        body["frontchannel_logout_session_required"] = client.frontchannel_logout_session_required
    if client.contacts:
        body["contacts"] = list(client.contacts)
    return body


def _parse_body(body: bytes, content_type: str | None) -> dict[str, Any]:
    if (content_type or "").split(";")[0].strip().lower() != "application/json":
        raise _error("invalid_client_metadata", "the request body must be JSON (Content-Type: application/json)")
    if len(body) > MAX_BODY_BYTES:
        raise _error("invalid_client_metadata", "the request body is larger than 64 KiB")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _error("invalid_client_metadata", "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _error("invalid_client_metadata", "the request body must be a JSON object of client metadata")
    return {k: v for k, v in data.items() if k not in SERVER_FIELDS}


def _check_types(request: Mapping[str, Any]) -> None:
    for name in STRING_FIELDS:
        if name in request and not isinstance(request[name], str):
            raise _error("invalid_client_metadata", f"{name} must be a string")
    for name in LIST_FIELDS:
        value = request.get(name)
        if name in request and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise _error("invalid_redirect_uri" if name == "redirect_uris" else "invalid_client_metadata",
                         f"{name} must be an array of strings")
    for name in BOOL_FIELDS:
        if name in request and not isinstance(request[name], bool):
            raise _error("invalid_client_metadata", f"{name} must be true or false")
    if "jwks" in request and not isinstance(request["jwks"], dict):
        raise _error("invalid_client_metadata", "jwks must be a JWK Set object")


def _validation_error(exc: ValidationError) -> OAuthError:
    """Map ``ClientMetadata``'s problems onto RFC 7591 §3.2.2 codes, with the field names of the request."""
    names = {"name": "client_name", "signing_alg": "id_token_signed_response_alg", "sector_identifier": "sector_identifier_uri"}
    redirect = False
    lines = []
    for item in exc.errors():
        loc = [str(p) for p in item.get("loc", ())]
        if loc:
            loc[0] = names.get(loc[0], loc[0])
        message = str(item.get("msg", "")).removeprefix("Value error, ")
        redirect = redirect or (bool(loc) and loc[0] == "redirect_uris") or (not loc and "redirect_uri" in message
                                                                              and "post_logout" not in message)
        lines.append(f"{'.'.join(loc)}: {message}" if loc else message)
    return _error("invalid_redirect_uri" if redirect else "invalid_client_metadata", "; ".join(lines))


__all__ = ["DynamicRegistration", "bearer_token", "client_metadata", "fetch_sector_uris", "metadata_problems"]
