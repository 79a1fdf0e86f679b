"""Attribute scoping: a source may assert only what its organisation is authoritative for.

Like Shibboleth's scope checks: an email or username outside the organisation's declared
domains, national RBAC roles from a source whose organisation does not hold that authority,
an attribute outside the organisation's list, or an identity placed in an organisation that
does not trust the source — each is dropped (or, for the organisation, refused) and reported
so the broker can audit it. Home-realm discovery and roles therefore never rest on a typed
or unverified value.
"""

from __future__ import annotations

import dataclasses

from federation.errors import FederationError, FederationErrorCode
from federation.identity import Identity
from federation.organisations import DERIVED_ATTRIBUTES, Organisation

# What a person's home organisation may assert about them unless it says otherwise.
STANDARD_ATTRIBUTES = frozenset(
    {
        "username", "name", "given_name", "family_name", "email", "employee_id", "department", "job_title",
        "manager", "phone", "mobile", "office", "title", "agency", "mash_membership", "admissions_role",
        "role", "team", "gmc_id", "nmc_id", "hcpc_id", "gphc_id", "sds_user_id", "uid", "upn",
    }
)
# What an organisation with national role authority (the NHS through CIS2) may also assert.
NHS_ATTRIBUTES = frozenset(
    {
        "ods_code", "role_name", "selected_role_id", "associated_ods_codes", "nhs_user_id",
        "id_assurance_level", "upstream_amr",
    }
)
DOMAIN_SCOPED = frozenset({"email", "username", "upn"})
NATIONAL_ROLE_ATTRIBUTES = frozenset({"nrbac_roles", "activity_codes"})


@dataclasses.dataclass(frozen=True, slots=True)
class ScopeRules:
    """What one organisation's sources are authoritative for."""

    organisation: str
    domains: frozenset[str]
    attributes: frozenset[str]
    national_roles: bool
    accepts_sources: frozenset[str]

    @classmethod
    def for_organisation(cls, organisation: Organisation) -> ScopeRules:
        """Return the rules ``organisation`` declares (no attribute list: the standard set)."""
        attributes = organisation.authoritative_attributes
        return cls(
            organisation=organisation.id,
            domains=frozenset(organisation.domains),
            attributes=(
                attributes if attributes is not None
                else STANDARD_ATTRIBUTES | (NHS_ATTRIBUTES if organisation.asserts_national_roles else frozenset())
            ),
            national_roles=organisation.asserts_national_roles,
            accepts_sources=organisation.accepts_sources,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Scoped:
    """The identity with out-of-scope values removed, and what was removed (names, never values)."""

    identity: Identity
    dropped: tuple[str, ...]


def apply_scope(identity: Identity, source_id: str, source_organisation: str, rules: ScopeRules) -> Scoped:
    """Return ``identity`` keeping only what ``rules`` (its organisation's) allow from ``source_id``.

    Raises FederationError(INVALID_TOKEN) if the source places the person in an organisation
    that is neither the source's own nor one that accepts this source.
    """
    if identity.organisation != rules.organisation:
        raise FederationError(FederationErrorCode.MISCONFIGURED, "scope rules of another organisation")
    if identity.organisation != source_organisation and source_id not in rules.accepts_sources:
        raise FederationError(
            FederationErrorCode.INVALID_TOKEN,
            f"source {source_id} asserted organisation {identity.organisation}, which does not accept it",
        )
    dropped: list[str] = []
    kept = {}
    for name, attribute in identity.attributes.items():
        if name in DERIVED_ATTRIBUTES:
            dropped.append(f"{name} (set by the organisation registry)")
            continue
        if name in NATIONAL_ROLE_ATTRIBUTES:
            if rules.national_roles:
                kept[name] = attribute
            else:
                dropped.append(f"{name} (no national role authority)")
            continue
        if name not in rules.attributes:
            dropped.append(f"{name} (not authoritative)")
            continue
        if name in DOMAIN_SCOPED and not _in_domains(attribute.value, rules.domains):
            dropped.append(f"{name} (outside the organisation's domains)")
            continue
        kept[name] = attribute
    roles = identity.roles
    if roles and not rules.national_roles:
        dropped.append("roles (no national role authority)")
        roles = ()
    return Scoped(dataclasses.replace(identity, attributes=kept, roles=roles), tuple(dropped))


def _in_domains(value: str | tuple[str, ...], domains: frozenset[str]) -> bool:
    values = value if isinstance(value, tuple) else (value,)
    for item in values:
        local, at, domain = item.strip().lower().rpartition("@")
        if at and (not local or domain not in domains):
            return False
        if not at and "@" not in item and domains:
            # A bare username (sAMAccountName) carries no domain claim to check.
            continue
    return True
