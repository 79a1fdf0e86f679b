"""Governance (SCENARIOS policy 6): propose, diff, replay, second-person approval, activate, rollback."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest

from policies.bundle import PolicyBundle
from policies.errors import PolicyError, PolicyErrorCode
from policies.governance import PolicyGovernance
from policies.model import Environment, RecordRef, Request
from policies.replay import RecordedDecision
from policies.repository import BundleState, InMemoryBundleRepository
from tests.policies.policy_helpers import NOW, bundle_with, camden_social_worker, nhs_person, person, sign_in

ADMIN = ("policy-admin",)
S75_CASE_OLD = "expect: {decision: permit, policies: [case-records/section-75-read]}"
S75_CASE_NEW = "expect: {decision: deny, policies: []}"


class Audit:
    """Collects audit events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event_type: str, details: dict[str, Any]) -> None:
        self.events.append((event_type, details))

    @property
    def types(self) -> list[str]:
        return [t for t, _ in self.events]


@pytest.fixture
def audit() -> Audit:
    return Audit()


@pytest.fixture
def governance(audit: Audit) -> PolicyGovernance:
    ticks = itertools.count()
    return PolicyGovernance(
        InMemoryBundleRepository(), audit, clock=lambda: NOW + dt.timedelta(seconds=next(ticks))
    )


def without_section_75(base: PolicyBundle, version: str = "2026.11.28-2") -> PolicyBundle:
    """Version 2: drops the Section 75 read policy and updates the case expecting it."""
    tests = base.tests.replace(S75_CASE_OLD, S75_CASE_NEW)
    assert tests != base.tests
    return bundle_with(base, version=version, drop_policy="case-records/section-75-read", tests=tests)


def live(governance: PolicyGovernance, bundle: PolicyBundle) -> None:
    governance.propose(bundle, "alice", ADMIN)
    governance.approve(bundle.version, "bob", ADMIN)
    governance.activate(bundle.version, "alice", ADMIN)


def test_the_full_lifecycle_is_audited(governance: PolicyGovernance, audit: Audit, london_bundle, london) -> None:
    proposal = governance.propose(london_bundle, "alice", ADMIN)
    assert proposal.record.state is BundleState.PROPOSED and proposal.tests.passed
    approved = governance.approve(london_bundle.version, "bob", ADMIN)
    assert approved.state is BundleState.APPROVED and approved.approver == "bob"
    active = governance.activate(london_bundle.version, "alice", ADMIN)
    assert active.state is BundleState.ACTIVE
    assert governance.active().version == london_bundle.version
    assert audit.types == ["policy.bundle.proposed", "policy.bundle.approved", "policy.bundle.activated"]
    assert audit.events[1][1]["actor"] == "bob" and audit.events[1][1]["proposer"] == "alice"
    assert [h.event for h in governance.history()] == audit.types
    engine = governance.active_engine(london.tests.environment)
    assert engine.decide(sign_in(camden_social_worker(), "discharge-hub")).allowed


def test_the_proposer_cannot_approve_their_own_change(governance: PolicyGovernance, audit: Audit, london_bundle) -> None:
    governance.propose(london_bundle, "alice", ADMIN)
    for same in ("alice", " Alice "):
        with pytest.raises(PolicyError) as caught:
            governance.approve(london_bundle.version, same, ADMIN)
        assert caught.value.code is PolicyErrorCode.SAME_PERSON_APPROVAL
    assert audit.types[-1] == "policy.bundle.approve_refused"
    assert audit.events[-1][1]["code"] == "policy_same_person_approval"
    assert governance.versions()[0].state is BundleState.PROPOSED


def test_only_policy_administrators_propose_approve_and_activate(
    governance: PolicyGovernance, audit: Audit, london_bundle
) -> None:
    with pytest.raises(PolicyError) as caught:
        governance.propose(london_bundle, "mallory", ("security-officer",))
    assert caught.value.code is PolicyErrorCode.NOT_AUTHORISED
    governance.propose(london_bundle, "alice", ADMIN)
    with pytest.raises(PolicyError) as caught:
        governance.approve(london_bundle.version, "carol", ("security-officer",))
    assert caught.value.code is PolicyErrorCode.NOT_AUTHORISED
    with pytest.raises(PolicyError) as caught:
        governance.approve(london_bundle.version, "carol", "policy-administrator")  # a string is not a role list
    assert caught.value.code is PolicyErrorCode.NOT_AUTHORISED
    governance.approve(london_bundle.version, "bob", ADMIN)
    with pytest.raises(PolicyError):
        governance.activate(london_bundle.version, "carol", ())
    assert audit.types.count("policy.bundle.propose_refused") == 1
    assert audit.types.count("policy.bundle.approve_refused") == 2
    assert audit.types.count("policy.bundle.activate_refused") == 1


def test_a_change_takes_effect_only_after_approval(governance: PolicyGovernance, london_bundle) -> None:
    governance.propose(london_bundle, "alice", ADMIN)
    with pytest.raises(PolicyError) as caught:
        governance.activate(london_bundle.version, "alice", ADMIN)
    assert caught.value.code is PolicyErrorCode.INVALID_STATE
    assert governance.active() is None
    with pytest.raises(PolicyError) as caught:
        governance.active_engine(Environment())
    assert caught.value.code is PolicyErrorCode.NO_ACTIVE_BUNDLE


def test_a_failing_test_case_blocks_the_proposal(governance: PolicyGovernance, audit: Audit, london_bundle) -> None:
    broken = bundle_with(london_bundle, drop_policy="case-records/section-75-read")  # tests still expect it
    with pytest.raises(PolicyError) as caught:
        governance.propose(broken, "alice", ADMIN)
    assert caught.value.code is PolicyErrorCode.BUNDLE_TESTS_FAILED
    assert any("Section 75" in p and "expected permit, got deny" in p for p in caught.value.problems)
    assert governance.versions() == []
    assert audit.types == ["policy.bundle.propose_refused"]
    assert audit.events[0][1]["problems"]


def test_an_invalid_bundle_blocks_the_proposal_with_every_error(governance: PolicyGovernance, london_bundle) -> None:
    bad = bundle_with(
        london_bundle,
        sources={"extra.cedar": '@id("x")\npermit (principal, action == Action::"sign_in", resource) when { principal.salary > 1 };\n'
                 '@id("y")\npermit (principal, action == Action::"fly", resource);'},
    )
    with pytest.raises(PolicyError) as caught:
        governance.propose(bad, "alice", ADMIN)
    assert caught.value.code is PolicyErrorCode.BUNDLE_INVALID
    assert len(caught.value.problems) >= 2


def test_a_version_is_proposed_once(governance: PolicyGovernance, london_bundle) -> None:
    governance.propose(london_bundle, "alice", ADMIN)
    with pytest.raises(PolicyError) as caught:
        governance.propose(london_bundle, "alice", ADMIN)
    assert caught.value.code is PolicyErrorCode.VERSION_EXISTS


def test_diff_against_the_active_version(governance: PolicyGovernance, audit: Audit, london_bundle) -> None:
    live(governance, london_bundle)
    changed_text = london_bundle.sources["mash.cedar"].replace(
        'when { principal in Function::"mash" };', 'when { principal in Function::"mash" && principal.assurance >= 2 };'
    )
    v2 = without_section_75(london_bundle)
    v2 = bundle_with(v2, version=v2.version, sources={
        "mash.cedar": changed_text,
        "extra.cedar": '@id("admissions/nobody")\nforbid (principal, action == Action::"sign_in", resource == Service::"admissions") when { principal.assurance > 3 };',
    })
    governance.propose(v2, "alice", ADMIN)
    diff = governance.diff(v2.version, "carol")
    assert diff.base == london_bundle.label and diff.candidate == v2.label
    assert diff.added == ("admissions/nobody",)
    assert diff.removed == ("case-records/section-75-read",)
    assert diff.changed == ("mash/members",)
    assert diff.tests_changed
    (mash,) = [c for c in diff.changes if c.kind == "changed"]
    assert "+when { principal in Function::\"mash\" && principal.assurance >= 2 };" in mash.text_diff
    assert "removed: case-records/section-75-read" in diff.to_text()
    assert audit.types[-1] == "policy.bundle.diffed"
    assert audit.events[-1][1]["removed"] == ["case-records/section-75-read"]


def test_reformatting_is_not_a_change(governance: PolicyGovernance, london_bundle) -> None:
    live(governance, london_bundle)
    squashed = " ".join(london_bundle.sources["mash.cedar"].split("\n")[2:])  # drop comments, one line
    v2 = bundle_with(london_bundle, sources={"mash.cedar": squashed})
    governance.propose(v2, "alice", ADMIN)
    assert governance.diff(v2.version, "carol").changes == ()


def test_replay_lists_every_decision_that_would_flip(governance: PolicyGovernance, audit: Audit, london_bundle, london) -> None:
    live(governance, london_bundle)
    engine = governance.active_engine(london.tests.environment)
    newham = person("newham-ad|bpatel", "newham-ad", organisation="newham", job_roles=("social-worker",))
    requests = [
        Request(newham, "read", "case-records", NOW, RecordRef("rec-1", "camden")),
        Request(newham, "read", "case-records", NOW, RecordRef("rec-2", "newham")),
        sign_in(camden_social_worker(), "discharge-hub"),
        Request(nhs_person(), "read", "case-records", NOW, RecordRef("rec-3", "camden")),
        Request(newham, "read", "case-records", NOW, RecordRef("rec-4", "camden")),
    ]
    recorded = [RecordedDecision.from_decision(f"d{i}", engine.decide(r)) for i, r in enumerate(requests)]
    assert [r.allowed for r in recorded] == [True, True, True, False, True]
    v2 = without_section_75(london_bundle)
    governance.propose(v2, "alice", ADMIN)
    report = governance.replay(v2.version, "carol", recorded, london.tests.environment)
    assert report.total == 5
    assert [f.record_id for f in report.flips] == ["d0", "d4"]
    assert all(f.was_allowed and not f.now_allowed for f in report.flips)
    assert report.flips[0].old_policy_ids == ("case-records/section-75-read",)
    assert report.newly_denied == report.flips and report.newly_permitted == ()
    assert "d0: newham-ad|bpatel read case-records record rec-1 was permitted, would be denied" in report.to_text()
    assert audit.events[-1] == (
        "policy.bundle.replayed",
        {"version": v2.version, "actor": "carol", "at": audit.events[-1][1]["at"], "total": 5, "flips": 2,
         "flipped": ["d0", "d4"]},
    )


def test_rollback_to_an_earlier_version(governance: PolicyGovernance, audit: Audit, london_bundle, london) -> None:
    live(governance, london_bundle)
    v2 = without_section_75(london_bundle)
    live(governance, v2)
    assert governance.active().version == v2.version
    newham = person("newham-ad|bpatel", "newham-ad", organisation="newham", job_roles=("social-worker",))
    read = Request(newham, "read", "case-records", NOW, RecordRef("rec-1", "camden"))
    assert not governance.active_engine(london.tests.environment).decide(read).allowed
    restored = governance.rollback(london_bundle.version, "bob", ADMIN)
    assert restored.state is BundleState.ACTIVE
    assert governance.active().version == london_bundle.version
    assert {r.version: r.state for r in governance.versions()}[v2.version] is BundleState.SUPERSEDED
    assert governance.active_engine(london.tests.environment).decide(read).allowed
    assert audit.types[-1] == "policy.bundle.rolled_back"
    assert audit.events[-1][1]["previous"] == v2.version
    # forward again to v2, and refuse what cannot be rolled back to
    governance.rollback(v2.version, "alice", ADMIN)
    with pytest.raises(PolicyError) as caught:
        governance.rollback(v2.version, "alice", ADMIN)  # already active
    assert caught.value.code is PolicyErrorCode.INVALID_STATE
    v3 = bundle_with(london_bundle, version="2026.11.28-3")
    governance.propose(v3, "alice", ADMIN)
    with pytest.raises(PolicyError) as caught:
        governance.rollback(v3.version, "alice", ADMIN)  # never approved nor active
    assert caught.value.code is PolicyErrorCode.INVALID_STATE
    with pytest.raises(PolicyError) as caught:
        governance.rollback("no-such-version", "alice", ADMIN)
    assert caught.value.code is PolicyErrorCode.UNKNOWN_VERSION


def test_history_records_every_step_in_order(governance: PolicyGovernance, london_bundle) -> None:
    live(governance, london_bundle)
    with pytest.raises(PolicyError):
        governance.approve(london_bundle.version, "bob", ADMIN)  # already active
    events = [(h.event, h.actor) for h in governance.history()]
    assert events == [
        ("policy.bundle.proposed", "alice"),
        ("policy.bundle.approved", "bob"),
        ("policy.bundle.activated", "alice"),
        ("policy.bundle.approve_refused", "bob"),
    ]
    times = [h.at for h in governance.history()]
    assert times == sorted(times)


def test_a_repository_governs_one_bundle(governance: PolicyGovernance, london_bundle) -> None:
    governance.propose(london_bundle, "alice", ADMIN)
    other = PolicyBundle("elsewhere", "1", london_bundle.sources, london_bundle.tests)
    with pytest.raises(PolicyError) as caught:
        governance.propose(other, "alice", ADMIN)
    assert caught.value.code is PolicyErrorCode.INVALID_STATE
