"""Client authentication at the token, introspection and revocation endpoints.

Methods (OIDC Core §9): ``client_secret_basic`` (RFC 6749 §2.3.1), ``client_secret_post``
(RFC 6749 §2.3.1, body parameters) and ``private_key_jwt`` (RFC 7523 §2.2, §3). A client
must use exactly one method (RFC 6749 §2.3) and the one it registered. Every failure is
``invalid_client`` (401) and audited, without the secret or assertion.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote_plus

from broker.audit import AuditEvent
from broker.clients import Client, ClientRegistry
from broker.errors import OAuthError
from broker.oidc.client_keys import ClientKeys
from broker.state import StateStore
from broker.storage.types import utcnow
from federation import jose
from federation.errors import FederationError
from federation.keys import MasterKey

JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JTI_NAMESPACE = "client-jti"
JTI_LABEL = "client-assertion-jti"
MAX_ASSERTION_LIFETIME = 300  # seconds between iat and exp
CLOCK_LEEWAY = 30
MAX_ASSERTION_LENGTH = 8192
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")


class ClientAuthenticator:
    """Authenticates the calling client from form values and the Authorization header."""

    def __init__(
        self,
        *,
        clients: ClientRegistry,
        keys: ClientKeys,
        state: StateStore,
        master_key: MasterKey,
        issuer: str,
        token_endpoint: str,
        audit: Callable[[AuditEvent], object],
    ) -> None:
        self._clients = clients
        self._keys = keys
        self._state = state
        self._master = master_key
        self._issuer = issuer
        self._audiences = frozenset({issuer, token_endpoint})
        self._audit = audit

    def authenticate(self, values: Mapping[str, str], authorization: str | None, *, ip: str | None, endpoint: str = "token") -> Client:
        """Return the authenticated client.

        Raises OAuthError(invalid_client, 401) — audited as ``client_authentication`` failure.
        """
        try:
            return self._authenticate(values, authorization)
        except OAuthError as exc:
            self._audit(AuditEvent("client_authentication", "failure", client_id=_safe_id(values.get("client_id")), ip=ip,
                                   details={"reason": exc.description, "endpoint": endpoint}))
            raise

    def _authenticate(self, values: Mapping[str, str], authorization: str | None) -> Client:
        basic = authorization is not None and authorization.lower().startswith("basic ")
        post = "client_secret" in values
        assertion = "client_assertion" in values or "client_assertion_type" in values
        if sum((basic, post, assertion)) > 1:
            raise _fail("more than one client authentication method was used (RFC 6749 §2.3)")
        if basic:
            client_id, secret = _basic_credentials(authorization or "")
            if "client_id" in values and values["client_id"] != client_id:
                raise _fail("client_id does not match the credentials")
            return self._with_secret(client_id, secret, "client_secret_basic")
        if post:
            client_id = values.get("client_id")
            if not client_id:
                raise _fail("client_id is required with client_secret_post")
            return self._with_secret(client_id, values["client_secret"], "client_secret_post")
        if assertion:
            return self._with_assertion(values)
        raise _fail("client authentication is required (client_secret_basic, client_secret_post or private_key_jwt)")

    def _with_secret(self, client_id: str, secret: str, method: str) -> Client:
        client = self._clients.authenticate(client_id, secret)
        if client.token_endpoint_auth_method != method:
            raise _fail(f"this client is registered for {client.token_endpoint_auth_method}, not {method}")
        return client

    def _with_assertion(self, values: Mapping[str, str]) -> Client:
        if values.get("client_assertion_type") != JWT_BEARER_ASSERTION:
            raise _fail(f"client_assertion_type must be {JWT_BEARER_ASSERTION}")
        token = values.get("client_assertion", "")
        if not token or len(token) > MAX_ASSERTION_LENGTH:
            raise _fail("client_assertion is missing or too long")
        header, unverified = _unverified_parts(token)
        client_id = unverified.get("iss")
        if not isinstance(client_id, str) or unverified.get("sub") != client_id:
            raise _fail("client_assertion iss and sub must both be the client_id (RFC 7523 §3)")
        if "client_id" in values and values["client_id"] != client_id:
            raise _fail("client_id does not match the client_assertion")
        client = self._clients.get(client_id)
        if client is None:
            raise _fail("client authentication failed")
        if client.token_endpoint_auth_method != "private_key_jwt":
            raise _fail(f"this client is registered for {client.token_endpoint_auth_method}, not private_key_jwt")
        kid = header.get("kid") if isinstance(header.get("kid"), str) else None
        keys = self._keys.keys_for(client, kid=kid)
        try:
            claims = jose.verify(token, keys, audience=None, issuer=client_id, leeway_seconds=CLOCK_LEEWAY)
        except FederationError as exc:
            raise _fail(f"client_assertion is not valid: {exc}") from None
        self._check_claims(claims)
        return client

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        aud = claims.get("aud")
        audiences = set(aud) if isinstance(aud, list) else {aud}
        if not audiences & self._audiences:
            raise _fail("client_assertion aud must be the issuer or the token endpoint")
        now = int(utcnow().timestamp())
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int) or not isinstance(iat, int):
            raise _fail("client_assertion exp and iat must be numbers")
        if exp - iat > MAX_ASSERTION_LIFETIME or exp > now + MAX_ASSERTION_LIFETIME + CLOCK_LEEWAY:
            raise _fail(f"client_assertion must expire within {MAX_ASSERTION_LIFETIME} seconds of being issued")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise _fail("client_assertion needs a jti")
        key = self._master.keyed_hash(JTI_LABEL, f"{claims['iss']}\x00{jti}")
        ttl = max(exp - now + CLOCK_LEEWAY, 1)
        if not self._state.add(JTI_NAMESPACE, key, {"exp": exp}, ttl):
            raise _fail("client_assertion jti has been used before (replay)")


def _fail(description: str) -> OAuthError:
    return OAuthError("invalid_client", description, status=401)


def _safe_id(value: str | None) -> str | None:
    return value[:128] if value else None


def _basic_credentials(authorization: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _fail("malformed Basic credentials") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise _fail("malformed Basic credentials")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


def _unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the header and payload of a compact JWS *without* verifying it (to find the client)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise _fail("client_assertion is not a compact JWS")
    try:
        decoded = [json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in parts[:2]]
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _fail("client_assertion is malformed") from None
    if not all(isinstance(d, dict) for d in decoded):
        raise _fail("client_assertion is malformed")
    return decoded[0], decoded[1]
