"""Explanations of decisions, and the security officers' questions who_can / what_can."""

from __future__ import annotations

import datetime as dt

import pytest

from policies.engine import PolicyEngine
from policies.errors import PolicyError
from policies.explain import explain
from policies.model import BreakGlassGrant
from policies.queries import summarise, what_can, who_can
from tests.policies.policy_helpers import ASSERTED, NOW, camden_social_worker, nhs_person, person, sign_in


def test_a_permit_names_its_policy_the_attributes_read_and_their_provenance(engine: PolicyEngine) -> None:
    decision = engine.decide(sign_in(camden_social_worker(), "discharge-hub"))
    explanation = explain(engine, decision)
    text = explanation.to_text()
    assert "permitted to sign in to discharge-hub under policy bundle london@2026.11.28-1" in text
    assert "Policy discharge-hub/borough-discharge-team (discharge_hub.cedar) permits this." in text
    assert "camden-hospital-discharge (functions: discharge)" in text
    assert f"from camden-ad at {ASSERTED.isoformat()}" in text
    assert "principal.organisation.kind = borough" in text
    assert "Released to discharge-hub: email (release/discharge-hub)" in text
    assert "Withheld" in text and "groups" in text
    data = explanation.to_json()
    (account,) = data["deciding"]
    paths = {use["path"] for use in account["reads"]}
    assert {"team membership", "principal.organisation.kind", "principal.organisation.memberships"} <= paths
    assert all(use["source"].endswith("camden-ad") for use in account["reads"])
    assert "principal.organisation.kind = borough (from the organisation registry, for organisation 'camden' " \
        f"asserted by camden-ad at {ASSERTED.isoformat()})" in text


def test_a_forbid_and_its_step_up_are_explained(engine: PolicyEngine) -> None:
    text = explain(engine, engine.decide(sign_in(camden_social_worker(assurance=1), "discharge-hub"))).to_text()
    assert "Policy discharge-hub/require-aal2 (discharge_hub.cedar) forbids this." in text
    assert "principal.assurance = 1 (from camden-ad" in text
    assert "Step-up required" in text and "AAL2" in text


def test_a_default_deny_lists_the_policies_that_did_not_hold(engine: PolicyEngine) -> None:
    text = explain(engine, engine.decide(sign_in(camden_social_worker(), "mash"))).to_text()
    assert "No policy permits this (default deny)" in text
    assert "mash/members" in text


def test_break_glass_is_explained_with_its_grant(engine: PolicyEngine) -> None:
    grant = BreakGlassGrant("03", "Emergency", NOW - dt.timedelta(minutes=5), NOW + dt.timedelta(minutes=55))
    decision = engine.decide(sign_in(nhs_person(break_glass=grant), "case-records"))
    text = explain(engine, decision).to_text()
    assert decision.allowed
    assert "reason code 03" in text and "privacy officer of nhs-north-london" in text
    denied = explain(engine, engine.decide(sign_in(nhs_person(), "case-records"))).to_text()
    assert "reason code (01-06) and a free-text justification" in denied


def test_an_error_deny_is_explained(engine: PolicyEngine) -> None:
    text = explain(engine, engine.decide(sign_in(camden_social_worker(organisation="atlantis"), "discharge-hub"))).to_text()
    assert "Denied because of an error (fail closed): unknown organisation 'atlantis'" in text


PEOPLE = [
    camden_social_worker(),
    camden_social_worker(assurance=1),
    nhs_person(),
    person("hackney|cj", "hackney-ldap", organisation="hackney", job_roles=("social-worker",)),
]


def test_who_can_reach_a_service(engine: PolicyEngine) -> None:
    rows = who_can(engine, "discharge-hub", PEOPLE, now=NOW)
    assert [d.allowed for _, d in rows] == [True, False, True, False]
    assert [p.subject for p, _ in rows] == [p.subject for p in PEOPLE]
    assert summarise(rows[1][1]) == "discharge-hub/require-aal2; obligation: step_up"
    assert summarise(rows[3][1]) == "no policy permits (default deny)"
    allowed = who_can(engine, "discharge-hub", PEOPLE, now=NOW, include_denied=False)
    assert [d.policy_ids for _, d in allowed] == [
        ("discharge-hub/borough-discharge-team",), ("discharge-hub/nhs-clinical-role",)
    ]


def test_who_can_read_a_record(engine: PolicyEngine) -> None:
    from policies.model import RecordRef

    rows = who_can(engine, "case-records", PEOPLE, now=NOW, action="read", record=RecordRef("r1", "camden"))
    assert [d.allowed for _, d in rows] == [True, True, False, False]


def test_who_can_refuses_things_that_are_not_people(engine: PolicyEngine) -> None:
    with pytest.raises(PolicyError):
        who_can(engine, "discharge-hub", ["alice"], now=NOW)  # type: ignore[list-item]


def test_what_can_a_person_reach(engine: PolicyEngine) -> None:
    rows = what_can(engine, camden_social_worker(), now=NOW)
    assert {service: d.allowed for service, d in rows} == {
        "discharge-hub": True, "case-records": True, "admissions": False, "mash": False,
    }
    only = what_can(engine, nhs_person(), ["discharge-hub", "case-records"], now=NOW, include_denied=False)
    assert [service for service, _ in only] == ["discharge-hub"]
