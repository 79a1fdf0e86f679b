"""Plain input and output types of the policy engine.

The engine sits below ``federation`` in the import order, so it cannot take an
``Identity``: the broker converts an Identity into :class:`PersonFacts` (one
:class:`Fact` per attribute, each carrying its provenance) and the organisation
registry into an :class:`Environment`. Every constructor checks its values and
raises ``PolicyError(INVALID_INPUT)`` naming each problem, so a malformed input
never reaches Cedar.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from policies.errors import PolicyError, PolicyErrorCode

#: Authenticator assurance levels the engine understands (NIST SP 800-63B AAL1..AAL3).
ASSURANCE_LEVELS: tuple[int, ...] = (1, 2, 3)
#: What kind of organisation a person works for.
PERSON_KINDS: tuple[str, ...] = ("borough", "health", "operator")
#: Organisation kinds (the same vocabulary as people).
ORGANISATION_KINDS: tuple[str, ...] = PERSON_KINDS
#: Reason codes a break-glass grant must carry (SCENARIOS policy 3).
BREAK_GLASS_REASON_CODES: tuple[str, ...] = ("01", "02", "03", "04", "05", "06")
#: The longest a break-glass grant may last.
BREAK_GLASS_MAX_DURATION = dt.timedelta(hours=1)
#: Actions a caller may ask about; ``release`` is evaluated by the engine itself.
REQUEST_ACTIONS: tuple[str, ...] = ("sign_in", "read", "write")
#: The action evaluated once per candidate attribute to decide attribute release.
RELEASE_ACTION = "release"

#: Facts the policies read, with the Python type each must have.
SET_FACTS: tuple[str, ...] = ("groups", "teams", "job_roles", "nrbac_roles", "activity_codes")
SCALAR_FACTS: tuple[str, ...] = ("organisation", "kind", "assurance")
DECISION_FACTS: tuple[str, ...] = SCALAR_FACTS + SET_FACTS

_MAX_ID = 256
_MAX_TEXT = 2000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,127}$")

FactValue = str | int | bool | tuple[str, ...]


def _problem(problems: list[str], path: str, message: str) -> None:
    problems.append(f"{path}: {message}")


def check_identifier(value: object, path: str, problems: list[str]) -> None:
    """Append a problem to ``problems`` unless ``value`` is a usable identifier.

    An identifier is a non-empty string of at most 256 characters without control
    characters. Quotes and Cedar syntax are allowed: identifiers reach Cedar only as
    JSON data, never as policy text. Returns None.
    """
    if not isinstance(value, str) or not value:
        _problem(problems, path, "must be a non-empty string")
    elif len(value) > _MAX_ID:
        _problem(problems, path, f"longer than {_MAX_ID} characters")
    elif _CONTROL.search(value):
        _problem(problems, path, "contains control characters")


def _raise_if(problems: list[str], what: str) -> None:
    if problems:
        raise PolicyError(PolicyErrorCode.INVALID_INPUT, f"invalid {what}", problems)


def _aware(value: object, path: str, problems: list[str]) -> None:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        _problem(problems, path, "must be a timezone-aware datetime")


@dataclasses.dataclass(frozen=True, slots=True)
class Fact:
    """One value about a person with its provenance: which source asserted it, and when."""

    value: FactValue
    source: str
    asserted_at: dt.datetime

    def __post_init__(self) -> None:
        problems: list[str] = []
        value = self.value
        if isinstance(value, list):
            object.__setattr__(self, "value", tuple(value))
            value = self.value
        if isinstance(value, tuple):
            for i, item in enumerate(value):
                if not isinstance(item, str) or len(item) > _MAX_TEXT or _CONTROL.search(item):
                    _problem(problems, f"value[{i}]", "must be a string without control characters")
        elif not isinstance(value, (str, int, bool)):
            _problem(problems, "value", f"unsupported type {type(value).__name__}")
        elif isinstance(value, str) and (len(value) > _MAX_TEXT or _CONTROL.search(value)):
            _problem(problems, "value", f"must be at most {_MAX_TEXT} characters without control characters")
        check_identifier(self.source, "source", problems)
        _aware(self.asserted_at, "asserted_at", problems)
        _raise_if(problems, "fact")


@dataclasses.dataclass(frozen=True, slots=True)
class BreakGlassGrant:
    """An emergency-access grant the person obtained by stating a reason (policy 3).

    The engine treats it as active only while ``granted_at <= now < expires_at``, the
    grant lasts at most one hour, the reason code is one of 01..06 and the
    justification is not blank.
    """

    reason_code: str
    justification: str
    granted_at: dt.datetime
    expires_at: dt.datetime

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.reason_code not in BREAK_GLASS_REASON_CODES:
            _problem(problems, "reason_code", f"must be one of {', '.join(BREAK_GLASS_REASON_CODES)}")
        if not isinstance(self.justification, str) or not self.justification.strip():
            _problem(problems, "justification", "must be non-blank free text")
        elif len(self.justification) > _MAX_TEXT:
            _problem(problems, "justification", f"longer than {_MAX_TEXT} characters")
        _aware(self.granted_at, "granted_at", problems)
        _aware(self.expires_at, "expires_at", problems)
        if not problems:
            if self.expires_at <= self.granted_at:
                _problem(problems, "expires_at", "must be after granted_at")
            elif self.expires_at - self.granted_at > BREAK_GLASS_MAX_DURATION:
                _problem(problems, "expires_at", "a grant lasts at most one hour")
        _raise_if(problems, "break-glass grant")

    def active_at(self, now: dt.datetime) -> bool:
        """Return True if the grant is in force at ``now``."""
        return self.granted_at <= now < self.expires_at


@dataclasses.dataclass(frozen=True, slots=True)
class PersonFacts:
    """Everything the policies may know about one person, each fact with provenance.

    ``subject`` is the stable key of the person (the broker uses ``issuer|subject``).
    ``facts`` must hold ``organisation`` (str), ``kind`` (borough/health/operator) and
    ``assurance`` (1..3); the set-valued facts ``groups``, ``teams``, ``job_roles``,
    ``nrbac_roles`` (national RBAC job role codes such as R8000) and
    ``activity_codes`` (B codes) are tuples of strings and default to empty. Any other
    fact (``name``, ``email``, ``role`` ...) is never read by a policy but may be
    released to a service; its name is a candidate for attribute release.
    """

    subject: str
    facts: Mapping[str, Fact]
    break_glass: BreakGlassGrant | None = None

    def __post_init__(self) -> None:
        problems: list[str] = []
        check_identifier(self.subject, "subject", problems)
        if not isinstance(self.facts, Mapping):
            _problem(problems, "facts", "must be a mapping of name to Fact")
            _raise_if(problems, "person")
        for name, fact in self.facts.items():
            if not isinstance(name, str) or not _ATTRIBUTE_NAME.match(name):
                _problem(problems, f"facts[{name!r}]", "name must be a letter then up to 127 of [A-Za-z0-9_.:-]")
            if not isinstance(fact, Fact):
                _problem(problems, f"facts[{name!r}]", "must be a Fact")
        facts = {k: v for k, v in self.facts.items() if isinstance(v, Fact)}
        for name in SCALAR_FACTS:
            if name not in facts:
                _problem(problems, f"facts.{name}", "is required")
        if "organisation" in facts:
            check_identifier(facts["organisation"].value, "facts.organisation", problems)
        if "kind" in facts and facts["kind"].value not in PERSON_KINDS:
            _problem(problems, "facts.kind", f"must be one of {', '.join(PERSON_KINDS)}")
        if "assurance" in facts:
            assurance = facts["assurance"].value
            if isinstance(assurance, bool) or assurance not in ASSURANCE_LEVELS:
                _problem(problems, "facts.assurance", "must be the integer 1, 2 or 3")
        for name in SET_FACTS:
            fact = facts.get(name)
            if fact is not None and not isinstance(fact.value, tuple):
                _problem(problems, f"facts.{name}", "must be a list of strings")
        if self.break_glass is not None and not isinstance(self.break_glass, BreakGlassGrant):
            _problem(problems, "break_glass", "must be a BreakGlassGrant or None")
        _raise_if(problems, "person")
        object.__setattr__(self, "facts", MappingProxyType(dict(self.facts)))

    @property
    def organisation(self) -> str:
        """The id of the person's organisation."""
        return str(self.facts["organisation"].value)

    @property
    def assurance(self) -> int:
        """The assurance level the person authenticated at now (1..3)."""
        return int(self.facts["assurance"].value)

    def strings(self, name: str) -> tuple[str, ...]:
        """Return set-valued fact ``name`` as a tuple (empty if the person lacks it)."""
        fact = self.facts.get(name)
        if fact is None:
            return ()
        return fact.value if isinstance(fact.value, tuple) else (str(fact.value),)

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        *,
        default_source: str = "unspecified",
        default_time: dt.datetime | None = None,
    ) -> PersonFacts:
        """Build PersonFacts from plain data (a test case, a JSON document).

        ``data`` holds ``subject``, optional ``break_glass`` (reason_code,
        justification, granted_at, expires_at) and every other key is a fact: either a
        plain value (given ``default_source`` and ``default_time`` as provenance) or a
        mapping ``{value, source, asserted_at}``. Returns the PersonFacts; raises
        PolicyError(INVALID_INPUT) listing every problem.
        """
        if not isinstance(data, Mapping):
            raise PolicyError(PolicyErrorCode.INVALID_INPUT, "a person must be a mapping")
        when = default_time or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        problems: list[str] = []
        facts: dict[str, Fact] = {}
        grant: BreakGlassGrant | None = None
        for key, raw in data.items():
            try:
                if key == "subject":
                    continue
                if key == "break_glass":
                    grant = None if raw is None else _grant_from_mapping(raw)
                elif isinstance(raw, Mapping):
                    facts[key] = Fact(
                        value=_plain_value(raw.get("value")),
                        source=raw.get("source", default_source),
                        asserted_at=parse_time(raw.get("asserted_at", when)),
                    )
                else:
                    facts[key] = Fact(value=_plain_value(raw), source=default_source, asserted_at=when)
            except PolicyError as error:
                problems.extend(f"{key}.{p}" for p in error.problems or (error.detail,))
        _raise_if(problems, "person")
        return cls(subject=data.get("subject"), facts=facts, break_glass=grant)  # type: ignore[arg-type]


def _plain_value(raw: object) -> FactValue:
    if isinstance(raw, (list, tuple)):
        return tuple(raw)  # items are checked by Fact
    return raw  # type: ignore[return-value]


def parse_time(raw: object) -> dt.datetime:
    """Return ``raw`` (a datetime or ISO 8601 text) as a datetime. Raises PolicyError(INVALID_INPUT)."""
    if isinstance(raw, dt.datetime):
        return raw
    if isinstance(raw, str):
        try:
            return dt.datetime.fromisoformat(raw)
        except ValueError:
            pass
    raise PolicyError(PolicyErrorCode.INVALID_INPUT, "invalid time", [f"{raw!r} is not an ISO 8601 time"])


def _grant_from_mapping(raw: object) -> BreakGlassGrant:
    if not isinstance(raw, Mapping):
        raise PolicyError(PolicyErrorCode.INVALID_INPUT, "invalid break-glass grant", ["must be a mapping"])
    granted_at = parse_time(raw.get("granted_at"))
    expires_raw = raw.get("expires_at")
    expires_at = granted_at + BREAK_GLASS_MAX_DURATION if expires_raw is None else parse_time(expires_raw)
    return BreakGlassGrant(
        reason_code=str(raw.get("reason_code", "")),
        justification=raw.get("justification", ""),
        granted_at=granted_at,
        expires_at=expires_at,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class RecordRef:
    """A case record a person asks to read or write: its id and its home borough."""

    id: str
    home_borough: str

    def __post_init__(self) -> None:
        problems: list[str] = []
        check_identifier(self.id, "record.id", problems)
        check_identifier(self.home_borough, "record.home_borough", problems)
        _raise_if(problems, "record")


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """One question for the engine: may ``person`` do ``action`` on ``service`` at ``now``?

    ``record`` names the case record for ``read``/``write``. ``requested_attributes``
    are the candidates for release on ``sign_in`` (None: every fact the person has).
    """

    person: PersonFacts
    action: str
    service: str
    now: dt.datetime
    record: RecordRef | None = None
    requested_attributes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not isinstance(self.person, PersonFacts):
            _problem(problems, "person", "must be PersonFacts")
        if self.action not in REQUEST_ACTIONS:
            _problem(problems, "action", f"must be one of {', '.join(REQUEST_ACTIONS)}")
        check_identifier(self.service, "service", problems)
        _aware(self.now, "now", problems)
        if self.action in ("read", "write") and not isinstance(self.record, RecordRef):
            _problem(problems, "record", f"is required for {self.action}")
        if self.action == "sign_in" and self.record is not None:
            _problem(problems, "record", "must be empty for sign_in")
        if self.requested_attributes is not None:
            if isinstance(self.requested_attributes, str):
                _problem(problems, "requested_attributes", "must be a list of names, not a string")
            else:
                object.__setattr__(self, "requested_attributes", tuple(self.requested_attributes))
                for name in self.requested_attributes:
                    if not isinstance(name, str) or not _ATTRIBUTE_NAME.match(name):
                        _problem(problems, "requested_attributes", f"{name!r} is not an attribute name")
        _raise_if(problems, "request")


# --- the environment: organisations, agreements, teams and services -------------------


@dataclasses.dataclass(frozen=True, slots=True)
class OrganisationFacts:
    """A member organisation as the policies see it.

    ``memberships`` are named groupings such as ``London boroughs`` or
    ``London health organisations``.
    """

    id: str
    name: str
    kind: str
    memberships: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Section75Agreement:
    """A Section 75 (NHS Act 2006) partnership agreement naming its partner organisations."""

    id: str
    parties: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class TeamFacts:
    """A team of one organisation; ``functions`` are what it does (``discharge``, ``mash``)."""

    id: str
    name: str
    organisation: str
    functions: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceFacts:
    """A relying party (service) the broker signs people in to."""

    id: str
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class Environment:
    """The stable facts around every request; compiled once into Cedar entities."""

    organisations: tuple[OrganisationFacts, ...] = ()
    agreements: tuple[Section75Agreement, ...] = ()
    teams: tuple[TeamFacts, ...] = ()
    services: tuple[ServiceFacts, ...] = ()

    def problems(self) -> list[str]:
        """Return every problem with this environment (empty when it is usable)."""
        problems: list[str] = []
        org_ids: set[str] = set()
        for i, org in enumerate(self.organisations):
            check_identifier(org.id, f"organisations[{i}].id", problems)
            if org.id in org_ids:
                _problem(problems, f"organisations[{i}].id", f"duplicate id {org.id!r}")
            org_ids.add(org.id)
            if org.kind not in ORGANISATION_KINDS:
                _problem(problems, f"organisations[{i}].kind", f"must be one of {', '.join(ORGANISATION_KINDS)}")
        for i, agreement in enumerate(self.agreements):
            check_identifier(agreement.id, f"agreements[{i}].id", problems)
            if len(set(agreement.parties)) < 2:
                _problem(problems, f"agreements[{i}].parties", "an agreement names at least two organisations")
            for party in agreement.parties:
                if party not in org_ids:
                    _problem(problems, f"agreements[{i}].parties", f"unknown organisation {party!r}")
        team_ids: set[str] = set()
        for i, team in enumerate(self.teams):
            check_identifier(team.id, f"teams[{i}].id", problems)
            if team.id in team_ids:
                _problem(problems, f"teams[{i}].id", f"duplicate id {team.id!r}")
            team_ids.add(team.id)
            if team.organisation not in org_ids:
                _problem(problems, f"teams[{i}].organisation", f"unknown organisation {team.organisation!r}")
            for function in team.functions:
                check_identifier(function, f"teams[{i}].functions", problems)
        service_ids: set[str] = set()
        for i, service in enumerate(self.services):
            check_identifier(service.id, f"services[{i}].id", problems)
            if service.id in service_ids:
                _problem(problems, f"services[{i}].id", f"duplicate id {service.id!r}")
            service_ids.add(service.id)
        return problems

    def organisation(self, organisation_id: str) -> OrganisationFacts | None:
        """Return the organisation with this id, or None."""
        for org in self.organisations:
            if org.id == organisation_id:
                return org
        return None

    def partners(self, organisation_id: str) -> tuple[str, ...]:
        """Return the ids of every organisation sharing a Section 75 agreement with this one."""
        found: list[str] = []
        for agreement in self.agreements:
            if organisation_id in agreement.parties:
                found.extend(p for p in agreement.parties if p != organisation_id and p not in found)
        return tuple(found)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Environment:
        """Build an Environment from plain data (YAML). Raises PolicyError(ENVIRONMENT_INVALID)."""
        if not isinstance(data, Mapping):
            raise PolicyError(PolicyErrorCode.ENVIRONMENT_INVALID, "the environment must be a mapping")
        try:
            env = cls(
                organisations=tuple(
                    OrganisationFacts(
                        id=o["id"], name=o.get("name", o["id"]), kind=o["kind"],
                        memberships=_string_list(o.get("memberships", ()), "memberships"),
                    )
                    for o in _mapping_list(data.get("organisations", ()), "organisations")
                ),
                agreements=tuple(
                    Section75Agreement(id=a["id"], parties=_string_list(a["parties"], "parties"))
                    for a in _mapping_list(data.get("agreements", ()), "agreements")
                ),
                teams=tuple(
                    TeamFacts(
                        id=t["id"], name=t.get("name", t["id"]), organisation=t["organisation"],
                        functions=_string_list(t.get("functions", ()), "functions"),
                    )
                    for t in _mapping_list(data.get("teams", ()), "teams")
                ),
                services=tuple(
                    ServiceFacts(id=s["id"], name=s.get("name", s["id"]))
                    for s in _mapping_list(data.get("services", ()), "services")
                ),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise PolicyError(
                PolicyErrorCode.ENVIRONMENT_INVALID, "malformed environment", [f"missing or wrong field: {error}"]
            ) from error
        problems = env.problems()
        if problems:
            raise PolicyError(PolicyErrorCode.ENVIRONMENT_INVALID, "invalid environment", problems)
        return env


def _mapping_list(value: object, what: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, Mapping) for v in value):
        raise TypeError(f"{what} must be a list of mappings")
    return list(value)


def _string_list(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{what} must be a list of strings")
    return tuple(value)


# --- decisions and obligations ------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class StepUp:
    """Obligation: authenticate again at ``min_assurance`` or higher; then ``policy_ids`` permit."""

    min_assurance: int
    policy_ids: tuple[str, ...]
    kind: str = "step_up"

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {"kind": self.kind, "min_assurance": self.min_assurance, "policy_ids": list(self.policy_ids)}


@dataclasses.dataclass(frozen=True, slots=True)
class BreakGlassRequired:
    """Obligation: access exists only under emergency access.

    The person must supply one of ``reason_codes`` and a free-text justification; the
    grant lasts ``max_duration_seconds``; ``policy_ids`` would then permit.
    """

    policy_ids: tuple[str, ...]
    reason_codes: tuple[str, ...] = BREAK_GLASS_REASON_CODES
    justification_required: bool = True
    max_duration_seconds: int = int(BREAK_GLASS_MAX_DURATION.total_seconds())
    kind: str = "break_glass"

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {
            "kind": self.kind,
            "policy_ids": list(self.policy_ids),
            "reason_codes": list(self.reason_codes),
            "justification_required": self.justification_required,
            "max_duration_seconds": self.max_duration_seconds,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class BreakGlassAlert:
    """Obligation on a permit that rests on a break-glass grant.

    The broker must alert the privacy officer of ``organisation`` (with no patient or
    user detail) and put the access into the review queue.
    """

    organisation: str
    reason_code: str
    expires_at: dt.datetime
    policy_ids: tuple[str, ...]
    kind: str = "break_glass_alert"

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {
            "kind": self.kind,
            "organisation": self.organisation,
            "reason_code": self.reason_code,
            "expires_at": self.expires_at.isoformat(),
            "policy_ids": list(self.policy_ids),
        }


Obligation = StepUp | BreakGlassRequired | BreakGlassAlert


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """The engine's answer to one Request.

    ``allowed`` is the decision (default deny; forbid overrides permit). ``policy_ids``
    are the ``@id`` of the policies that decided: the permits that matched, or the
    forbids that denied (empty for a default deny). ``obligations`` say what would or
    must happen next. ``released`` are the attribute names the service may receive and
    ``release_policy_ids`` which policy released each. ``errors`` explain a fail-closed
    deny. ``bundle`` names the bundle and its version (``london@2026.11.28-1``).
    """

    request: Request
    allowed: bool
    policy_ids: tuple[str, ...]
    bundle: str
    obligations: tuple[Obligation, ...] = ()
    released: tuple[str, ...] = ()
    release_policy_ids: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    withheld: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    break_glass_active: bool = False

    @property
    def effect(self) -> str:
        """``permit`` or ``deny``."""
        return "permit" if self.allowed else "deny"

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable summary for the decision log (no attribute values)."""
        return {
            "bundle": self.bundle,
            "subject": self.request.person.subject,
            "action": self.request.action,
            "service": self.request.service,
            "record": self.request.record.id if self.request.record else None,
            "decision": self.effect,
            "policy_ids": list(self.policy_ids),
            "obligations": [o.to_json() for o in self.obligations],
            "released": list(self.released),
            "withheld": list(self.withheld),
            "errors": list(self.errors),
        }


