"""The organisation registry and home-realm discovery."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from federation.sources import IdentitySource


@dataclasses.dataclass(frozen=True, slots=True)
class Organisation:
    """A member organisation and the identity sources that serve its people."""

    id: str
    name: str
    kind: str
    domains: tuple[str, ...]
    ods_codes: tuple[str, ...]
    sources: tuple[IdentitySource, ...]


class OrganisationRegistry:
    """Every member organisation, keyed by id and by the domains it is authoritative for."""

    def __init__(self, organisations: Iterable[Organisation]) -> None:
        self._by_id: dict[str, Organisation] = {}
        self._by_domain: dict[str, Organisation] = {}
        self._sources: dict[str, IdentitySource] = {}
        for org in organisations:
            self._by_id[org.id] = org
            for domain in org.domains:
                self._by_domain[domain] = org
            for source in org.sources:
                self._sources[source.id] = source

    @property
    def organisations(self) -> Mapping[str, Organisation]:
        """Every organisation by id."""
        return self._by_id

    def get(self, organisation_id: str) -> Organisation | None:
        """Return the organisation with this id, or None."""
        return self._by_id.get(organisation_id)

    def source(self, source_id: str) -> IdentitySource | None:
        """Return the identity source with this id, or None."""
        return self._sources.get(source_id)

    def discover(self, login_hint: str) -> Organisation | None:
        """Return the organisation serving ``login_hint`` (``name@domain``), or None.

        Only the part after the last ``@`` is used, matched exactly (case-insensitively)
        against the domains organisations declare; a sub-domain does not match its parent.
        """
        _, at, domain = login_hint.strip().rpartition("@")
        if not at or not domain:
            return None
        return self._by_domain.get(domain.lower())
