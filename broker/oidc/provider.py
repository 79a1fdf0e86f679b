"""The OpenID Connect provider: one object composing the endpoints as plain calls.

Everything arrives as plain strings and mappings and leaves as a dict or a response
description; the web layer does HTTP. Dependencies come through the constructor (compare
pyop). The flows live in their own modules: ``authorization`` (request validation),
``token_endpoint`` (+ ``exchange``, ``refresh``, ``client_auth``), ``introspection``
(RFC 7662/7009) and ``logout`` (RP-initiated, front- and back-channel).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from broker.access import AccessGate, AccessGrant
from broker.audit import AuditEvent
from broker.clients import Client, ClientRegistry
from broker.errors import BrokerError, OAuthError
from broker.initial_access import InitialAccessTokens
from broker.oidc.authorization import (
    AuthorizationError,
    AuthorizationRequest,
    AuthorizationResponse,
    redirect_with,
    validate_authorization_request,
)
from broker.oidc.backchannel import BackchannelOutbox, Poster, post_logout_token
from broker.oidc.claims import SUPPORTED_SCOPES, claims_supported, scope_claims
from broker.oidc.client_auth import AUTH_METHODS, ClientAuthenticator
from broker.oidc.client_keys import ClientKeys, Fetcher, fetch_jwks
from broker.oidc.exchange import TOKEN_EXCHANGE
from broker.oidc.introspection import Introspection
from broker.oidc.logout import LogoutResult, LogoutService
from broker.oidc.refresh import RefreshTokens
from broker.oidc.registration import DynamicRegistration, SectorFetcher, fetch_sector_uris
from broker.oidc.subject_types import SubjectIdentifiers
from broker.oidc.token_endpoint import CODE_NAMESPACE, TokenEndpoint
from broker.oidc.tokens import TokenMinter
from broker.sessions import SsoSession, SsoSessions
from broker.state import StateStore
from broker.storage.types import utcnow
from federation import jose
from federation.errors import FederationError
from federation.identity import AssuranceLevel
from federation.keys import SIGNING_ALGS, MasterKey, SigningAlg

DEFAULT_REFRESH_LIFETIME = dt.timedelta(hours=12)
# An expired ID token is still a usable hint (OIDC Core §3.1.2.1): accept one up to a week old.
HINT_LEEWAY_SECONDS = 7 * 24 * 3600


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
        return f"{self.issuer}/end-session"

    @property
    def introspection(self) -> str:
        return f"{self.issuer}/introspect"

    @property
    def revocation(self) -> str:
        return f"{self.issuer}/revoke"


class OidcProvider:
    """Implements the code flow with PKCE (RFC 6749 §4.1, RFC 7636, OIDC Core §3.1) and the
    token, userinfo, introspection, revocation and logout endpoints."""

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
        db: sessionmaker[Session] | None = None,
        refresh_lifetime: dt.timedelta = DEFAULT_REFRESH_LIFETIME,
        backchannel_poster: Poster = post_logout_token,
        jwks_fetcher: Fetcher = fetch_jwks,
        sector_fetcher: SectorFetcher = fetch_sector_uris,
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
        db = db or minter.sessions
        self.subjects = SubjectIdentifiers(master_key)
        self.refresh_tokens = RefreshTokens(db, master_key, refresh_lifetime)
        self.client_keys = ClientKeys(jwks_fetcher)
        authenticator = ClientAuthenticator(clients=clients, keys=self.client_keys, state=state, master_key=master_key,
                                            issuer=endpoints.issuer, token_endpoint=endpoints.token, audit=audit)
        self._token_endpoint = TokenEndpoint(
            clients=clients, authenticator=authenticator, state=state, minter=minter, refresh=self.refresh_tokens, sso=sso,
            subjects=self.subjects, master_key=master_key, audit=audit, check_access=self._check_access,
            claims_for=self._claims_for, default_alg=default_alg,
        )
        self._introspection = Introspection(authenticator=authenticator, minter=minter, refresh=self.refresh_tokens,
                                            issuer=endpoints.issuer, audit=audit)
        self.initial_tokens = InitialAccessTokens(db, master_key)
        self.registration = DynamicRegistration(db=db, clients=clients, initial_tokens=self.initial_tokens, issuer=endpoints.issuer,
                                                default_alg=default_alg, audit=audit, fetch_sector=sector_fetcher)
        self.logout = LogoutService(
            db=db, issuer=endpoints.issuer, clients=clients, sso=sso, minter=minter, refresh=self.refresh_tokens,
            keyring=minter.keyring, subjects=self.subjects,
            outbox=BackchannelOutbox(db, sign=lambda delivery: self.logout.sign_logout_token(delivery), audit=audit,
                                     poster=backchannel_poster),
            audit=audit, default_alg=default_alg,
        )

    def metadata(self) -> dict[str, Any]:
        """Return the discovery document (OIDC Discovery §3, RFC 8414 §2): exactly what is supported."""
        e = self.endpoints
        algs = list(SIGNING_ALGS)
        return {
            "issuer": e.issuer,
            "authorization_endpoint": e.authorization,
            "token_endpoint": e.token,
            "userinfo_endpoint": e.userinfo,
            "jwks_uri": e.jwks,
            "end_session_endpoint": e.end_session,
            "introspection_endpoint": e.introspection,
            "revocation_endpoint": e.revocation,
            "registration_endpoint": self.registration.endpoint,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "form_post"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", TOKEN_EXCHANGE],
            "subject_types_supported": ["public", "pairwise"],
            "id_token_signing_alg_values_supported": algs,
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "token_endpoint_auth_signing_alg_values_supported": algs,
            "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "introspection_endpoint_auth_signing_alg_values_supported": algs,
            "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "revocation_endpoint_auth_signing_alg_values_supported": algs,
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": list(SUPPORTED_SCOPES),
            "claims_supported": claims_supported(),
            "acr_values_supported": [level.acr for level in AssuranceLevel],
            "ui_locales_supported": ["en-GB"],
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "require_request_uri_registration": True,
            "authorization_response_iss_parameter_supported": True,
            "prompt_values_supported": ["none", "login"],
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            "frontchannel_logout_supported": True,
            "frontchannel_logout_session_supported": True,
        }

    # --- authorization endpoint -------------------------------------------------------

    def validate(self, params: Mapping[str, Sequence[str]]) -> tuple[Client, AuthorizationRequest]:
        """Validate an authorization request; see ``validate_authorization_request``."""
        return validate_authorization_request(params, self._clients, self._hint_subject)

    def needs_login(self, request: AuthorizationRequest, session: SsoSession | None) -> bool:
        """Return True if the person must (re-)authenticate before a code can be issued:
        no session, ``prompt=login``, ``max_age`` exceeded, or an ``id_token_hint`` naming
        someone else (OIDC Core §3.1.2.1). ``acr_values`` is handled by ``acr_shortfall``."""
        if session is None or "login" in request.prompt:
            return True
        if request.max_age is not None:
            age = (utcnow() - session.identity.authn.authenticated_at).total_seconds()
            if age > request.max_age:
                return True
        return request.hint_subject is not None and not self._is_hint_subject(request, session)

    def acr_shortfall(self, request: AuthorizationRequest, session: SsoSession) -> AssuranceLevel | None:
        """Return the lowest level ``acr_values`` asks for if the session has not reached it, else None.

        ``acr_values`` is a voluntary request (OIDC Core §3.1.2.1): the caller may step the
        person up, and otherwise issues with the ``acr`` actually achieved.
        """
        levels = [lvl for lvl in (AssuranceLevel.from_acr(v) for v in request.acr_values) if lvl is not None]
        if levels and session.identity.authn.assurance < min(levels):
            return min(levels)
        return None

    def interaction_required(self, request: AuthorizationRequest, error: str, description: str) -> AuthorizationResponse:
        """Return an error for ``prompt=none`` when only a page could go on (OIDC Core §3.1.2.6)."""
        return self.error_response(AuthorizationError(error, description, redirect_uri=request.redirect_uri,
                                                      state=request.state, response_mode=request.response_mode))

    def error_redirect(self, error: AuthorizationError) -> str:
        """Return the redirect URL carrying ``error`` to the client (RFC 6749 §4.1.2.1, RFC 9207)."""
        return self.error_response(error).url

    def error_response(self, error: AuthorizationError) -> AuthorizationResponse:
        """Return the error response for the verified redirect URI, in the request's response mode."""
        params = {"error": error.error, "error_description": error.description, "iss": self.endpoints.issuer}
        if error.state is not None:
            params["state"] = error.state
        return AuthorizationResponse(error.redirect_uri, params, error.response_mode)

    def login_required(self, request: AuthorizationRequest, description: str = "the person is not signed in") -> AuthorizationResponse:
        """Return the ``login_required`` error for ``prompt=none`` (OIDC Core §3.1.2.6)."""
        return self.error_response(AuthorizationError("login_required", description, redirect_uri=request.redirect_uri,
                                                      state=request.state, response_mode=request.response_mode))

    def issue_code(self, request: AuthorizationRequest, session: SsoSession, *, ip: str | None) -> AuthorizationResponse:
        """Issue an authorization code for ``request`` in ``session``; return the response to send.

        Asks the access gate first. Raises AccessDenied or StepUpRequired (audited). If an
        ``id_token_hint`` names another person than the one signed in, the response is
        ``login_required`` and no code is issued.
        """
        if request.hint_subject is not None and not self._is_hint_subject(request, session):
            self._audit(AuditEvent("authorization_request", "failure", actor=session.subject_id, client_id=request.client_id,
                                   ip=ip, details={"error": "login_required", "reason": "id_token_hint names someone else"}))
            return self.login_required(request, "the signed-in person is not the one id_token_hint names")
        identity = session.identity
        client = self._clients.get(request.client_id)
        if client is None:
            raise OAuthError("invalid_request", "the client is no longer registered")
        grant = self._check_access(session, request.client_id, ip)
        code = secrets.token_urlsafe(32)
        record = {
            "client_id": request.client_id,
            "redirect_uri": request.redirect_uri,
            "code_challenge": request.code_challenge,
            "nonce": request.nonce,
            "scopes": sorted(request.scopes),
            "sid": session.sid,
            "subject_id": session.subject_id,
            "public_sub": self.subjects.for_client(client, session.subject_id),
            "auth_time": int(identity.authn.authenticated_at.timestamp()),
            "acr": identity.authn.assurance.acr,
            "amr": list(identity.authn.methods),
            "claims": self._claims_for(session, request.scopes, grant),
            "released": sorted(grant.released) if grant.released is not None else None,
            "resource": list(request.resource),
        }
        self._state.add(CODE_NAMESPACE, self._token_endpoint.code_hash(code), record, self._code_lifetime)
        self.logout.record_client(session.sid, request.client_id, session.subject_id)
        self._audit(
            AuditEvent("authorization_code_issued", "success", actor=session.subject_id, client_id=request.client_id, ip=ip,
                       details={"sid": session.sid, "scopes": sorted(request.scopes), "response_mode": request.response_mode})
        )
        params = {"code": code, "iss": self.endpoints.issuer}
        if request.state is not None:
            params["state"] = request.state
        return AuthorizationResponse(request.redirect_uri, params, request.response_mode)

    # --- token, introspection, revocation ----------------------------------------------

    def token(self, form: Mapping[str, Sequence[str]], authorization: str | None, *, ip: str | None) -> dict[str, Any]:
        """Answer a token request (RFC 6749 §3.2); see ``TokenEndpoint.handle``. Raises OAuthError."""
        return self._token_endpoint.handle(form, authorization, ip=ip)

    def introspect(self, form: Mapping[str, Sequence[str]], authorization: str | None, *, ip: str | None) -> dict[str, Any]:
        """Answer an introspection request (RFC 7662). Raises OAuthError."""
        return self._introspection.introspect(form, authorization, ip=ip)

    def revoke(self, form: Mapping[str, Sequence[str]], authorization: str | None, *, ip: str | None) -> None:
        """Answer a revocation request (RFC 7009). Raises OAuthError."""
        self._introspection.revoke(form, authorization, ip=ip)

    # --- userinfo endpoint --------------------------------------------------------------

    def userinfo(self, access_token: str | None, *, ip: str | None = None) -> dict[str, Any]:
        """Return the claims for a valid access token (OIDC Core §5.3), chosen by its scopes and
        by the access gate's release.

        Raises OAuthError(invalid_token, 401) for a missing, invalid, expired or revoked
        token, an ID token, or one whose session has ended; insufficient_scope (403)
        without ``openid``; BrokerError from the gate if access is now denied.
        """
        claims = self._minter.verify_access_token(access_token) if access_token else None
        try:
            if claims is None:
                raise OAuthError("invalid_token", "the access token is invalid, expired or revoked", status=401)
            if "openid" not in claims.scopes:
                raise OAuthError("insufficient_scope", "the access token lacks the openid scope", status=403)
            session = self._sso.by_sid(claims.sid) if claims.sid else None
            if session is None:
                raise OAuthError("invalid_token", "the sign-in session behind this token has ended", status=401)
            client = self._clients.get(claims.client_id)
            if client is None:
                raise OAuthError("invalid_token", "the client of this token is no longer registered", status=401)
        except OAuthError as exc:
            self._audit(AuditEvent("userinfo", "failure", client_id=claims.client_id if claims else None, ip=ip,
                                   details={"error": exc.error, "reason": exc.description}))
            raise
        grant = self._check_access(session, claims.client_id, None)
        return {"sub": self.subjects.for_client(client, session.subject_id), **self._claims_for(session, claims.scopes, grant)}

    # --- logout -----------------------------------------------------------------------------

    def end_session(self, session: SsoSession, *, reason: str, ip: str | None) -> LogoutResult:
        """End an SSO session, revoke its tokens and notify its applications (see ``LogoutService``)."""
        return self.logout.end_session(session.sid, reason=reason, actor=session.subject_id, ip=ip)

    def end_sessions_for_subject(self, subject_id: str, reason: str, *, actor: str | None = None) -> int:
        """End every live session of a person (admin or leaver) and notify applications; return how many."""
        return self.logout.end_sessions_for_subject(subject_id, reason, actor=actor)

    # --- helpers -----------------------------------------------------------------------------

    def _check_access(self, session: SsoSession, client_id: str, ip: str | None) -> AccessGrant:
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

    def _claims_for(self, session: SsoSession, scopes: frozenset[str], grant: AccessGrant) -> dict[str, Any]:
        identity = session.identity
        return _released(scope_claims(identity, scopes, self._organisation_name(identity.organisation)), grant)

    def _hint_subject(self, token: str, client: Client) -> str | None:
        """Return the ``sub`` of an ID token we issued to ``client`` (expired is fine), or None."""
        try:
            claims = jose.verify(token, self._minter.keyring.verification_keys(), audience=client.client_id,
                                 issuer=self.endpoints.issuer, typ="JWT", leeway_seconds=HINT_LEEWAY_SECONDS)
        except FederationError:
            return None
        sub = claims.get("sub")
        return sub if isinstance(sub, str) and sub else None

    def _is_hint_subject(self, request: AuthorizationRequest, session: SsoSession) -> bool:
        client = self._clients.get(request.client_id)
        return client is not None and self.subjects.for_client(client, session.subject_id) == request.hint_subject


# Claims that describe the token or the subject, not the person's attributes: never filtered.
_PROTOCOL_CLAIMS = frozenset({"sub"})


def _released(claims: dict[str, Any], grant: AccessGrant) -> dict[str, Any]:
    """Return only the claims whose attribute the access grant releases (all if unrestricted)."""
    if grant.released is not None:
        claims = {k: v for k, v in claims.items() if k in grant.released or k in _PROTOCOL_CLAIMS}
    return {**claims, **grant.claims}  # claims the grant itself adds, e.g. a break-glass reference


__all__ = ["Endpoints", "OidcProvider", "redirect_with"]
