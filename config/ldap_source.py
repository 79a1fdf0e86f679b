"""Configuration of one LDAP or Active Directory identity source.

A complete example (YAML, as it would sit under ``sources:`` in the broker's settings)::

    - type: active_directory
      id: camden-ad
      urls: ["ldaps://dc1.camden.test:636", "ldaps://dc2.camden.test:636"]
      tls_mode: ldaps                 # ldaps | starttls | plain
      ca_file: /etc/supercloud/camden-ca.pem
      tls_server_name: null           # name to check the certificate against when urls use IPs
      base_dn: "DC=camden,DC=test"
      bind_dn: "CN=svc-supercloud,OU=Service Accounts,DC=camden,DC=test"
      bind_password: {env: CAMDEN_LDAP_PASSWORD}   # a SecretRef ({env:} or {file:}), never inline
      user_attribute: userPrincipalName
      group_mode: in_chain            # AD: in_chain | token_groups | member_of; LDAP: recursive | member_of
      attribute_map: {email: mail, employee_id: employeeID}
      connect_timeout_seconds: 3
      response_timeout_seconds: 5

Plain LDAP (no TLS) is accepted only with ``tls_mode: plain`` *and* ``allow_plain: true``;
the directory logs a warning when it is built (and the loader reports it at start-up in
production, see ``config.loader.warnings``).

Group modes (how a person's groups, nested ones included, are found at sign-in):

* ``in_chain`` (AD default): one search with the in-chain matching rule, live.
* ``token_groups`` (AD): the constructed ``tokenGroups`` attribute, live (security groups only).
* ``recursive`` (LDAP default): ``member`` expanded by the broker, one search per nesting level, live.
* ``member_of`` (AD and LDAP, opt-in): no extra LDAP operation at sign-in. The person's
  *direct* groups are their own ``memberOf`` values, read with the user search at every
  sign-in (live: a removal counts at the very next sign-in). *Nesting* (groups in groups,
  group names) comes from a group graph every worker process keeps in memory and reloads in
  the background when it is older than ``group_graph_refresh_seconds``: a group put into (or
  taken out of) another group counts within that many seconds (plus the reload's own time).
  If reloads fail, the graph is used until it is ``group_graph_max_age_seconds`` old; past
  that, with no graph yet (the first sign-ins after start), or when a person's ``memberOf``
  names a group under the group base the graph does not know (created since the last load),
  the sign-in resolves groups live as the default mode does and a reload is started. Gives
  the default mode's answer (up to ``group_max_depth`` levels; exact rules in
  ``directories/ldap/group_graph.py``); OpenLDAP needs ``memberOf`` maintained for every
  group class (memberof overlay or dynlist), AD always has it. Each worker process reads
  every group under the group base once per refresh interval.

``organisation`` may be omitted: a source sits under its organisation in the settings, and
the source registry fills it in. When it is written, the loader checks it names the parent.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from config.secrets import SecretRef

SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
# RFC 4512 §1.4 "descr": an attribute type's short name.
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
_CANONICAL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

#: Canonical attribute name -> LDAP attribute, used when ``attribute_map`` is not given.
DEFAULT_AD_ATTRIBUTES: dict[str, str] = {
    "name": "displayName",
    "given_name": "givenName",
    "family_name": "sn",
    "email": "mail",
    "employee_id": "employeeID",
    "department": "department",
    "job_title": "title",
    "manager": "manager",
    "upn": "userPrincipalName",
}
DEFAULT_LDAP_ATTRIBUTES: dict[str, str] = {
    "name": "cn",
    "given_name": "givenName",
    "family_name": "sn",
    "email": "mail",
    "employee_id": "employeeNumber",
    "department": "ou",
    "job_title": "title",
    "manager": "manager",
}


class LdapSourceConfig(BaseModel):
    """One LDAP / Active Directory directory; see the module docstring for a YAML example.

    ``bind_password`` is the service account's password as a ``SecretRef`` (``{env: NAME}``
    or ``{file: PATH}``; an inline string is refused). The loader resolves every reference;
    ``build_ldap_directory`` calls ``reveal()``. The value never appears in ``repr`` and
    must never be logged.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["ldap", "active_directory"]
    id: str = Field(pattern=SLUG, description="Directory id, unique across the broker")
    organisation: str | None = Field(
        default=None, pattern=SLUG, description="Organisation (registry id); default: the parent organisation"
    )
    urls: tuple[str, ...] = Field(min_length=1, max_length=16, description="Servers, tried in this order")
    base_dn: str = Field(min_length=1, description="Search base for users (and groups unless group_base_dn)")
    group_base_dn: str | None = None
    bind_dn: str = Field(min_length=1, description="Service account used for searches")
    bind_password: SecretRef = Field(description="Service account password: {env: NAME} or {file: PATH}")
    user_attribute: Literal["userPrincipalName", "sAMAccountName", "mail", "uid"] = "userPrincipalName"
    user_object_class: str | None = Field(
        default=None, description="objectClass of people; default 'user' (AD) or 'inetOrgPerson' (LDAP)"
    )
    tls_mode: Literal["ldaps", "starttls", "plain"] = "ldaps"
    ca_file: Path | None = Field(default=None, description="CA bundle (PEM); system CAs when omitted")
    tls_server_name: str | None = Field(
        default=None, description="Host name the certificate must name; default: each URL's host"
    )
    allow_plain: bool = Field(default=False, description="Must be true for tls_mode 'plain'")
    connect_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    response_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    pool_size: int = Field(default=8, ge=1, le=256, description="Idle connections kept per server and kind")
    pool_max_idle_seconds: float = Field(
        default=300.0, gt=0, le=3600, description="Idle connections older than this are closed (AD drops them at 900 s)"
    )
    failure_threshold: int = Field(default=3, ge=1, le=100, description="Failures that open a server's circuit")
    circuit_open_seconds: float = Field(default=30.0, gt=0, le=3600)
    attribute_map: dict[str, str] | None = Field(
        default=None, description="Canonical name -> LDAP attribute; defaults depend on type"
    )
    group_mode: Literal["in_chain", "token_groups", "recursive", "member_of", "none"] | None = Field(
        default=None,
        description="Default: in_chain (active_directory), recursive (ldap); member_of (both) reads direct groups "
        "live from memberOf and nesting from a cached group graph (see the module docstring)",
    )
    group_max_depth: int = Field(
        default=10, ge=1, le=64, description="Nesting depth followed by recursive and member_of expansion"
    )
    group_graph_refresh_seconds: float = Field(
        default=30.0,
        ge=0,
        le=86400,
        description="member_of: the group graph is reloaded in the background once it is older than this, so "
        "nesting changes count within it (direct memberships are live regardless); 0: at every sign-in",
    )
    group_graph_max_age_seconds: float = Field(
        default=120.0,
        ge=0,
        le=86400,
        description="member_of: a graph older than this (reloads failing) is not used; sign-ins resolve groups "
        "live until a reload succeeds. At least group_graph_refresh_seconds",
    )
    status_recheck_seconds: float = Field(
        default=0.0,
        ge=0,
        le=3600,
        description="SSO reuse, token refresh and userinfo re-read the account (leavers) at most this often; "
        "0 (the default): at every use. More trades a leaver's window of access for fewer directory reads",
    )
    min_failure_seconds: float = Field(
        default=0.25,
        ge=0,
        le=5,
        description="A failed sign-in takes at least this long, so timing does not tell who exists",
    )
    lockout_threshold: int | None = Field(
        default=None,
        ge=2,
        le=1000,
        description="The directory's account lockout threshold: the broker stops passing wrong passwords on "
        "one before it, so nobody can lock staff out of the directory through the broker",
    )
    lockout_observation_seconds: int = Field(
        default=1800,
        ge=60,
        le=86400,
        description="The directory's lockout observation window (AD: 'Reset account lockout counter after')",
    )

    sync_clock_skew_seconds: float = Field(
        default=300.0,
        ge=0,
        le=86400,
        description="OpenLDAP directory sync: how far this machine's clock may be ahead of the directory's; the "
        "next run restarts that far before this run's start (changes of those seconds are read again)",
    )

    @field_validator("urls")
    @classmethod
    def _urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        problems = []
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in {"ldap", "ldaps"} or not parts.hostname:
                problems.append(f"{url!r} must be ldap://host[:port] or ldaps://host[:port]")
            elif parts.path not in {"", "/"} or parts.query or parts.fragment or parts.username:
                problems.append(f"{url!r} must not carry a DN, query, fragment or credentials")
        if len(set(urls)) != len(urls):
            problems.append("urls must not repeat")
        if problems:
            raise ValueError("; ".join(problems))
        return urls

    @field_validator("bind_password", mode="before")
    @classmethod
    def _not_inline(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError("a secret is never written inline: use {env: NAME} or {file: PATH}")
        return value

    @field_validator("attribute_map")
    @classmethod
    def _attribute_map(cls, mapping: dict[str, str] | None) -> dict[str, str] | None:
        if mapping is None:
            return None
        problems = [f"canonical name {k!r} must be lower_snake_case" for k in mapping if not _CANONICAL_NAME.match(k)]
        problems += [f"{v!r} is not an LDAP attribute name" for v in mapping.values() if not _ATTRIBUTE_NAME.match(v)]
        if problems:
            raise ValueError("; ".join(problems))
        return mapping

    @field_validator("user_object_class")
    @classmethod
    def _object_class(cls, value: str | None) -> str | None:
        if value is not None and not _ATTRIBUTE_NAME.match(value):
            raise ValueError("must be an objectClass name")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> LdapSourceConfig:
        problems = []
        schemes = {urlsplit(url).scheme for url in self.urls}
        if self.tls_mode == "ldaps" and schemes != {"ldaps"}:
            problems.append("tls_mode 'ldaps' needs every url to be ldaps://")
        if self.tls_mode in {"starttls", "plain"} and schemes != {"ldap"}:
            problems.append(f"tls_mode {self.tls_mode!r} needs every url to be ldap://")
        if self.tls_mode == "plain" and not self.allow_plain:
            problems.append("tls_mode 'plain' sends passwords in clear text: set allow_plain: true to accept it")
        if self.type == "ldap" and self.effective_group_mode in {"in_chain", "token_groups"}:
            problems.append(f"group_mode {self.effective_group_mode!r} exists only in Active Directory")
        if self.group_graph_max_age_seconds < self.group_graph_refresh_seconds:
            problems.append("group_graph_max_age_seconds must be at least group_graph_refresh_seconds")
        if self.type == "ldap" and self.user_attribute in {"userPrincipalName", "sAMAccountName"}:
            problems.append(f"user_attribute {self.user_attribute!r} exists only in Active Directory")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def effective_group_mode(self) -> str:
        """Return ``group_mode`` or the default for ``type``."""
        if self.group_mode is not None:
            return self.group_mode
        return "in_chain" if self.type == "active_directory" else "recursive"

    @property
    def effective_attribute_map(self) -> dict[str, str]:
        """Return ``attribute_map`` or the default map for ``type``."""
        if self.attribute_map is not None:
            return dict(self.attribute_map)
        return dict(DEFAULT_AD_ATTRIBUTES if self.type == "active_directory" else DEFAULT_LDAP_ATTRIBUTES)

    @property
    def effective_user_object_class(self) -> str:
        """Return ``user_object_class`` or the default for ``type``."""
        if self.user_object_class is not None:
            return self.user_object_class
        return "user" if self.type == "active_directory" else "inetOrgPerson"
