"""Bounded HTTP for upstream OIDC calls: discovery, JWKS, token and userinfo endpoints.

Every call has a timeout and a size limit, follows no redirects (a token request that is
redirected would carry the code and client credentials somewhere else), and turns network
failures into FederationError(SOURCE_UNAVAILABLE). Bodies are never logged.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from federation.errors import FederationError, FederationErrorCode

MAX_BODY_BYTES = 512 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class HttpResponse:
    """A response: status, headers (lower-case names) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        """Return the body as a JSON object. Raises ValueError if it is not one."""
        data = json.loads(self.body)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data


class Http(Protocol):
    """Sends one request and returns the response, whatever its status.

    Raises FederationError(SOURCE_UNAVAILABLE) when no response can be had.
    """

    def __call__(
        self, method: str, url: str, *, headers: Mapping[str, str], data: bytes | None, timeout: float
    ) -> HttpResponse: ...


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:  # noqa: D102 - refuse every redirect
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def urllib_http(method: str, url: str, *, headers: Mapping[str, str], data: bytes | None, timeout: float) -> HttpResponse:
    """The default ``Http``: urllib, no redirects, bounded body."""
    if urlsplit(url).scheme not in {"https", "http"}:
        raise FederationError(FederationErrorCode.MISCONFIGURED, "only http(s) URLs are fetched")
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers))
    host = urlsplit(url).netloc
    try:
        with _OPENER.open(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            return _read(response.status, response.headers, response)
    except urllib.error.HTTPError as exc:
        with exc:
            return _read(exc.code, exc.headers, exc)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FederationError(FederationErrorCode.SOURCE_UNAVAILABLE, f"cannot reach {host}: {reason}") from None


def _read(status: int, headers: Any, stream: Any) -> HttpResponse:
    body = stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise FederationError(FederationErrorCode.SOURCE_UNAVAILABLE, "upstream response too large")
    return HttpResponse(status, {k.lower(): v for k, v in headers.items()} if headers else {}, body)
