"""The SQL bundle repository: activation is all or nothing, concurrent activations queue, state survives."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading

import pytest
from sqlalchemy import event, update

from broker.audit import AuditLog
from broker.cli_policy import audit_sink
from broker.policy_store import SqlBundleRepository
from broker.storage.database import make_session_factory
from broker.storage.models import PolicyBundleVersionRow
from policies import LONDON_BUNDLE, load_bundle
from policies.bundle import PolicyBundle
from policies.errors import PolicyError, PolicyErrorCode
from policies.governance import PolicyGovernance
from policies.model import Environment
from policies.repository import BundleRecord, BundleState, HistoryEntry

T0 = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)


def record(version: str, state: BundleState = BundleState.APPROVED) -> BundleRecord:
    bundle = PolicyBundle("london", version, {"a.cedar": "// none"})
    return BundleRecord(version=version, bundle=bundle, state=state, proposer="alice", proposed_at=T0)


@pytest.fixture
def repository(services) -> SqlBundleRepository:  # type: ignore[no-untyped-def]
    return SqlBundleRepository(services.db)


def test_a_failed_activation_changes_nothing(services, repository) -> None:  # type: ignore[no-untyped-def]
    repository.add(record("1"))
    repository.add(record("2"))
    repository.activate("1", T0)
    failing = make_session_factory(services.engine)

    def explode(session, flush_context, instances) -> None:  # type: ignore[no-untyped-def]
        raise RuntimeError("the database went away mid-activation")

    event.listen(failing, "before_flush", explode)
    with pytest.raises(RuntimeError):
        SqlBundleRepository(failing).activate("2", T0 + dt.timedelta(hours=1))
    assert repository.active_version() == "1"
    assert repository.get("1").state is BundleState.ACTIVE
    assert repository.get("2").state is BundleState.APPROVED and repository.get("2").activated_at is None


def test_activating_an_unknown_version_leaves_the_active_one(repository) -> None:  # type: ignore[no-untyped-def]
    repository.add(record("1"))
    repository.activate("1", T0)
    with pytest.raises(PolicyError) as caught:
        repository.activate("nope", T0)
    assert caught.value.code is PolicyErrorCode.UNKNOWN_VERSION
    assert repository.active_version() == "1" and repository.get("1").state is BundleState.ACTIVE


def test_concurrent_activations_leave_exactly_one_active_version(services, repository) -> None:  # type: ignore[no-untyped-def]
    versions = [str(n) for n in range(6)]
    for version in versions:
        repository.add(record(version))
    errors: list[BaseException] = []

    def worker(version: str) -> None:
        try:
            for n in range(5):
                SqlBundleRepository(services.db).activate(version, T0 + dt.timedelta(seconds=n))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    states = {r.version: r.state for r in repository.versions()}
    active = [v for v, s in states.items() if s is BundleState.ACTIVE]
    assert active == [repository.active_version()]
    assert all(s is BundleState.SUPERSEDED for v, s in states.items() if v not in active)


def test_governed_state_survives_a_new_process(services) -> None:  # type: ignore[no-untyped-def]
    audited: list[str] = []
    first = PolicyGovernance(SqlBundleRepository(services.db), lambda event, details: audited.append(event))
    first.propose(load_bundle(LONDON_BUNDLE), "alice", ["policy-admin"])
    version = load_bundle(LONDON_BUNDLE).version
    first.approve(version, "bob", ["policy-admin"])
    first.activate(version, "alice", ["policy-admin"])
    again = PolicyGovernance(SqlBundleRepository(make_session_factory(services.engine)), lambda e, d: None)
    active = again.active()
    assert active is not None and active.bundle == load_bundle(LONDON_BUNDLE)
    assert (active.proposer, active.approver, active.state) == ("alice", "bob", BundleState.ACTIVE)
    assert [e.event for e in again.history()] == audited
    assert again.history()[0].details["test_cases"] > 0
    engine = again.active_engine(again.compiled(version).tests.environment)
    assert engine.label == f"london@{version}"


def test_a_corrupted_stored_version_fails_closed(services, repository) -> None:  # type: ignore[no-untyped-def]
    repository.add(record("1"))
    repository.activate("1", T0)
    with services.db.begin() as session:
        session.execute(update(PolicyBundleVersionRow).values(bundle="{not json"))
    with pytest.raises(PolicyError) as caught:
        repository.get("1")
    assert caught.value.code is PolicyErrorCode.INVALID_STATE
    governance = PolicyGovernance(repository, lambda e, d: None)
    with pytest.raises(PolicyError) as caught:
        governance.active_engine(Environment())
    assert caught.value.code is PolicyErrorCode.INVALID_STATE


@pytest.mark.parametrize("version", ["1'; DROP TABLE policy_active; --", 'quote"s', "ünïcode", "x" * 64])
def test_hostile_version_strings_are_data_not_sql(repository, version) -> None:  # type: ignore[no-untyped-def]
    repository.add(record(version))
    repository.activate(version, T0)
    assert repository.get(version).state is BundleState.ACTIVE and repository.active_version() == version


def test_a_version_too_long_to_store_is_refused_cleanly(repository) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PolicyError) as caught:
        repository.add(record("x" * 65))
    assert caught.value.code is PolicyErrorCode.INVALID_INPUT
    assert repository.get(None) is None  # type: ignore[arg-type]


def test_replace_keeps_the_proposal_order(repository) -> None:  # type: ignore[no-untyped-def]
    for version in ("b", "a", "c"):
        repository.add(record(version, BundleState.PROPOSED))
    repository.replace(dataclasses.replace(record("a"), approver="bob", approved_at=T0))
    assert [r.version for r in repository.versions()] == ["b", "a", "c"]
    assert repository.get("a").approver == "bob" and repository.get("a").approved_at == T0


def test_history_keeps_details_and_order_at_equal_times(repository) -> None:  # type: ignore[no-untyped-def]
    for n in range(20):
        repository.append_history(HistoryEntry(T0, f"e{n}", "1", "alice", {"n": n, "ids": ["a", "b"], "none": None}))
    history = repository.history()
    assert [e.event for e in history] == [f"e{n}" for n in range(20)]
    assert dict(history[3].details) == {"n": 3, "ids": ["a", "b"], "none": None} and history[3].at == T0


def test_refusals_reach_the_audit_chain_without_tripping_its_secret_filter(services) -> None:  # type: ignore[no-untyped-def]
    governance = PolicyGovernance(SqlBundleRepository(services.db), audit_sink(services.audit))
    with pytest.raises(PolicyError):
        governance.approve("nope", "bob", ["policy-admin"])
    last = list(services.audit.records())[-1]
    assert (last.event, last.outcome, last.actor) == ("policy.bundle.approve_refused", "denied", "bob")
    assert last.details["error_code"] == "policy_unknown_version"
    assert AuditLog.verify(services.audit).ok
