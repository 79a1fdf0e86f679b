"""Minting ID tokens, JWT access tokens and logout tokens, and recording access tokens for revocation.

ID tokens: OIDC Core §2, §3.1.3.6 (``at_hash``) and §12.2 (re-issued at refresh). Access
tokens: the JWT profile of RFC 9068 (header ``typ: at+jwt``), one ``jti`` each, audience
the userinfo endpoint unless a resource is named (RFC 8707), ``act`` for delegation
(RFC 8693 §4.1). Logout tokens: OIDC Back-Channel Logout §2.4 (``typ: logout+jwt``).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import secrets
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from broker.audit import AuditEvent, AuditLog
from broker.keyring import KeyRing
from broker.storage.models import IssuedTokenRow
from broker.storage.types import utcnow
from federation import jose
from federation.errors import FederationError
from federation.keys import SigningAlg

ACCESS_TOKEN_TYP = "at+jwt"
LOGOUT_TOKEN_TYP = "logout+jwt"
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_LIFETIME = 120
# Built once: executed with a parameter dict, compiled once per engine and then cached.
_RECORD_ISSUED = insert(IssuedTokenRow.__table__)


@dataclasses.dataclass(frozen=True, slots=True)
class TokenGrant:
    """Everything needed to mint tokens for one authorization.

    ``subject_id`` is the broker's own subject; ``public_subject`` what this client sees
    (pairwise or public, OIDC Core §8). ``audience`` overrides the default access-token
    audience; ``act`` is the RFC 8693 actor; ``id_token`` False mints only an access token.
    """

    client_id: str
    subject_id: str
    sid: str | None
    scopes: frozenset[str]
    nonce: str | None
    auth_time: int | None
    acr: str | None
    amr: tuple[str, ...]
    claims: dict[str, Any]
    code_hash: str | None
    public_subject: str | None = None
    audience: tuple[str, ...] | None = None
    family_id: str | None = None
    act: dict[str, Any] | None = None
    id_token: bool = True
    kind: str = "access"


@dataclasses.dataclass(frozen=True, slots=True)
class AccessTokenClaims:
    """The verified claims of one of our access tokens, with what we recorded at issue."""

    jti: str
    subject_id: str
    client_id: str
    sid: str | None
    scopes: frozenset[str]
    public_subject: str = ""
    audience: tuple[str, ...] = ()
    act: dict[str, Any] | None = None
    issued_at: int = 0
    expires_at: int = 0
    kind: str = "access"
    family_id: str | None = None
    acr: str | None = None
    auth_time: int | None = None


class TokenMinter:
    """Signs tokens with the key ring's current keys and records access tokens."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        keyring: KeyRing,
        *,
        issuer: str,
        access_token_audience: str,
        access_token_lifetime: int,
        id_token_lifetime: int,
        audit_log: AuditLog | None = None,
    ) -> None:
        self._sessions = sessions
        self._engine = sessions.kw["bind"]
        self._audit_log = audit_log
        self._keyring = keyring
        self._issuer = issuer
        self._audience = access_token_audience
        self._access_lifetime = access_token_lifetime
        self._id_lifetime = id_token_lifetime

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The database session factory the minter records tokens with."""
        return self._sessions

    @property
    def keyring(self) -> KeyRing:
        """The key ring the minter signs with."""
        return self._keyring

    @property
    def default_audience(self) -> str:
        """The audience of access tokens minted without a resource: the userinfo endpoint."""
        return self._audience

    @property
    def access_token_lifetime(self) -> int:
        """Seconds an access token lives."""
        return self._access_lifetime

    def mint(self, grant: TokenGrant, alg: SigningAlg, *, audit: AuditEvent | None = None) -> dict[str, Any]:
        """Return the token response body (RFC 6749 §5.1, OIDC Core §3.1.3.3) for ``grant``.

        An ID token is included when ``grant.id_token`` and the ``openid`` scope are both there.
        ``audit`` (with an audit log given to the minter) is recorded in the same commit as
        the issued token, so neither exists without the other.
        Raises BrokerError(NOT_INITIALISED) if there is no current key for ``alg``.
        """
        key = self._keyring.current(alg)
        now = utcnow()
        iat = int(now.timestamp())
        jti = secrets.token_urlsafe(16)
        sub = grant.public_subject or grant.subject_id
        audience = list(grant.audience) if grant.audience else [self._audience]
        scope = " ".join(sorted(grant.scopes))
        access_claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": sub,
            "aud": audience[0] if len(audience) == 1 else audience,
            "client_id": grant.client_id,
            "iat": iat,
            "exp": iat + self._access_lifetime,
            "jti": jti,
        }
        if scope:
            access_claims["scope"] = scope
        if grant.auth_time is not None:
            access_claims["auth_time"] = grant.auth_time
        if grant.acr:
            access_claims["acr"] = grant.acr
        if grant.sid:
            access_claims["sid"] = grant.sid
        if grant.act:
            access_claims["act"] = grant.act
        access_token = jose.sign(access_claims, key, typ=ACCESS_TOKEN_TYP)
        response: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self._access_lifetime,
        }
        if scope:
            response["scope"] = scope
        if grant.id_token and "openid" in grant.scopes:
            id_claims = {
                **grant.claims,
                "iss": self._issuer,
                "sub": sub,
                "aud": grant.client_id,
                "azp": grant.client_id,
                "iat": iat,
                "exp": iat + self._id_lifetime,
                "amr": list(grant.amr),
                "at_hash": _half_hash(access_token),
            }
            if grant.auth_time is not None:
                id_claims["auth_time"] = grant.auth_time
            if grant.acr:
                id_claims["acr"] = grant.acr
            if grant.nonce is not None:
                id_claims["nonce"] = grant.nonce
            if grant.sid:
                id_claims["sid"] = grant.sid
            response["id_token"] = jose.sign(id_claims, key, typ="JWT")
        issued = {
            "jti": jti, "kind": grant.kind, "client_id": grant.client_id, "subject_id": grant.subject_id, "sid": grant.sid,
            "code_hash": grant.code_hash, "scope": scope, "issued_at": now,
            "expires_at": now + dt.timedelta(seconds=self._access_lifetime), "revoked_at": None, "family_id": grant.family_id,
        }
        # A prebuilt Core INSERT on a plain connection: the ORM session and a per-call
        # .values() statement cost more CPU than the signature on this hot path.
        if audit is None:
            with self._engine.begin() as connection:
                connection.execute(_RECORD_ISSUED, issued)
        elif self._audit_log is None:
            raise RuntimeError("mint(audit=...) needs a minter built with an audit log")
        else:
            with self._audit_log.appending(audit) as (connection, _):
                connection.execute(_RECORD_ISSUED, issued)
        return response

    def logout_token(self, *, client_id: str, public_subject: str, sid: str | None, alg: SigningAlg, jti: str | None = None) -> str:
        """Return a signed logout token (OIDC Back-Channel Logout §2.4) for ``client_id``.

        It has ``iss``, ``aud``, ``iat``, ``exp``, ``jti``, ``events``, ``sub`` and ``sid``,
        never ``nonce``; header ``typ: logout+jwt``.
        """
        iat = int(utcnow().timestamp())
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": client_id,
            "iat": iat,
            "exp": iat + LOGOUT_TOKEN_LIFETIME,
            "jti": jti or secrets.token_urlsafe(16),  # the outbox's: the same on every retry of one delivery
            "sub": public_subject,
            "events": {BACKCHANNEL_EVENT: {}},
        }
        if sid:
            claims["sid"] = sid
        return jose.sign(claims, self._keyring.current(alg), typ=LOGOUT_TOKEN_TYP)

    def verify_access_token(self, token: str, *, audience: str | None = "") -> AccessTokenClaims | None:
        """Return the claims of a valid, unrevoked access token of ours, or None.

        ``audience`` defaults to the userinfo endpoint; None accepts any audience (for
        introspection and token exchange, which check the audience themselves). An ID
        token, a token of another type, an expired, revoked or unknown one gives None.
        """
        expected = self._audience if audience == "" else audience
        try:
            claims = jose.verify(
                token, self._keyring.verification_keys(), audience=expected, issuer=self._issuer, typ=ACCESS_TOKEN_TYP
            )
        except FederationError:
            return None
        jti = claims.get("jti")
        if not isinstance(jti, str):
            return None
        with self._sessions() as session:
            row = session.execute(select(IssuedTokenRow).where(IssuedTokenRow.jti == jti)).scalar_one_or_none()
        if row is None or row.revoked_at is not None or row.client_id != claims.get("client_id"):
            return None
        aud = claims.get("aud")
        act = claims.get("act")
        return AccessTokenClaims(
            jti=jti,
            subject_id=row.subject_id,
            client_id=row.client_id,
            sid=row.sid,
            scopes=frozenset(row.scope.split()),
            public_subject=str(claims.get("sub", "")),
            audience=tuple(aud) if isinstance(aud, list) else (str(aud),),
            act=act if isinstance(act, dict) else None,
            issued_at=int(claims.get("iat", 0)),
            expires_at=int(claims.get("exp", 0)),
            kind=row.kind,
            family_id=row.family_id,
            acr=claims.get("acr") if isinstance(claims.get("acr"), str) else None,
            auth_time=claims.get("auth_time") if isinstance(claims.get("auth_time"), int) else None,
        )

    def revoke_jti(self, jti: str) -> int:
        """Revoke the access token with this ``jti``; return 1 if it was live, else 0."""
        return self._revoke(IssuedTokenRow.jti == jti)

    def revoke_by_code(self, code_hash: str) -> int:
        """Revoke every token issued from the authorization code with this hash; return how many."""
        return self._revoke(IssuedTokenRow.code_hash == code_hash)

    def revoke_by_sid(self, sid: str) -> int:
        """Revoke every token issued in the SSO session ``sid``; return how many."""
        return self._revoke(IssuedTokenRow.sid == sid)

    def revoke_by_family(self, family_id: str) -> int:
        """Revoke every access token issued from the refresh token family ``family_id``; return how many."""
        return self._revoke(IssuedTokenRow.family_id == family_id)

    def revoke_by_subject(self, subject_id: str) -> int:
        """Revoke every access token issued for the broker subject ``subject_id``; return how many."""
        return self._revoke(IssuedTokenRow.subject_id == subject_id)

    def _revoke(self, condition: Any) -> int:
        with self._sessions.begin() as session:
            result = session.execute(
                update(IssuedTokenRow).where(condition, IssuedTokenRow.revoked_at.is_(None)).values(revoked_at=utcnow())
            )
        return result.rowcount or 0


def _half_hash(token: str) -> str:
    """Return the left half of SHA-256 of ``token``, base64url (OIDC Core §3.1.3.6 ``at_hash``)."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).decode().rstrip("=")
