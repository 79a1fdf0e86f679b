"""Minting ID tokens and JWT access tokens, and recording them for revocation.

ID tokens: OIDC Core §2 and §3.1.3.6 (``at_hash``). Access tokens: the JWT profile of
RFC 9068 (header ``typ: at+jwt``), audience the userinfo endpoint, one ``jti`` each.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import secrets
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from broker.keyring import KeyRing
from broker.storage.models import IssuedTokenRow
from broker.storage.types import utcnow
from federation import jose
from federation.errors import FederationError
from federation.keys import SigningAlg

ACCESS_TOKEN_TYP = "at+jwt"


@dataclasses.dataclass(frozen=True, slots=True)
class TokenGrant:
    """Everything needed to mint tokens for one authorization."""

    client_id: str
    subject_id: str
    sid: str | None
    scopes: frozenset[str]
    nonce: str | None
    auth_time: int
    acr: str
    amr: tuple[str, ...]
    claims: dict[str, Any]
    code_hash: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class AccessTokenClaims:
    """The verified claims of one of our access tokens."""

    jti: str
    subject_id: str
    client_id: str
    sid: str | None
    scopes: frozenset[str]


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
    ) -> None:
        self._sessions = sessions
        self._keyring = keyring
        self._issuer = issuer
        self._audience = access_token_audience
        self._access_lifetime = access_token_lifetime
        self._id_lifetime = id_token_lifetime

    def mint(self, grant: TokenGrant, alg: SigningAlg) -> dict[str, Any]:
        """Return the token response body (RFC 6749 §5.1, OIDC Core §3.1.3.3) for ``grant``."""
        key = self._keyring.current(alg)
        now = utcnow()
        iat = int(now.timestamp())
        jti = secrets.token_urlsafe(16)
        access_claims = {
            "iss": self._issuer,
            "sub": grant.subject_id,
            "aud": self._audience,
            "client_id": grant.client_id,
            "iat": iat,
            "exp": iat + self._access_lifetime,
            "jti": jti,
            "scope": " ".join(sorted(grant.scopes)),
            "auth_time": grant.auth_time,
            "acr": grant.acr,
        }
        if grant.sid:
            access_claims["sid"] = grant.sid
        access_token = jose.sign(access_claims, key, typ=ACCESS_TOKEN_TYP)
        id_claims = {
            **grant.claims,
            "iss": self._issuer,
            "sub": grant.subject_id,
            "aud": grant.client_id,
            "azp": grant.client_id,
            "iat": iat,
            "exp": iat + self._id_lifetime,
            "auth_time": grant.auth_time,
            "acr": grant.acr,
            "amr": list(grant.amr),
            "at_hash": _half_hash(access_token),
        }
        if grant.nonce is not None:
            id_claims["nonce"] = grant.nonce
        if grant.sid:
            id_claims["sid"] = grant.sid
        id_token = jose.sign(id_claims, key, typ="JWT")
        with self._sessions.begin() as session:
            session.add(
                IssuedTokenRow(
                    jti=jti,
                    kind="access",
                    client_id=grant.client_id,
                    subject_id=grant.subject_id,
                    sid=grant.sid,
                    code_hash=grant.code_hash,
                    scope=access_claims["scope"],
                    issued_at=now,
                    expires_at=now + dt.timedelta(seconds=self._access_lifetime),
                )
            )
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self._access_lifetime,
            "id_token": id_token,
            "scope": access_claims["scope"],
        }

    def verify_access_token(self, token: str) -> AccessTokenClaims | None:
        """Return the claims of a valid, unrevoked access token of ours, or None."""
        try:
            claims = jose.verify(
                token, self._keyring.verification_keys(), audience=self._audience, issuer=self._issuer, typ=ACCESS_TOKEN_TYP
            )
        except FederationError:
            return None
        jti = claims.get("jti")
        if not isinstance(jti, str):
            return None
        with self._sessions() as session:
            row = session.execute(select(IssuedTokenRow).where(IssuedTokenRow.jti == jti)).scalar_one_or_none()
        if row is None or row.revoked_at is not None or row.subject_id != claims.get("sub"):
            return None
        return AccessTokenClaims(
            jti=jti,
            subject_id=row.subject_id,
            client_id=row.client_id,
            sid=row.sid,
            scopes=frozenset(row.scope.split()),
        )

    def revoke_by_code(self, code_hash: str) -> int:
        """Revoke every token issued from the authorization code with this hash; return how many."""
        with self._sessions.begin() as session:
            result = session.execute(
                update(IssuedTokenRow)
                .where(IssuedTokenRow.code_hash == code_hash, IssuedTokenRow.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        return result.rowcount or 0

    def revoke_by_sid(self, sid: str) -> int:
        """Revoke every token issued in the SSO session ``sid``; return how many."""
        with self._sessions.begin() as session:
            result = session.execute(
                update(IssuedTokenRow)
                .where(IssuedTokenRow.sid == sid, IssuedTokenRow.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        return result.rowcount or 0


def _half_hash(token: str) -> str:
    """Return the left half of SHA-256 of ``token``, base64url (OIDC Core §3.1.3.6 ``at_hash``)."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).decode().rstrip("=")
