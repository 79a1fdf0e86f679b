"""The one rule set for an OIDC client's registration metadata.

Applications registered in configuration (``config.schema.ApplicationConfig``), by the
command line (``supercloud clients add``) and by dynamic registration (RFC 7591, in
``broker.oidc.registration``) are all validated by ``ClientMetadata``: the same URI rules,
the same consistency rules, the same messages.

URI rules (RFC 6749 §3.1.2, RFC 8252 §7.3, OIDC Registration §2): absolute, no fragment, no
credentials; ``https`` only, except plain ``http`` on a loopback address (127.0.0.0/8,
``[::1]``, ``localhost``) for native and development applications.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

GRANT_AUTHORIZATION_CODE = "authorization_code"
GRANT_REFRESH_TOKEN = "refresh_token"
GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
GrantType = Literal[
    "authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"
]
TokenEndpointAuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]
SECRET_METHODS = ("client_secret_basic", "client_secret_post")
LOOPBACK_NAMES = {"localhost", "::1"}
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")
_EMAIL = re.compile(r"^[^@\s<>\"]{1,64}@[^@\s<>\"]{1,255}$")


def is_loopback(url: str) -> bool:
    """Return True if ``url``'s host is ``localhost`` or a loopback address (127.0.0.0/8, ::1).

    A name that merely starts with ``127.`` (``127.attacker.example``) is not loopback.
    """
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_absolute_url(url: str, *, allow_query: bool = True) -> str:
    """Return ``url`` if it is an absolute http(s) URL without a fragment or credentials.

    Raises ValueError with the reason otherwise (RFC 6749 §3.1.2).
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme not in {"https", "http"} or not parts.netloc or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    if parts.fragment or url.endswith("#"):
        raise ValueError("must not contain a fragment (RFC 6749 §3.1.2)")
    if not allow_query and parts.query:
        raise ValueError("must not contain a query")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("must not contain credentials")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise ValueError("must not contain spaces or control characters")
    return url


def check_client_uri(url: str) -> str:
    """Return ``url`` if it is a valid client URI: absolute, no fragment, https except loopback http.

    Raises ValueError naming the URI and the rule it breaks (RFC 8252 §7.3 for loopback).
    """
    if len(url) > 2000:
        raise ValueError(f"{url[:60]!r}... is longer than 2000 characters")
    try:
        check_absolute_url(url)
    except ValueError as exc:
        raise ValueError(f"{url!r} {exc}") from None
    if urlsplit(url).scheme == "http" and not is_loopback(url):
        raise ValueError(f"{url!r} must be https:// (plain http only on a loopback address: 127.0.0.1, [::1], localhost)")
    return url


class ClientMetadata(BaseModel):
    """What a client is registered with (OIDC Registration §2, RFC 7591 §2), validated as a whole.

    Raises pydantic ValidationError listing every problem; model-level problems are joined
    with "; " in one message.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    redirect_uris: list[str] = Field(default_factory=list, max_length=20)
    post_logout_redirect_uris: list[str] = Field(default_factory=list, max_length=20)
    signing_alg: Literal["ES256", "RS256"] | None = Field(default=None, description="ID token signing algorithm (default: the broker's)")
    token_endpoint_auth_method: TokenEndpointAuthMethod = "client_secret_basic"
    token_endpoint_auth_signing_alg: Literal["ES256", "RS256"] | None = Field(
        default=None, description="for private_key_jwt: the one algorithm its assertions may use (default: the JWK's)"
    )
    jwks: dict[str, list[dict[str, str]]] | None = Field(default=None, description="public keys for private_key_jwt (RFC 7517 JWK Set)")
    jwks_uri: str | None = Field(default=None, description="where to fetch the public keys for private_key_jwt")
    grant_types: list[GrantType] = Field(default_factory=lambda: [GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN], min_length=1)
    subject_type: Literal["public", "pairwise"] = "public"
    sector_identifier: str | None = Field(default=None, min_length=1, max_length=255)
    backchannel_logout_uri: str | None = None
    backchannel_logout_session_required: bool = Field(default=False, description="logout tokens carry sid (ours always do)")
    frontchannel_logout_uri: str | None = None
    frontchannel_logout_session_required: bool = Field(default=False, description="iss and sid on the URI (ours always are)")
    allowed_audiences: list[str] = Field(
        default_factory=list,
        description="audiences (client ids or resource URIs) this application may ask access tokens for "
        "with resource/audience, client_credentials or token exchange (RFC 8707, RFC 8693)",
    )
    contacts: list[str] = Field(default_factory=list, max_length=10, description="e-mail addresses of the people responsible")
    scope: str | None = Field(default=None, description="the scope values it may ask for, space-separated (RFC 7591 §2)")

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str | None) -> str | None:
        return check_scope(value) if value is not None else value

    @field_validator("redirect_uris", "post_logout_redirect_uris")
    @classmethod
    def _uris(cls, values: list[str]) -> list[str]:
        for value in values:
            check_client_uri(value)
        if len(set(values)) != len(values):
            raise ValueError("lists a URI more than once")
        return values

    @field_validator("jwks_uri", "backchannel_logout_uri", "frontchannel_logout_uri")
    @classmethod
    def _one_uri(cls, value: str | None) -> str | None:
        return check_client_uri(value) if value is not None else value

    @field_validator("allowed_audiences", "grant_types")
    @classmethod
    def _no_duplicates(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError("lists a value more than once")
        for value in values:
            if not value or len(value) > 255 or any(c.isspace() for c in value):
                raise ValueError(f"{value!r} is not a valid value (1-255 characters, no spaces)")
        return values

    @field_validator("contacts")
    @classmethod
    def _contacts(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _EMAIL.match(value):
                raise ValueError(f"{value!r} is not an e-mail address")
        return values

    @field_validator("jwks")
    @classmethod
    def _jwks(cls, value: dict[str, list[dict[str, str]]] | None) -> dict[str, list[dict[str, str]]] | None:
        if value is None:
            return value
        if set(value) != {"keys"} or not value["keys"]:
            raise ValueError("must be a JWK Set: {keys: [one or more public keys]}")
        if len(value["keys"]) > 10:
            raise ValueError("holds more than 10 keys")
        for i, key in enumerate(value["keys"]):
            if key.get("kty") not in {"EC", "RSA"}:
                raise ValueError(f"keys[{i}]: kty must be EC or RSA")
            if "d" in key or "p" in key:
                raise ValueError(f"keys[{i}]: is a private key; register only the public half")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ClientMetadata:
        problems = self._problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _problems(self) -> list[str]:
        """Return every inconsistency between the fields (subclasses add their own)."""
        problems = []
        if self.token_endpoint_auth_method == "private_key_jwt":
            if (self.jwks is None) == (self.jwks_uri is None):
                problems.append("private_key_jwt needs exactly one of jwks or jwks_uri")
        elif self.jwks is not None or self.jwks_uri is not None:
            problems.append("jwks/jwks_uri are only for token_endpoint_auth_method: private_key_jwt")
        if self.token_endpoint_auth_signing_alg is not None and self.token_endpoint_auth_method != "private_key_jwt":
            problems.append("token_endpoint_auth_signing_alg is only for token_endpoint_auth_method: private_key_jwt")
        interactive = GRANT_AUTHORIZATION_CODE in self.grant_types
        if interactive and not self.redirect_uris:
            problems.append("authorization_code needs at least one redirect_uri")
        if not interactive and (self.redirect_uris or self.post_logout_redirect_uris):
            problems.append("redirect URIs are only for applications with the authorization_code grant")
        if GRANT_REFRESH_TOKEN in self.grant_types and not interactive:
            problems.append("refresh_token is only issued with authorization_code")
        if GRANT_CLIENT_CREDENTIALS in self.grant_types and not self.allowed_audiences:
            problems.append("client_credentials needs allowed_audiences (the services it may call)")
        if GRANT_TOKEN_EXCHANGE in self.grant_types and not self.allowed_audiences:
            problems.append("token exchange needs allowed_audiences (the services it may call on a person's behalf)")
        if self.subject_type == "pairwise" and self.sector_identifier is None:
            hosts = {urlsplit(uri).hostname for uri in self.redirect_uris}
            if len(hosts) != 1:
                problems.append("pairwise subjects with redirect URIs on several hosts need a sector_identifier")
        if self.sector_identifier is not None and self.subject_type != "pairwise":
            problems.append("sector_identifier is only for subject_type: pairwise")
        if (self.backchannel_logout_uri or self.frontchannel_logout_uri) and not interactive:
            problems.append("logout URIs are only for applications with the authorization_code grant")
        if self.backchannel_logout_session_required and not self.backchannel_logout_uri:
            problems.append("backchannel_logout_session_required needs a backchannel_logout_uri")
        if self.frontchannel_logout_session_required and not self.frontchannel_logout_uri:
            problems.append("frontchannel_logout_session_required needs a frontchannel_logout_uri")
        return problems

    @property
    def has_secret(self) -> bool:
        """True if the client authenticates with a client secret (it is issued one)."""
        return self.token_endpoint_auth_method in SECRET_METHODS

    @property
    def sector(self) -> str:
        """The pairwise sector: ``sector_identifier``, else the host of the redirect URIs (OIDC Core §8.1)."""
        return self.sector_identifier or (urlsplit(self.redirect_uris[0]).hostname or "" if self.redirect_uris else "")


def check_scope(value: str) -> str:
    """Return ``value`` if it is a space-separated list of scope tokens (RFC 6749 §3.3); raise ValueError otherwise."""
    tokens = value.split(" ")
    if not value or len(value) > 1000 or any(not _SCOPE_TOKEN.match(t) for t in tokens):
        raise ValueError("must be scope values separated by single spaces (RFC 6749 §3.3)")
    return value
