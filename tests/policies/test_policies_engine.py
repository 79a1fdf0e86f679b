"""Engine semantics: default deny, forbid overrides permit, obligations, fail closed, hostile input."""

from __future__ import annotations

import datetime as dt

import pytest
from tests.policies.policy_helpers import ASSERTED, NOW, camden_social_worker, nhs_person, person, sign_in

from policies.bundle import PolicyBundle, compile_bundle
from policies.engine import PolicyEngine, decide
from policies.errors import PolicyError, PolicyErrorCode
from policies.model import (
    BreakGlassGrant,
    BreakGlassRequired,
    Environment,
    Fact,
    OrganisationFacts,
    PersonFacts,
    RecordRef,
    Request,
    ServiceFacts,
    StepUp,
    TeamFacts,
)

ENVIRONMENT = Environment(
    organisations=(
        OrganisationFacts("camden", "Camden", "borough", ("London boroughs",)),
        OrganisationFacts("nhs-north-london", "North London", "health", ("London health organisations",)),
    ),
    teams=(TeamFacts("camden-discharge", "Discharge", "camden", ("discharge",)),),
    services=(ServiceFacts("svc", "A service"), ServiceFacts("other", "Another")),
)


def engine_for(*policies: str) -> PolicyEngine:
    bundle = PolicyBundle(name="t", version="1", sources={f"p{i}.cedar": p for i, p in enumerate(policies)})
    return PolicyEngine(compile_bundle(bundle), ENVIRONMENT)


PERMIT_BOROUGH = '''@id("permit-borough")
permit (principal, action == Action::"sign_in", resource == Service::"svc")
when { principal.organisation.kind == "borough" };'''
FORBID_LOW = '''@id("forbid-aal1")
forbid (principal, action == Action::"sign_in", resource == Service::"svc")
when { principal.assurance < 2 };'''
RELEASE_ALL = '''@id("release-name")
permit (principal, action == Action::"release", resource == Service::"svc")
when { context.attribute == "name" };'''


def test_default_deny_when_no_policy_matches() -> None:
    decision = engine_for(PERMIT_BOROUGH).decide(sign_in(camden_social_worker(), "other"))
    assert not decision.allowed
    assert decision.policy_ids == ()
    assert decision.errors == ()


def test_forbid_overrides_permit() -> None:
    engine = engine_for(PERMIT_BOROUGH, FORBID_LOW)
    low = engine.decide(sign_in(camden_social_worker(assurance=1), "svc"))
    assert not low.allowed
    assert low.policy_ids == ("forbid-aal1",)  # the forbid decided, not the matching permit
    high = engine.decide(sign_in(camden_social_worker(assurance=2), "svc"))
    assert high.allowed and high.policy_ids == ("permit-borough",)


def test_step_up_asks_for_the_minimum_level_that_permits() -> None:
    engine = engine_for(PERMIT_BOROUGH, FORBID_LOW.replace("< 2", "< 3"))
    decision = engine.decide(sign_in(camden_social_worker(assurance=1), "svc"))
    assert decision.obligations == (StepUp(min_assurance=3, policy_ids=("permit-borough",)),)


def test_no_obligation_when_no_level_would_permit() -> None:
    decision = engine_for(PERMIT_BOROUGH, FORBID_LOW).decide(sign_in(nhs_person(assurance=1), "svc"))
    assert not decision.allowed and decision.obligations == ()


def test_break_glass_and_step_up_together() -> None:
    glass = '''@id("glass")
permit (principal, action == Action::"sign_in", resource == Service::"svc")
when { principal.break_glass && principal.assurance >= 3 };'''
    decision = engine_for(glass).decide(sign_in(nhs_person(assurance=2), "svc"))
    assert not decision.allowed
    kinds = [o.kind for o in decision.obligations]
    assert kinds == ["break_glass", "step_up"]
    required = decision.obligations[0]
    assert isinstance(required, BreakGlassRequired)
    assert required.reason_codes == ("01", "02", "03", "04", "05", "06")
    assert required.justification_required and required.max_duration_seconds == 3600


def test_module_level_decide_is_the_same_function(engine: PolicyEngine) -> None:
    request = sign_in(camden_social_worker(), "discharge-hub")
    assert decide(engine, request) == engine.decide(request)


# --- fail closed --------------------------------------------------------------------------------


def test_unknown_organisation_fails_closed(engine: PolicyEngine) -> None:
    decision = engine.decide(sign_in(camden_social_worker(organisation="atlantis"), "discharge-hub"))
    assert not decision.allowed
    assert any("unknown organisation 'atlantis'" in e for e in decision.errors)


def test_unknown_service_fails_closed(engine: PolicyEngine) -> None:
    decision = engine.decide(sign_in(camden_social_worker(), "no-such-service"))
    assert not decision.allowed and any("unknown service" in e for e in decision.errors)


def test_unknown_home_borough_fails_closed(engine: PolicyEngine) -> None:
    request = Request(camden_social_worker(), "read", "case-records", NOW, RecordRef("r", "atlantis"))
    decision = engine.decide(request)
    assert not decision.allowed and decision.errors


def test_an_evaluation_error_denies_even_when_another_permit_matches() -> None:
    # The permit matches; the forbid errs (a person entity the policy dereferences
    # does not exist), and Cedar would skip the erring forbid. We deny instead.
    erring = '''@id("forbid-erring")
forbid (principal, action == Action::"sign_in", resource == Service::"svc")
when { Team::"no-such-team".organisation.kind == "borough" };'''
    decision = engine_for(PERMIT_BOROUGH, erring).decide(sign_in(camden_social_worker(), "svc"))
    assert not decision.allowed
    assert decision.errors and "no-such-team" in " ".join(decision.errors)


def test_decide_refuses_something_that_is_not_a_request(engine: PolicyEngine) -> None:
    with pytest.raises(PolicyError) as caught:
        engine.decide({"person": "alice", "service": "discharge-hub"})  # type: ignore[arg-type]
    assert caught.value.code is PolicyErrorCode.INVALID_INPUT


# --- hostile and malformed input -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        'camden" }; permit(principal, action, resource); //',
        'camden\\" || true || \\"',
        "camden' OR 1=1 --",
        "} when { true",
    ],
)
def test_policy_text_injection_through_attribute_values_grants_nothing(engine: PolicyEngine, value: str) -> None:
    for facts in (
        {"organisation": value},
        {"job_roles": (value, "social-worker\") || true"), "teams": (value,)},
        {"kind": "borough", "groups": (value,), "name": value},
    ):
        who = camden_social_worker(**{"teams": ("camden-adult-social-care",), **facts})
        decision = engine.decide(sign_in(who, "discharge-hub"))
        assert not decision.allowed, facts


def test_injection_through_subject_and_record_ids_grants_nothing(engine: PolicyEngine) -> None:
    who = person('x" in Function::"discharge', organisation="hackney", job_roles=("social-worker",))
    assert not engine.decide(sign_in(who, "discharge-hub")).allowed
    record = RecordRef(id='r"}; permit(principal,action,resource);', home_borough="camden")
    assert not engine.decide(Request(who, "write", "case-records", NOW, record)).allowed


def test_unknown_teams_are_ignored_not_trusted(engine: PolicyEngine) -> None:
    who = camden_social_worker(teams=("camden-hospital-discharge-fake", "discharge"))
    assert not engine.decide(sign_in(who, "discharge-hub")).allowed


def test_unknown_attributes_never_reach_a_policy(engine: PolicyEngine) -> None:
    # A fact the schema does not know ("is_admin", "assurance_override") is only a
    # release candidate; it can neither grant access nor be released unnamed.
    who = camden_social_worker(teams=(), is_admin=True, assurance_override=3, break_glass_active=True)
    decision = engine.decide(sign_in(who, "discharge-hub"))
    assert not decision.allowed
    permitted = engine.decide(sign_in(camden_social_worker(is_admin=True), "discharge-hub"))
    assert "is_admin" in permitted.withheld and "is_admin" not in permitted.released


@pytest.mark.parametrize(
    ("facts", "problem"),
    [
        ({"organisation": "camden", "kind": "borough"}, "facts.assurance: is required"),
        ({"organisation": "camden", "kind": "wizard", "assurance": 2}, "facts.kind"),
        ({"organisation": "camden", "kind": "borough", "assurance": 4}, "facts.assurance"),
        ({"organisation": "camden", "kind": "borough", "assurance": True}, "facts.assurance"),
        ({"organisation": "", "kind": "borough", "assurance": 2}, "facts.organisation"),
        ({"organisation": "camden", "kind": "borough", "assurance": 2, "teams": "camden-discharge"}, "facts.teams"),
        ({"organisation": "camden", "kind": "borough", "assurance": 2, "bad name": "x"}, "name must be"),
    ],
)
def test_malformed_person_gets_a_clear_policy_error(facts: dict, problem: str) -> None:
    with pytest.raises(PolicyError) as caught:
        PersonFacts(
            subject="s",
            facts={k: Fact(value=v, source="src", asserted_at=ASSERTED) for k, v in facts.items()},
        )
    assert caught.value.code is PolicyErrorCode.INVALID_INPUT
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_malformed_fact_values_are_refused() -> None:
    with pytest.raises(PolicyError, match="control characters|unsupported type|timezone-aware"):
        Fact(value="a\nb", source="src", asserted_at=ASSERTED)
    with pytest.raises(PolicyError):
        Fact(value={"nested": 1}, source="src", asserted_at=ASSERTED)  # type: ignore[arg-type]
    with pytest.raises(PolicyError, match="timezone-aware"):
        Fact(value="x", source="src", asserted_at=dt.datetime(2026, 1, 1))


def test_every_problem_of_a_person_is_listed_at_once() -> None:
    with pytest.raises(PolicyError) as caught:
        PersonFacts.from_mapping({"subject": "", "kind": "wizard", "assurance": 9, "organisation": "camden"})
    problems = " ".join(caught.value.problems)
    assert "subject" in problems and "facts.kind" in problems and "facts.assurance" in problems


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"action": "delete"}, "action"),
        ({"action": "read"}, "record: is required"),
        ({"now": dt.datetime(2026, 1, 1)}, "now"),
        ({"service": ""}, "service"),
        ({"requested_attributes": "email"}, "requested_attributes"),
        ({"requested_attributes": ("email", "not a name")}, "requested_attributes"),
    ],
)
def test_malformed_requests_get_a_clear_policy_error(kwargs: dict, problem: str) -> None:
    args = {"person": camden_social_worker(), "action": "sign_in", "service": "discharge-hub", "now": NOW, **kwargs}
    with pytest.raises(PolicyError) as caught:
        Request(**args)
    assert caught.value.code is PolicyErrorCode.INVALID_INPUT
    assert any(problem in p for p in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    ("reason", "justification", "minutes", "problem"),
    [
        ("07", "text", 60, "reason_code"),
        ("1", "text", 60, "reason_code"),
        ("01", "   ", 60, "justification"),
        ("01", "text", 61, "at most one hour"),
        ("01", "text", 0, "after granted_at"),
    ],
)
def test_break_glass_grants_are_checked(reason: str, justification: str, minutes: int, problem: str) -> None:
    with pytest.raises(PolicyError) as caught:
        BreakGlassGrant(reason, justification, NOW, NOW + dt.timedelta(minutes=minutes))
    assert any(problem in p for p in caught.value.problems)


def test_an_invalid_environment_is_refused_with_every_problem(london) -> None:
    bad = Environment(
        organisations=(OrganisationFacts("a", "A", "planet"), OrganisationFacts("a", "A", "borough")),
        teams=(TeamFacts("t", "T", "nowhere"),),
    )
    with pytest.raises(PolicyError) as caught:
        PolicyEngine(london, bad)
    assert caught.value.code is PolicyErrorCode.ENVIRONMENT_INVALID
    assert len(caught.value.problems) == 3


# --- attribute release that depends on the person ----------------------------------------------------


def test_release_may_depend_on_the_person_and_is_then_never_remembered() -> None:
    by_assurance = '''@id("release-email-aal3")
permit (principal, action == Action::"release", resource == Service::"svc")
when { context.attribute == "email" && principal.assurance >= 3 };'''
    by_identity = '''@id("release-name-alex")
permit (principal, action == Action::"release", resource == Service::"svc")
when { context.attribute == "name" && principal == Person::"camden-ad|asmith" };'''
    for policy, attribute, lucky, unlucky in (
        (by_assurance, "email", camden_social_worker(assurance=3), camden_social_worker(assurance=2)),
        (by_identity, "name", camden_social_worker(), person("camden-ad|other", job_roles=("social-worker",))),
    ):
        engine = engine_for(PERMIT_BOROUGH, policy)
        for _ in range(2):  # a second round would expose a wrongly remembered answer
            assert engine.decide(sign_in(lucky, "svc", requested_attributes=(attribute,))).released == (attribute,)
            assert engine.decide(sign_in(unlucky, "svc", requested_attributes=(attribute,))).released == ()


def test_release_that_ignores_the_person_gives_the_same_answer_every_time() -> None:
    engine = engine_for(PERMIT_BOROUGH, RELEASE_ALL)
    first = engine.decide(sign_in(camden_social_worker(), "svc"))
    second = engine.decide(sign_in(camden_social_worker(), "svc"))
    assert first.released == second.released == ("name",)
    assert first.release_policy_ids == second.release_policy_ids == {"name": ("release-name",)}


@pytest.mark.parametrize(
    "data",
    [
        {"organisations": [{"id": "a", "kind": "borough", "memberships": "London boroughs"}]},
        {"organisations": "camden"},
        {"teams": [{"id": "t"}]},
        {"agreements": [{"id": "s75", "parties": ["a"]}], "organisations": []},
        "not a mapping",
    ],
)
def test_a_malformed_environment_document_is_refused(data) -> None:
    with pytest.raises(PolicyError) as caught:
        Environment.from_mapping(data)
    assert caught.value.code is PolicyErrorCode.ENVIRONMENT_INVALID
