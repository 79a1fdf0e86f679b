"""Build PersonFacts from the JSON form of the canonical Identity (``Identity.to_json()``).

``policies`` may not import ``federation``, but it can read the plain JSON shape an
Identity serialises to, so the broker can write::

    person = person_from_identity_json(identity.to_json(), organisation_kind=org.kind)

The mapping, each fact keeping its provenance:

- ``subject``: ``issuer|subject``;
- ``organisation``, ``assurance``, ``groups``: from the identity and its authentication
  context (source and time of the authentication);
- ``kind``: the organisation's kind from the registry (source ``organisation-registry``);
- ``roles``: NHS national RBAC codes (``R8000`` or ``S0080:G0450:R8000``) become
  ``nrbac_roles`` (the R code), every other role a ``job_roles`` entry;
- attributes named ``teams``, ``job_roles``, ``nrbac_roles`` or ``activity_codes`` add
  to those facts (as lists); a list gathered from several sources names them all
  (``directory:camden-ad+camden-ad``) and carries the latest time;
- every other attribute becomes a releasable fact with its own provenance, except
  attributes named ``organisation``, ``kind``, ``assurance`` or ``groups``: a source
  cannot overrule the authentication context, so those are dropped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from policies.errors import PolicyError, PolicyErrorCode
from policies.model import SCALAR_FACTS, BreakGlassGrant, Fact, PersonFacts, parse_time

REGISTRY_SOURCE = "organisation-registry"
_NRBAC = re.compile(r"^(?:S\d{4}:G\d{4}:)?(R\d{4})$")
_LIST_ATTRIBUTES = ("teams", "job_roles", "nrbac_roles", "activity_codes")
_PROTECTED = (*SCALAR_FACTS, "groups")


def person_from_identity_json(
    data: Mapping[str, Any],
    *,
    organisation_kind: str,
    break_glass: BreakGlassGrant | None = None,
) -> PersonFacts:
    """Return the PersonFacts of an identity given in ``Identity.to_json()`` form.

    Raises PolicyError(INVALID_INPUT) if the document is malformed or a value is unusable.
    """
    try:
        subject = f"{data['subject']['issuer']}|{data['subject']['subject']}"
        authn = data["authn"]
        source = str(authn["source"])
        when = parse_time(authn["authenticated_at"])
        facts: dict[str, Fact] = {
            "organisation": Fact(str(data["organisation"]), source, when),
            "kind": Fact(organisation_kind, REGISTRY_SOURCE, when),
            "assurance": Fact(int(authn["assurance"]), source, when),
            "groups": Fact(tuple(data.get("groups", ())), source, when),
        }
        lists: dict[str, _ListFact] = {}
        for role in data.get("roles", ()):
            match = _NRBAC.match(str(role))
            name, value = ("nrbac_roles", match.group(1)) if match else ("job_roles", str(role))
            lists.setdefault(name, _ListFact()).add([value], source, when)
        for attribute in data.get("attributes", ()):
            name = attribute["name"]
            value = attribute["value"]
            asserted = parse_time(attribute["asserted_at"])
            if name in _PROTECTED:
                continue
            if name in _LIST_ATTRIBUTES:
                values = [value] if isinstance(value, str) else list(value)
                lists.setdefault(name, _ListFact()).add(values, str(attribute["source"]), asserted)
                continue
            facts[name] = Fact(tuple(value) if isinstance(value, list) else value, attribute["source"], asserted)
        for name, collected in lists.items():
            facts[name] = collected.fact()
    except (KeyError, TypeError, ValueError) as error:
        raise PolicyError(PolicyErrorCode.INVALID_INPUT, f"malformed identity document: {error!r}") from error
    return PersonFacts(subject=subject, facts=facts, break_glass=break_glass)


@dataclasses.dataclass
class _ListFact:
    """Values of one list fact gathered from several places; provenance names every source."""

    values: list[str] = dataclasses.field(default_factory=list)
    sources: list[str] = dataclasses.field(default_factory=list)
    latest: dt.datetime | None = None

    def add(self, values: list[str], source: str, when: dt.datetime) -> None:
        self.values.extend(str(v) for v in values)
        if source not in self.sources:
            self.sources.append(source)
        if self.latest is None or when > self.latest:
            self.latest = when

    def fact(self) -> Fact:
        when = self.latest or dt.datetime.now(dt.UTC)
        return Fact(tuple(dict.fromkeys(self.values)), "+".join(self.sources), when)
