"""Proof Key for Code Exchange, S256 only (RFC 7636)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

# RFC 7636 §4.1: 43..128 characters from the unreserved set; §4.2: the S256 challenge is
# the base64url SHA-256 of it, 43 characters.
VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def is_valid_challenge(challenge: str) -> bool:
    """Return True if ``challenge`` has the form of an S256 code challenge."""
    return bool(CHALLENGE.match(challenge))


def verify_s256(verifier: str, challenge: str) -> bool:
    """Return True if ``verifier`` is well formed and BASE64URL(SHA256(verifier)) equals ``challenge``."""
    if not VERIFIER.match(verifier):
        return False
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")
    return hmac.compare_digest(digest, challenge)
