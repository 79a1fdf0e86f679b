"""Circuit breaker, pool and the authentication flow, with counting fakes instead of servers."""

from __future__ import annotations

import threading
import time

import ldap3
import pytest

from config.ldap_source import LdapSourceConfig
from directories import DirectoryError, DirectoryErrorCode
from directories.ldap.directory import LdapDirectory
from directories.ldap.groups import NoGroups
from directories.ldap.pool import ConnectionPool
from directories.ldap.servers import CircuitState, ServerSet
from directories.ldap.transport import ServerFailure
from tests.support.secrets import resolved_secret

URLS = ("ldaps://dc1.newham.test", "ldaps://dc2.newham.test")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- circuit breaker -------------------------------------------------------------------


def test_circuit_opens_after_threshold_and_half_opens_after_cooldown() -> None:
    clock = Clock()
    servers = ServerSet(URLS, failure_threshold=2, open_seconds=30, clock=clock)
    dc1 = servers.candidates()[0]
    servers.record_failure(dc1, "refused")
    assert [s.url for s in servers.candidates()] == list(URLS)  # one failure: still tried
    servers.record_failure(dc1, "refused")
    assert [s.url for s in servers.candidates()] == [URLS[1]]  # open: skipped
    clock.now += 29
    assert [s.url for s in servers.candidates()] == [URLS[1]]
    clock.now += 2
    trial = servers.candidates()
    assert [s.url for s in trial] == list(URLS)  # half-open: one trial
    assert [s.url for s in servers.candidates()] == [URLS[1]]  # nobody else gets it meanwhile
    servers.record_failure(trial[0], "still refused")
    assert servers.health()[0].state is CircuitState.OPEN  # failed trial re-opens at once
    clock.now += 31
    trial = servers.candidates()
    servers.record_success(trial[0], 0.002)
    health = servers.health()[0]
    assert health.state is CircuitState.CLOSED and health.consecutive_failures == 0
    assert health.total_failures == 3 and health.last_error == "still refused"


def test_unused_half_open_trial_is_given_back() -> None:
    clock = Clock()
    servers = ServerSet(URLS, failure_threshold=1, open_seconds=5, clock=clock)
    servers.record_failure(servers.candidates()[1], "down")
    clock.now += 6
    handed_out = servers.candidates()
    servers.release(handed_out[1])
    assert [s.url for s in servers.candidates()] == list(URLS)


# -- pool ---------------------------------------------------------------------------------


class FakeConn:
    def __init__(self, url: str) -> None:
        self.url = url
        self.closed = False
        self.in_use = False

    def unbind(self) -> None:
        self.closed = True


class FakeFactory:
    def __init__(self, down: set[str] | None = None) -> None:
        self.down = down or set()
        self.opened: list[str] = []
        self.lock = threading.Lock()

    def open(self, url: str, kind: str) -> FakeConn:
        with self.lock:
            self.opened.append(url)
        if url in self.down:
            raise ServerFailure(f"{url}: connection refused")
        return FakeConn(url)


def make_pool(factory: FakeFactory, size: int = 4, threshold: int = 2) -> ConnectionPool:
    servers = ServerSet(URLS, failure_threshold=threshold, open_seconds=60)
    return ConnectionPool("newham-ad", factory, servers, size)  # type: ignore[arg-type]


def test_connections_are_reused() -> None:
    factory = FakeFactory()
    pool = make_pool(factory)
    seen = {id(pool.run("service", lambda c: c)) for _ in range(20)}
    assert len(seen) == 1 and factory.opened == [URLS[0]]
    assert pool.idle_count() == 1


def test_failover_to_the_second_server_and_circuit_stops_retrying_the_first() -> None:
    factory = FakeFactory(down={URLS[0]})
    pool = make_pool(factory, threshold=2)
    for _ in range(5):
        assert pool.run("service", lambda c: c.url) == URLS[1]
    assert factory.opened.count(URLS[0]) == 2  # then its circuit is open: no more attempts
    health = pool.servers.health()
    assert health[0].state is CircuitState.OPEN and health[1].state is CircuitState.CLOSED


def test_stale_pooled_connection_is_replaced_without_blaming_the_server() -> None:
    factory = FakeFactory()
    pool = make_pool(factory)
    pool.run("service", lambda c: None)
    calls: list[FakeConn] = []

    def operation(conn: FakeConn) -> str:
        calls.append(conn)
        if len(calls) == 1:
            raise ServerFailure("connection reset by peer")  # the idle connection died
        return "ok"

    assert pool.run("service", operation) == "ok"
    assert calls[0] is not calls[1] and calls[0].closed
    assert pool.servers.health()[0].total_failures == 0


def test_every_server_down_is_unavailable_and_names_the_servers() -> None:
    pool = make_pool(FakeFactory(down=set(URLS)))
    with pytest.raises(DirectoryError) as info:
        pool.run("service", lambda c: c)
    assert info.value.code is DirectoryErrorCode.UNAVAILABLE
    assert URLS[0] in info.value.detail and URLS[1] in info.value.detail


def test_directory_errors_pass_through_and_keep_the_connection() -> None:
    factory = FakeFactory()
    pool = make_pool(factory)

    def misconfigured(conn: FakeConn) -> None:
        raise DirectoryError(DirectoryErrorCode.MISCONFIGURED, "no such base")

    with pytest.raises(DirectoryError):
        pool.run("service", misconfigured)
    assert pool.idle_count() == 1 and pool.servers.health()[0].total_failures == 0


def test_one_connection_serves_one_thread_at_a_time() -> None:
    factory = FakeFactory()
    pool = make_pool(factory, size=3)
    clashes: list[str] = []

    def operation(conn: FakeConn) -> None:
        if conn.in_use:
            clashes.append(conn.url)
        conn.in_use = True
        time.sleep(0.001)
        conn.in_use = False

    def worker() -> None:
        for _ in range(25):
            pool.run("auth", operation)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clashes == []
    assert pool.idle_count() <= 3  # never more idle connections than the pool size
    assert len(factory.opened) <= 8  # at most one per concurrent thread


def test_a_forked_child_opens_its_own_connections_and_leaves_the_parents_alone() -> None:
    factory = FakeFactory()
    pid = [100]
    pool = ConnectionPool(
        "newham-ad", factory, ServerSet(URLS, failure_threshold=2, open_seconds=60), 4,  # type: ignore[arg-type]
        getpid=lambda: pid[0],
    )
    parents = pool.run("service", lambda c: c)
    assert pool.run("service", lambda c: c) is parents
    pid[0] = 101  # the same pool object, now in a child process after fork
    child = pool.run("service", lambda c: c)
    assert child is not parents and len(factory.opened) == 2
    assert not parents.closed  # no unbind on a socket the parent still uses
    assert pool.run("service", lambda c: c) is child and pool.idle_count() == 1


def test_closed_pool_refuses_work() -> None:
    pool = make_pool(FakeFactory())
    pool.run("service", lambda c: None)
    pool.close()
    assert pool.idle_count() == 0
    with pytest.raises(DirectoryError) as info:
        pool.run("service", lambda c: None)
    assert info.value.code is DirectoryErrorCode.UNAVAILABLE


# -- the authentication flow, with a pool that records what it is asked to do -------------


class RecordingPool:
    """Stands in for ConnectionPool: canned search results, binds answered by a fake conn."""

    def __init__(self, search_results: list[object]) -> None:
        self.search_results = search_results
        self.kinds: list[str] = []
        self.bound: list[tuple[str, str]] = []
        self.resets = 0
        self.servers = ServerSet(URLS, failure_threshold=1, open_seconds=1)

    def run(self, kind: str, operation):  # type: ignore[no-untyped-def]
        self.kinds.append(kind)
        if kind == "service":
            return self.search_results.pop(0)
        pool = self

        class Conn:
            result: dict[str, object] = {}

            closed = False

            def bind(self, read_server_info: bool = False) -> bool:
                if self.authentication == ldap3.ANONYMOUS:  # type: ignore[attr-defined]
                    pool.resets += 1
                    self.result = {"result": 0, "description": "success"}
                    return True
                pool.bound.append((self.user, self.password))  # type: ignore[attr-defined]
                self.result = {"result": 49, "description": "invalidCredentials", "message": "data 52e"}
                return False

        return operation(Conn())

    def close(self) -> None:
        pass


def directory(pool: RecordingPool, sleeps: list[float] | None = None, floor: float = 0.0) -> LdapDirectory:
    cfg = LdapSourceConfig(
        type="active_directory",
        id="camden-ad",
        organisation="camden",
        urls=URLS,
        base_dn="DC=camden,DC=test",
        bind_dn="CN=svc,DC=camden,DC=test",
        bind_password=resolved_secret("x"),
        min_failure_seconds=floor,
    )
    record = sleeps.append if sleeps is not None else (lambda seconds: None)
    return LdapDirectory(cfg, pool, NoGroups(), monotonic=lambda: 100.0, sleep=record)  # type: ignore[arg-type]


@pytest.mark.parametrize("password", ["", " ", "\t\n ", None])
def test_empty_password_is_refused_before_any_directory_traffic(password: object) -> None:
    pool = RecordingPool([])
    with pytest.raises(DirectoryError) as info:
        directory(pool).authenticate("asmith@camden.test", password)  # type: ignore[arg-type]
    assert info.value.code is DirectoryErrorCode.EMPTY_PASSWORD
    assert pool.kinds == [] and pool.bound == []


def test_unknown_user_still_costs_one_bind_to_a_dn_not_built_from_input() -> None:
    pool = RecordingPool([[]])  # the search finds nobody
    with pytest.raises(DirectoryError) as info:
        directory(pool).authenticate("ghost)(cn=*", "Some-Password-1")
    assert info.value.code is DirectoryErrorCode.INVALID_CREDENTIALS
    assert pool.kinds == ["service", "auth"]
    ((dn, password),) = pool.bound
    assert "ghost" not in dn and dn.endswith(",DC=camden,DC=test") and password == "Some-Password-1"
    assert pool.resets == 1  # as after any refused bind: same round trips as a wrong password


def test_ambiguous_username_is_refused() -> None:
    from directories.ldap.operations import Entry

    two = [Entry("CN=a,DC=camden,DC=test", {}), Entry("CN=b,DC=camden,DC=test", {})]
    pool = RecordingPool([two])
    with pytest.raises(DirectoryError) as info:
        directory(pool).authenticate("a", "Some-Password-1")
    assert info.value.code is DirectoryErrorCode.INVALID_CREDENTIALS
    assert "several" in info.value.detail
    assert [dn for dn, _ in pool.bound] != ["CN=a,DC=camden,DC=test"]


def test_failures_are_padded_to_the_floor_but_empty_passwords_are_not() -> None:
    sleeps: list[float] = []
    with pytest.raises(DirectoryError):
        directory(RecordingPool([[]]), sleeps, floor=0.25).authenticate("ghost", "Some-Password-1")
    assert sleeps == [0.25]
    with pytest.raises(DirectoryError):
        directory(RecordingPool([]), sleeps, floor=0.25).authenticate("ghost", " ")
    assert sleeps == [0.25]  # EMPTY_PASSWORD: answered at once, nothing to hide


def test_connections_idle_too_long_are_closed_not_reused() -> None:
    factory = FakeFactory()
    clock = Clock()
    pool = ConnectionPool(
        "newham-ad",
        factory,
        ServerSet(URLS, failure_threshold=2, open_seconds=60),
        4,
        max_idle_seconds=300,
        clock=clock,  # type: ignore[arg-type]
    )
    first = pool.run("service", lambda c: c)
    clock.now += 299
    assert pool.run("service", lambda c: c) is first
    clock.now += 301
    second = pool.run("service", lambda c: c)
    assert second is not first and first.closed
    assert len(factory.opened) == 2


def test_a_client_side_ldap3_error_does_not_trip_the_circuit() -> None:
    from ldap3.core.exceptions import LDAPInvalidFilterError

    pool = make_pool(FakeFactory(), threshold=1)

    def broken(conn: FakeConn) -> None:
        raise LDAPInvalidFilterError("malformed filter")

    for _ in range(3):
        with pytest.raises(DirectoryError) as info:
            pool.run("service", broken)
        assert info.value.code is DirectoryErrorCode.MISCONFIGURED
    assert all(h.state is CircuitState.CLOSED and h.total_failures == 0 for h in pool.servers.health())


def test_missing_computed_account_control_is_read_with_a_base_search() -> None:
    from directories import AccountStatus
    from directories.ldap.operations import Entry

    # lockoutTime is left over from a lockout that has expired; the subtree search did not
    # return the computed attribute, so the directory must ask for it before judging.
    user = Entry(
        "CN=asmith,CN=Users,DC=camden,DC=test",
        {
            "objectGUID": [bytes(range(16))],
            "userPrincipalName": [b"asmith@camden.test"],
            "userAccountControl": [b"512"],
            "lockoutTime": [b"134403034245448450"],
        },
    )
    computed = Entry(user.dn, {"msDS-User-Account-Control-Computed": [b"0"]})
    pool = RecordingPool([[user], [computed], ()])
    record = directory(pool).lookup("asmith@camden.test")
    assert record is not None and record.status is AccountStatus.ACTIVE
    assert pool.kinds == ["service", "service", "service"]  # find, computed status, groups
