"""The canonical Identity every identity source is mapped into.

One small, immutable shape (compare Dex's ``connector.Identity``): a subject keyed by
the issuing source, the member organisation, attributes that each carry their
provenance, groups and roles, and how the person authenticated.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from typing import Any


class AssuranceLevel(enum.IntEnum):
    """Authenticator assurance levels (NIST SP 800-63B §4), one vocabulary for all sources.

    Directory passwords give AAL1, a password plus TOTP AAL2, an NHS smartcard AAL3.
    """

    AAL1 = 1
    AAL2 = 2
    AAL3 = 3

    @property
    def acr(self) -> str:
        """The ``acr`` value the broker issues for this level (e.g. ``urn:supercloud:aal2``)."""
        return f"urn:supercloud:aal{self.value}"

    @classmethod
    def from_acr(cls, acr: str) -> AssuranceLevel | None:
        """Return the level for one of our own ``acr`` values, or None if it is not ours."""
        for level in cls:
            if level.acr == acr:
                return level
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class SubjectRef:
    """Who a source says the person is: unique only together (issuer, subject)."""

    issuer: str
    subject: str


@dataclasses.dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute value with its provenance: which source asserted it, and when."""

    name: str
    value: str | tuple[str, ...]
    source: str
    asserted_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class AuthnContext:
    """How the person authenticated: methods (RFC 8176 ``amr`` values), level and time."""

    methods: tuple[str, ...]
    assurance: AssuranceLevel
    authenticated_at: dt.datetime
    source: str


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    """The canonical identity of one signed-in person.

    ``subject`` is keyed by the source that authenticated the person; ``organisation``
    is the member organisation's id from the registry; ``attributes`` are keyed by
    canonical name; ``groups`` and ``roles`` are names the source is authoritative for.
    """

    subject: SubjectRef
    organisation: str
    attributes: Mapping[str, Attribute]
    groups: tuple[str, ...]
    roles: tuple[str, ...]
    authn: AuthnContext

    def value(self, name: str) -> str | tuple[str, ...] | None:
        """Return the value of attribute ``name``, or None if the identity lacks it."""
        attribute = self.attributes.get(name)
        return attribute.value if attribute else None

    def text(self, name: str) -> str | None:
        """Return attribute ``name`` as one string (first value of a multi-valued one), or None."""
        value = self.value(name)
        if isinstance(value, tuple):
            return value[0] if value else None
        return value

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict; ``from_json`` reverses it exactly."""
        return {
            "subject": {"issuer": self.subject.issuer, "subject": self.subject.subject},
            "organisation": self.organisation,
            "attributes": [
                {
                    "name": a.name,
                    "value": list(a.value) if isinstance(a.value, tuple) else a.value,
                    "source": a.source,
                    "asserted_at": a.asserted_at.isoformat(),
                }
                for a in self.attributes.values()
            ],
            "groups": list(self.groups),
            "roles": list(self.roles),
            "authn": {
                "methods": list(self.authn.methods),
                "assurance": self.authn.assurance.value,
                "authenticated_at": self.authn.authenticated_at.isoformat(),
                "source": self.authn.source,
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Identity:
        """Rebuild an Identity from ``to_json`` output. Raises KeyError/ValueError if malformed."""
        attributes = build_attributes(
            (
                Attribute(
                    name=a["name"],
                    value=tuple(a["value"]) if isinstance(a["value"], list) else a["value"],
                    source=a["source"],
                    asserted_at=dt.datetime.fromisoformat(a["asserted_at"]),
                )
                for a in data["attributes"]
            )
        )
        authn = data["authn"]
        return cls(
            subject=SubjectRef(data["subject"]["issuer"], data["subject"]["subject"]),
            organisation=data["organisation"],
            attributes=attributes,
            groups=tuple(data["groups"]),
            roles=tuple(data["roles"]),
            authn=AuthnContext(
                methods=tuple(authn["methods"]),
                assurance=AssuranceLevel(authn["assurance"]),
                authenticated_at=dt.datetime.fromisoformat(authn["authenticated_at"]),
                source=authn["source"],
            ),
        )


def build_attributes(attributes: Iterable[Attribute]) -> dict[str, Attribute]:
    """Return attributes keyed by name. Raises ValueError if a name appears twice."""
    result: dict[str, Attribute] = {}
    for attribute in attributes:
        if attribute.name in result:
            raise ValueError(f"attribute {attribute.name!r} asserted twice")
        result[attribute.name] = attribute
    return result
