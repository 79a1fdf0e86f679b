"""The schema of the broker's configuration file.

A complete example lives in ``config/demo/london.yaml``. Every model forbids unknown keys,
so a misspelt option is an error rather than silently ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from config.client_metadata import (  # noqa: F401  (re-exported: the grant names and URI rules live there)
    GRANT_AUTHORIZATION_CODE,
    GRANT_CLIENT_CREDENTIALS,
    GRANT_REFRESH_TOKEN,
    GRANT_TOKEN_EXCHANGE,
    ClientMetadata,
    GrantType,
    TokenEndpointAuthMethod,
    check_absolute_url,
    is_loopback,
)
from config.ldap_source import LdapSourceConfig
from config.oidc_source import OidcSourceConfig
from config.saml_source import SamlSourceConfig
from config.saml_sp import ServiceProviderConfig
from config.secrets import SecretRef

SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerSettings(_Model):
    """The broker itself."""

    issuer: str = Field(description="Public base URL; the OIDC issuer identifier (RFC 8414 §2)")
    environment: Literal["production", "development"] = Field(
        default="production",
        description="'development' allows the static directory and plain-HTTP issuers on loopback",
    )
    database_url: str = "sqlite:///var/supercloud.db"
    redis_url: str | None = None
    master_key: SecretRef = Field(description="32 random bytes, base64: encrypts keys at rest, keys hashes")
    session_lifetime_minutes: int = Field(default=480, ge=5, le=1440)
    authorization_code_lifetime_seconds: int = Field(default=60, ge=5, le=60)
    access_token_lifetime_seconds: int = Field(default=600, ge=60, le=3600)
    id_token_lifetime_seconds: int = Field(default=600, ge=60, le=3600)
    default_signing_alg: Literal["ES256", "RS256"] = "ES256"
    organisations_recheck_seconds: float = Field(
        default=1.0, ge=0, le=60,
        description="each worker reads the organisation registry's version at most this often (0: on every "
                    "request); a change made in another process is seen within this many seconds",
    )

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        check_absolute_url(value, allow_query=False)
        if value.endswith("/"):
            raise ValueError("must not end with '/'")
        return value


class StaticSourceConfig(_Model):
    """Users from a YAML file with hashed passwords: for the demo and tests, never production."""

    type: Literal["static"]
    id: str = Field(pattern=SLUG)
    users_file: Path


#: One identity source of an organisation, chosen by its ``type`` (static, ldap, active_directory,
#: oidc, nhs_cis2, saml).
SourceConfig = Annotated[
    StaticSourceConfig | LdapSourceConfig | OidcSourceConfig | SamlSourceConfig, Field(discriminator="type")
]


class TeamConfig(_Model):
    """A team of an organisation; people are in it when their directory groups say so."""

    id: str = Field(pattern=SLUG)
    name: str = Field(min_length=1, max_length=200)
    functions: list[str] = Field(default_factory=list, description="what the team does: discharge, mash ...")
    groups: list[str] = Field(min_length=1, description="directory groups (by name) whose members are in the team")


class RoleMappingConfig(_Model):
    """Job roles given to members of directory groups (by name)."""

    groups: list[str] = Field(min_length=1)
    job_roles: list[str] = Field(min_length=1)


ContactRole = Literal["privacy_officer", "security_contact", "technical_contact", "service_desk"]
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")


class ContactConfig(_Model):
    """Whom to reach at an organisation about one matter (break-glass alerts go to the privacy officer)."""

    role: ContactRole
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=EMAIL.pattern, max_length=254)


class OrganisationConfig(_Model):
    """A member organisation: a borough, an NHS body, or the operator."""

    id: str = Field(pattern=SLUG)
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["borough", "health", "operator"]
    domains: list[str] = Field(default_factory=list)
    ods_codes: list[str] = Field(default_factory=list)
    memberships: list[str] = Field(default_factory=list, description="named groupings, e.g. 'London boroughs'")
    require_mfa: bool = Field(default=False, description="everyone of this organisation signs in with a second factor")
    authoritative_attributes: list[str] | None = Field(
        default=None,
        description="attributes this organisation's sources may assert (default: the standard person attributes)",
    )
    asserts_national_roles: bool = Field(
        default=False, description="its sources may assert NHS national RBAC roles and activity codes"
    )
    accepts_sources: list[str] = Field(
        default_factory=list,
        description="ids of other organisations' sources trusted to sign in this organisation's people (e.g. CIS2)",
    )
    sources: list[SourceConfig] = Field(default_factory=list)
    teams: list[TeamConfig] = Field(default_factory=list)
    role_mappings: list[RoleMappingConfig] = Field(default_factory=list)
    contacts: list[ContactConfig] = Field(default_factory=list)

    @field_validator("domains")
    @classmethod
    def _domains(cls, values: list[str]) -> list[str]:
        for value in values:
            if value != value.lower() or not DOMAIN.match(value):
                raise ValueError(f"{value!r} is not a lower-case DNS domain")
        return values


class ApplicationConfig(ClientMetadata):
    """An OIDC application (relying party or service) registered in configuration.

    The metadata rules are ``config.client_metadata.ClientMetadata``'s, shared with the
    command line and dynamic registration. A complete example::

        - client_id: discharge-hub
          name: Hospital Discharge Hub
          redirect_uris: [https://discharge.example.nhs.uk/callback]
          post_logout_redirect_uris: [https://discharge.example.nhs.uk/]
          token_endpoint_auth_method: private_key_jwt   # or client_secret_basic / client_secret_post
          jwks_uri: https://discharge.example.nhs.uk/jwks.json   # or jwks: {keys: [...]}
          grant_types: [authorization_code, refresh_token]
          subject_type: pairwise
          sector_identifier: discharge.example.nhs.uk
          backchannel_logout_uri: https://discharge.example.nhs.uk/backchannel-logout
          frontchannel_logout_uri: https://discharge.example.nhs.uk/frontchannel-logout
          allowed_audiences: [care-records-api]   # resource/audience values it may ask tokens for
          contacts: [discharge-team@example.nhs.uk]
    """

    client_id: str = Field(pattern=r"^[A-Za-z0-9._~-]{3,128}$")
    client_secret: SecretRef | None = Field(default=None, description="required unless token_endpoint_auth_method is private_key_jwt")
    service: str | None = Field(default=None, pattern=SLUG, description="the service policies name (default: client_id)")
    require_mfa: bool = Field(default=False, description="everyone reaching this application uses a second factor")

    def _problems(self) -> list[str]:
        problems = super()._problems()
        if self.token_endpoint_auth_method == "private_key_jwt":
            if self.client_secret is not None:
                problems.append("a private_key_jwt client has no client_secret; remove it")
        elif self.client_secret is None:
            problems.append(f"{self.token_endpoint_auth_method} needs a client_secret")
        return problems

    @property
    def sector(self) -> str:
        """The pairwise sector: ``sector_identifier``, else the host of the redirect URIs (OIDC Core §8.1)."""
        return self.sector_identifier or (urlsplit(self.redirect_uris[0]).hostname or self.client_id)


class AgreementConfig(_Model):
    """A Section 75 (NHS Act 2006) partnership agreement between member organisations."""

    id: str = Field(pattern=SLUG)
    parties: list[str] = Field(min_length=2)


class PoliciesConfig(_Model):
    """Access policies: the Cedar bundle decided at every access (absent: every signed-in
    person may reach every registered application, releasing what its scopes ask)."""

    bundle: Path


class Settings(_Model):
    """The whole configuration file."""

    broker: BrokerSettings
    organisations: list[OrganisationConfig] = Field(default_factory=list)
    agreements: list[AgreementConfig] = Field(default_factory=list)
    applications: list[ApplicationConfig] = Field(default_factory=list)
    saml_service_providers: list[ServiceProviderConfig] = Field(default_factory=list)
    policies: PoliciesConfig | None = None
    base_dir: Path = Field(default=Path("."), exclude=True, description="set by the loader")

    def resolve_path(self, path: Path) -> Path:
        """Return ``path`` made absolute against the configuration file's folder."""
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def is_production(self) -> bool:
        """True unless the file says ``environment: development``."""
        return self.broker.environment == "production"
