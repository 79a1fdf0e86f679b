"""Logout with an upstream OpenID Provider, both directions.

- Ours to theirs: RP-Initiated Logout 1.0 §2 — the browser goes to the upstream's
  ``end_session_endpoint`` with ``id_token_hint`` (the ID token of that sign-in),
  ``client_id``, ``post_logout_redirect_uri`` (the broker's, registered at the upstream) and
  ``state``.
- Theirs to ours: Back-Channel Logout 1.0 — the upstream POSTs a logout token; §2.6 says
  how to validate it, each step below: a compact JWS signed with one of the upstream's own
  keys by an allowed algorithm (never ``none``, never a key the token names), ``typ``
  ``logout+jwt`` when typed (§2.4), ``iss`` exactly the upstream's, ``aud`` our client id,
  ``iat`` present and recent, ``exp`` not passed, ``jti`` present (the broker refuses a
  replay), ``events`` holding the back-channel-logout member whose value is a JSON object,
  no ``nonce`` (so an ID token cannot pass as a logout token), and ``sub`` or ``sid``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import Any
from urllib.parse import urlencode

from federation import jose
from federation.errors import FederationError, FederationErrorCode
from federation.upstream_oidc.tokens import check_issued_at

INVALID = FederationErrorCode.INVALID_TOKEN
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TYP = "logout+jwt"
MAX_TOKEN_CHARS = 16_384
_PRINTABLE = re.compile(r"^[\x21-\x7e]{1,255}$")


def end_session_url(endpoint: str, *, id_token: str | None, client_id: str, return_url: str, state: str) -> str:
    """Return the RP-initiated logout URL (RP-Initiated Logout §2); ``id_token_hint`` when we have it."""
    params = {"client_id": client_id, "post_logout_redirect_uri": return_url, "state": state}
    if id_token:
        params["id_token_hint"] = id_token
    return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)


def validate_logout_token(
    token: str,
    *,
    keys: Callable[[str | None], Mapping[str, jose.VerificationKey]],
    issuer: str,
    client_id: str,
    algorithms: Collection[str],
    now: float,
    skew_seconds: int,
    max_age_seconds: int,
) -> dict[str, Any]:
    """Return the logout token's claims once every check of Back-Channel Logout §2.6 has passed.

    ``keys(kid)`` returns the upstream's keys (refetched for an unknown kid). Raises
    FederationError(INVALID_TOKEN) with the precise reason (never the token).
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        raise FederationError(INVALID, "the logout token is not a compact JWS (encrypted, malformed or too long)")
    typ = jose.unverified_typ(token)
    if typ is not None and typ.lower() not in {LOGOUT_TYP, f"application/{LOGOUT_TYP}"}:
        raise FederationError(INVALID, f"the token is typed {typ!r}, not {LOGOUT_TYP} (§2.4)")
    claims = jose.verify(token, keys(jose.unverified_kid(token)), audience=client_id, issuer=issuer,
                         leeway_seconds=skew_seconds, algorithms=algorithms)
    if claims.get("iss") != issuer:
        raise FederationError(INVALID, "issuer mismatch")
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else audiences
    if not isinstance(audiences, list) or client_id not in audiences:
        raise FederationError(INVALID, "the logout token is not for this client")
    check_issued_at(claims, now=now, skew_seconds=skew_seconds, max_age_seconds=max_age_seconds, what="logout token")
    if "nonce" in claims:
        raise FederationError(INVALID, "a logout token must not carry a nonce (§2.4): an ID token is not a logout token")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_EVENT), dict):
        raise FederationError(INVALID, "events lacks the back-channel logout event (§2.4)")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not _PRINTABLE.match(jti):
        raise FederationError(INVALID, "jti missing or malformed")
    sub, sid = claims.get("sub"), claims.get("sid")
    if sub is None and sid is None:
        raise FederationError(INVALID, "neither sub nor sid: the token names no one (§2.4)")
    for name, value in (("sub", sub), ("sid", sid)):
        if value is not None and (not isinstance(value, str) or not _PRINTABLE.match(value)):
            raise FederationError(INVALID, f"{name} malformed")
    return claims
