"""Builds identity sources from configuration through a closed registry of types.

Source types map to builder functions here; configuration can only name a type in this
table, never a module or class to import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config.schema import Settings, StaticSourceConfig
from directories.errors import DirectoryError
from directories.static import StaticDirectory
from federation.directory_source import DirectorySource
from federation.errors import FederationError, FederationErrorCode
from federation.organisations import Organisation, OrganisationRegistry, RoleMapping, Team
from federation.sources import IdentitySource

SourceBuilder = Callable[[Any, str, Settings], IdentitySource]


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


SOURCE_BUILDERS: dict[str, SourceBuilder] = {
    "static": _build_static,
}


def build_registry(settings: Settings) -> OrganisationRegistry:
    """Return the organisation registry with every configured source built.

    Raises FederationError(MISCONFIGURED) for a source that cannot be built.
    """
    organisations = []
    for org in settings.organisations:
        sources = []
        for cfg in org.sources:
            builder = SOURCE_BUILDERS.get(cfg.type)
            if builder is None:
                raise FederationError(FederationErrorCode.MISCONFIGURED, f"unknown source type {cfg.type!r}")
            sources.append(builder(cfg, org.id, settings))
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
            )
        )
    return OrganisationRegistry(organisations)
