"""Which claims each scope releases, built from the canonical Identity (OIDC Core §5.4)."""

from __future__ import annotations

from typing import Any

from federation.identity import Identity

SUPPORTED_SCOPES = ("openid", "profile", "email", "organisation", "groups")
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": ("name", "given_name", "family_name", "preferred_username"),
    "email": ("email",),
    "organisation": ("organisation", "organisation_name", "department", "job_title"),
    "groups": ("groups",),
}
# Canonical identity attribute behind each claim, where the names differ.
_ATTRIBUTE = {"preferred_username": "username"}


def claims_supported() -> list[str]:
    """Return every claim name the provider can release (for discovery)."""
    names = ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "azp"]
    for claims in SCOPE_CLAIMS.values():
        names.extend(claims)
    return names


def scope_claims(identity: Identity, scopes: frozenset[str], organisation_name: str | None) -> dict[str, Any]:
    """Return the identity's claims released by ``scopes`` (absent values are left out)."""
    claims: dict[str, Any] = {}
    for scope in sorted(scopes):
        for claim in SCOPE_CLAIMS.get(scope, ()):
            if claim == "organisation":
                claims[claim] = identity.organisation
            elif claim == "organisation_name":
                if organisation_name:
                    claims[claim] = organisation_name
            elif claim == "groups":
                claims[claim] = list(identity.groups)
            else:
                value = identity.text(_ATTRIBUTE.get(claim, claim))
                if value:
                    claims[claim] = value
    return claims
