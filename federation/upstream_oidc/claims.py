"""Claims from the ID token and userinfo: merged, then sorted by what we trust the upstream for.

Userinfo's ``sub`` must equal the ID token's (OIDC Core §5.3.4), otherwise the response
may belong to someone else. Claims in both keep the ID token's (signed) value. Each
upstream declares claims as required (missing → refused), optional (used if present) or
ignored (expected, never used); anything else is logged by name, never by value, and
dropped (compare Warehouse's upstream OIDC claim checks).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from config.oidc_source import ClaimRules
from federation.errors import FederationError, FederationErrorCode

log = logging.getLogger(__name__)
_PRINTABLE = re.compile(r"^[\x21-\x7e]{1,64}$")

#: Claims the protocol itself uses (OIDC Core §2, §5.1; RFC 9068; CIS2 transport claims).
PROTOCOL_CLAIMS = frozenset({
    "iss", "sub", "aud", "exp", "iat", "nbf", "nonce", "auth_time", "acr", "amr", "azp", "at_hash", "c_hash",
    "s_hash", "sid", "jti",
})


def merge_userinfo(id_claims: Mapping[str, Any], userinfo: Mapping[str, Any]) -> dict[str, Any]:
    """Return the ID token's claims with userinfo's added (the ID token wins on a conflict).

    Raises FederationError(INVALID_TOKEN) if userinfo names another subject.
    """
    if userinfo.get("sub") != id_claims.get("sub"):
        raise FederationError(FederationErrorCode.INVALID_TOKEN, "userinfo sub does not match the ID token sub")
    merged = dict(userinfo)
    merged.update(id_claims)
    return merged


def apply_rules(source_id: str, claims: Mapping[str, Any], rules: ClaimRules) -> dict[str, Any]:
    """Return the claims the rules let us use (required and optional), plus protocol claims.

    Raises FederationError(INVALID_TOKEN) naming the first required claim that is missing
    (or empty). Unexpected claims are logged by name and left out.
    """
    for claim in rules.required:
        value = claims.get(claim)
        if value is None or value == "" or value == []:
            raise FederationError(FederationErrorCode.INVALID_TOKEN, f"required claim {claim!r} is missing")
    unexpected = sorted(set(claims) - PROTOCOL_CLAIMS - rules.used - set(rules.ignored))
    if unexpected:
        # Names only (never values), and only printable ones: a claim name cannot forge a log line.
        shown = [n if _PRINTABLE.match(n) else "<unprintable>" for n in unexpected[:50]]
        log.info("upstream %s sent claims it is not trusted for (not used): %s", source_id, ", ".join(shown))
    return {k: v for k, v in claims.items() if k in PROTOCOL_CLAIMS or k in rules.used}
