"""Token introspection (RFC 7662) and revocation (RFC 7009), both client-authenticated.

A client learns about a token only if the token was issued to it or names it as an
audience (RFC 7662 §4: otherwise the answer is just ``active: false``). Revocation of a
refresh token revokes its whole family and the access tokens issued from it; revoking
an unknown or foreign token is not an error (RFC 7009 §2.2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from broker.audit import AuditEvent
from broker.errors import OAuthError
from broker.oidc.client_auth import ClientAuthenticator
from broker.oidc.grants import single_values
from broker.oidc.refresh import RefreshTokens
from broker.oidc.tokens import TokenMinter

TOKEN_TYPE_HINTS = frozenset({"access_token", "refresh_token"})


class Introspection:
    """The introspection and revocation endpoints as plain calls."""

    def __init__(self, *, authenticator: ClientAuthenticator, minter: TokenMinter, refresh: RefreshTokens, issuer: str,
                 audit: Callable[[AuditEvent], object]) -> None:
        self._auth = authenticator
        self._minter = minter
        self._refresh = refresh
        self._issuer = issuer
        self._audit = audit

    def introspect(self, form: Mapping[str, Sequence[str]], authorization: str | None, *, ip: str | None) -> dict[str, Any]:
        """Return the RFC 7662 §2.2 response. Raises OAuthError(invalid_client 401, invalid_request)."""
        values = single_values(form)
        client = self._auth.authenticate(values, authorization, ip=ip, endpoint="introspection")
        token = values.get("token")
        if not token:
            self._audit(AuditEvent("token_introspected", "failure", client_id=client.client_id, ip=ip,
                                   details={"error": "invalid_request", "reason": "token is required"}))
            raise OAuthError("invalid_request", "token is required")
        hint = values.get("token_type_hint")
        order = ("refresh_token", "access_token") if hint == "refresh_token" else ("access_token", "refresh_token")
        for kind in order:
            answer = self._access(token, client.client_id) if kind == "access_token" else self._refresh_answer(token, client.client_id)
            if answer is not None:
                self._audit(AuditEvent("token_introspected", "success", client_id=client.client_id, ip=ip,
                                       details={"active": True, "token_type": kind}))
                return answer
        self._audit(AuditEvent("token_introspected", "success", client_id=client.client_id, ip=ip, details={"active": False}))
        return {"active": False}

    def revoke(self, form: Mapping[str, Sequence[str]], authorization: str | None, *, ip: str | None) -> None:
        """Revoke the token if it is the calling client's (RFC 7009 §2.1). Raises OAuthError(invalid_client 401, invalid_request)."""
        values = single_values(form)
        client = self._auth.authenticate(values, authorization, ip=ip, endpoint="revocation")
        token = values.get("token")
        if not token:
            self._audit(AuditEvent("token_revoked", "failure", client_id=client.client_id, ip=ip,
                                   details={"error": "invalid_request", "reason": "token is required"}))
            raise OAuthError("invalid_request", "token is required")
        revoked = 0
        record = self._refresh.find(token)
        if record is not None and record.client_id == client.client_id:
            revoked += self._refresh.revoke_family(record.family_id) + self._minter.revoke_by_family(record.family_id)
        else:
            claims = self._minter.verify_access_token(token, audience=None)
            if claims is not None and claims.client_id == client.client_id:
                revoked += self._minter.revoke_jti(claims.jti)
        self._audit(AuditEvent("token_revoked", "success", client_id=client.client_id, ip=ip, details={"revoked": revoked}))

    def _access(self, token: str, client_id: str) -> dict[str, Any] | None:
        claims = self._minter.verify_access_token(token, audience=None)
        if claims is None or (claims.client_id != client_id and client_id not in claims.audience):
            return None
        answer: dict[str, Any] = {
            "active": True,
            "token_type": "Bearer",
            "scope": " ".join(sorted(claims.scopes)),
            "client_id": claims.client_id,
            "sub": claims.public_subject,
            "aud": list(claims.audience),
            "iss": self._issuer,
            "exp": claims.expires_at,
            "iat": claims.issued_at,
            "jti": claims.jti,
        }
        if claims.sid:
            answer["sid"] = claims.sid
        if claims.act:
            answer["act"] = claims.act
        if claims.acr:
            answer["acr"] = claims.acr
        return answer

    def _refresh_answer(self, token: str, client_id: str) -> dict[str, Any] | None:
        record = self._refresh.find(token)
        if record is None or record.client_id != client_id:
            return None
        return {
            "active": True,
            "token_type": "refresh_token",
            "scope": " ".join(sorted(record.scopes)),
            "client_id": record.client_id,
            "iss": self._issuer,
            "exp": int(record.expires_at.timestamp()),
        }
