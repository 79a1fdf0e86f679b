"""Newham's two real domain controllers: the second joined with ``samba-tool domain join ... DC``,
replicating from the first (``samba-tool drs replicate``). Sign-in fails over between them
when the first stops mid-test, and the circuit breaker recovers when it comes back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from directories import DirectoryError, DirectoryErrorCode
from directories.ldap import CircuitState
from tests.directories.broker_peers import camden_source, create_ad_user, hackney_source, newham_source
from tests.directories.ldap_peers import newham_settings
from tests.directories.test_broker_directory_signin import build_app, records
from tests.peers.samba import NEWHAM_PASSWORD, SambaDC, replicate
from tests.peers.slapd import SlapdServer
from tests.support.flask_flow import password_sign_in

pytestmark = pytest.mark.peer("samba")

PASSWORD = "Two-Dcs-Test-2026!"


def urls(dc1: SambaDC, dc2: SambaDC) -> list[str]:
    return [f"ldap://{dc1.address}:389", f"ldap://{dc2.address}:389"]


@pytest.fixture
def dc1_restarted_after(samba_newham: SambaDC) -> Iterator[SambaDC]:
    """The first DC, started again after the test whatever happened (it is shared by the session)."""
    yield samba_newham
    samba_newham.start()


def test_the_second_dc_is_a_real_replica(samba_newham: SambaDC, samba_newham_dc2: SambaDC, build) -> None:  # type: ignore[no-untyped-def]
    only_dc2 = build(newham_settings(samba_newham, urls=(f"ldap://{samba_newham_dc2.address}:389",)))
    assert only_dc2.authenticate("mokafor", NEWHAM_PASSWORD).attributes["job_title"] == "Discharge Coordinator"
    email = create_ad_user(samba_newham, PASSWORD)  # written on the first DC only
    sam = email.split("@")[0]
    with pytest.raises(DirectoryError) as info:
        only_dc2.authenticate(sam, PASSWORD)
    assert info.value.code is DirectoryErrorCode.INVALID_CREDENTIALS  # not there yet
    report = replicate(samba_newham, samba_newham_dc2)
    assert "was successful" in report
    record = only_dc2.authenticate(sam, PASSWORD)  # the password hash replicated too
    assert record.username == sam
    first_dc = build(newham_settings(samba_newham, urls=(f"ldap://{samba_newham.address}:389",)))
    assert first_dc.lookup(sam).object_id == record.object_id  # one object, same objectGUID on both DCs


def test_first_dc_stopped_mid_test_the_next_sign_in_goes_to_the_second_within_the_timeout(
    settings_factory, samba_camden: SambaDC, samba_newham_dc2: SambaDC, slapd_hackney: SlapdServer,
    dc1_restarted_after: SambaDC,
) -> None:
    dc1, dc2 = dc1_restarted_after, samba_newham_dc2
    newham = newham_source(dc1, urls=urls(dc1, dc2), connect_timeout_seconds=1, response_timeout_seconds=2)
    app, services = build_app(settings_factory, camden_source(samba_camden), newham, hackney_source(slapd_hackney))
    try:
        email = create_ad_user(dc1, PASSWORD)  # a new starter, created on the first DC
        assert password_sign_in(app.test_client(), email, PASSWORD).status_code == 302
        first, second = services.registry.source("newham-ad")._directory.health()  # noqa: SLF001
        assert first.total_successes >= 1 and second.total_successes == 0  # the first DC served it
        replicate(dc1, dc2)
        dc1.stop()  # the first DC goes down, with pooled connections open to it
        started = time.perf_counter()
        response = password_sign_in(app.test_client(), email, PASSWORD)
        elapsed = time.perf_counter() - started
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        assert elapsed < 1 + 2 + 1  # connect + response timeout, plus slack
        first, second = services.registry.source("newham-ad")._directory.health()  # noqa: SLF001
        assert first.total_failures >= 1 and second.total_successes >= 1
        assert [r.details["organisation"] for r in records(services, "signin", "success")] == ["newham", "newham"]
    finally:
        services.engine.dispose()


def test_circuit_breaker_recovers_when_the_first_dc_comes_back(
    samba_newham_dc2: SambaDC, dc1_restarted_after: SambaDC, build  # type: ignore[no-untyped-def]
) -> None:
    dc1, dc2 = dc1_restarted_after, samba_newham_dc2
    now = [1000.0]
    newham = build(
        newham_settings(dc1, urls=tuple(urls(dc1, dc2)), failure_threshold=1, circuit_open_seconds=30,
                        connect_timeout_seconds=1, response_timeout_seconds=2),
        clock=lambda: now[0],
    )
    newham.authenticate("mokafor", NEWHAM_PASSWORD)
    assert newham.health()[0].total_successes >= 1
    dc1.stop()
    newham.authenticate("mokafor", NEWHAM_PASSWORD)  # served by the second DC
    first, second = newham.health()
    assert first.state is CircuitState.OPEN and second.total_successes >= 1
    dc1.start()
    now[0] += 10
    newham.authenticate("mokafor", NEWHAM_PASSWORD)
    assert newham.health()[0].state is CircuitState.OPEN  # still cooling down: not tried yet
    successes = newham.health()[0].total_successes
    now[0] += 21
    newham.authenticate("mokafor", NEWHAM_PASSWORD)  # half-open trial on the first DC, which answers
    first = newham.health()[0]
    assert first.state is CircuitState.CLOSED and first.total_successes > successes


def test_an_incremental_sync_answered_by_the_other_dc_runs_in_full(
    samba_newham: SambaDC, samba_newham_dc2: SambaDC, build  # type: ignore[no-untyped-def]
) -> None:
    from directories.ldap.sync import DirectorySync

    dc1 = build(newham_settings(samba_newham, urls=(f"ldap://{samba_newham.address}:389",)))
    dc2 = build(newham_settings(samba_newham, urls=(f"ldap://{samba_newham_dc2.address}:389",)))
    seen: list[str] = []
    first = DirectorySync(dc1).run(lambda page: seen.extend(r.object_id for r in page))
    assert first.full and first.cursor is not None and first.cursor.server.endswith(f"{samba_newham.address}:389")
    on_dc1 = DirectorySync(dc1).run(lambda page: None, first.cursor)
    assert not on_dc1.full  # same DC: its USNs continue
    again: list[str] = []
    on_dc2 = DirectorySync(dc2).run(lambda page: again.extend(r.object_id for r in page), first.cursor)
    assert on_dc2.full and set(seen) <= set(again)  # USNs are per DC: everyone is read again
    assert on_dc2.cursor is not None and on_dc2.cursor.server.endswith(f"{samba_newham_dc2.address}:389")
