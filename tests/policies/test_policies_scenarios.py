"""SCENARIOS policies 1-4 expressed by the London bundle, each checked through decide()."""

from __future__ import annotations

import datetime as dt

import pytest
from tests.policies.policy_helpers import NOW, camden_social_worker, nhs_person, person, sign_in

from policies.engine import PolicyEngine
from policies.model import BreakGlassAlert, BreakGlassGrant, RecordRef, Request, StepUp
from policies.testrun import run_tests

CAMDEN_RECORD = RecordRef(id="rec-camden-1", home_borough="camden")


def record_request(who, action: str, record: RecordRef = CAMDEN_RECORD) -> Request:
    return Request(person=who, action=action, service="case-records", now=NOW, record=record)


def test_the_london_bundle_passes_its_own_test_cases(london) -> None:
    report = run_tests(london)
    assert report.passed, report.failures
    assert len(report.results) >= 25


# --- policy 1: discharge hub ----------------------------------------------------------------


def test_borough_staff_in_a_discharge_team_reach_the_hub(engine: PolicyEngine) -> None:
    decision = engine.decide(sign_in(camden_social_worker(), "discharge-hub"))
    assert decision.allowed
    assert decision.policy_ids == ("discharge-hub/borough-discharge-team",)
    assert decision.obligations == ()


def test_borough_staff_outside_a_discharge_team_are_denied(engine: PolicyEngine) -> None:
    worker = camden_social_worker(teams=("camden-adult-social-care",))
    decision = engine.decide(sign_in(worker, "discharge-hub"))
    assert not decision.allowed
    assert decision.policy_ids == ()
    assert decision.obligations == ()


@pytest.mark.parametrize("role", ["R8000", "R8001", "R8003"])
def test_nhs_clinical_roles_at_a_london_organisation_reach_the_hub(engine: PolicyEngine, role: str) -> None:
    decision = engine.decide(sign_in(nhs_person(nrbac_roles=(role,), assurance=2), "discharge-hub"))
    assert decision.allowed
    assert decision.policy_ids == ("discharge-hub/nhs-clinical-role",)


def test_nhs_non_clinical_role_is_denied(engine: PolicyEngine) -> None:
    officer = nhs_person(nrbac_roles=("R0001",), activity_codes=("B0015",))
    assert not engine.decide(sign_in(officer, "discharge-hub")).allowed


def test_nhs_clinician_outside_london_is_denied(engine: PolicyEngine) -> None:
    assert not engine.decide(sign_in(nhs_person(organisation="nhs-yorkshire"), "discharge-hub")).allowed


def test_below_aal2_the_hub_asks_for_step_up(engine: PolicyEngine) -> None:
    decision = engine.decide(sign_in(camden_social_worker(assurance=1), "discharge-hub"))
    assert not decision.allowed
    assert decision.policy_ids == ("discharge-hub/require-aal2",)
    assert decision.obligations == (StepUp(min_assurance=2, policy_ids=("discharge-hub/borough-discharge-team",)),)
    assert decision.released == ()


# --- policy 2: case records -------------------------------------------------------------------


def test_home_borough_social_worker_reads_and_writes(engine: PolicyEngine) -> None:
    for action in ("read", "write"):
        decision = engine.decide(record_request(camden_social_worker(), action))
        assert decision.allowed, action
        assert decision.policy_ids == ("case-records/home-borough-read-write",)


def test_other_borough_reads_only_under_a_section_75_agreement(engine: PolicyEngine) -> None:
    newham = person("newham-ad|bpatel", "newham-ad", organisation="newham", job_roles=("social-worker",))
    read = engine.decide(record_request(newham, "read"))
    assert read.allowed and read.policy_ids == ("case-records/section-75-read",)
    assert not engine.decide(record_request(newham, "write")).allowed


def test_other_borough_without_an_agreement_cannot_read(engine: PolicyEngine) -> None:
    hackney = person("hackney|cj", "hackney-ldap", organisation="hackney", job_roles=("social-worker",))
    decision = engine.decide(record_request(hackney, "read"))
    assert not decision.allowed
    assert decision.policy_ids == ()


def test_the_agreement_must_name_the_records_home_borough(engine: PolicyEngine) -> None:
    newham = person("newham-ad|bpatel", "newham-ad", organisation="newham", job_roles=("social-worker",))
    hackney_record = RecordRef(id="rec-hackney-9", home_borough="hackney")
    assert not engine.decide(record_request(newham, "read", hackney_record)).allowed


def test_a_non_social_worker_of_the_home_borough_cannot_read(engine: PolicyEngine) -> None:
    clerk = camden_social_worker(job_roles=("admin-officer",))
    assert not engine.decide(record_request(clerk, "read")).allowed


def test_nhs_staff_are_denied_by_the_forbid(engine: PolicyEngine) -> None:
    decision = engine.decide(record_request(nhs_person(), "read"))
    assert not decision.allowed
    assert decision.policy_ids == ("case-records/nhs-only-integrated-team",)


def test_nhs_staff_in_the_named_integrated_team_are_allowed(engine: PolicyEngine) -> None:
    member = nhs_person(teams=("camden-integrated-care",))
    assert engine.decide(sign_in(member, "case-records")).allowed
    for action in ("read", "write"):
        decision = engine.decide(record_request(member, action))
        assert decision.allowed and decision.policy_ids == ("case-records/integrated-team",)
    other = RecordRef(id="rec-hackney-9", home_borough="hackney")
    assert not engine.decide(record_request(member, "read", other)).allowed


# --- policy 3: break glass ---------------------------------------------------------------------


def grant(minutes_ago: int = 10, code: str = "01") -> BreakGlassGrant:
    granted = NOW - dt.timedelta(minutes=minutes_ago)
    return BreakGlassGrant(
        reason_code=code, justification="Unconscious patient, need the care plan",
        granted_at=granted, expires_at=granted + dt.timedelta(hours=1),
    )


def test_break_glass_opens_case_records_and_alerts_the_privacy_officer(engine: PolicyEngine) -> None:
    decision = engine.decide(record_request(nhs_person(break_glass=grant()), "read"))
    assert decision.allowed
    assert decision.policy_ids == ("case-records/break-glass-clinician-read",)
    (alert,) = decision.obligations
    assert isinstance(alert, BreakGlassAlert)
    assert alert.organisation == "nhs-north-london"
    assert alert.reason_code == "01"
    assert alert.expires_at == NOW + dt.timedelta(minutes=50)
    assert "rec-camden-1" not in str(alert.to_json())  # no patient or record detail in the alert


def test_break_glass_lasts_one_hour(engine: PolicyEngine) -> None:
    expired = engine.decide(record_request(nhs_person(break_glass=grant(minutes_ago=61)), "read"))
    assert not expired.allowed
    assert [o.kind for o in expired.obligations] == ["break_glass"]


def test_break_glass_never_writes_and_needs_a_clinical_role(engine: PolicyEngine) -> None:
    assert not engine.decide(record_request(nhs_person(break_glass=grant()), "write")).allowed
    officer = nhs_person(nrbac_roles=("R0001",), break_glass=grant())
    assert not engine.decide(record_request(officer, "read")).allowed


# --- policy 4: attribute release -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "service", "released"),
    [
        (camden_social_worker(), "discharge-hub", ("email", "job_title", "name", "organisation")),
        (camden_social_worker(), "case-records", ("department", "organisation")),
        (
            person("hackney|do", "hackney-ldap", organisation="hackney", job_roles=("admissions-officer",),
                   admissions_role="School Admissions Officer", name="Dami", email="d@hackney.test"),
            "admissions",
            ("admissions_role", "organisation"),
        ),
        (
            person("barnet|ew", "barnet-saml", organisation="barnet", teams=("barnet-mash",),
                   agency="London Borough of Barnet", mash_membership="Barnet MASH", name="Eve", email="e@barnet.test"),
            "mash",
            ("agency", "mash_membership"),
        ),
    ],
)
def test_each_service_receives_only_the_attributes_its_policy_names(
    engine: PolicyEngine, who, service: str, released: tuple[str, ...]
) -> None:
    decision = engine.decide(sign_in(who, service))
    assert decision.allowed
    assert decision.released == released
    assert set(decision.withheld) == set(who.facts) - set(released)
    assert all(decision.release_policy_ids[name] == (f"release/{service}",) for name in released)


def test_requested_attributes_narrow_release_and_missing_ones_are_not_released(engine: PolicyEngine) -> None:
    worker = camden_social_worker()
    decision = engine.decide(sign_in(worker, "discharge-hub", requested_attributes=("email", "groups", "job_title", "nhs_number")))
    assert decision.released == ("email", "job_title")
    assert decision.withheld == ("groups", "nhs_number")


def test_nothing_is_released_on_a_deny(engine: PolicyEngine) -> None:
    decision = engine.decide(sign_in(camden_social_worker(), "mash"))
    assert not decision.allowed and decision.released == ()


def test_read_and_write_decisions_release_nothing(engine: PolicyEngine) -> None:
    decision = engine.decide(record_request(camden_social_worker(), "read"))
    assert decision.allowed and decision.released == () and decision.withheld == ()
