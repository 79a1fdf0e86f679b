"""Validation of authorization requests (RFC 6749 §4.1.1, RFC 7636 §4.3, OIDC Core §3.1.2.1).

The client and redirect URI are checked first; until both are verified an error is shown
to the person and never redirected (RFC 6749 §4.1.2.1). Later errors are sent to the
verified URI with ``state`` and ``iss`` (RFC 9207), by query or form post (OAuth 2.0 Form
Post Response Mode). Parameters we do not know are ignored (OIDC Core §3.1.2.1); request
objects are refused with ``request_not_supported`` / ``request_uri_not_supported`` (§6.3).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlencode, urlsplit, urlunsplit

from broker.clients import Client, ClientRegistry
from broker.errors import BrokerError, BrokerErrorCode, OAuthError
from broker.oidc.claims import SUPPORTED_SCOPES
from broker.oidc.pkce import is_valid_challenge

MAX_PARAMETER_LENGTH = 2048
PROMPTS = frozenset({"none", "login", "consent", "select_account"})
RESPONSE_MODES = frozenset({"query", "form_post"})


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
    response_mode: str = "query"
    acr_values: tuple[str, ...] = ()
    ui_locales: tuple[str, ...] = ()
    hint_subject: str | None = None  # the ``sub`` of a verified id_token_hint
    resource: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """Return a JSON-serialisable form (for the pending-request store)."""
        data = dataclasses.asdict(self)
        data["scopes"] = sorted(self.scopes)
        data["prompt"] = sorted(self.prompt)
        for name in ("acr_values", "ui_locales", "resource"):
            data[name] = list(getattr(self, name))
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> AuthorizationRequest:
        """Rebuild from ``to_json`` output."""
        values = dict(data)
        values["scopes"] = frozenset(values["scopes"])  # type: ignore[arg-type]
        values["prompt"] = frozenset(values["prompt"])  # type: ignore[arg-type]
        for name in ("acr_values", "ui_locales", "resource"):
            values[name] = tuple(values.get(name) or ())  # type: ignore[arg-type]
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True, slots=True)
class AuthorizationResponse:
    """Where and how to send an authorization response: by redirect (``query``) or by an
    auto-submitting form (``form_post``)."""

    redirect_uri: str
    params: dict[str, str]
    response_mode: str = "query"

    @property
    def url(self) -> str:
        """The redirect URL carrying ``params`` in its query (RFC 6749 §4.1.2)."""
        return redirect_with(self.redirect_uri, self.params)


class AuthorizationError(OAuthError):
    """An error to send to the client's verified redirect URI."""

    def __init__(self, error: str, description: str, *, redirect_uri: str, state: str | None, response_mode: str = "query") -> None:
        super().__init__(error, description)
        self.redirect_uri = redirect_uri
        self.state = state
        self.response_mode = response_mode


def redirect_with(redirect_uri: str, params: Mapping[str, str | None]) -> str:
    """Return ``redirect_uri`` with ``params`` added to its query, keeping any query it had (RFC 6749 §3.1.2)."""
    parts = urlsplit(redirect_uri)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


HintVerifier = Callable[[str, Client], "str | None"]


def validate_authorization_request(
    params: Mapping[str, Sequence[str]], clients: ClientRegistry, verify_hint: HintVerifier | None = None
) -> tuple[Client, AuthorizationRequest]:
    """Return the client and the validated request.

    ``verify_hint`` returns the ``sub`` of a valid ``id_token_hint`` issued by us to the
    client, or None if it is not one. Raises BrokerError (UNKNOWN_CLIENT /
    INVALID_REDIRECT_URI / BAD_REQUEST) when no redirect is allowed, and
    AuthorizationError for errors to send to the verified redirect URI.
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
    mode = single.get("response_mode", "query")
    reply_mode = mode if mode in RESPONSE_MODES else "query"
    if single.get(_DUPLICATE):
        raise AuthorizationError("invalid_request", f"parameter {single[_DUPLICATE]} given more than once",
                                 redirect_uri=redirect_uri, state=None, response_mode=reply_mode)
    state = single.get("state")

    def fail(error: str, description: str) -> AuthorizationError:
        return AuthorizationError(error, description, redirect_uri=redirect_uri, state=state, response_mode=reply_mode)

    for name, value in single.items():
        if len(value) > MAX_PARAMETER_LENGTH:
            raise fail("invalid_request", f"parameter {name} is too long")
    if "request" in single:
        raise fail("request_not_supported", "request objects are not supported")
    if "request_uri" in single:
        raise fail("request_uri_not_supported", "request_uri is not supported")
    if single.get("response_type") != "code":
        raise fail("unsupported_response_type", "only response_type=code is supported")
    if mode not in RESPONSE_MODES:
        raise fail("invalid_request", "response_mode must be query or form_post")
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
    if not client.allows("authorization_code"):
        raise fail("unauthorized_client", "this client is not registered for the authorization code flow")
    hint_subject = None
    if "id_token_hint" in single:
        hint_subject = verify_hint(single["id_token_hint"], client) if verify_hint else None
        if hint_subject is None:
            raise fail("invalid_request", "id_token_hint is not an ID token this provider issued to this client")
    resource = tuple(v for v in params.get("resource", ()) if v)
    for value in resource:
        if value not in client.allowed_audiences:
            raise fail("invalid_target", f"this client may not ask for tokens for {value[:200]!r}")
    request = AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        # A client registered with ``scope`` gets at most those (RFC 7591 §2); "openid" was checked above.
        scopes=scopes & frozenset(SUPPORTED_SCOPES) & (frozenset(client.scope.split()) | {"openid"} if client.scope else scopes),
        state=state,
        nonce=single.get("nonce"),
        code_challenge=challenge,
        prompt=prompt,
        max_age=max_age,
        login_hint=single.get("login_hint"),
        response_mode=mode,
        acr_values=tuple(single.get("acr_values", "").split()),
        ui_locales=tuple(single.get("ui_locales", "").split()),
        hint_subject=hint_subject,
        resource=tuple(dict.fromkeys(resource)),
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
            if name != "resource":  # RFC 8707 §2: resource may repeat
                single.setdefault(_DUPLICATE, name)
        if values[0] != "":
            single[name] = values[0]
    return single
