"""The identity store as policy subjects: every synced person, as the policies would see them.

``supercloud policy who-can / what-can / explain`` ask their questions over this when no
``--people`` file is given. Each person a directory sync stored (``broker.directory_people``)
becomes the canonical Identity a password sign-in through that directory would produce
(same subject, attributes and groups, enriched with the teams and job roles the
organisation registry maps their groups to), authenticated at AAL1 as of the time the
sync last saw them; a decision that needs more says so as a step-up obligation. People
whose account is disabled, expired or deleted cannot sign in at all and are left out
(counted in ``PeopleInStore.leavers``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from sqlalchemy.orm import Session, sessionmaker

from broker.directory_people import GROUPS_ATTRIBUTE, LEAVER_STATUSES, DirectoryPeople, DirectoryPerson
from federation.directory_source import directory_issuer
from federation.identity import (
    AssuranceLevel,
    Attribute,
    AuthnContext,
    Identity,
    SubjectRef,
    build_attributes,
)
from federation.organisations import OrganisationRegistry
from policies.adapters import person_from_identity_json
from policies.errors import PolicyError
from policies.model import PersonFacts

@dataclasses.dataclass(frozen=True, slots=True)
class PeopleInStore:
    """The people found: by name (username and subject both find a person), plus what was left out."""

    people: Mapping[str, PersonFacts]
    leavers: int
    unusable: tuple[str, ...]

    def find(self, wanted: str) -> PersonFacts | None:
        """Return the person whose username or policy subject is ``wanted``, or None."""
        found = self.people.get(wanted)
        if found is not None:
            return found
        return next((p for p in self.people.values() if p.subject == wanted), None)


def identity_of(person: DirectoryPerson) -> Identity:
    """Return the Identity a password sign-in as ``person`` would start from (before enrichment)."""
    source = f"directory:{person.directory_id}"
    when = person.last_seen_at
    values = {k: v for k, v in person.attributes.items() if k != GROUPS_ATTRIBUTE}
    values["username"] = person.username
    attributes = build_attributes(
        Attribute(name=name, value=tuple(value) if isinstance(value, list) else value, source=source, asserted_at=when)
        for name, value in values.items()
    )
    groups = person.attributes.get(GROUPS_ATTRIBUTE) or ()
    return Identity(
        subject=SubjectRef(directory_issuer(person.directory_id), person.object_id),
        organisation=person.organisation,
        attributes=attributes,
        groups=tuple(sorted({str(g) for g in groups})),
        roles=(),
        authn=AuthnContext(methods=("pwd",), assurance=AssuranceLevel.AAL1, authenticated_at=when,
                           source=person.directory_id),
    )


def people_in_store(db: sessionmaker[Session], registry: OrganisationRegistry) -> PeopleInStore:
    """Return every current person of every registered organisation as policy subjects.

    A person whose stored attributes the policies cannot use is left out and named in
    ``unusable`` (with the reason), never silently dropped.
    """
    store = DirectoryPeople(db)
    people: dict[str, PersonFacts] = {}
    leavers = 0
    unusable: list[str] = []
    for organisation in registry.organisations.values():
        for person in store.people(organisation.id):
            if person.status in LEAVER_STATUSES:
                leavers += 1
                continue
            identity = organisation.enrich(identity_of(person))
            try:
                facts = person_from_identity_json(identity.to_json(), organisation_kind=organisation.kind)
            except PolicyError as error:
                unusable.append(f"{person.username} ({organisation.id}): {error.detail}")
                continue
            people[person.username] = facts
    return PeopleInStore(people=people, leavers=leavers, unusable=tuple(unusable))
