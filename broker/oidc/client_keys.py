"""Public keys of clients that authenticate with ``private_key_jwt`` (RFC 7523 §2.2, OIDC Core §9).

Keys come from the client's registered ``jwks`` or are fetched from its ``jwks_uri`` and
cached (default five minutes; an unknown ``kid`` refetches at most once a minute so a
client's key rollover works without letting anyone make us fetch in a loop). Keys are
pinned to one algorithm each: the registered ``token_endpoint_auth_signing_alg``, else
the JWK's ``alg``, else the natural one for its type (EC P-256 → ES256, RSA → RS256).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from broker.clients import Client
from federation import jose
from federation.errors import FederationError
from federation.keys import jwk_thumbprint

CACHE_SECONDS = 300.0
REFETCH_FLOOR_SECONDS = 60.0
FETCH_TIMEOUT_SECONDS = 5.0
MAX_JWKS_BYTES = 64 * 1024

Fetcher = Callable[[str], Mapping[str, Any]]


def fetch_jwks(url: str) -> Mapping[str, Any]:
    """GET ``url`` and return its JSON (bounded size and time). Raises OSError or ValueError."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310 - registered https URL
        body = response.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError("JWKS document too large")
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("JWKS document is not an object")
    return data


class ClientKeys:
    """Verification keys per client, from registration or a cached fetch of ``jwks_uri``."""

    def __init__(self, fetcher: Fetcher = fetch_jwks, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetcher
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, dict[str, jose.VerificationKey]]] = {}

    def keys_for(self, client: Client, *, kid: str | None = None) -> dict[str, jose.VerificationKey]:
        """Return the client's keys by kid (an empty dict if none can be had).

        With a ``kid`` that is not among cached ``jwks_uri`` keys, refetch once (rate-limited).
        """
        if client.jwks is not None:
            return _pinned(client.jwks, client.token_endpoint_auth_signing_alg)
        if not client.jwks_uri:
            return {}
        now = self._clock()
        cached = self._cache.get(client.client_id)
        fresh = cached is not None and now - cached[0] < CACHE_SECONDS
        if fresh and (kid is None or kid in cached[1] or now - cached[0] < REFETCH_FLOOR_SECONDS):  # type: ignore[index]
            return cached[1]  # type: ignore[index]
        with self._lock:
            try:
                keys = _pinned(self._fetch(client.jwks_uri), client.token_endpoint_auth_signing_alg)
            except (OSError, ValueError):
                # Fail closed, but keep using keys fetched before if the client's server blips.
                return cached[1] if cached else {}
            self._cache[client.client_id] = (now, keys)
        return keys


def _pinned(jwks: Mapping[str, Any], registered_alg: str | None) -> dict[str, jose.VerificationKey]:
    keys: dict[str, jose.VerificationKey] = {}
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        return keys
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or entry.get("kty") not in {"EC", "RSA"}:
            continue
        alg = registered_alg or entry.get("alg") or ("ES256" if entry.get("kty") == "EC" else "RS256")
        if entry.get("alg") not in (None, alg):
            continue
        public = {k: v for k, v in entry.items() if k in {"kty", "crv", "x", "y", "n", "e", "kid", "d"}}
        try:
            kid = str(entry.get("kid") or jwk_thumbprint(public))
            keys[kid] = jose.verification_key({**public, "kid": kid, "alg": alg})
        except (FederationError, KeyError):
            continue
    if len(keys) == 1:
        # An assertion without a kid may use a client's only key (RFC 7515 §4.1.4 makes kid optional).
        keys[""] = next(iter(keys.values()))
    return keys
