"""The decision log: compact, faithful for replay, and holding no attribute value a policy never reads."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import select, update

from broker.decision_log import DecisionRecorder, decode_request, encode_request
from broker.policy_store import SqlBundleRepository
from broker.storage.models import PolicyDecisionRow
from policies import LONDON_BUNDLE, PolicyEngine, compile_bundle, load_bundle
from policies.bundle import CompiledBundle
from policies.errors import PolicyError, PolicyErrorCode
from policies.governance import PolicyGovernance
from policies.model import Fact, Request


@pytest.fixture(scope="module")
def london() -> CompiledBundle:
    return compile_bundle(load_bundle(LONDON_BUNDLE))


@pytest.fixture(scope="module")
def engine(london) -> PolicyEngine:  # type: ignore[no-untyped-def]
    return PolicyEngine(london, london.tests.environment)


@pytest.fixture
def recorder(services) -> DecisionRecorder:  # type: ignore[no-untyped-def]
    return DecisionRecorder(services.db)


def test_every_recorded_decision_is_decided_again_the_same_way(london, engine, recorder) -> None:  # type: ignore[no-untyped-def]
    decisions = [engine.decide(case.request) for case in london.tests.cases]
    assert recorder.record_many(decisions, batch=7) == len(decisions) == recorder.count()
    recorded = list(recorder.recorded())
    assert len(recorded) == len(decisions)
    for original, stored in zip(decisions, recorded, strict=True):
        assert (stored.allowed, stored.policy_ids, stored.bundle) == (original.allowed, original.policy_ids, original.bundle)
        again = engine.decide(stored.request)
        assert (again.allowed, again.policy_ids, again.released) == (original.allowed, original.policy_ids, original.released)
        assert [o.to_json() for o in again.obligations] == [o.to_json() for o in original.obligations]
        assert stored.request.now == original.request.now and stored.request.record == original.request.record


def test_values_no_policy_reads_are_never_stored(london, engine, recorder, services) -> None:  # type: ignore[no-untyped-def]
    case = next(c for c in london.tests.cases if c.request.person.subject == "camden-ad|asmith")
    recorder.record(engine.decide(case.request))
    with services.db() as session:
        stored = session.execute(select(PolicyDecisionRow.request)).scalar_one()
    assert "alex.smith@camden.test" not in stored and "Alex Smith" not in stored and "C-10442" not in stored
    assert "email" in stored and "social-worker" in stored and "bundle-test-case" in stored
    assert len(stored) < 600
    person = next(recorder.recorded()).request.person
    assert person.facts["email"].value == "(not recorded)"
    assert person.facts["teams"] == case.request.person.facts["teams"]


def test_break_glass_grants_are_kept_without_their_justification(london, engine) -> None:  # type: ignore[no-untyped-def]
    case = next(c for c in london.tests.cases if c.request.person.break_glass is not None)
    text = encode_request(case.request)
    assert case.request.person.break_glass.justification not in text
    again = decode_request(text, case.request.action, case.request.service, case.request.now)
    grant = again.person.break_glass
    assert (grant.reason_code, grant.granted_at, grant.expires_at) == (
        case.request.person.break_glass.reason_code,
        case.request.person.break_glass.granted_at,
        case.request.person.break_glass.expires_at,
    )
    assert engine.decide(again).allowed == engine.decide(case.request).allowed


@pytest.mark.parametrize(
    "text",
    ["", "{", "[]", '{"v": 99}', '{"v": 1, "src": [], "t": [], "f": {"kind": ["borough", 5, 0]}, "sub": "x"}',
     '{"v": 1, "src": ["s"], "t": ["2026-01-01T00:00:00+00:00"], "sub": "x", "f": {"organisation": ["c", 0, 0],'
     ' "kind": ["wizard", 0, 0], "assurance": [9, 0, 0]}}'],
)
def test_a_malformed_row_is_refused_not_guessed(text) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PolicyError) as caught:
        decode_request(text, "sign_in", "mash", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert caught.value.code is PolicyErrorCode.INVALID_INPUT


def test_a_tampered_row_stops_replay_with_a_clear_error(london, engine, recorder, services) -> None:  # type: ignore[no-untyped-def]
    recorder.record(engine.decide(london.tests.cases[0].request))
    with services.db.begin() as session:
        session.execute(update(PolicyDecisionRow).values(request='{"v":1}'))
    with pytest.raises(PolicyError) as caught:
        list(recorder.recorded())
    assert "malformed decision log entry" in str(caught.value)


def test_only_decisions_are_recorded(recorder) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PolicyError) as caught:
        recorder.record("permit")  # type: ignore[arg-type]
    assert caught.value.code is PolicyErrorCode.INVALID_INPUT


def test_filters_by_service_time_and_count(london, engine, recorder) -> None:  # type: ignore[no-untyped-def]
    base = london.tests.cases[0].request
    for hours in range(6):
        for service in ("mash", "discharge-hub"):
            recorder.record(engine.decide(Request(base.person, "sign_in", service, base.now + dt.timedelta(hours=hours))))
    assert len(list(recorder.recorded(service="mash"))) == 6
    assert len(list(recorder.recorded(since=base.now + dt.timedelta(hours=4)))) == 4
    assert [r.request.service for r in recorder.recorded(limit=3)] == ["mash", "discharge-hub", "mash"]


def test_replay_over_real_history_lists_the_flips(london, engine, recorder, services) -> None:  # type: ignore[no-untyped-def]
    case = next(c for c in london.tests.cases if c.request.service == "mash" and c.expect.decision == "permit")
    weak = dataclasses.replace(
        case.request.person, facts={**case.request.person.facts, "assurance": Fact(1, "test", case.request.now)}
    )
    recorder.record(engine.decide(case.request))
    recorder.record(engine.decide(dataclasses.replace(case.request, person=weak)))
    bundle = load_bundle(LONDON_BUNDLE)
    stricter = dataclasses.replace(
        bundle.with_version("v2"),
        sources={**bundle.sources, "mash_aal2.cedar": '@id("mash/require-aal2") forbid (principal, action == '
                 'Action::"sign_in", resource == Service::"mash") unless { principal.assurance >= 2 };'},
    )
    governance = PolicyGovernance(SqlBundleRepository(services.db), lambda e, d: None)
    governance.propose(stricter, "alice", ["policy-admin"])
    report = governance.replay("v2", "carol", recorder.recorded(), london.tests.environment)
    assert report.total == 2 and len(report.flips) == 1
    flip = report.flips[0]
    assert (flip.was_allowed, flip.now_allowed, flip.new_policy_ids) == (True, False, ("mash/require-aal2",))


def test_shared_facts_do_not_blur_types(london, engine, recorder, services) -> None:  # type: ignore[no-untyped-def]
    case = london.tests.cases[0]
    recorder.record(engine.decide(case.request))
    recorder.record(engine.decide(case.request))
    with services.db.begin() as session:
        first = session.execute(select(PolicyDecisionRow.id).order_by(PolicyDecisionRow.id)).scalars().first()
        text = session.execute(select(PolicyDecisionRow.request).where(PolicyDecisionRow.id == first)).scalar_one()
        session.execute(update(PolicyDecisionRow).where(PolicyDecisionRow.id != first)
                        .values(request=text.replace('"assurance":[2,', '"assurance":[true,')))
    stream = recorder.recorded()
    assert next(stream).request.person.assurance == 2
    with pytest.raises(PolicyError):
        next(stream)
