"""Small helpers shared by the token endpoint's grants: form values, audiences, errors.

Protocol rules only (RFC 6749 §3.2, RFC 8707 §2, RFC 8693 §2.1); no storage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from broker.clients import Client
from broker.errors import OAuthError

# Parameters that may legitimately repeat (RFC 8707 §2, RFC 8693 §2.1).
MULTI_VALUED = frozenset({"resource", "audience"})
MAX_VALUE_LENGTH = 8192


def single_values(form: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Return one value per parameter. Raises OAuthError(invalid_request) for a repeated
    parameter (RFC 6749 §3.2) other than resource/audience, or an oversized value."""
    values: dict[str, str] = {}
    for name, items in form.items():
        if not items:
            continue
        if len(items) > 1 and name not in MULTI_VALUED:
            raise OAuthError("invalid_request", f"parameter {name} given more than once")
        if any(len(item) > MAX_VALUE_LENGTH for item in items):
            raise OAuthError("invalid_request", f"parameter {name} is too long")
        if items[0] != "":
            values[name] = items[0]
    return values


def requested_audience(form: Mapping[str, Sequence[str]], client: Client, *, required: bool) -> tuple[str, ...] | None:
    """Return the audiences named by ``resource``/``audience`` (RFC 8707, RFC 8693), or None if none.

    Each must be among the client's ``allowed_audiences``. With ``required`` and none
    named, a client with exactly one allowed audience gets it. Raises OAuthError(invalid_target).
    """
    named = [v for key in ("resource", "audience") for v in form.get(key, ()) if v]
    if not named:
        if not required:
            return None
        if len(client.allowed_audiences) == 1:
            return client.allowed_audiences
        raise OAuthError("invalid_target", "name the service the token is for with resource or audience")
    for value in named:
        if value not in client.allowed_audiences:
            raise OAuthError("invalid_target", f"this client may not ask for tokens for {value[:200]!r}")
    return tuple(dict.fromkeys(named))


def requested_scopes(values: Mapping[str, str], granted: frozenset[str]) -> frozenset[str]:
    """Return the ``scope`` asked for, which must be within ``granted`` (RFC 6749 §6); all of it if absent.

    Raises OAuthError(invalid_scope).
    """
    if "scope" not in values:
        return granted
    asked = frozenset(values["scope"].split())
    if not asked <= granted:
        raise OAuthError("invalid_scope", "the requested scope exceeds what was granted")
    return asked


def require_grant(client: Client, grant_type: str) -> None:
    """Raise OAuthError(unauthorized_client) unless the client registered ``grant_type`` (RFC 6749 §5.2)."""
    if not client.allows(grant_type):
        raise OAuthError("unauthorized_client", f"this client is not registered for the {grant_type} grant")
