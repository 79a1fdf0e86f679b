"""The schema of the broker's configuration file.

A complete example lives in ``config/demo/london.yaml``. Every model forbids unknown keys,
so a misspelt option is an error rather than silently ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from config.ldap_source import LdapSourceConfig
from config.secrets import SecretRef

SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def is_loopback(url: str) -> bool:
    """Return True if ``url``'s host is a loopback name or address (127.0.0.0/8, ::1)."""
    host = (urlsplit(url).hostname or "").lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def check_absolute_url(url: str, *, allow_query: bool = True) -> str:
    """Return ``url`` if it is an absolute http(s) URL without a fragment; raise ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"} or not parts.netloc:
        raise ValueError("must be an absolute http:// or https:// URL")
    if parts.fragment or url.endswith("#"):
        raise ValueError("must not contain a fragment (RFC 6749 §3.1.2)")
    if not allow_query and parts.query:
        raise ValueError("must not contain a query")
    if parts.username or parts.password:
        raise ValueError("must not contain credentials")
    return url


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


#: One identity source of an organisation, chosen by its ``type`` (static, ldap, active_directory).
SourceConfig = Annotated[StaticSourceConfig | LdapSourceConfig, Field(discriminator="type")]


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


class OrganisationConfig(_Model):
    """A member organisation: a borough, an NHS body, or the operator."""

    id: str = Field(pattern=SLUG)
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["borough", "health", "operator"]
    domains: list[str] = Field(default_factory=list)
    ods_codes: list[str] = Field(default_factory=list)
    memberships: list[str] = Field(default_factory=list, description="named groupings, e.g. 'London boroughs'")
    sources: list[SourceConfig] = Field(default_factory=list)
    teams: list[TeamConfig] = Field(default_factory=list)
    role_mappings: list[RoleMappingConfig] = Field(default_factory=list)

    @field_validator("domains")
    @classmethod
    def _domains(cls, values: list[str]) -> list[str]:
        for value in values:
            if value != value.lower() or not DOMAIN.match(value):
                raise ValueError(f"{value!r} is not a lower-case DNS domain")
        return values


class ApplicationConfig(_Model):
    """An OIDC application (relying party) registered in configuration."""

    client_id: str = Field(pattern=r"^[A-Za-z0-9._~-]{3,128}$")
    name: str = Field(min_length=1, max_length=200)
    redirect_uris: list[str] = Field(min_length=1)
    post_logout_redirect_uris: list[str] = Field(default_factory=list)
    client_secret: SecretRef
    signing_alg: Literal["ES256", "RS256"] | None = None
    service: str | None = Field(default=None, pattern=SLUG, description="the service policies name (default: client_id)")

    @field_validator("redirect_uris", "post_logout_redirect_uris")
    @classmethod
    def _uris(cls, values: list[str]) -> list[str]:
        for value in values:
            check_absolute_url(value)
        return values


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
    policies: PoliciesConfig | None = None
    base_dir: Path = Field(default=Path("."), exclude=True, description="set by the loader")

    def resolve_path(self, path: Path) -> Path:
        """Return ``path`` made absolute against the configuration file's folder."""
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def is_production(self) -> bool:
        """True unless the file says ``environment: development``."""
        return self.broker.environment == "production"
