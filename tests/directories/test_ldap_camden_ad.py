"""Camden's Active Directory (a real Samba AD DC) over LDAPS: people, statuses, groups, attacks."""

from __future__ import annotations

import socket
import statistics
import threading
import time
import uuid

import pytest

from directories import AccountStatus, DirectoryError, DirectoryErrorCode
from directories.ldap import LdapDirectory
from directories.ldap.transport import ConnectionFactory, TransportSettings
from tests.directories.ldap_peers import camden_settings, newham_settings
from tests.peers.samba import CAMDEN, CAMDEN_PASSWORD, NEWHAM_PASSWORD, SERVICE_ACCOUNT, SERVICE_PASSWORD, SambaDC
from tests.support.secrets import resolved_secret

pytestmark = pytest.mark.peer("samba")

ALICE = "asmith@camden.test"


def fails_with(directory: LdapDirectory, username: str, password: str) -> DirectoryError:
    with pytest.raises(DirectoryError) as info:
        directory.authenticate(username, password)
    return info.value


def test_adult_social_worker_signs_in_with_nested_groups(camden: LdapDirectory) -> None:
    record = camden.authenticate(ALICE, CAMDEN_PASSWORD)
    assert record.directory_id == "camden-ad"
    assert record.username == ALICE
    assert record.status is AccountStatus.ACTIVE
    assert uuid.UUID(record.object_id)  # objectGUID, decoded
    assert record.attributes["name"] == "Alice Smith"
    assert record.attributes["email"] == "alice.smith@camden.test"
    assert record.attributes["department"] == "Adult Social Care"
    assert record.attributes["job_title"] == "Social Worker"
    assert record.attributes["employee_id"] == "CAM-10442"
    names = {g.name for g in record.groups}
    # direct groups, "Care Staff" only through nesting, and the primary group (RID 513)
    assert {"Adult Social Care", "Care Staff", "Discharge Team", "Domain Users"} <= names
    assert all(uuid.UUID(g.id) for g in record.groups)
    assert len({g.id for g in record.groups}) == len(record.groups)


@pytest.mark.parametrize("group_mode", ["in_chain", "token_groups"])
def test_dn_with_comma_and_parentheses_is_escaped_in_group_searches(
    samba_camden: SambaDC,
    build,  # type: ignore[no-untyped-def]
    group_mode: str,
) -> None:
    # Jo's DN is "CN=Smith\\, Jo (Agency),CN=Users,...": unescaped, the in-chain filter breaks
    directory = build(camden_settings(samba_camden, group_mode=group_mode))
    record = directory.authenticate("jsmith@camden.test", CAMDEN_PASSWORD)
    assert {"Adult Social Care", "Care Staff"} <= {g.name for g in record.groups}
    assert "Discharge Team" not in {g.name for g in record.groups}
    assert all(h.total_failures == 0 for h in directory.health())


def test_token_groups_mode_finds_the_same_nesting(samba_camden: SambaDC, build) -> None:  # type: ignore[no-untyped-def]
    in_chain = build(camden_settings(samba_camden)).authenticate(ALICE, CAMDEN_PASSWORD)
    token = build(camden_settings(samba_camden, group_mode="token_groups")).authenticate(ALICE, CAMDEN_PASSWORD)
    assert {g.name for g in in_chain.groups} <= {g.name for g in token.groups}
    assert {g.id for g in in_chain.groups} <= {g.id for g in token.groups}


def test_object_id_is_stable_and_shared_by_lookup(camden: LdapDirectory) -> None:
    signed_in = camden.authenticate(ALICE, CAMDEN_PASSWORD)
    looked_up = camden.lookup(ALICE)
    assert looked_up is not None and looked_up.object_id == signed_in.object_id
    assert looked_up.groups == signed_in.groups


def test_custom_attribute_map(samba_camden: SambaDC, build) -> None:  # type: ignore[no-untyped-def]
    directory = build(
        camden_settings(samba_camden, attribute_map={"office": "physicalDeliveryOfficeName", "sid": "objectSid"})
    )
    record = directory.authenticate(ALICE, CAMDEN_PASSWORD)
    assert record.attributes["office"] == "Crowndale Centre"
    assert str(record.attributes["sid"]).startswith("S-1-5-21-")
    assert "email" not in record.attributes  # only what the map names


@pytest.mark.parametrize(
    ("sam", "code", "subcode", "status"),
    [
        ("jleaver", DirectoryErrorCode.ACCOUNT_DISABLED, "533", AccountStatus.DISABLED),
        ("pnew", DirectoryErrorCode.PASSWORD_MUST_CHANGE, "773", AccountStatus.PASSWORD_MUST_CHANGE),
        ("tlocked", DirectoryErrorCode.ACCOUNT_LOCKED, "775", AccountStatus.LOCKED),
        ("cexpired", DirectoryErrorCode.ACCOUNT_EXPIRED, "701", AccountStatus.EXPIRED),
    ],
)
def test_accounts_that_may_not_sign_in(
    camden: LdapDirectory, sam: str, code: DirectoryErrorCode, subcode: str, status: AccountStatus
) -> None:
    error = fails_with(camden, f"{sam}@camden.test", CAMDEN_PASSWORD)
    assert error.code is code
    assert f"({subcode})" in error.detail  # the precise reason, for the audit log
    assert CAMDEN_PASSWORD not in str(error)
    record = camden.lookup(f"{sam}@camden.test")  # the leaver check sees the same state
    assert record is not None and record.status is status


def test_active_account_looks_active(camden: LdapDirectory) -> None:
    record = camden.lookup(ALICE)
    assert record is not None and record.status is AccountStatus.ACTIVE


def test_wrong_password_and_unknown_user_look_the_same(camden: LdapDirectory) -> None:
    wrong = fails_with(camden, "wrongpw@camden.test", "Not-Her-Password-1")
    unknown = fails_with(camden, "nobody@camden.test", "Not-Her-Password-1")
    assert wrong.code is unknown.code is DirectoryErrorCode.INVALID_CREDENTIALS
    assert "52e" in wrong.detail and "no such user" in unknown.detail  # audit tells them apart
    assert camden.lookup("nobody@camden.test") is None
    # a right password still works afterwards (one failure does not lock the account)
    assert camden.authenticate("wrongpw@camden.test", CAMDEN_PASSWORD).username == "wrongpw@camden.test"


def test_failures_take_the_same_time_whoever_exists(samba_camden: SambaDC, build) -> None:  # type: ignore[no-untyped-def]
    camden = build(camden_settings(samba_camden, min_failure_seconds=0.3))
    camden.lookup(ALICE)  # warm the pool

    def failure_time(username: str) -> float:
        started = time.perf_counter()
        assert fails_with(camden, username, "Not-The-Password-1").code is DirectoryErrorCode.INVALID_CREDENTIALS
        return time.perf_counter() - started

    unknown = [failure_time("nobody@camden.test") for _ in range(2)]
    known = [failure_time("wrongpw@camden.test") for _ in range(2)]
    assert min(unknown + known) >= 0.3
    assert abs(statistics.mean(known) - statistics.mean(unknown)) < 0.1
    camden.authenticate("wrongpw@camden.test", CAMDEN_PASSWORD)  # resets the bad-password count


def test_disabled_account_with_wrong_password_reveals_nothing(camden: LdapDirectory) -> None:
    assert fails_with(camden, "jleaver@camden.test", "Guessing-1").code is DirectoryErrorCode.INVALID_CREDENTIALS


@pytest.mark.parametrize("password", ["", "   ", "\t"])
def test_empty_password_never_reaches_the_directory(camden: LdapDirectory, password: str) -> None:
    camden.lookup(ALICE)  # warm the pool
    before = [h.total_successes + h.total_failures for h in camden.health()]
    assert fails_with(camden, ALICE, password).code is DirectoryErrorCode.EMPTY_PASSWORD
    assert [h.total_successes + h.total_failures for h in camden.health()] == before


@pytest.mark.parametrize(
    "username",
    [
        "asmith*",
        "*",
        "a*@camden.test",
        "zoë.o'brien@camden.test",
        "*)(userPrincipalName=*))(|(userPrincipalName=*",
        "asmith@camden.test)(cn=*",
    ],
)
def test_filter_injection_finds_nobody(camden: LdapDirectory, username: str) -> None:
    # unescaped, "asmith*" and "*" would match Alice (a real UPN) and sign her in
    assert fails_with(camden, username, CAMDEN_PASSWORD).code is DirectoryErrorCode.INVALID_CREDENTIALS
    assert camden.lookup(username) is None
    assert all(h.total_failures == 0 for h in camden.health())  # no malformed filter reached a server


def test_certificate_must_name_the_server(samba_camden: SambaDC, build) -> None:  # type: ignore[no-untyped-def]
    directory = build(camden_settings(samba_camden, tls_server_name="dc-evil.camden.test"))
    error = fails_with(directory, ALICE, CAMDEN_PASSWORD)
    assert error.code is DirectoryErrorCode.UNAVAILABLE
    assert "certificate" in error.detail.lower() or "hostname" in error.detail.lower()


def test_untrusted_certificate_is_refused(samba_camden: SambaDC, build) -> None:  # type: ignore[no-untyped-def]
    # without Camden's CA the self-signed chain is not trusted: fail closed, never fall back to plain
    directory = build(camden_settings(samba_camden, ca_file=None))
    assert fails_with(directory, ALICE, CAMDEN_PASSWORD).code is DirectoryErrorCode.UNAVAILABLE


def test_wrong_service_password_is_a_configuration_error(samba_camden: SambaDC, build) -> None:  # type: ignore[no-untyped-def]
    directory = build(camden_settings(samba_camden, bind_password=resolved_secret("Not-The-Service-Password-1")))
    error = fails_with(directory, ALICE, CAMDEN_PASSWORD)
    assert error.code is DirectoryErrorCode.MISCONFIGURED
    assert "Not-The-Service-Password-1" not in str(error)


def test_pool_reuses_connections_across_threads(camden: LdapDirectory) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def sign_in() -> None:
        try:
            for _ in range(5):
                results.append(camden.authenticate(ALICE, CAMDEN_PASSWORD).object_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sign_in) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 30 and len(set(results)) == 1
    assert camden._pool.idle_count() <= 12  # noqa: SLF001 - at most 6 threads x (service + auth)


def test_sockets_have_tcp_nodelay(samba_camden: SambaDC) -> None:
    def open_with(nodelay: bool) -> int:
        factory = ConnectionFactory(
            TransportSettings(
                tls_mode="ldaps",
                ca_file=samba_camden.ca_file,
                tls_server_name=CAMDEN.dc_fqdn,
                connect_timeout=2,
                response_timeout=5,
                bind_dn=CAMDEN.user_dn(SERVICE_ACCOUNT),
                bind_password=SERVICE_PASSWORD,
                tcp_nodelay=nodelay,
            )
        )
        conn = factory.open(f"ldaps://{samba_camden.address}:636", "service")
        try:
            return conn.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            conn.unbind()

    assert open_with(True) == 1
    assert open_with(False) == 0


def test_same_username_in_two_boroughs_never_collides(
    samba_camden: SambaDC,
    samba_newham: SambaDC,
    build,  # type: ignore[no-untyped-def]
) -> None:
    camden = build(camden_settings(samba_camden, user_attribute="sAMAccountName"))
    newham = build(newham_settings(samba_newham))
    in_camden = camden.authenticate("jpatel", CAMDEN_PASSWORD)
    in_newham = newham.authenticate("jpatel", NEWHAM_PASSWORD)
    assert in_camden.username == in_newham.username == "jpatel"
    assert (in_camden.directory_id, in_camden.object_id) != (in_newham.directory_id, in_newham.object_id)
    assert in_camden.object_id != in_newham.object_id
    assert in_camden.attributes["email"] == "jay.patel@camden.test"
    assert in_newham.attributes["email"] == "jay.patel@newham.test"
    assert camden.organisation == "camden" and newham.organisation == "newham"
    # one borough's password is no good in the other
    assert fails_with(newham, "jpatel", CAMDEN_PASSWORD).code is DirectoryErrorCode.INVALID_CREDENTIALS
