"""Provider metadata (OpenID Connect Discovery 1.0), fetched once and cached.

The ``issuer`` in the document must equal the configured issuer exactly, character for
character (OIDC Discovery §4.3): NHS CIS2 publishes its issuer with ``:443`` and a
"normalised" comparison would accept an impostor's document. Endpoints must be https
(plain http only when the issuer itself is on loopback, for tests).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from federation.errors import FederationError, FederationErrorCode
from federation.upstream_oidc.http import Http

UNAVAILABLE = FederationErrorCode.SOURCE_UNAVAILABLE


@dataclasses.dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """What the broker uses of an upstream's discovery document (OIDC Discovery §3)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None
    iss_parameter_supported: bool
    code_challenge_methods: tuple[str, ...]


def parse_metadata(document: Mapping[str, Any], expected_issuer: str) -> ProviderMetadata:
    """Return the metadata in ``document`` after checking it belongs to ``expected_issuer``.

    Raises FederationError(SOURCE_UNAVAILABLE) naming the problem: another issuer (even
    one differing only by ``:443`` or a trailing slash), a missing or non-https endpoint,
    or PKCE S256 advertised as unsupported.
    """
    issuer = document.get("issuer")
    if issuer != expected_issuer:
        raise FederationError(
            UNAVAILABLE, f"discovery names issuer {issuer!r}, expected exactly {expected_issuer!r} (OIDC Discovery §4.3)"
        )
    allow_http = _loopback_http(expected_issuer)

    def endpoint(name: str, *, required: bool) -> str | None:
        value = document.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not _acceptable(value, allow_http):
            raise FederationError(UNAVAILABLE, f"discovery {name} is missing or not an https URL")
        return value

    methods = document.get("code_challenge_methods_supported")
    if methods is not None and (not isinstance(methods, list) or "S256" not in methods):
        raise FederationError(UNAVAILABLE, "the upstream does not support PKCE S256 (RFC 7636 §4.2)")
    return ProviderMetadata(
        issuer=expected_issuer,
        authorization_endpoint=endpoint("authorization_endpoint", required=True) or "",
        token_endpoint=endpoint("token_endpoint", required=True) or "",
        jwks_uri=endpoint("jwks_uri", required=True) or "",
        userinfo_endpoint=endpoint("userinfo_endpoint", required=False),
        end_session_endpoint=endpoint("end_session_endpoint", required=False),
        iss_parameter_supported=document.get("authorization_response_iss_parameter_supported") is True,
        code_challenge_methods=tuple(str(m) for m in methods or ()),
    )


class MetadataCache:
    """The upstream's metadata, fetched on first use and refreshed after ``ttl_seconds``.

    If a refresh fails, the last good document keeps serving for up to one more ``ttl``
    (endpoints rarely move; an upstream's discovery blip should not stop sign-ins).
    """

    def __init__(
        self,
        url: str,
        issuer: str,
        http: Http,
        *,
        ttl_seconds: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._issuer = issuer
        self._http = http
        self._ttl = ttl_seconds
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, ProviderMetadata] | None = None

    def get(self) -> ProviderMetadata:
        """Return the metadata. Raises FederationError(SOURCE_UNAVAILABLE)."""
        now = self._clock()
        cached = self._cached
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        with self._lock:
            cached = self._cached
            if cached is not None and now - cached[0] < self._ttl:
                return cached[1]
            try:
                metadata = self._fetch()
            except FederationError:
                if cached is not None and now - cached[0] < 2 * self._ttl:
                    return cached[1]
                raise
            self._cached = (now, metadata)
            return metadata

    def _fetch(self) -> ProviderMetadata:
        response = self._http("GET", self._url, headers={"Accept": "application/json"}, data=None, timeout=self._timeout)
        if response.status != 200:
            raise FederationError(UNAVAILABLE, f"discovery answered HTTP {response.status}")
        try:
            document = response.json()
        except ValueError:
            raise FederationError(UNAVAILABLE, "discovery document is not a JSON object") from None
        return parse_metadata(document, self._issuer)


def _loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme == "http" and (host in {"localhost", "::1"} or host.startswith("127."))


def _acceptable(url: str, allow_http: bool) -> bool:
    parts = urlsplit(url)
    if not parts.hostname or parts.fragment or parts.username or parts.password:
        return False
    return parts.scheme == "https" or (allow_http and _loopback_http(url))
