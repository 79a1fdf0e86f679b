"""Planning many evaluations into few Cedar calls (used by ``PolicyEngine``).

A decision may need Cedar's answer at the person's own assurance and grant state and,
after a deny, at higher levels or under break glass (obligations). When no policy that
may apply names a Person entity, who else is in the entity set cannot change an answer,
so these "what if" variants (as distinct Person entities) and many people's requests for
the same action and service go to Cedar together: one entity set, one call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

import cedarpy

from policies.model import ASSURANCE_LEVELS, Request
from policies.obligations import Outcome
from policies.partition import Slice

#: Separates a subject from a "what if" variant; real subjects never hold control characters.
WHAT_IF = "\x1f"
#: Requests per Cedar call.
CHUNK = 256

Variant = tuple[int, bool]


@dataclasses.dataclass(slots=True)
class Pending:
    """One request on its way through evaluation: the variants asked and the answers so far."""

    index: int
    request: Request
    grant_active: bool
    variants: tuple[Variant, ...]
    known: dict[Variant, Outcome] = dataclasses.field(default_factory=dict)
    entities: cedarpy.Entities | None = None
    exclusive: bool = True  # the entities hold this person alone, under their own subject
    failure: Exception | None = None
    virtual: bool = False  # only "what if" variants: none is asked under the real subject

    def principal(self, position: int, variant: Variant) -> str:
        """Return the Person id of a variant: the subject itself for the person's own state."""
        subject = self.request.person.subject
        if position == 0 and not self.virtual:
            return subject
        return f"{subject}{WHAT_IF}{variant[0]}{int(variant[1])}"

    @property
    def current(self) -> Variant:
        """The person's own (assurance, break glass active)."""
        return self.variants[0]


def variants(request: Request, grant_active: bool, found: Slice | None, what_ifs: bool) -> tuple[Variant, ...]:
    """Return the (assurance, break glass) pairs worth asking Cedar about up front, own state first.

    Higher levels only if the policies that may apply read the assurance; the other
    grant state only if they read break glass; none unless ``what_ifs`` and batchable.
    """
    own = (request.person.assurance, grant_active)
    if not what_ifs or found is None or not found.batchable:
        return (own,)
    levels = [own[0]]
    if found.reads_assurance:
        levels.extend(level for level in ASSURANCE_LEVELS if level > own[0])
    glasses = [grant_active] + ([not grant_active] if found.reads_break_glass else [])
    return tuple((level, glass) for level in levels for glass in glasses)


def chunks(pending: Iterable[Pending], size: int = CHUNK) -> Iterator[list[Pending]]:
    """Yield groups of at most ``size`` requests with distinct subjects and distinct record ids."""
    chunk: list[Pending] = []
    subjects: set[str] = set()
    records: set[str] = set()
    for item in pending:
        subject = item.request.person.subject
        record = item.request.record.id if item.request.record else None
        if len(chunk) >= size or subject in subjects or (record is not None and record in records):
            yield chunk
            chunk, subjects, records = [], set(), set()
        chunk.append(item)
        subjects.add(subject)
        if record is not None:
            records.add(record)
    if chunk:
        yield chunk
