"""How soon a worker sees an organisation change made by another process: at the latest
``broker.organisations_recheck_seconds`` after its last look at the registry's version."""

from __future__ import annotations

from broker.organisations_admin import OrganisationAdmin, OrganisationRecord
from federation.organisations import OrganisationRegistry

ISLINGTON = OrganisationRecord(id="islington", name="London Borough of Islington", kind="borough",
                               domains=("islington.test",))


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _worker(services, clock: FakeClock) -> tuple[OrganisationAdmin, OrganisationRegistry]:  # type: ignore[no-untyped-def]
    """Another worker's view of the store: its own live registry, seeded from the same database."""
    registry = OrganisationRegistry(list(services.registry.organisations.values()))
    worker = OrganisationAdmin(services.db, registry, list(services.registry.organisations.values()),
                               services.audit.append, clock=clock)
    worker.seed()
    return worker, registry


def test_a_change_elsewhere_is_seen_at_the_first_look_after_the_bound(services) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    worker, registry = _worker(services, clock)
    assert worker.sync(1.0) is False  # first look: reads the version, nothing new
    services.organisations.create(ISLINGTON, actor="admin:alice")  # "another process"
    clock.now += 0.5
    assert worker.sync(1.0) is False and registry.discover("ivy@islington.test") is None  # within the bound: no read
    clock.now += 0.5
    assert worker.sync(1.0) is True  # the bound has passed: read, changed, reloaded
    assert registry.discover("ivy@islington.test").id == "islington"


def test_zero_looks_on_every_call(services) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    worker, registry = _worker(services, clock)
    assert worker.sync(0) is False
    services.organisations.retire("hackney", actor="admin:alice", reason="test")
    assert worker.sync(0) is True  # same instant, still read
    assert registry.discover("rosa@hackney.test") is None


def test_the_default_setting_is_one_second_and_tests_use_zero(settings, settings_factory) -> None:  # type: ignore[no-untyped-def]
    from config import load_settings

    assert settings.broker.organisations_recheck_seconds == 0
    document = settings_factory.document()
    del document["broker"]["organisations_recheck_seconds"]
    assert load_settings(settings_factory.write(document, "default.yaml")).broker.organisations_recheck_seconds == 1.0
