"""ID token validation (OIDC Core §3.1.3.7) for an upstream provider.

Signature with one of the upstream's own keys (fetched by URL, chosen by kid, pinned to
one algorithm of the upstream's allowlist: never ``none``, never HMAC, never a key named
in the token's ``jwk``/``jku``/``x5u`` headers); ``iss`` exactly the configured issuer;
``aud`` our client_id and nothing else untrusted; ``azp`` our client_id when present;
``exp``, ``iat`` within a bounded clock skew; ``nonce`` the one we sent; ``auth_time``
after the sign-in started when we asked for re-authentication.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from federation import jose
from federation.errors import FederationError, FederationErrorCode

INVALID = FederationErrorCode.INVALID_TOKEN
_SUB = re.compile(r"^[\x21-\x7e]{1,255}$")


def validate_id_token(
    token: str,
    *,
    keys: Callable[[str | None], Mapping[str, jose.VerificationKey]],
    issuer: str,
    client_id: str,
    nonce: str,
    algorithms: Collection[str],
    now: float,
    skew_seconds: int,
    max_age_seconds: int,
    access_token: str | None = None,
    authenticated_after: float | None = None,
) -> dict[str, Any]:
    """Return the ID token's claims once every check has passed.

    ``keys(kid)`` returns the upstream's keys, refetching for an unknown kid. Raises
    FederationError(INVALID_TOKEN) with the precise reason (never the token).
    """
    if not isinstance(token, str) or token.count(".") != 2:
        raise FederationError(INVALID, "the ID token is not a compact JWS (encrypted or malformed)")
    kid = jose.unverified_kid(token)
    claims = jose.verify(
        token, keys(kid), audience=client_id, issuer=issuer, access_token=access_token,
        leeway_seconds=skew_seconds, algorithms=algorithms,
    )
    # python-jose compares iss with ==; check again so no future "normalisation" slips in.
    if claims.get("iss") != issuer:
        raise FederationError(INVALID, "issuer mismatch")
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else audiences
    if not isinstance(audiences, list) or client_id not in audiences:
        raise FederationError(INVALID, "the ID token is not for this client")
    if len(audiences) > 1:
        # §3.1.3.7 (3)-(5): other audiences are not trusted by us; azp must name us.
        raise FederationError(INVALID, "the ID token names untrusted additional audiences")
    if "azp" in claims and claims["azp"] != client_id:
        raise FederationError(INVALID, "azp is not this client")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not _SUB.match(sub):
        raise FederationError(INVALID, "sub missing or malformed")
    check_issued_at(claims, now=now, skew_seconds=skew_seconds, max_age_seconds=max_age_seconds, what="ID token")
    sent = claims.get("nonce")
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
        raise FederationError(INVALID, "nonce mismatch")
    if authenticated_after is not None:
        auth_time = claims.get("auth_time")
        if not isinstance(auth_time, int | float) or isinstance(auth_time, bool):
            raise FederationError(INVALID, "auth_time missing after prompt=login")
        if auth_time < authenticated_after - skew_seconds:
            raise FederationError(INVALID, "the upstream did not authenticate again (auth_time before the request)")
    return claims


def check_issued_at(claims: Mapping[str, Any], *, now: float, skew_seconds: int, max_age_seconds: int, what: str) -> None:
    """Check ``iat`` (OIDC Core §3.1.3.7 (10); Back-Channel Logout §2.6 (6)): present, numeric,
    not in the future and not older than ``max_age_seconds``, each within ``skew_seconds``.

    Raises FederationError(INVALID_TOKEN) naming the token (``what``) and the failed check.
    """
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise FederationError(INVALID, "iat missing")
    if iat > now + skew_seconds:
        raise FederationError(INVALID, "iat is in the future")
    if iat < now - max_age_seconds - skew_seconds:
        raise FederationError(INVALID, f"the {what} was issued too long ago")
