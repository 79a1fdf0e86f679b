"""Newham's Active Directory (a real Samba AD DC) over StartTLS, with a domain controller down."""

from __future__ import annotations

import time

import pytest

from directories import DirectoryError, DirectoryErrorCode
from directories.ldap import CircuitState, LdapDirectory
from tests.directories.ldap_peers import DEAD_PORT, newham_settings
from tests.peers.samba import NEWHAM_PASSWORD, SambaDC

pytestmark = pytest.mark.peer("samba")


def test_discharge_coordinator_signs_in_while_the_first_dc_is_down(newham: LdapDirectory) -> None:
    record = newham.authenticate("mokafor", NEWHAM_PASSWORD)
    assert record.directory_id == "newham-ad"
    assert record.attributes["job_title"] == "Discharge Coordinator"
    assert record.attributes["email"] == "mary.okafor@newham.test"
    assert {"Discharge Coordinators", "Hospital Discharge Team", "Domain Users"} <= {g.name for g in record.groups}
    first, second = newham.health()
    assert first.total_failures >= 1 and f":{DEAD_PORT}" in first.url
    assert "refused" in (first.last_error or "").lower()
    assert second.state is CircuitState.CLOSED and second.total_successes >= 2


def test_circuit_breaker_stops_trying_the_dead_dc(newham: LdapDirectory) -> None:
    for _ in range(6):
        newham.authenticate("mokafor", NEWHAM_PASSWORD)
    first, _ = newham.health()
    assert first.state is CircuitState.OPEN
    assert first.total_failures == 2  # failure_threshold: afterwards it is skipped, not retried


def test_half_open_trial_after_the_cool_down(samba_newham: SambaDC, build) -> None:  # type: ignore[no-untyped-def]
    now = [1000.0]
    newham = build(newham_settings(samba_newham, circuit_open_seconds=30, failure_threshold=1), clock=lambda: now[0])
    newham.authenticate("mokafor", NEWHAM_PASSWORD)
    assert newham.health()[0].state is CircuitState.OPEN
    now[0] += 29
    newham.authenticate("mokafor", NEWHAM_PASSWORD)
    assert newham.health()[0].total_failures == 1  # still open: not tried
    now[0] += 2
    newham.authenticate("mokafor", NEWHAM_PASSWORD)  # one trial, which fails again
    first = newham.health()[0]
    assert first.total_failures == 2 and first.state is CircuitState.OPEN


def test_hung_dc_is_bounded_by_the_response_timeout(samba_newham: SambaDC, hung_server: str, build) -> None:  # type: ignore[no-untyped-def]
    live = f"ldap://{samba_newham.address}:389"
    newham = build(
        newham_settings(samba_newham, urls=(hung_server, live), response_timeout_seconds=0.5, failure_threshold=1)
    )
    started = time.perf_counter()
    assert newham.authenticate("mokafor", NEWHAM_PASSWORD).attributes["job_title"] == "Discharge Coordinator"
    first_sign_in = time.perf_counter() - started
    assert 0.4 < first_sign_in < 4.0  # waited for the hung DC once, then failed over
    started = time.perf_counter()
    newham.authenticate("mokafor", NEWHAM_PASSWORD)
    assert time.perf_counter() - started < 0.4  # circuit open: the hung DC costs nothing now
    assert newham.health()[0].state is CircuitState.OPEN


def test_no_dc_answering_is_unavailable(samba_newham: SambaDC, build) -> None:  # type: ignore[no-untyped-def]
    address = samba_newham.address
    newham = build(
        newham_settings(samba_newham, urls=(f"ldap://{address}:{DEAD_PORT}", f"ldap://{address}:{DEAD_PORT + 1}"))
    )
    with pytest.raises(DirectoryError) as info:
        newham.authenticate("mokafor", NEWHAM_PASSWORD)
    assert info.value.code is DirectoryErrorCode.UNAVAILABLE
    with pytest.raises(DirectoryError) as info:
        newham.lookup("mokafor")
    assert info.value.code is DirectoryErrorCode.UNAVAILABLE


def test_starttls_checks_the_certificate_name(samba_newham: SambaDC, build) -> None:  # type: ignore[no-untyped-def]
    newham = build(newham_settings(samba_newham, tls_server_name="dc-camden.camden.test"))
    with pytest.raises(DirectoryError) as info:
        newham.authenticate("mokafor", NEWHAM_PASSWORD)
    assert info.value.code is DirectoryErrorCode.UNAVAILABLE


def test_lookup_for_the_leaver_check(newham: LdapDirectory) -> None:
    record = newham.lookup("mokafor")
    assert record is not None and record.status.value == "active"
    assert newham.lookup("left-years-ago") is None
