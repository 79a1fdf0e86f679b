"""Configuration of one upstream OpenID Connect identity provider (``type: oidc`` or ``nhs_cis2``).

A complete example (YAML, as it would sit under ``sources:`` of the NHS organisation)::

    - type: nhs_cis2
      id: nhs-cis2
      display_name: NHS smartcard or security key (CIS2)
      # Exactly as the provider publishes it (OIDC Discovery §4.3): CIS2's includes ":443".
      issuer: "https://am.nhsidentity.spineservices.nhs.uk:443/openam/oauth2/realms/root/realms/NHSIdentity/realms/Healthcare"
      client_id: "4720349875.supercloud.london.nhs.uk"
      client_auth_method: private_key_jwt    # signed with the broker's own keys (published at /jwks.json)
      client_assertion_alg: RS256
      id_token_signing_algs: [RS256]
      # Optional: scopes, claims (required/optional/ignored), acr_values per level, attribute_map.

A generic provider (Entra ID, a borough's own OIDC IdP)::

    - type: oidc
      id: barnet-entra
      display_name: Barnet staff (Microsoft)
      issuer: "https://login.microsoftonline.com/<tenant>/v2.0"
      client_id: "0a1b2c3d-..."
      client_auth_method: client_secret_post        # or client_secret_basic / private_key_jwt
      client_secret: {env: BARNET_ENTRA_SECRET}      # a SecretRef, never inline
      scopes: [openid, profile, email]
      acr_values: {AAL2: ["urn:barnet:mfa"]}        # asked for when the broker needs that level
      acr_levels: {"urn:barnet:mfa": AAL2}          # what the provider's acr values mean to us
      amr_levels: {mfa: AAL2}
      claims:
        required: [email]
        optional: [name, given_name, family_name, roles]
        ignored: [uti, rh, tid]
      attribute_map: {email: email, name: name}
      roles_claim: roles

Entra ID: use the tenant's own issuer (``https://login.microsoftonline.com/<tenant id>/v2.0``);
the multi-tenant ``common`` document names a ``{tenantid}`` template, which never matches
exactly and is refused.

``organisation`` may be omitted (the parent's); when written, the loader checks it names
the parent. Plain ``http://`` issuers are accepted only on a loopback address (tests).
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from config.secrets import SecretRef

SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
_CLAIM = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
_CANONICAL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SCOPE = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]{1,128}$")  # RFC 6749 §3.3 scope-token
Level = Literal["AAL1", "AAL2", "AAL3"]
SigningAlg = Literal["ES256", "RS256"]

#: NHS CIS2 scopes: identity, roles (national RBAC), organisations, registrations, the chosen role.
CIS2_SCOPES: tuple[str, ...] = (
    "openid", "profile", "email", "nhsperson", "associatedorgs", "nationalrbacaccess",
    "professionalmemberships", "organisationalmemberships", "selectedrole",
)
GENERIC_SCOPES: tuple[str, ...] = ("openid", "profile", "email")
#: CIS2 acr values asked for when the broker needs a level (CIS2 "Authentication Assurance").
CIS2_ACR_VALUES: dict[str, list[str]] = {"AAL2": ["AAL2_OR_AAL3_ANY"], "AAL3": ["AAL3_ANY"]}
CIS2_REQUIRED_CLAIMS: tuple[str, ...] = ("name", "nhsid_useruid")
CIS2_OPTIONAL_CLAIMS: tuple[str, ...] = (
    "given_name", "family_name", "email", "uid", "nhsid_nrbac_roles", "nhsid_user_orgs", "selected_roleid",
    "id_assurance_level", "idassurancelevel", "authentication_assurance_level", "gmc_id", "nmc_id", "gdc_id",
    "gphc_id", "hcpc_id", "sds_user_id", "professional_memberships",
)
CIS2_IGNORED_CLAIMS: tuple[str, ...] = ("subname", "nhsid_user_orgs_url", "org_code_url")
GENERIC_REQUIRED_CLAIMS: tuple[str, ...] = ()
GENERIC_OPTIONAL_CLAIMS: tuple[str, ...] = ("name", "given_name", "family_name", "email", "email_verified")
DEFAULT_ATTRIBUTE_MAP: dict[str, str] = {
    "name": "name", "given_name": "given_name", "family_name": "family_name", "email": "email",
}


class ClaimRules(BaseModel):
    """Which claims (beyond the protocol's own) the upstream is trusted for (compare Warehouse).

    ``required``: missing → the sign-in is refused; ``optional``: used when present;
    ``ignored``: expected but never used. Anything else is logged by name and not used.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _names(self) -> ClaimRules:
        problems = [f"{c!r} is not a claim name" for c in (*self.required, *self.optional, *self.ignored) if not _CLAIM.match(c)]
        seen: dict[str, str] = {}
        for kind in ("required", "optional", "ignored"):
            for claim in getattr(self, kind):
                if claim in seen:
                    problems.append(f"{claim!r} is both {seen[claim]} and {kind}")
                seen.setdefault(claim, kind)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def used(self) -> frozenset[str]:
        """Claims that may be used: required and optional."""
        return frozenset((*self.required, *self.optional))


class OidcSourceConfig(BaseModel):
    """One upstream OpenID Connect provider; see the module docstring for YAML examples.

    ``client_secret`` (for ``client_secret_post``/``client_secret_basic``) is a ``SecretRef``;
    ``private_key_jwt`` signs client assertions with the broker's own key ring (RFC 7523 §2.2),
    whose public keys the upstream fetches from the broker's ``/jwks.json``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["oidc", "nhs_cis2"]
    id: str = Field(pattern=SLUG, description="Source id, unique across the broker; in the callback URL")
    organisation: str | None = Field(default=None, pattern=SLUG, description="default: the parent organisation")
    display_name: str | None = Field(default=None, min_length=1, max_length=100)
    issuer: str = Field(description="The issuer exactly as the provider publishes it (compared byte for byte)")
    discovery_url: str | None = Field(default=None, description="default: issuer + /.well-known/openid-configuration")
    client_id: str = Field(min_length=1, max_length=255)
    client_auth_method: Literal["private_key_jwt", "client_secret_post", "client_secret_basic"] = "private_key_jwt"
    client_secret: SecretRef | None = None
    client_assertion_alg: SigningAlg = "RS256"
    client_assertion_audience: Literal["token_endpoint", "issuer"] = Field(
        default="token_endpoint", description="aud of private_key_jwt assertions (CIS2: the token endpoint)"
    )
    id_token_signing_algs: tuple[SigningAlg, ...] = Field(default=("RS256",), min_length=1)
    scopes: tuple[str, ...] | None = Field(default=None, description="default: per type (CIS2's nine scopes)")
    acr_values: dict[Level, list[str]] | None = Field(
        default=None, description="acr_values asked for per level the broker needs (default for nhs_cis2: CIS2's)"
    )
    acr_levels: dict[str, Level] = Field(
        default_factory=dict, description="type oidc: the level each upstream acr value means"
    )
    amr_levels: dict[str, Level] = Field(
        default_factory=dict, description="type oidc: the level an upstream amr value gives (highest wins)"
    )
    claims: ClaimRules | None = Field(default=None, description="default: per type")
    attribute_map: dict[str, str] | None = Field(default=None, description="canonical name -> claim")
    roles_claim: str | None = Field(default=None, description="type oidc: a claim holding a list of role names")
    organisation_claim: str | None = Field(
        default=None, description="type oidc: a claim holding an ODS code, resolved to the organisation declaring it"
    )
    userinfo: bool = Field(default=True, description="fetch userinfo and merge it (sub must match)")
    clock_skew_seconds: int = Field(default=60, ge=0, le=300)
    max_token_age_seconds: int = Field(default=600, ge=30, le=3600, description="an older ID token iat is refused")
    http_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    metadata_cache_seconds: int = Field(default=3600, ge=60, le=86400)
    jwks_cache_seconds: int = Field(default=3600, ge=60, le=86400)
    session_max_age_seconds: int | None = Field(
        default=None, ge=300, le=86400,
        description="the longest a broker session may rest on one authentication here (sent as max_age; "
                    "the session ends then and the person authenticates at the upstream again); default: no bound "
                    "beyond the broker's own session lifetime",
    )
    logout: bool = Field(default=True, description="sign out here too when the person signs out of the broker "
                                                    "(RP-initiated logout), and accept back-channel logout tokens")
    logout_token_max_age_seconds: int = Field(default=300, ge=30, le=3600,
                                              description="an older back-channel logout token (iat) is refused")

    @field_validator("issuer", "discovery_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in {"https", "http"} or not parts.hostname:
            raise ValueError("must be an absolute https:// URL")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must not contain a query, fragment or credentials (OIDC Discovery §3)")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ValueError("must be https:// (plain http only on a loopback address)")
        return value

    @field_validator("client_secret", mode="before")
    @classmethod
    def _not_inline(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError("a secret is never written inline: use {env: NAME} or {file: PATH}")
        return value

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return value
        problems = [f"{s!r} is not a scope" for s in value if not _SCOPE.match(s)]
        if "openid" not in value:
            problems.append("must include 'openid'")
        if len(set(value)) != len(value):
            problems.append("lists a scope more than once")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("attribute_map")
    @classmethod
    def _attribute_map(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return value
        problems = [f"canonical name {k!r} must be lower_snake_case" for k in value if not _CANONICAL_NAME.match(k)]
        problems += [f"{v!r} is not a claim name" for v in value.values() if not _CLAIM.match(v)]
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _consistent(self) -> OidcSourceConfig:
        problems = []
        if self.client_auth_method == "private_key_jwt" and self.client_secret is not None:
            problems.append("private_key_jwt signs with the broker's keys: remove client_secret")
        if self.client_auth_method != "private_key_jwt" and self.client_secret is None:
            problems.append(f"{self.client_auth_method} needs a client_secret")
        if self.type == "nhs_cis2":
            for name in ("acr_levels", "amr_levels", "roles_claim", "organisation_claim"):
                if getattr(self, name):
                    problems.append(f"{name} is built into the NHS CIS2 profile; remove it")
            if self.client_auth_method == "client_secret_basic":
                problems.append("NHS CIS2 takes private_key_jwt or client_secret_post")
        if self.discovery_url is not None and urlsplit(self.discovery_url).scheme != urlsplit(self.issuer).scheme:
            problems.append("discovery_url must use the issuer's scheme")
        if len(set(self.id_token_signing_algs)) != len(self.id_token_signing_algs):
            problems.append("id_token_signing_algs lists an algorithm more than once")
        if self.acr_values is not None:
            for level, values in self.acr_values.items():
                if not values or any(not v or " " in v for v in values):
                    problems.append(f"acr_values.{level}: one or more values without spaces")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def effective_discovery_url(self) -> str:
        """Where the provider's metadata lives (OIDC Discovery §4: issuer + well-known path)."""
        return self.discovery_url or self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    @property
    def effective_scopes(self) -> tuple[str, ...]:
        """The scopes requested: configured, else per type."""
        if self.scopes is not None:
            return self.scopes
        return CIS2_SCOPES if self.type == "nhs_cis2" else GENERIC_SCOPES

    @property
    def effective_acr_values(self) -> dict[str, list[str]]:
        """acr_values to request per level (``AAL2`` → [...]); empty: ask for none."""
        if self.acr_values is not None:
            return {k: list(v) for k, v in self.acr_values.items()}
        return dict(CIS2_ACR_VALUES) if self.type == "nhs_cis2" else {}

    @property
    def effective_claims(self) -> ClaimRules:
        """The claim rules: configured, else per type."""
        if self.claims is not None:
            return self.claims
        if self.type == "nhs_cis2":
            return ClaimRules(required=CIS2_REQUIRED_CLAIMS, optional=CIS2_OPTIONAL_CLAIMS, ignored=CIS2_IGNORED_CLAIMS)
        return ClaimRules(required=GENERIC_REQUIRED_CLAIMS, optional=GENERIC_OPTIONAL_CLAIMS)

    @property
    def effective_attribute_map(self) -> dict[str, str]:
        """Canonical attribute name -> claim: configured, else name, given/family name, email."""
        return dict(self.attribute_map) if self.attribute_map is not None else dict(DEFAULT_ATTRIBUTE_MAP)

    @property
    def effective_display_name(self) -> str:
        """What people choose on the sign-in list."""
        if self.display_name:
            return self.display_name
        return "NHS smartcard or security key (CIS2)" if self.type == "nhs_cis2" else self.id


def _loopback(host: str) -> bool:
    host = host.lower()
    return host in {"localhost", "::1"} or host.startswith("127.")
