"""The organisation registry and home-realm discovery."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping

from federation.identity import Attribute, Identity
from federation.sources import IdentitySource

REGISTRY_SOURCE = "organisation-registry"
# Attributes only the registry may set: a source asserting them is overruled.
DERIVED_ATTRIBUTES = ("teams", "job_roles")


@dataclasses.dataclass(frozen=True, slots=True)
class Team:
    """A team of an organisation, with the directory groups whose members belong to it."""

    id: str
    name: str
    functions: tuple[str, ...]
    groups: frozenset[str]


@dataclasses.dataclass(frozen=True, slots=True)
class RoleMapping:
    """Job roles given to members of any of ``groups``."""

    groups: frozenset[str]
    job_roles: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Contact:
    """A person or mailbox to reach at an organisation about one matter (``role``: privacy_officer,
    security_contact, technical_contact or service_desk)."""

    role: str
    name: str
    email: str


@dataclasses.dataclass(frozen=True, slots=True)
class Organisation:
    """A member organisation and the identity sources that serve its people."""

    id: str
    name: str
    kind: str
    domains: tuple[str, ...]
    ods_codes: tuple[str, ...]
    sources: tuple[IdentitySource, ...]
    memberships: tuple[str, ...] = ()
    teams: tuple[Team, ...] = ()
    role_mappings: tuple[RoleMapping, ...] = ()
    authoritative_attributes: frozenset[str] | None = None
    asserts_national_roles: bool = False
    accepts_sources: frozenset[str] = frozenset()
    contacts: tuple[Contact, ...] = ()

    def enrich(self, identity: Identity) -> Identity:
        """Return ``identity`` with the teams and job roles its groups give it in this organisation.

        Both are attributes whose provenance is the registry; values a source asserted
        under those names are replaced. An identity of another organisation is returned as is.
        """
        if identity.organisation != self.id:
            return identity
        groups = set(identity.groups)
        teams = tuple(t.id for t in self.teams if t.groups & groups)
        roles = tuple(dict.fromkeys(r for m in self.role_mappings if m.groups & groups for r in m.job_roles))
        now = dt.datetime.now(dt.UTC)
        source = f"{REGISTRY_SOURCE}:{self.id}"
        attributes = {k: v for k, v in identity.attributes.items() if k not in DERIVED_ATTRIBUTES}
        if teams:
            attributes["teams"] = Attribute("teams", teams, source, now)
        if roles:
            attributes["job_roles"] = Attribute("job_roles", roles, source, now)
        return dataclasses.replace(identity, attributes=attributes)


@dataclasses.dataclass(frozen=True, slots=True)
class _Snapshot:
    by_id: Mapping[str, Organisation]
    by_domain: Mapping[str, Organisation]
    sources: Mapping[str, IdentitySource]


def _snapshot(organisations: Iterable[Organisation]) -> _Snapshot:
    by_id: dict[str, Organisation] = {}
    by_domain: dict[str, Organisation] = {}
    sources: dict[str, IdentitySource] = {}
    for org in organisations:
        by_id[org.id] = org
        for domain in org.domains:
            by_domain[domain] = org
        for source in org.sources:
            sources[source.id] = source
    return _Snapshot(by_id, by_domain, sources)


class OrganisationRegistry:
    """Every member organisation, keyed by id and by the domains it is authoritative for.

    The registry is one immutable snapshot; ``replace`` swaps in a new one in a single
    assignment, so a request reading it concurrently sees either the old or the new
    registry, never a mixture (the broker swaps it when the organisation store changes).
    """

    def __init__(self, organisations: Iterable[Organisation]) -> None:
        self._snap = _snapshot(organisations)

    def replace(self, organisations: Iterable[Organisation]) -> None:
        """Make ``organisations`` the registry's whole content (retired ones simply left out)."""
        self._snap = _snapshot(organisations)

    @property
    def organisations(self) -> Mapping[str, Organisation]:
        """Every organisation by id."""
        return self._snap.by_id

    def get(self, organisation_id: str) -> Organisation | None:
        """Return the organisation with this id, or None."""
        return self._snap.by_id.get(organisation_id)

    def source(self, source_id: str) -> IdentitySource | None:
        """Return the identity source with this id, or None (also for a retired organisation's source)."""
        return self._snap.sources.get(source_id)

    def discover(self, login_hint: str) -> Organisation | None:
        """Return the organisation serving ``login_hint`` (``name@domain``), or None.

        Only the part after the last ``@`` is used, matched exactly (case-insensitively)
        against the domains organisations declare; a sub-domain does not match its parent.
        """
        _, at, domain = login_hint.strip().rpartition("@")
        if not at or not domain:
            return None
        return self._snap.by_domain.get(domain.lower())
