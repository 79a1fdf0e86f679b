"""The OpenID Connect provider: authorization, token and userinfo endpoints as plain calls.

Everything arrives as plain strings and mappings and leaves as a dict or a URL; the web
layer does HTTP. Dependencies come through the constructor (compare pyop).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote_plus

from broker.access import AccessGate, AccessGrant
from broker.audit import AuditEvent
from broker.clients import Client, ClientRegistry
from broker.errors import BrokerError, OAuthError
from broker.oidc.authorization import AuthorizationError, AuthorizationRequest, redirect_with, validate_authorization_request
from broker.oidc.claims import SUPPORTED_SCOPES, claims_supported, scope_claims
from broker.oidc.pkce import verify_s256
from broker.oidc.tokens import TokenGrant, TokenMinter
from broker.sessions import SsoSession, SsoSessions
from broker.state import StateStore
from broker.storage.types import utcnow
from federation.keys import SIGNING_ALGS, MasterKey, SigningAlg

CODE_NAMESPACE = "code"
CODE_LABEL = "authorization-code"


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoints:
    """The provider's public URLs."""

    issuer: str

    @property
    def authorization(self) -> str:
        return f"{self.issuer}/authorize"

    @property
    def token(self) -> str:
        return f"{self.issuer}/token"

    @property
    def userinfo(self) -> str:
        return f"{self.issuer}/userinfo"

    @property
    def jwks(self) -> str:
        return f"{self.issuer}/jwks.json"

    @property
    def end_session(self) -> str:
        return f"{self.issuer}/logout"


class OidcProvider:
    """Implements the code flow with PKCE (RFC 6749 §4.1, RFC 7636, OIDC Core §3.1)."""

    def __init__(
        self,
        *,
        endpoints: Endpoints,
        clients: ClientRegistry,
        state: StateStore,
        minter: TokenMinter,
        sso: SsoSessions,
        master_key: MasterKey,
        audit: Callable[[AuditEvent], object],
        organisation_name: Callable[[str], str | None],
        code_lifetime: int,
        default_alg: SigningAlg,
        access: AccessGate,
    ) -> None:
        self.endpoints = endpoints
        self._clients = clients
        self._state = state
        self._minter = minter
        self._sso = sso
        self._master = master_key
        self._audit = audit
        self._organisation_name = organisation_name
        self._code_lifetime = code_lifetime
        self._default_alg = default_alg
        self._access = access

    def metadata(self) -> dict[str, Any]:
        """Return the discovery document (OIDC Discovery §3, RFC 8414 §2)."""
        e = self.endpoints
        return {
            "issuer": e.issuer,
            "authorization_endpoint": e.authorization,
            "token_endpoint": e.token,
            "userinfo_endpoint": e.userinfo,
            "jwks_uri": e.jwks,
            "end_session_endpoint": e.end_session,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": list(SIGNING_ALGS),
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": list(SUPPORTED_SCOPES),
            "claims_supported": claims_supported(),
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "authorization_response_iss_parameter_supported": True,
            "prompt_values_supported": ["none", "login"],
        }

    # --- authorization endpoint -------------------------------------------------------

    def validate(self, params: Mapping[str, Sequence[str]]) -> tuple[Client, AuthorizationRequest]:
        """Validate an authorization request; see ``validate_authorization_request``."""
        return validate_authorization_request(params, self._clients)

    def needs_login(self, request: AuthorizationRequest, session: SsoSession | None) -> bool:
        """Return True if the person must (re-)authenticate before a code can be issued."""
        if session is None or "login" in request.prompt:
            return True
        if request.max_age is not None:
            age = (utcnow() - session.identity.authn.authenticated_at).total_seconds()
            return age > request.max_age
        return False

    def error_redirect(self, error: AuthorizationError) -> str:
        """Return the redirect URL carrying ``error`` to the client (RFC 6749 §4.1.2.1, RFC 9207)."""
        return redirect_with(
            error.redirect_uri,
            {"error": error.error, "error_description": error.description, "state": error.state, "iss": self.endpoints.issuer},
        )

    def issue_code(self, request: AuthorizationRequest, session: SsoSession, *, ip: str | None) -> str:
        """Issue an authorization code for ``request`` in ``session``; return the redirect URL.

        Asks the access gate first. Raises AccessDenied or StepUpRequired (audited).
        """
        identity = session.identity
        grant = self._check_access(session, request.client_id, ip=ip)
        code = secrets.token_urlsafe(32)
        record = {
            "client_id": request.client_id,
            "redirect_uri": request.redirect_uri,
            "code_challenge": request.code_challenge,
            "nonce": request.nonce,
            "scopes": sorted(request.scopes),
            "sid": session.sid,
            "subject_id": session.subject_id,
            "auth_time": int(identity.authn.authenticated_at.timestamp()),
            "acr": identity.authn.assurance.acr,
            "amr": list(identity.authn.methods),
            "claims": _released(
                scope_claims(identity, request.scopes, self._organisation_name(identity.organisation)), grant
            ),
            "released": sorted(grant.released) if grant.released is not None else None,
        }
        self._state.add(CODE_NAMESPACE, self._code_hash(code), record, self._code_lifetime)
        self._audit(
            AuditEvent("authorization_code_issued", "success", actor=session.subject_id, client_id=request.client_id, ip=ip,
                       details={"sid": session.sid, "scopes": sorted(request.scopes)})
        )
        return redirect_with(request.redirect_uri, {"code": code, "state": request.state, "iss": self.endpoints.issuer})

    # --- token endpoint -----------------------------------------------------------------

    def token(self, form: Mapping[str, Sequence[str]], authorization: str | None, *, ip: str | None) -> dict[str, Any]:
        """Exchange an authorization code (RFC 6749 §4.1.3); return the token response.

        Raises OAuthError: invalid_client (401), invalid_request, unsupported_grant_type,
        invalid_grant. A code used twice revokes every token issued from it (RFC 6749 §4.1.2).
        """
        values = {k: v[0] for k, v in form.items() if v}
        duplicated = [k for k, v in form.items() if len(v) > 1]
        client = self._authenticate_client(values, authorization, ip=ip)
        try:
            if duplicated:
                raise OAuthError("invalid_request", f"parameter {duplicated[0]} given more than once")
            if values.get("grant_type") != "authorization_code":
                raise OAuthError("unsupported_grant_type", "only authorization_code is supported")
            code = values.get("code")
            if not code:
                raise OAuthError("invalid_request", "code is required")
            code_hash = self._code_hash(code)
            taken = self._state.take(CODE_NAMESPACE, code_hash)
            if taken.value is None:
                if taken.already_taken:
                    revoked = self._minter.revoke_by_code(code_hash)
                    self._audit(AuditEvent("authorization_code_replayed", "failure", client_id=client.client_id, ip=ip,
                                           details={"tokens_revoked": revoked}))
                    raise OAuthError("invalid_grant", "the authorization code has already been used")
                raise OAuthError("invalid_grant", "the authorization code is invalid or expired")
            record = taken.value
            if record["client_id"] != client.client_id:
                raise OAuthError("invalid_grant", "the authorization code was issued to another client")
            if values.get("redirect_uri") != record["redirect_uri"]:
                raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
            verifier = values.get("code_verifier")
            if not verifier:
                raise OAuthError("invalid_grant", "code_verifier is required (PKCE)")
            if not verify_s256(verifier, record["code_challenge"]):
                raise OAuthError("invalid_grant", "code_verifier does not match the code challenge")
        except OAuthError as exc:
            self._audit(AuditEvent("token", "failure", client_id=client.client_id, ip=ip,
                                   details={"error": exc.error, "reason": exc.description}))
            raise
        alg = client.signing_alg if client.signing_alg in SIGNING_ALGS else self._default_alg
        response = self._minter.mint(
            TokenGrant(
                client_id=client.client_id,
                subject_id=record["subject_id"],
                sid=record["sid"],
                scopes=frozenset(record["scopes"]),
                nonce=record["nonce"],
                auth_time=record["auth_time"],
                acr=record["acr"],
                amr=tuple(record["amr"]),
                claims=record["claims"],
                code_hash=code_hash,
            ),
            alg,  # type: ignore[arg-type]
        )
        self._audit(AuditEvent("token_issued", "success", actor=record["subject_id"], client_id=client.client_id, ip=ip,
                               details={"grant_type": "authorization_code", "sid": record["sid"], "alg": alg}))
        return response

    def _authenticate_client(self, values: Mapping[str, str], authorization: str | None, *, ip: str | None) -> Client:
        """Authenticate with client_secret_basic (RFC 6749 §2.3.1). Raises OAuthError(invalid_client, 401)."""
        try:
            if not authorization or not authorization.lower().startswith("basic "):
                raise OAuthError("invalid_client", "client authentication (HTTP Basic) is required", status=401)
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise OAuthError("invalid_client", "malformed Basic credentials", status=401) from None
            client_id, colon, secret = decoded.partition(":")
            if not colon:
                raise OAuthError("invalid_client", "malformed Basic credentials", status=401)
            client_id, secret = unquote_plus(client_id), unquote_plus(secret)
            if "client_id" in values and values["client_id"] != client_id:
                raise OAuthError("invalid_client", "client_id does not match the credentials", status=401)
            return self._clients.authenticate(client_id, secret)
        except OAuthError as exc:
            self._audit(AuditEvent("client_authentication", "failure", client_id=values.get("client_id"), ip=ip,
                                   details={"reason": exc.description}))
            raise

    # --- userinfo endpoint --------------------------------------------------------------

    def userinfo(self, access_token: str | None) -> dict[str, Any]:
        """Return the claims for a valid access token (OIDC Core §5.3).

        Raises OAuthError(invalid_token, 401) for a missing, invalid, expired or revoked
        token, or one whose session has ended.
        """
        claims = self._minter.verify_access_token(access_token) if access_token else None
        if claims is None:
            raise OAuthError("invalid_token", "the access token is invalid, expired or revoked", status=401)
        if "openid" not in claims.scopes:
            raise OAuthError("insufficient_scope", "the access token lacks the openid scope", status=403)
        session = self._sso.by_sid(claims.sid) if claims.sid else None
        if session is None:
            raise OAuthError("invalid_token", "the sign-in session behind this token has ended", status=401)
        identity = session.identity
        grant = self._check_access(session, claims.client_id, ip=None)
        return {
            "sub": claims.subject_id,
            **_released(scope_claims(identity, claims.scopes, self._organisation_name(identity.organisation)), grant),
        }

    def end_session(self, session: SsoSession, *, reason: str, ip: str | None) -> None:
        """End an SSO session and revoke the tokens issued in it."""
        ended = self._sso.end(session.sid, reason)
        revoked = self._minter.revoke_by_sid(session.sid)
        if ended:
            self._audit(AuditEvent("signout", "success", actor=session.subject_id, ip=ip,
                                   details={"sid": session.sid, "reason": reason, "tokens_revoked": revoked}))

    def _check_access(self, session: SsoSession, client_id: str, *, ip: str | None) -> AccessGrant:
        client = self._clients.get(client_id)
        name = client.name if client else client_id
        try:
            grant = self._access.check(session.identity, client_id, name)
        except BrokerError as exc:
            self._audit(AuditEvent("access_decision", "denied", actor=session.subject_id, client_id=client_id, ip=ip,
                                   details={"reason": exc.code.value, "policy_ids": list(getattr(exc, "policy_ids", ()))}))
            raise
        self._audit(AuditEvent("access_decision", "permitted", actor=session.subject_id, client_id=client_id, ip=ip,
                               details={"policy_ids": list(grant.policy_ids),
                                        "released": sorted(grant.released) if grant.released is not None else None}))
        return grant

    def _code_hash(self, code: str) -> str:
        return self._master.keyed_hash(CODE_LABEL, code)


# Claims that describe the token or the subject, not the person's attributes: never filtered.
_PROTOCOL_CLAIMS = frozenset({"sub"})


def _released(claims: dict[str, Any], grant: AccessGrant) -> dict[str, Any]:
    """Return only the claims whose attribute the access grant releases (all if unrestricted)."""
    if grant.released is None:
        return claims
    return {k: v for k, v in claims.items() if k in grant.released or k in _PROTOCOL_CLAIMS}
