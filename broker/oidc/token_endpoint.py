"""The token endpoint (RFC 6749 §3.2): authorization_code, refresh_token and
client_credentials grants here; token exchange in ``broker.oidc.exchange``.

Every request authenticates the client first (``broker.oidc.client_auth``); every failure
is the spec's error code and is audited without the code, token or secret.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from broker.access import AccessGrant
from broker.audit import AuditEvent
from broker.clients import Client, ClientRegistry
from broker.errors import BrokerError, OAuthError
from broker.oidc.client_auth import ClientAuthenticator
from broker.oidc.exchange import TOKEN_EXCHANGE, TokenExchange
from broker.oidc.grants import require_grant, requested_audience, requested_scopes, single_values
from broker.oidc.pkce import verify_s256
from broker.oidc.refresh import Outcome, RefreshTokens
from broker.oidc.subject_types import SubjectIdentifiers
from broker.oidc.tokens import TokenGrant, TokenMinter
from broker.sessions import SsoSession, SsoSessions
from broker.state import StateStore
from federation.keys import SIGNING_ALGS, MasterKey, SigningAlg

CODE_NAMESPACE = "code"
CODE_LABEL = "authorization-code"

AccessCheck = Callable[[SsoSession, str, "str | None"], AccessGrant]
ClaimsFor = Callable[[SsoSession, frozenset[str], AccessGrant], dict[str, Any]]


class TokenEndpoint:
    """Dispatches token requests by ``grant_type``; returns the JSON body or raises OAuthError."""

    def __init__(
        self,
        *,
        clients: ClientRegistry,
        authenticator: ClientAuthenticator,
        state: StateStore,
        minter: TokenMinter,
        refresh: RefreshTokens,
        sso: SsoSessions,
        subjects: SubjectIdentifiers,
        master_key: MasterKey,
        audit: Callable[[AuditEvent], object],
        check_access: AccessCheck,
        claims_for: ClaimsFor,
        default_alg: SigningAlg,
    ) -> None:
        self._clients = clients
        self._auth = authenticator
        self._state = state
        self._minter = minter
        self._refresh = refresh
        self._sso = sso
        self._subjects = subjects
        self._master = master_key
        self._audit = audit
        self._check_access = check_access
        self._claims_for = claims_for
        self._default_alg = default_alg
        self._exchange = TokenExchange(clients=clients, minter=minter, sso=sso, subjects=subjects,
                                       check_access=check_access, alg_for=self.alg_for)

    def alg_for(self, client: Client) -> SigningAlg:
        """Return the client's registered signing algorithm, else the deployment's default."""
        return client.signing_alg if client.signing_alg in SIGNING_ALGS else self._default_alg  # type: ignore[return-value]

    def code_hash(self, code: str) -> str:
        """Return the keyed hash under which an authorization code is stored."""
        return self._master.keyed_hash(CODE_LABEL, code)

    def handle(self, form: Mapping[str, Sequence[str]], authorization: str | None, *, ip: str | None) -> dict[str, Any]:
        """Return the token response for a form-encoded request (RFC 6749 §5.1).

        Raises OAuthError: invalid_client (401), invalid_request, unsupported_grant_type,
        unauthorized_client, invalid_grant, invalid_scope, invalid_target.
        """
        try:
            values = single_values(form)
        except OAuthError as exc:
            self._audit(AuditEvent("token", "failure", client_id=None, ip=ip, details={"error": exc.error, "reason": exc.description}))
            raise
        client = self._auth.authenticate(values, authorization, ip=ip)
        grant_type = values.get("grant_type", "")
        try:
            if grant_type == "authorization_code":
                return self._authorization_code(client, values, form, ip=ip)
            if grant_type == "refresh_token":
                return self._refresh_token(client, values, ip=ip)
            if grant_type == "client_credentials":
                return self._client_credentials(client, values, form, ip=ip)
            if grant_type == TOKEN_EXCHANGE:
                require_grant(client, TOKEN_EXCHANGE)
                response, subject_id = self._exchange.exchange(client, values, form, ip=ip)
                self._issued(client, subject_id, grant_type, ip, {"audience": response.pop("_audience")})
                return response
            if not grant_type:
                raise OAuthError("invalid_request", "grant_type is required")
            raise OAuthError("unsupported_grant_type", "grant_type must be authorization_code, refresh_token, "
                             "client_credentials or token exchange")
        except OAuthError as exc:
            self._audit(AuditEvent("token", "failure", client_id=client.client_id, ip=ip,
                                   details={"grant_type": grant_type[:80], "error": exc.error, "reason": exc.description}))
            raise

    # --- authorization_code (RFC 6749 §4.1.3, RFC 7636 §4.6) -----------------------------

    def _authorization_code(self, client: Client, values: Mapping[str, str], form: Mapping[str, Sequence[str]],
                            *, ip: str | None) -> dict[str, Any]:
        require_grant(client, "authorization_code")
        code = values.get("code")
        if not code:
            raise OAuthError("invalid_request", "code is required")
        code_hash = self.code_hash(code)
        taken = self._state.take(CODE_NAMESPACE, code_hash)
        if taken.value is None:
            if taken.already_taken:
                revoked = self._minter.revoke_by_code(code_hash)
                revoked += self._refresh.revoke_family(code_hash)
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
        audience = self._code_audience(client, form, record.get("resource"))
        scopes = frozenset(record["scopes"])
        response = self._minter.mint(
            TokenGrant(
                client_id=client.client_id,
                subject_id=record["subject_id"],
                public_subject=record.get("public_sub") or self._subjects.for_client(client, record["subject_id"]),
                sid=record["sid"],
                scopes=scopes,
                nonce=record["nonce"],
                auth_time=record["auth_time"],
                acr=record["acr"],
                amr=tuple(record["amr"]),
                claims=record["claims"],
                code_hash=code_hash,
                audience=audience,
                family_id=code_hash,
            ),
            self.alg_for(client),
            # Recorded in the access token's commit: one commit fewer per exchange.
            audit=self._issued_event(client, record["subject_id"], "authorization_code", ip, {"sid": record["sid"]}),
        )
        if client.allows("refresh_token"):
            # The family id is the code's hash, so a replayed code also revokes refreshed tokens.
            response["refresh_token"], _ = self._refresh.issue(
                family_id=code_hash, client_id=client.client_id, subject_id=record["subject_id"], sid=record["sid"],
                scopes=scopes, grant={"auth_time": record["auth_time"], "acr": record["acr"], "amr": record["amr"],
                                      "audience": list(audience) if audience else None},
            )
        return response

    def _code_audience(self, client: Client, form: Mapping[str, Sequence[str]], granted: list[str] | None) -> tuple[str, ...] | None:
        asked = requested_audience(form, client, required=False)
        if asked is None:
            return tuple(granted) if granted else None
        if granted and not set(asked) <= set(granted):
            raise OAuthError("invalid_target", "resource was not part of the authorization request")
        return asked

    # --- refresh_token (RFC 6749 §6, OIDC Core §12) --------------------------------------

    def _refresh_token(self, client: Client, values: Mapping[str, str], *, ip: str | None) -> dict[str, Any]:
        require_grant(client, "refresh_token")
        token = values.get("refresh_token")
        if not token:
            raise OAuthError("invalid_request", "refresh_token is required")
        used = self._refresh.use(token)
        record = used.record
        if record is None:
            if used.outcome == Outcome.REUSED and used.family_id:
                revoked = self._revoke_family(used.family_id)
                self._audit(AuditEvent("refresh_token_reused", "failure", client_id=client.client_id, ip=ip,
                                       details={"family_revoked": True, "tokens_revoked": revoked}))
                raise OAuthError("invalid_grant", "the refresh token has already been used; its family is revoked")
            raise OAuthError("invalid_grant", f"the refresh token is {'revoked' if used.outcome == Outcome.REVOKED else 'invalid or expired'}")
        if record.client_id != client.client_id:
            self._revoke_family(record.family_id)
            raise OAuthError("invalid_grant", "the refresh token was issued to another client")
        session = self._sso.by_sid(record.sid) if record.sid else None
        if session is None or session.subject_id != record.subject_id:
            self._revoke_family(record.family_id)
            raise OAuthError("invalid_grant", "the sign-in session behind this refresh token has ended")
        try:
            access = self._check_access(session, client.client_id, ip)
        except BrokerError as exc:
            self._revoke_family(record.family_id)
            raise OAuthError("invalid_grant", f"access to this service is no longer permitted ({exc.code.value})") from None
        scopes = requested_scopes(values, record.scopes)
        grant = record.grant
        audience = tuple(grant["audience"]) if grant.get("audience") else None
        response = self._minter.mint(
            TokenGrant(
                client_id=client.client_id,
                subject_id=record.subject_id,
                public_subject=self._subjects.for_client(client, record.subject_id),
                sid=record.sid,
                scopes=scopes,
                nonce=None,
                auth_time=grant.get("auth_time"),
                acr=grant.get("acr"),
                amr=tuple(grant.get("amr") or ()),
                claims=self._claims_for(session, scopes, access),
                code_hash=None,
                audience=audience,
                family_id=record.family_id,
            ),
            self.alg_for(client),
            audit=self._issued_event(client, record.subject_id, "refresh_token", ip, {"sid": record.sid}),
        )
        response["refresh_token"], _ = self._refresh.issue(
            family_id=record.family_id, client_id=client.client_id, subject_id=record.subject_id, sid=record.sid,
            scopes=record.scopes, grant=grant, expires_at=record.expires_at,
        )
        return response

    def _revoke_family(self, family_id: str) -> int:
        return self._refresh.revoke_family(family_id) + self._minter.revoke_by_family(family_id)

    # --- client_credentials (RFC 6749 §4.4) ----------------------------------------------

    def _client_credentials(self, client: Client, values: Mapping[str, str], form: Mapping[str, Sequence[str]],
                            *, ip: str | None) -> dict[str, Any]:
        require_grant(client, "client_credentials")
        if values.get("scope"):
            raise OAuthError("invalid_scope", "service tokens carry no scopes; the audience names the service")
        audience = requested_audience(form, client, required=True)
        # The token's record and its audit record are written in one commit.
        return self._minter.mint(
            TokenGrant(client_id=client.client_id, subject_id="", public_subject=client.client_id, sid=None,
                       scopes=frozenset(), nonce=None, auth_time=None, acr=None, amr=(), claims={}, code_hash=None,
                       audience=audience, id_token=False, kind="client"),
            self.alg_for(client),
            audit=self._issued_event(client, None, "client_credentials", ip, {"audience": list(audience or ())}),
        )

    def _issued(self, client: Client, subject_id: str | None, grant_type: str, ip: str | None, details: dict[str, Any]) -> None:
        self._audit(self._issued_event(client, subject_id, grant_type, ip, details))

    def _issued_event(self, client: Client, subject_id: str | None, grant_type: str, ip: str | None,
                      details: dict[str, Any]) -> AuditEvent:
        return AuditEvent("token_issued", "success", actor=subject_id or None, client_id=client.client_id, ip=ip,
                          details={"grant_type": grant_type, "alg": self.alg_for(client), **details})

