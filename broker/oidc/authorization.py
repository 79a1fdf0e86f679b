"""Validation of authorization requests (RFC 6749 §4.1.1, RFC 7636 §4.3, OIDC Core §3.1.2.1).

The client and redirect URI are checked first; until both are verified an error is shown
to the person and never redirected (RFC 6749 §4.1.2.1). Later errors are redirected to
the verified URI with ``state`` and ``iss`` (RFC 9207).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from urllib.parse import urlencode, urlsplit, urlunsplit

from broker.clients import Client, ClientRegistry
from broker.errors import BrokerError, BrokerErrorCode, OAuthError
from broker.oidc.claims import SUPPORTED_SCOPES
from broker.oidc.pkce import is_valid_challenge

MAX_PARAMETER_LENGTH = 2048
PROMPTS = frozenset({"none", "login", "consent", "select_account"})


@dataclasses.dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A validated authorization request."""

    client_id: str
    redirect_uri: str
    scopes: frozenset[str]
    state: str | None
    nonce: str | None
    code_challenge: str
    prompt: frozenset[str]
    max_age: int | None
    login_hint: str | None

    def to_json(self) -> dict[str, object]:
        """Return a JSON-serialisable form (for the pending-request store)."""
        data = dataclasses.asdict(self)
        data["scopes"] = sorted(self.scopes)
        data["prompt"] = sorted(self.prompt)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> AuthorizationRequest:
        """Rebuild from ``to_json`` output."""
        values = dict(data)
        values["scopes"] = frozenset(values["scopes"])  # type: ignore[arg-type]
        values["prompt"] = frozenset(values["prompt"])  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]


class AuthorizationError(OAuthError):
    """An error to redirect to the client's verified redirect URI."""

    def __init__(self, error: str, description: str, *, redirect_uri: str, state: str | None) -> None:
        super().__init__(error, description)
        self.redirect_uri = redirect_uri
        self.state = state


def redirect_with(redirect_uri: str, params: Mapping[str, str | None]) -> str:
    """Return ``redirect_uri`` with ``params`` added to its query, keeping any query it had (RFC 6749 §3.1.2)."""
    parts = urlsplit(redirect_uri)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def validate_authorization_request(params: Mapping[str, Sequence[str]], clients: ClientRegistry) -> tuple[Client, AuthorizationRequest]:
    """Return the client and the validated request.

    Raises BrokerError (UNKNOWN_CLIENT / INVALID_REDIRECT_URI / BAD_REQUEST) when no
    redirect is allowed, and AuthorizationError for errors to redirect.
    """
    single = _single_values(params)
    client_id = single.get("client_id")
    client = clients.get(client_id) if client_id else None
    if client is None:
        raise BrokerError(BrokerErrorCode.UNKNOWN_CLIENT, "The application that sent you here is not registered.")
    redirect_uri = single.get("redirect_uri")
    if not redirect_uri or redirect_uri not in client.redirect_uris:
        raise BrokerError(
            BrokerErrorCode.INVALID_REDIRECT_URI,
            "The application asked to return you to an address it has not registered.",
        )
    if single.get(_DUPLICATE):
        raise AuthorizationError("invalid_request", f"parameter {single[_DUPLICATE]} given more than once", redirect_uri=redirect_uri, state=None)
    state = single.get("state")

    def fail(error: str, description: str) -> AuthorizationError:
        return AuthorizationError(error, description, redirect_uri=redirect_uri, state=state)

    for name, value in single.items():
        if len(value) > MAX_PARAMETER_LENGTH:
            raise fail("invalid_request", f"parameter {name} is too long")
    if "request" in single:
        raise fail("request_not_supported", "request objects are not supported")
    if "request_uri" in single:
        raise fail("request_uri_not_supported", "request_uri is not supported")
    if single.get("response_type") != "code":
        raise fail("unsupported_response_type", "only response_type=code is supported")
    if single.get("response_mode", "query") != "query":
        raise fail("invalid_request", "only response_mode=query is supported")
    scopes = frozenset(single.get("scope", "").split())
    if "openid" not in scopes:
        raise fail("invalid_scope", "the openid scope is required")
    challenge = single.get("code_challenge")
    if not challenge:
        raise fail("invalid_request", "code_challenge is required (PKCE, RFC 7636)")
    if single.get("code_challenge_method") != "S256":
        raise fail("invalid_request", "code_challenge_method must be S256")
    if not is_valid_challenge(challenge):
        raise fail("invalid_request", "code_challenge is malformed")
    prompt = frozenset(single.get("prompt", "").split())
    if not prompt <= PROMPTS:
        raise fail("invalid_request", "unknown prompt value")
    if "none" in prompt and len(prompt) > 1:
        raise fail("invalid_request", "prompt=none cannot be combined with other values")
    max_age = None
    if "max_age" in single:
        try:
            max_age = int(single["max_age"])
        except ValueError:
            raise fail("invalid_request", "max_age must be a whole number of seconds") from None
        if max_age < 0:
            raise fail("invalid_request", "max_age must not be negative")
    request = AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scopes=scopes & frozenset(SUPPORTED_SCOPES),
        state=state,
        nonce=single.get("nonce"),
        code_challenge=challenge,
        prompt=prompt,
        max_age=max_age,
        login_hint=single.get("login_hint"),
    )
    return client, request


_DUPLICATE = "\x00duplicate"


def _single_values(params: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Return one value per parameter; a repeated one is flagged (RFC 6749 §3.1) unless it is client_id/redirect_uri."""
    single: dict[str, str] = {}
    for name, values in params.items():
        values = [v for v in values]
        if not values:
            continue
        if len(values) > 1:
            if name in {"client_id", "redirect_uri"}:
                # Ambiguous identity of the client or its URI: treat as unverifiable.
                continue
            single.setdefault(_DUPLICATE, name)
        if values[0] != "":
            single[name] = values[0]
    return single
