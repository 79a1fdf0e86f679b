"""Builds identity sources from configuration through a closed registry of types.

Source types map to builder functions here; configuration can only name a type in this
table, never a module or class to import.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from config.ldap_source import LdapSourceConfig
from config.oidc_source import OidcSourceConfig
from config.schema import Settings, StaticSourceConfig
from directories.errors import DirectoryError
from directories.ldap import build_ldap_directory
from directories.static import StaticDirectory
from federation.directory_source import DirectorySource, LockoutPolicy
from federation.errors import FederationError, FederationErrorCode
from federation.organisations import Contact, Organisation, OrganisationRegistry, RoleMapping, Team
from federation.sources import IdentitySource
from federation.upstream_oidc.build import build_oidc_source, health_ods_index
from federation.upstream_oidc.client_auth import SigningKeys

if TYPE_CHECKING:
    from federation.upstream_saml import ReplayCache

SourceBuilder = Callable[[Any, str, Settings], IdentitySource]
log = logging.getLogger(__name__)


def _build_static(cfg: StaticSourceConfig, organisation: str, settings: Settings) -> IdentitySource:
    if settings.is_production:
        raise FederationError(
            FederationErrorCode.MISCONFIGURED,
            f"source {cfg.id}: the static directory is refused in production",
        )
    try:
        directory = StaticDirectory.from_file(cfg.id, settings.resolve_path(cfg.users_file))
    except DirectoryError as exc:
        raise FederationError(FederationErrorCode.MISCONFIGURED, exc.detail) from None
    return DirectorySource(cfg.id, organisation, directory)


def _build_ldap(cfg: LdapSourceConfig, organisation: str, settings: Settings) -> IdentitySource:
    """Build an LDAP / Active Directory source (``type: ldap`` or ``active_directory``).

    The organisation is the parent's (the loader has checked a written one agrees); a
    relative ``ca_file`` is resolved against the configuration file's folder. No
    connection is opened here: a directory that is down at start-up does not stop the
    broker, its people see "Sign-in for <organisation> is unavailable" until it answers.
    Plain LDAP in production is logged as a warning at start-up.
    """
    if cfg.tls_mode == "plain" and settings.is_production:
        log.warning(
            "PRODUCTION: organisation %s, directory %s uses plain LDAP (tls_mode: plain, allow_plain: true): "
            "passwords and personal data cross the network unencrypted; configure ldaps or starttls",
            organisation,
            cfg.id,
        )
    resolved = cfg.model_copy(
        update={
            "organisation": organisation,
            "ca_file": settings.resolve_path(cfg.ca_file) if cfg.ca_file is not None else None,
        }
    )
    try:
        directory = build_ldap_directory(resolved)
    except DirectoryError as exc:
        raise FederationError(FederationErrorCode.MISCONFIGURED, exc.detail) from None
    lockout = (
        LockoutPolicy(cfg.lockout_threshold, cfg.lockout_observation_seconds) if cfg.lockout_threshold is not None else None
    )
    return DirectorySource(cfg.id, organisation, directory, lockout)


def _build_oidc(cfg: OidcSourceConfig, organisation: str, settings: Settings) -> IdentitySource:
    """Build an upstream OIDC source (``type: oidc`` or ``nhs_cis2``); nothing is fetched yet.

    People may be placed, by an ODS code it declares, only in a health organisation that is
    the source's own or accepts the source (``accepts_sources``); else in the source's own.
    """
    index = health_ods_index(
        (o.id, o.kind, o.ods_codes)
        for o in settings.organisations
        if o.id == organisation or cfg.id in o.accepts_sources
    )
    return build_oidc_source(cfg, organisation, index, production=settings.is_production)


def _build_saml(cfg: Any, organisation: str, settings: Settings) -> IdentitySource:
    """Build an upstream SAML source; pysaml2 (slow to import: it loads XML schemas) only when one is configured."""
    from federation.upstream_saml import build_saml_source

    return build_saml_source(cfg, organisation, settings)


SOURCE_BUILDERS: dict[str, SourceBuilder] = {
    "static": _build_static,
    "ldap": _build_ldap,
    "active_directory": _build_ldap,
    "saml": _build_saml,
    "oidc": _build_oidc,
    "nhs_cis2": _build_oidc,
}


def build_registry(
    settings: Settings, *, signing_keys: SigningKeys | None = None, replay_cache: "ReplayCache | None" = None
) -> OrganisationRegistry:
    """Return the organisation registry with every configured source built.

    ``signing_keys`` (the broker's key ring) is handed to sources that sign with it
    (``use_signing_keys``: upstream OIDC ``private_key_jwt``); ``replay_cache`` (the state
    store) to sources that keep one (``use_replay_cache``: upstream SAML assertion IDs).
    Raises FederationError(MISCONFIGURED) for a source that cannot be built.
    """
    organisations = []
    for org in settings.organisations:
        sources = []
        for cfg in org.sources:
            builder = SOURCE_BUILDERS.get(cfg.type)
            if builder is None:
                raise FederationError(FederationErrorCode.MISCONFIGURED, f"unknown source type {cfg.type!r}")
            source = builder(cfg, org.id, settings)
            if signing_keys is not None and hasattr(source, "use_signing_keys"):
                source.use_signing_keys(signing_keys)
            if replay_cache is not None and hasattr(source, "use_replay_cache"):
                source.use_replay_cache(replay_cache)
            sources.append(source)
        organisations.append(
            Organisation(
                id=org.id,
                name=org.name,
                kind=org.kind,
                domains=tuple(org.domains),
                ods_codes=tuple(org.ods_codes),
                sources=tuple(sources),
                memberships=tuple(org.memberships),
                teams=tuple(
                    Team(id=t.id, name=t.name, functions=tuple(t.functions), groups=frozenset(t.groups)) for t in org.teams
                ),
                role_mappings=tuple(
                    RoleMapping(groups=frozenset(m.groups), job_roles=tuple(m.job_roles)) for m in org.role_mappings
                ),
                authoritative_attributes=(
                    frozenset(org.authoritative_attributes) if org.authoritative_attributes is not None else None
                ),
                asserts_national_roles=org.asserts_national_roles,
                accepts_sources=frozenset(org.accepts_sources),
                contacts=tuple(Contact(c.role, c.name, c.email) for c in org.contacts),
            )
        )
    return OrganisationRegistry(organisations)
