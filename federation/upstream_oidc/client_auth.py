"""Client authentication at the upstream's token endpoint (OIDC Core §9, RFC 6749 §2.3.1).

``private_key_jwt`` (RFC 7523 §2.2): a JWT signed with the broker's own current key for
the configured algorithm; the upstream verifies it with the broker's published JWKS.
``iss`` and ``sub`` are our client_id, ``aud`` the token endpoint (or the issuer, for
providers that ask for it), ``jti`` random and single-use, ``exp`` one minute ahead.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from typing import Literal, Protocol
from urllib.parse import quote

from federation import jose
from federation.errors import FederationError, FederationErrorCode
from federation.keys import SigningAlg

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME_SECONDS = 60
AuthMethod = Literal["private_key_jwt", "client_secret_post", "client_secret_basic"]


class SigningKeys(Protocol):
    """The broker's key ring as the upstream source needs it (``broker.keyring.KeyRing`` fits)."""

    def current(self, alg: SigningAlg) -> jose.SigningKey:
        """Return the key that signs for ``alg`` now."""
        ...


def client_assertion(client_id: str, audience: str, key: jose.SigningKey, *, now: float | None = None) -> str:
    """Return a signed client assertion (RFC 7523 §3) for ``client_id`` at ``audience``."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": secrets.token_urlsafe(24),
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME_SECONDS,
    }
    return jose.sign(claims, key)


def authenticate(
    method: AuthMethod,
    client_id: str,
    *,
    secret: Callable[[], str] | None,
    signing_keys: SigningKeys | None,
    alg: SigningAlg,
    audience: str,
) -> tuple[dict[str, str], dict[str, str]]:
    """Return (form fields, headers) that authenticate the client on a token request.

    Raises FederationError(MISCONFIGURED) when the secret or the broker's keys are not at hand.
    """
    if method == "private_key_jwt":
        if signing_keys is None:
            raise FederationError(FederationErrorCode.MISCONFIGURED, "no broker signing keys for private_key_jwt")
        try:
            key = signing_keys.current(alg)
        except Exception:  # noqa: BLE001 - any failure to get our key fails closed
            raise FederationError(FederationErrorCode.MISCONFIGURED, f"no current {alg} key to sign the client assertion") from None
        return (
            {"client_id": client_id, "client_assertion_type": ASSERTION_TYPE,
             "client_assertion": client_assertion(client_id, audience, key)},
            {},
        )
    if secret is None:
        raise FederationError(FederationErrorCode.MISCONFIGURED, f"{method} needs a client secret")
    value = secret()
    if method == "client_secret_post":
        return {"client_id": client_id, "client_secret": value}, {}
    # RFC 6749 §2.3.1: each part form-urlencoded before base64.
    basic = base64.b64encode(f"{quote(client_id, safe='')}:{quote(value, safe='')}".encode()).decode()
    return {}, {"Authorization": f"Basic {basic}"}
