"""PersonFacts from the JSON form of the canonical Identity."""

from __future__ import annotations

import datetime as dt

import pytest

from federation.identity import AssuranceLevel, Attribute, AuthnContext, Identity, SubjectRef, build_attributes
from policies.adapters import person_from_identity_json
from policies.engine import PolicyEngine
from policies.errors import PolicyError
from tests.policies.policy_helpers import sign_in

AUTH_TIME = dt.datetime(2026, 11, 28, 8, 50, tzinfo=dt.UTC)
ATTR_TIME = dt.datetime(2026, 11, 28, 8, 49, tzinfo=dt.UTC)


def identity(**changes) -> Identity:
    source = "directory:camden-ad"
    attributes = [
        Attribute("name", "Alex Smith", source, ATTR_TIME),
        Attribute("email", "alex.smith@camden.test", source, ATTR_TIME),
        Attribute("teams", ("camden-hospital-discharge",), "camden-hr", ATTR_TIME),
        Attribute("assurance", "3", "rogue-source", ATTR_TIME),  # may not overrule the authentication
        Attribute("displayName", "Alex", source, ATTR_TIME),
    ]
    fields = {
        "subject": SubjectRef("urn:supercloud:directory:camden-ad", "guid-1"),
        "organisation": "camden",
        "attributes": build_attributes(attributes),
        "groups": ("Adult Social Care", "Care Staff"),
        "roles": ("social-worker", "S0080:G0450:R8000"),
        "authn": AuthnContext(("pwd", "otp"), AssuranceLevel.AAL2, AUTH_TIME, "camden-ad"),
    }
    fields.update(changes)
    return Identity(**fields)


def test_an_identity_becomes_person_facts_with_provenance() -> None:
    person = person_from_identity_json(identity().to_json(), organisation_kind="borough")
    assert person.subject == "urn:supercloud:directory:camden-ad|guid-1"
    assert person.assurance == 2 and person.facts["assurance"].source == "camden-ad"
    assert person.facts["kind"].value == "borough" and person.facts["kind"].source == "organisation-registry"
    assert person.strings("job_roles") == ("social-worker",)
    assert person.strings("nrbac_roles") == ("R8000",)
    assert person.strings("teams") == ("camden-hospital-discharge",)
    assert person.facts["teams"].source == "camden-hr"
    assert person.facts["email"].asserted_at == ATTR_TIME
    assert person.facts["displayName"].value == "Alex"


def test_the_converted_person_is_decided(engine: PolicyEngine) -> None:
    person = person_from_identity_json(identity().to_json(), organisation_kind="borough")
    decision = engine.decide(sign_in(person, "discharge-hub"))
    assert decision.allowed and decision.released == ("email", "name", "organisation")


def test_a_malformed_identity_document_is_a_policy_error() -> None:
    data = identity().to_json()
    del data["authn"]
    with pytest.raises(PolicyError):
        person_from_identity_json(data, organisation_kind="borough")
    with pytest.raises(PolicyError):
        person_from_identity_json(identity().to_json(), organisation_kind="wizard")
