"""What the console needs to show and edit member organisations, declared here as protocols.

The broker hands in ``broker.organisations_admin.OrganisationAdmin``, which satisfies
``OrganisationDirectory`` structurally; this package imports nothing from ``broker`` (the
broker registers the console, so an import the other way would be a cycle).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable


class ContactView(Protocol):
    """A contact at an organisation (privacy officer, security contact ...)."""

    role: str
    name: str
    email: str


class OrganisationView(Protocol):
    """One organisation as the console shows it."""

    id: str
    name: str
    kind: str
    domains: tuple[str, ...]
    ods_codes: tuple[str, ...]
    sources: tuple[str, ...]
    accepts_sources: tuple[str, ...]
    authoritative_attributes: tuple[str, ...] | None
    asserts_national_roles: bool
    memberships: tuple[str, ...]
    contacts: Sequence[ContactView]
    origin: str
    managed: bool
    revision: int
    retired: bool

    def declaration(self) -> dict[str, Any]:
        """The editable fields as JSON-ready values."""
        ...


@runtime_checkable
class OrganisationDirectory(Protocol):
    """List, read, add, change and retire organisations.

    Changes raise ``ValueError`` whose ``problems`` attribute lists every problem (each naming
    its field), and ``LookupError`` for an unknown or retired id; every change and refusal is
    audited by the service, with the declaration before and after.
    """

    def list(self, *, include_retired: bool = False) -> list[Any]:
        """Every organisation (``OrganisationView``), ordered by id."""
        ...

    def get(self, organisation_id: str) -> Any | None:
        """The organisation (``OrganisationView``) or None."""
        ...

    def known_sources(self) -> dict[str, str]:
        """Identity source ids that may be referenced, with the organisation each is configured under."""
        ...

    def create(self, record: Any, *, actor: str) -> Any:
        """Add an organisation; return it as stored."""
        ...

    def update(self, organisation_id: str, changes: Mapping[str, Any], *, actor: str,
               expected_revision: int | None = None) -> Any:
        """Change editable fields (refused if the revision moved since ``expected_revision``)."""
        ...

    def retire(self, organisation_id: str, *, actor: str, reason: str) -> Any:
        """Retire an organisation (it leaves discovery and scoping)."""
        ...
