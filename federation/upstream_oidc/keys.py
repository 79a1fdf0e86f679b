"""The upstream's signing keys, fetched from its ``jwks_uri`` and cached.

Keys are pinned to one algorithm each and filtered by the upstream's allowlist
(``federation.jose.verification_keys_from_jwks``); a token can only choose among them by
``kid``. An unknown kid refetches the set (the upstream may have rotated), at most once
per ``REFETCH_FLOOR_SECONDS``, so forged kids cannot make us fetch in a loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection

from federation import jose
from federation.errors import FederationError, FederationErrorCode
from federation.upstream_oidc.http import Http

REFETCH_FLOOR_SECONDS = 30.0


class UpstreamKeys:
    """Verification keys of one upstream, by kid."""

    def __init__(
        self,
        jwks_uri: Callable[[], str],
        http: Http,
        allowed_algs: Collection[str],
        *,
        ttl_seconds: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._jwks_uri = jwks_uri
        self._http = http
        self._algs = frozenset(allowed_algs)
        self._ttl = ttl_seconds
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, jose.VerificationKey]] | None = None

    def keys_for(self, kid: str | None) -> dict[str, jose.VerificationKey]:
        """Return the keys by kid, refetching when stale or when ``kid`` is unknown (rate-limited).

        Raises FederationError(SOURCE_UNAVAILABLE) if no key set has ever been fetched.
        """
        now = self._clock()
        cached = self._cached
        if cached is not None:
            age = now - cached[0]
            if age < self._ttl and (kid is None or kid in cached[1] or age < REFETCH_FLOOR_SECONDS):
                return cached[1]
        with self._lock:
            cached = self._cached
            if cached is not None and now - cached[0] < REFETCH_FLOOR_SECONDS:
                return cached[1]
            try:
                keys = self._fetch()
            except FederationError:
                if cached is not None:
                    return cached[1]
                raise
            self._cached = (now, keys)
            return keys

    def _fetch(self) -> dict[str, jose.VerificationKey]:
        response = self._http("GET", self._jwks_uri(), headers={"Accept": "application/json"}, data=None,
                              timeout=self._timeout)
        if response.status != 200:
            raise FederationError(FederationErrorCode.SOURCE_UNAVAILABLE, f"jwks_uri answered HTTP {response.status}")
        try:
            document = response.json()
        except ValueError:
            raise FederationError(FederationErrorCode.SOURCE_UNAVAILABLE, "jwks_uri did not return a JSON object") from None
        return jose.verification_keys_from_jwks(document, self._algs)
