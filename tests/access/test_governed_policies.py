"""The version two people activated is the one deciding; every decision is recorded for replay."""

from __future__ import annotations

import dataclasses

from broker.decision_log import DecisionRecorder
from broker.policy_access import ActiveEngine
from broker.policy_store import SqlBundleRepository
from policies import load_bundle
from policies.governance import PolicyGovernance
from tests.support.flask_flow import code_flow
from tests.support.settings import LONDON_BUNDLE

ADMIN = ["policy-admin"]


def _active_engine(services) -> ActiveEngine:  # type: ignore[no-untyped-def]
    gate = services.oidc._access
    while not isinstance(getattr(gate, "_engine", None), ActiveEngine):
        gate = gate._inner
    return gate._engine


def _decision_bundles(services) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.details["bundle"] for r in services.audit.records() if r.event == "policy_decision"]


def test_decisions_are_recorded_and_a_governed_activation_takes_over(policy_app) -> None:
    app, services = policy_app
    engine = _active_engine(services)
    engine._recheck = 0  # the deployment re-checks every 30 s; the test looks at once
    client = app.test_client()
    code_flow(client, email="sofia.rossi@hackney.test", client_id="admissions-portal")
    assert _decision_bundles(services) == ["london@2026.11.28-1"], "the configured bundle decides at first"
    assert DecisionRecorder(services.db).count() == 1

    governance = PolicyGovernance(SqlBundleRepository(services.db), lambda event, details: None)
    next_version = dataclasses.replace(load_bundle(LONDON_BUNDLE), version="2026.11.28-2")
    governance.propose(next_version, "tom.hughes", ADMIN)
    governance.approve("2026.11.28-2", "grace.obi", ADMIN)
    governance.activate("2026.11.28-2", "grace.obi", ADMIN)

    other = app.test_client()
    code_flow(other, email="sofia.rossi@hackney.test", client_id="admissions-portal")
    assert _decision_bundles(services)[-1] == "london@2026.11.28-2"
    assert DecisionRecorder(services.db).count() == 2


def test_a_proposal_not_yet_approved_does_not_decide(policy_app) -> None:
    app, services = policy_app
    _active_engine(services)._recheck = 0
    governance = PolicyGovernance(SqlBundleRepository(services.db), lambda event, details: None)
    governance.propose(dataclasses.replace(load_bundle(LONDON_BUNDLE), version="2026.11.28-9"), "tom.hughes", ADMIN)
    code_flow(app.test_client(), email="sofia.rossi@hackney.test", client_id="admissions-portal")
    assert _decision_bundles(services)[-1] == "london@2026.11.28-1"
