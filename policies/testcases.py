"""A bundle's test cases: the YAML format and its parser (running them is ``testrun``).

A test file holds the environment the cases run against, named people (personas),
and the cases::

    now: "2026-11-28T09:00:00+00:00"      # the time every request is evaluated at
    environment:
      organisations: [{id: camden, name: London Borough of Camden, kind: borough,
                       memberships: [London boroughs]}]
      agreements: [{id: s75-camden-newham, parties: [camden, newham]}]
      teams: [{id: camden-discharge, organisation: camden, functions: [discharge]}]
      services: [{id: discharge-hub, name: Hospital Discharge Hub}]
    people:
      camden-social-worker: {subject: camden|asmith, organisation: camden, kind: borough,
                             assurance: 2, teams: [camden-discharge], name: A Smith}
    cases:
      - name: a Camden discharge social worker at AAL2 reaches the hub
        person: camden-social-worker         # a persona, or an inline mapping
        with: {assurance: 1}                 # optional overrides of persona facts
        action: sign_in
        service: discharge-hub
        record: {id: rec-1, home_borough: camden}   # for read / write
        requested_attributes: [name, email]          # optional
        expect:
          decision: permit                   # permit | deny
          policies: [discharge-hub/borough-discharge-team]   # optional, exact
          obligations: [{kind: step_up, min_assurance: 2}]   # optional, exact count
          released: [name, email]                            # optional, exact set
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

import yaml

from policies.errors import PolicyError
from policies.model import Environment, PersonFacts, RecordRef, Request, parse_time

TEST_SOURCE = "bundle-test-case"
_DEFAULT_NOW = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)
_CASE_KEYS = {"name", "person", "with", "action", "service", "record", "requested_attributes", "expect"}
_EXPECT_KEYS = {"decision", "policies", "obligations", "released"}


@dataclasses.dataclass(frozen=True, slots=True)
class Expectation:
    """What a test case expects; None means "not checked"."""

    decision: str
    policies: tuple[str, ...] | None = None
    obligations: tuple[Mapping[str, Any], ...] | None = None
    released: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class TestCase:
    """One named request and what the bundle must answer."""

    __test__ = False  # not a pytest class

    name: str
    request: Request
    expect: Expectation


@dataclasses.dataclass(frozen=True, slots=True)
class TestSuite:
    """Every test case of a bundle and the environment they run against."""

    __test__ = False

    environment: Environment
    cases: tuple[TestCase, ...]


def parse_test_suite(text: str) -> tuple[TestSuite | None, list[str]]:
    """Parse a bundle's test file.

    Returns (suite, problems): the suite is None when the file cannot be used at all;
    ``problems`` lists every problem found (an empty list means every case parsed).
    Never raises.
    """
    problems: list[str] = []
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as error:
        return None, [f"tests: not valid YAML: {error}"]
    if not isinstance(data, Mapping):
        return None, ["tests: must be a mapping with environment, people and cases"]
    try:
        now = _time(data.get("now", _DEFAULT_NOW))
    except PolicyError as error:
        problems.append(f"tests.now: {error.detail}")
        now = _DEFAULT_NOW
    try:
        environment = Environment.from_mapping(data.get("environment") or {})
    except PolicyError as error:
        problems.extend(f"tests.environment: {p}" for p in error.problems or (error.detail,))
        environment = Environment()
    people = data.get("people") or {}
    if not isinstance(people, Mapping):
        problems.append("tests.people: must be a mapping of persona name to facts")
        people = {}
    raw_cases = data.get("cases") or []
    if not isinstance(raw_cases, list):
        return None, problems + ["tests.cases: must be a list"]
    cases: list[TestCase] = []
    names: set[str] = set()
    for index, raw in enumerate(raw_cases):
        label = f"tests.cases[{index}]"
        case, case_problems = _parse_case(raw, people, now, label)
        problems.extend(case_problems)
        if case is not None:
            if case.name in names:
                problems.append(f"{label}: duplicate case name {case.name!r}")
            names.add(case.name)
            cases.append(case)
    return TestSuite(environment=environment, cases=tuple(cases)), problems


def _time(raw: object) -> dt.datetime:
    value = parse_time(raw)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _parse_case(
    raw: object, people: Mapping[str, Any], now: dt.datetime, label: str
) -> tuple[TestCase | None, list[str]]:
    if not isinstance(raw, Mapping):
        return None, [f"{label}: must be a mapping"]
    problems = [f"{label}: unknown key {key!r}" for key in raw if key not in _CASE_KEYS]
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{label}.name: must be non-blank text")
    else:
        label = f"{label} ({name})"
    person_raw = raw.get("person")
    overrides = raw.get("with") or {}
    person: PersonFacts | None = None
    if isinstance(person_raw, str) and person_raw not in people:
        problems.append(f"{label}.person: unknown persona {person_raw!r}")
    elif not isinstance(people.get(person_raw) if isinstance(person_raw, str) else person_raw, Mapping):
        problems.append(f"{label}.person: must name a persona or give the facts")
    elif not isinstance(overrides, Mapping):
        problems.append(f"{label}.with: must be a mapping of facts")
    else:
        person_raw = people[person_raw] if isinstance(person_raw, str) else person_raw
        try:
            person = PersonFacts.from_mapping(
                {**person_raw, **overrides}, default_source=TEST_SOURCE, default_time=now
            )
        except PolicyError as error:
            problems.extend(f"{label}.person: {p}" for p in error.problems or (error.detail,))
    expect = _parse_expect(raw.get("expect"), label, problems)
    record = None
    record_raw = raw.get("record")
    if record_raw is not None:
        try:
            record = RecordRef(id=record_raw["id"], home_borough=record_raw["home_borough"])
        except (KeyError, TypeError):
            problems.append(f"{label}.record: needs id and home_borough")
        except PolicyError as error:
            problems.extend(f"{label}.{p}" for p in error.problems)
    if problems or person is None or expect is None:
        return None, problems
    try:
        request = Request(
            person=person,
            action=raw.get("action", "sign_in"),
            service=raw.get("service"),  # type: ignore[arg-type]
            now=now,
            record=record,
            requested_attributes=raw.get("requested_attributes"),
        )
    except PolicyError as error:
        return None, [f"{label}.{p}" for p in error.problems]
    return TestCase(name=str(name), request=request, expect=expect), []


def _parse_expect(raw: object, label: str, problems: list[str]) -> Expectation | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{label}.expect: must be a mapping with at least decision")
        return None
    problems.extend(f"{label}.expect: unknown key {key!r}" for key in raw if key not in _EXPECT_KEYS)
    decision = raw.get("decision")
    if decision not in ("permit", "deny"):
        problems.append(f"{label}.expect.decision: must be permit or deny")
        return None

    def strings(key: str) -> tuple[str, ...] | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{label}.expect.{key}: must be a list of strings")
            return None
        return tuple(value)

    obligations = raw.get("obligations")
    if obligations is not None and (
        not isinstance(obligations, list) or not all(isinstance(o, Mapping) and "kind" in o for o in obligations)
    ):
        problems.append(f"{label}.expect.obligations: must be a list of mappings with a kind")
        obligations = None
    return Expectation(
        decision=decision,
        policies=strings("policies"),
        obligations=tuple(obligations) if obligations is not None else None,
        released=strings("released"),
    )
