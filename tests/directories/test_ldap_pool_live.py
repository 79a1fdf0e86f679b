"""Pooled connections against the real peers: who each connection is bound as, reuse after
failed binds, several threads at once, and a connection the server dropped.

"Who is this connection bound as" is asked of the server itself with the "Who am I?"
extended operation (RFC 4532), so the tests see what the directory sees.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest

from directories import DirectoryError, DirectoryErrorCode
from directories.ldap import LdapDirectory
from directories.ldap.attributes import sid_to_str
from tests.directories.ldap_peers import camden_settings, hackney_settings
from tests.peers import peer_missing
from tests.peers import slapd as slapd_peer
from tests.peers.samba import CAMDEN, CAMDEN_PASSWORD, SERVICE_ACCOUNT, SambaDC, worker_address
from tests.peers.slapd import HACKNEY, HACKNEY_PASSWORD, SlapdServer

IDLE_TIMEOUT_SECONDS = 1  # the private slapd closes connections idle this long
ANONYMOUS_SID = "S-1-5-7"


def who_am_i(conn: ldap3.Connection) -> str:
    """Return the authorization identity the server holds for ``conn`` ("" = anonymous)."""
    identity = conn.extend.standard.who_am_i()
    return (identity or "").strip()


def token_owner(conn: ldap3.Connection) -> str:
    """Samba AD has no "Who am I?": return the first SID of the rootDSE's tokenGroups (the
    bound account's own SID, MS-ADTS rootDSE tokenGroups), or "" when anonymous."""
    conn.search("", "(objectClass=*)", search_scope=ldap3.BASE, attributes=["tokenGroups"])
    sids = conn.response[0]["raw_attributes"].get("tokenGroups", []) if conn.response else []
    owner = sid_to_str(sids[0]) if sids else ""
    return "" if owner in ("", ANONYMOUS_SID) else f"sid:{owner}"


def identity_of(directory: LdapDirectory) -> str:
    """Return who the idle "auth" connection (the one the next bind will use) is bound as."""
    return directory.pool.run("auth", asker(directory))


def asker(directory: LdapDirectory):  # type: ignore[no-untyped-def]
    return token_owner if directory.config.type == "active_directory" else who_am_i


def idle_connection(directory: LdapDirectory, kind: str) -> ldap3.Connection:
    """Return the pooled connection of ``kind`` the next operation will use (kept referenced,
    so identity comparisons cannot be fooled by a recycled object id)."""
    return directory.pool.run(kind, lambda conn: conn)


def wrong_password(directory: LdapDirectory, username: str) -> None:
    with pytest.raises(DirectoryError) as info:
        directory.authenticate(username, "Not-The-Password-1")
    assert info.value.code is DirectoryErrorCode.INVALID_CREDENTIALS


class People:
    """Two people of one directory, the password they share and how the server names them."""

    def __init__(self, first: str, second: str, password: str, names: dict[str, str]) -> None:
        self.first, self.second, self.password = first, second, password
        self._names = names  # username or "service" -> identity as the server reports it

    def is_(self, identity: str, who: str) -> bool:
        """True if ``identity`` (from ``identity_of``) names ``who`` (a username or "service")."""
        return identity.lower() == self._names[who].lower()


def hackney_people() -> People:
    names = {uid: f"dn:{HACKNEY.person_dn(uid)}" for uid in ("rkhan", "jpatel")}
    return People("rkhan", "jpatel", HACKNEY_PASSWORD, {**names, "service": f"dn:{HACKNEY.service_dn}"})


def camden_people(directory: LdapDirectory) -> People:
    def sid(sam: str) -> str:
        def read(conn: ldap3.Connection) -> str:
            conn.search(CAMDEN.base_dn, f"(sAMAccountName={sam})", attributes=["objectSid"])
            return "sid:" + sid_to_str(conn.response[0]["raw_attributes"]["objectSid"][0])

        return directory.pool.run("service", read)

    return People("asmith@camden.test", "jpatel@camden.test", CAMDEN_PASSWORD,
                  {"asmith@camden.test": sid("asmith"), "jpatel@camden.test": sid("jpatel"),
                   "service": sid(SERVICE_ACCOUNT)})


@pytest.fixture(params=[pytest.param("hackney", marks=pytest.mark.peer("slapd")),
                        pytest.param("camden", marks=pytest.mark.peer("samba"))])
def one_connection(request: pytest.FixtureRequest, build) -> tuple[LdapDirectory, People]:  # type: ignore[no-untyped-def]
    """A directory whose pool keeps one idle connection of each kind, and its people."""
    if request.param == "hackney":
        server: SlapdServer = request.getfixturevalue("slapd_hackney")
        return build(hackney_settings(server, pool_size=1)), hackney_people()
    dc: SambaDC = request.getfixturevalue("samba_camden")
    directory = build(camden_settings(dc, pool_size=1))
    return directory, camden_people(directory)


def test_after_a_wrong_password_the_next_person_binds_as_themselves_on_the_same_connection(
    one_connection: tuple[LdapDirectory, People],
) -> None:
    directory, people = one_connection
    wrong_password(directory, people.first)
    connection = idle_connection(directory, "auth")
    record = directory.authenticate(people.second, people.password)
    assert record.username.lower().startswith(people.second.split("@")[0])
    assert idle_connection(directory, "auth") is connection  # the same pooled connection served both
    assert people.is_(identity_of(directory), people.second)


def test_a_wrong_password_after_someone_signed_in_leaves_the_connection_anonymous(
    one_connection: tuple[LdapDirectory, People],
) -> None:
    directory, people = one_connection
    directory.authenticate(people.first, people.password)
    assert people.is_(identity_of(directory), people.first)
    connection = idle_connection(directory, "auth")
    wrong_password(directory, people.second)
    assert idle_connection(directory, "auth") is connection and not connection.closed  # kept, not reopened
    # RFC 4511 §4.2.1: a failed bind leaves the connection anonymous, never the previous
    # person (Samba keeps the previous identity by itself: the pool resets it)
    assert identity_of(directory) == ""


def test_searches_run_as_the_service_account_while_people_sign_in_on_several_threads(
    one_connection: tuple[LdapDirectory, People],
) -> None:
    directory, people = one_connection
    service_identities: list[str] = []
    signed_in: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        try:
            for n in range(6):
                who = people.first if (index + n) % 2 else people.second
                if (index + n) % 3 == 0:
                    wrong_password(directory, who)
                else:
                    record = directory.authenticate(who, people.password)
                    with lock:
                        signed_in.append(record.username)
                identity = directory.pool.run("service", asker(directory))
                with lock:
                    service_identities.append(identity)
        except BaseException as exc:  # noqa: BLE001 - reported below
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(signed_in) == 24 and len(service_identities) == 36
    assert all(people.is_(identity, "service") for identity in service_identities), set(service_identities)
    assert directory.lookup(people.first) is not None  # the service connection still searches with its rights


# -- a server that drops idle connections --------------------------------------------------


@pytest.fixture(scope="module")
def slapd_idle_timeout(worker_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdServer]:
    """A private Hackney slapd (127.0.<worker>.12) that closes connections idle for a second."""
    if not slapd_peer.binaries_available():
        peer_missing("slapd", slapd_peer.HOW_TO_ENABLE)
    address = worker_address(12, worker_id)
    run_dir: Path = tmp_path_factory.mktemp("slapd-idle")
    (run_dir / "data").mkdir()
    config = slapd_peer._config(HACKNEY, run_dir)  # noqa: SLF001 - the peer's config plus one directive
    config = config.replace("database mdb", f"idletimeout {IDLE_TIMEOUT_SECONDS}\n\ndatabase mdb", 1)
    path = run_dir / "slapd.conf"
    path.write_text(config)
    subprocess.run([slapd_peer.find_binary("slaptest") or "slaptest", "-f", str(path), "-u"], check=True,
                   capture_output=True)
    with open(run_dir / "slapd.log", "wb") as log:
        process = subprocess.Popen(
            [slapd_peer.find_binary("slapd") or "slapd", "-f", str(path), "-h", f"ldap://{address}:389/", "-d", "0"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    server = SlapdServer(spec=HACKNEY, address=address, directory=run_dir, process=process)
    try:
        slapd_peer._wait_ready(process, address, run_dir)  # noqa: SLF001
        slapd_peer._load(HACKNEY, address)  # noqa: SLF001
        yield server
    finally:
        server.stop()


@pytest.mark.peer("slapd")
def test_connections_the_server_dropped_are_replaced_without_blaming_it(
    slapd_idle_timeout: SlapdServer, build  # type: ignore[no-untyped-def]
) -> None:
    directory = build(hackney_settings(slapd_idle_timeout, pool_size=1))
    assert directory.authenticate("rkhan", HACKNEY_PASSWORD).username == "rkhan"
    service, auth = idle_connection(directory, "service"), idle_connection(directory, "auth")
    time.sleep(IDLE_TIMEOUT_SECONDS * 2.5)  # slapd closes both idle connections meanwhile
    record = directory.authenticate("jpatel", HACKNEY_PASSWORD)
    assert record.username == "jpatel" and [g.name for g in record.groups] == ["Libraries"]
    assert idle_connection(directory, "service") is not service and idle_connection(directory, "auth") is not auth
    assert service.closed and auth.closed
    (health,) = directory.health()
    assert health.total_failures == 0 and health.state.value == "closed"
    assert hackney_people().is_(directory.pool.run("service", who_am_i), "service")
