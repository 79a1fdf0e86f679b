"""The one module that signs and verifies JWTs (python-jose), with pinned keys and algorithms.

Rules (RFC 8725, JWT BCP): only algorithms in ``ALLOWED_ALGS``; a token is verified with a
key we already hold, chosen by ``kid`` and required to be of the algorithm the token
names — never a key or algorithm taken from the token itself (no ``jwk``/``jku``/``x5u``,
no ``none``, no HMAC with a public key).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Mapping
from typing import Any

from jose import jwk, jws, jwt
from jose.exceptions import JOSEError

from federation.errors import FederationError, FederationErrorCode
from federation.keys import SIGNING_ALGS, SigningAlg, jwk_thumbprint

ALLOWED_ALGS: frozenset[str] = frozenset(SIGNING_ALGS)


@dataclasses.dataclass(frozen=True)
class SigningKey:
    """A private key parsed once into a key object (parsing a PEM costs tens of ms)."""

    kid: str
    alg: SigningAlg
    key: Any
    public_jwk: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class VerificationKey:
    """A public key pinned for verification, with the one algorithm it may be used with."""

    kid: str
    alg: SigningAlg
    key: Any


def load_signing_key(alg: SigningAlg, private_pem: bytes) -> SigningKey:
    """Return a SigningKey for ``private_pem``; its kid is the key's JWK thumbprint (RFC 7638).

    Raises FederationError(KEY_ERROR) for an unsupported algorithm or an unreadable key.
    """
    if alg not in ALLOWED_ALGS:
        raise FederationError(FederationErrorCode.KEY_ERROR, f"algorithm {alg!r} is not allowed")
    try:
        key = jwk.construct(private_pem, alg)
        public = {k: v for k, v in key.public_key().to_dict().items() if k in {"kty", "crv", "x", "y", "n", "e"}}
    except (JOSEError, ValueError, TypeError):
        raise FederationError(FederationErrorCode.KEY_ERROR, "cannot load the private key") from None
    kid = jwk_thumbprint(public)
    return SigningKey(kid=kid, alg=alg, key=key, public_jwk={**public, "kid": kid, "alg": alg, "use": "sig"})


def verification_key(public_jwk: Mapping[str, Any]) -> VerificationKey:
    """Return a VerificationKey from a public JWK that names its ``kid`` and an allowed ``alg``.

    Raises FederationError(KEY_ERROR) if the JWK is private, lacks kid/alg, or names another algorithm.
    """
    alg = public_jwk.get("alg")
    kid = public_jwk.get("kid")
    if alg not in ALLOWED_ALGS or not isinstance(kid, str) or not kid:
        raise FederationError(FederationErrorCode.KEY_ERROR, "a pinned JWK needs a kid and an allowed alg")
    if "d" in public_jwk:
        raise FederationError(FederationErrorCode.KEY_ERROR, "refusing a private JWK where a public one is expected")
    try:
        key = jwk.construct(dict(public_jwk), alg)
    except (JOSEError, ValueError, TypeError):
        raise FederationError(FederationErrorCode.KEY_ERROR, f"cannot load JWK {kid}") from None
    return VerificationKey(kid=kid, alg=alg, key=key)


def sign(claims: Mapping[str, Any], key: SigningKey, *, typ: str = "JWT") -> str:
    """Return a compact JWS (RFC 7515) of ``claims`` signed with ``key``, header ``kid`` and ``typ``."""
    payload = json.dumps(dict(claims), separators=(",", ":"))
    return jws.sign(payload.encode(), key.key, headers={"kid": key.kid, "typ": typ}, algorithm=key.alg)


def verify(
    token: str,
    keys: Mapping[str, VerificationKey],
    *,
    audience: str | None,
    issuer: str,
    typ: str | None = None,
    access_token: str | None = None,
    leeway_seconds: int = 30,
    algorithms: Collection[str] | None = None,
) -> dict[str, Any]:
    """Return the claims of ``token`` after checking signature, ``iss``, ``aud``, ``exp``/``nbf``/``iat``.

    The key is chosen from ``keys`` by the header's ``kid`` and must be of the header's
    algorithm. With ``typ``, the header's ``typ`` must match (RFC 8725 §3.11). With
    ``access_token``, an ID token's ``at_hash`` must match it (OIDC Core §3.1.3.8). With
    ``algorithms``, the header's algorithm must also be one of them (a per-peer allowlist).
    Raises FederationError(INVALID_TOKEN) with the reason.
    """
    try:
        header = jwt.get_unverified_header(token)
    except JOSEError:
        raise FederationError(FederationErrorCode.INVALID_TOKEN, "malformed token") from None
    alg = header.get("alg")
    if alg not in ALLOWED_ALGS or (algorithms is not None and alg not in algorithms):
        raise FederationError(FederationErrorCode.INVALID_TOKEN, f"algorithm {alg!r} is not allowed")
    if typ is not None and str(header.get("typ", "")).lower() != typ.lower():
        raise FederationError(FederationErrorCode.INVALID_TOKEN, "unexpected token type")
    pinned = keys.get(str(header.get("kid", "")))
    if pinned is None:
        raise FederationError(FederationErrorCode.INVALID_TOKEN, "unknown signing key")
    if pinned.alg != alg:
        raise FederationError(FederationErrorCode.INVALID_TOKEN, "algorithm does not match the pinned key")
    options = {
        "verify_aud": audience is not None,
        "verify_at_hash": access_token is not None,
        "leeway": leeway_seconds,
        "require_exp": True,
        "require_iat": True,
    }
    try:
        return jwt.decode(
            token, pinned.key, algorithms=[pinned.alg], audience=audience, issuer=issuer, options=options,
            access_token=access_token,
        )
    except JOSEError as exc:
        raise FederationError(FederationErrorCode.INVALID_TOKEN, str(exc)) from None


def unverified_kid(token: str) -> str | None:
    """Return the ``kid`` named in ``token``'s header, unverified (only to choose a pinned key
    or decide to refresh a key set), or None if the token is malformed or names none."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except JOSEError:
        return None
    return kid if isinstance(kid, str) and kid else None


def unverified_typ(token: str) -> str | None:
    """Return the ``typ`` named in ``token``'s header, unverified (to refuse a token of another
    type before anything else), or None if the token is malformed or names none."""
    try:
        typ = jwt.get_unverified_header(token).get("typ")
    except JOSEError:
        return None
    return typ if isinstance(typ, str) else None


def verification_keys_from_jwks(jwks: Mapping[str, Any], allowed_algs: Collection[str]) -> dict[str, VerificationKey]:
    """Return a peer's public keys (a JWK Set, RFC 7517 §5, fetched from its ``jwks_uri``) by kid.

    Each key is pinned to one algorithm: its ``alg``, else the natural one for its type
    (RSA → RS256, EC P-256 → ES256); keys whose algorithm is not in ``allowed_algs`` (and
    ``ALLOWED_ALGS``), keys without a kid, encryption keys (``use: enc``), private keys and
    kids that appear twice (ambiguous) are left out. Never raises for a bad entry; an
    unusable set gives an empty dict.
    """
    entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(entries, list):
        return {}
    keys: dict[str, VerificationKey] = {}
    repeated: set[str] = set()
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid or entry.get("use", "sig") != "sig":
            continue
        if kid in keys or kid in repeated:
            repeated.add(kid)
            keys.pop(kid, None)
            continue
        natural = {"RSA": "RS256", "EC": "ES256" if entry.get("crv") == "P-256" else None}.get(str(entry.get("kty")))
        alg = entry.get("alg", natural)
        if alg is None or alg != natural or alg not in allowed_algs or alg not in ALLOWED_ALGS:
            continue
        public = {k: v for k, v in entry.items() if k in {"kty", "crv", "x", "y", "n", "e", "kid"}}
        if any(k in entry for k in ("d", "p", "q", "k")):
            continue
        try:
            keys[kid] = verification_key({**public, "alg": alg})
        except FederationError:
            continue
    return keys
