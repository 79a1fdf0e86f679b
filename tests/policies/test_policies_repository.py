"""Conformance tests every BundleRepository must pass: in memory, and the broker's SQL one.

A factory takes the pytest request, so the SQL factory can use the ``services`` fixture
of tests/conftest.py (a migrated database: SQLite, or PostgreSQL when asked).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from policies.bundle import PolicyBundle
from policies.errors import PolicyError, PolicyErrorCode
from policies.repository import BundleRecord, BundleRepository, BundleState, HistoryEntry, InMemoryBundleRepository

T0 = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)


def in_memory(request: pytest.FixtureRequest) -> BundleRepository:
    return InMemoryBundleRepository()


def sql(request: pytest.FixtureRequest) -> BundleRepository:
    from broker.policy_store import SqlBundleRepository

    return SqlBundleRepository(request.getfixturevalue("services").db)


FACTORIES: list[Callable[[pytest.FixtureRequest], BundleRepository]] = [in_memory, sql]


def record(version: str) -> BundleRecord:
    bundle = PolicyBundle("london", version, {"a.cedar": "// none"})
    return BundleRecord(version=version, bundle=bundle, state=BundleState.PROPOSED, proposer="alice", proposed_at=T0)


@pytest.fixture(params=FACTORIES, ids=lambda f: f.__name__)
def repository(request: pytest.FixtureRequest) -> BundleRepository:
    return request.param(request)


def test_it_is_a_bundle_repository(repository: BundleRepository) -> None:
    assert isinstance(repository, BundleRepository)


def test_add_get_and_versions_in_order(repository: BundleRepository) -> None:
    assert repository.get("1") is None and repository.versions() == [] and repository.active_version() is None
    repository.add(record("1"))
    repository.add(record("2"))
    assert repository.get("1") == record("1")
    assert [r.version for r in repository.versions()] == ["1", "2"]


def test_a_version_is_added_once(repository: BundleRepository) -> None:
    repository.add(record("1"))
    with pytest.raises(PolicyError) as caught:
        repository.add(record("1"))
    assert caught.value.code is PolicyErrorCode.VERSION_EXISTS


def test_replace_needs_an_existing_version(repository: BundleRepository) -> None:
    with pytest.raises(PolicyError) as caught:
        repository.replace(record("9"))
    assert caught.value.code is PolicyErrorCode.UNKNOWN_VERSION


def test_activate_supersedes_the_previous_version(repository: BundleRepository) -> None:
    repository.add(record("1"))
    repository.add(record("2"))
    repository.activate("1", T0)
    repository.activate("2", T0 + dt.timedelta(minutes=1))
    assert repository.active_version() == "2"
    assert repository.get("1").state is BundleState.SUPERSEDED
    active = repository.get("2")
    assert active.state is BundleState.ACTIVE and active.activated_at == T0 + dt.timedelta(minutes=1)
    with pytest.raises(PolicyError):
        repository.activate("3", T0)


def test_history_is_kept_in_order(repository: BundleRepository) -> None:
    for n in range(3):
        repository.append_history(HistoryEntry(at=T0, event=f"e{n}", version="1", actor="alice", details={"n": n}))
    assert [e.event for e in repository.history()] == ["e0", "e1", "e2"]


def test_records_round_trip_through_json() -> None:
    original = record("1")
    assert BundleRecord.from_json(original.to_json()) == original
    with pytest.raises(PolicyError):
        BundleRecord.from_json({"version": "1"})
