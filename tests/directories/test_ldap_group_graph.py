"""group_mode member_of with fakes: the group graph's walk, the cache's freshness rules, the config.

The same mode against real Samba AD and OpenLDAP is in test_ldap_group_graph_live.py.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections.abc import Callable
from typing import cast

import ldap3
import pytest
from pydantic import ValidationError

from config.ldap_source import LdapSourceConfig
from directories import DirectoryError, DirectoryErrorCode
from directories.ldap import build_group_resolver
from directories.ldap.attributes import sid_to_bytes
from directories.ldap.group_graph import GroupGraph, GroupGraphCache, load_group_graph
from directories.ldap.group_index import normalise_dn
from directories.ldap.groups import InChainGroups, MemberOfGroups, RecursiveGroups
from directories.ldap.operations import Entry
from directories.ldap.pool import ConnectionPool
from directories.records import GroupRef
from tests.support.secrets import resolved_secret

BASE = "ou=groups,dc=t"
DOMAIN = "S-1-5-21-1-2-3"


def dn(name: str) -> str:
    return f"cn={name},{BASE}"


def ref(name: str) -> GroupRef:
    return GroupRef(id=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), name=name)


def graph(parents: dict[str, list[str]], sids: dict[str, int] | None = None) -> GroupGraph:
    """A graph of groups named in ``parents`` (group -> the groups it is a member of)."""
    names = set(parents) | {p for ps in parents.values() for p in ps}
    return GroupGraph(
        base=normalise_dn(BASE),
        groups={normalise_dn(dn(n)): ref(n) for n in names},
        parents={normalise_dn(dn(n)): tuple(normalise_dn(dn(p)) for p in parents.get(n, [])) for n in names},
        by_sid={sid_to_bytes(f"{DOMAIN}-{rid}"): normalise_dn(dn(n)) for n, rid in (sids or {}).items()},
    )


def person(*groups: str, primary_rid: int | None = None, other_dns: tuple[str, ...] = ()) -> Entry:
    raw: dict[str, list[bytes]] = {"memberOf": [dn(g).encode() for g in groups] + [d.encode() for d in other_dns]}
    if primary_rid is not None:
        raw["primaryGroupID"] = [str(primary_rid).encode()]
        raw["objectSid"] = [sid_to_bytes(f"{DOMAIN}-1104")]
    return Entry(dn="uid=p,ou=people,dc=t", raw=raw)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Spawner:
    """Holds background jobs until the test runs them."""

    def __init__(self) -> None:
        self.jobs: list[Callable[[], None]] = []

    def __call__(self, name: str, job: Callable[[], None]) -> None:
        self.jobs.append(job)

    def run(self) -> None:
        jobs, self.jobs = self.jobs, []
        for job in jobs:
            job()


class Loader:
    def __init__(self, result: GroupGraph | Exception) -> None:
        self.result = result
        self.calls = 0

    def __call__(self) -> GroupGraph:
        self.calls += 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class Live:
    """The live resolver: records that it was asked and answers a marker group."""

    user_attributes = ("primaryGroupID", "objectSid")

    def __init__(self) -> None:
        self.calls: list[object] = []

    def groups(self, conn: object, user: Entry) -> tuple[GroupRef, ...]:
        self.calls.append(conn)
        return (ref("LIVE"),)


class NoConnection:
    """A connection that must not be used: the graph answers without the directory."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the directory was asked ({name})")


NO_CONNECTION = cast(ldap3.Connection, NoConnection())
ANY_CONNECTION = cast(ldap3.Connection, object())


def resolver(
    loader: Loader, *, refresh: float = 30, max_age: float = 120, max_depth: int = 10, ad: bool = True,
    clock: Clock | None = None, spawner: Spawner | None = None, pid: list[int] | None = None,
) -> tuple[MemberOfGroups, Live, Clock, Spawner]:
    clock = clock or Clock()
    spawner = spawner or Spawner()
    pids = pid if pid is not None else [1]
    cache = GroupGraphCache("t", loader, refresh_seconds=refresh, max_age_seconds=max_age, clock=clock,
                            spawn=spawner, getpid=lambda: pids[0])
    live = Live()
    return MemberOfGroups(cache, live, max_depth=max_depth, active_directory=ad), live, clock, spawner


def names(groups: tuple[GroupRef, ...]) -> list[str]:
    return [g.name for g in groups]


# -- the walk ---------------------------------------------------------------------------


def test_a_cycle_ends_and_every_group_is_reported_once() -> None:
    resolve, live, _, _ = resolver(Loader(graph({"A": ["B"], "B": ["C"], "C": ["A"]})))
    resolve.cache.refresh()
    assert names(resolve.groups(NO_CONNECTION, person("A"))) == ["A", "B", "C"]
    assert live.calls == [] and resolve.counts.graph == 1


def test_nesting_stops_at_the_depth_limit(caplog: pytest.LogCaptureFixture) -> None:
    chain = {f"L{i}": [f"L{i + 1}"] for i in range(1, 6)}  # L1 ⊂ L2 ⊂ ... ⊂ L6
    shallow, _, _, _ = resolver(Loader(graph(chain)), max_depth=2)
    shallow.cache.refresh()
    with caplog.at_level(logging.WARNING):
        assert names(shallow.groups(NO_CONNECTION, person("L1"))) == ["L1", "L2"]
    assert "deeper than 2 levels" in caplog.text
    deep, _, _, _ = resolver(Loader(graph(chain)), max_depth=6)
    deep.cache.refresh()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert names(deep.groups(NO_CONNECTION, person("L1"))) == [f"L{i}" for i in range(1, 7)]
    assert "deeper" not in caplog.text  # exactly as deep as allowed is not "too deep"


def test_primary_group_is_added_by_sid_without_its_parents() -> None:
    g = graph({"Domain Users": ["Users"], "Team": ["Department"]}, sids={"Domain Users": 513})
    resolve, _, _, _ = resolver(Loader(g))
    resolve.cache.refresh()
    found = resolve.groups(NO_CONNECTION, person("Team", primary_rid=513))
    assert names(found) == ["Department", "Domain Users", "Team"]  # not "Users", the primary group's parent
    # a primary group outside the graph (outside the group base) is not reported
    assert names(resolve.groups(NO_CONNECTION, person("Team", primary_rid=999))) == ["Department", "Team"]


def test_plain_ldap_has_no_primary_group() -> None:
    resolve, _, _, _ = resolver(Loader(graph({"Team": []}, sids={"Team": 513})), ad=False)
    resolve.cache.refresh()
    assert resolve.user_attributes == ("memberOf", "primaryGroupID", "objectSid")  # the live resolver's, here
    assert names(resolve.groups(NO_CONNECTION, person(primary_rid=513))) == []


def test_groups_outside_the_base_are_not_reported_and_need_no_fallback() -> None:
    resolve, live, _, spawner = resolver(Loader(graph({"Team": []})))
    resolve.cache.refresh()
    elsewhere = ("CN=Print Operators,CN=Builtin,DC=t", "cn=x,ou=other,dc=t")
    assert names(resolve.groups(NO_CONNECTION, person("Team", other_dns=elsewhere))) == ["Team"]
    assert live.calls == [] and spawner.jobs == []
    # a group nested in one outside the base: that parent is neither reported nor followed
    g = graph({"Team": []})
    outside = normalise_dn("CN=Administrators,CN=Builtin,DC=t")
    nested_out = GroupGraph(base=g.base, groups=g.groups, parents={**g.parents, normalise_dn(dn("Team")): (outside,)})
    resolve, _, _, _ = resolver(Loader(nested_out))
    resolve.cache.refresh()
    assert names(resolve.groups(NO_CONNECTION, person("Team"))) == ["Team"]


def test_dn_case_and_spaces_do_not_matter() -> None:
    resolve, live, _, _ = resolver(Loader(graph({"Team": ["Dept"]})))
    resolve.cache.refresh()
    entry = Entry(dn="uid=p,dc=t", raw={"memberOf": [b"CN=Team, OU=Groups, DC=T"]})
    assert names(resolve.groups(NO_CONNECTION, entry)) == ["Dept", "Team"]
    assert live.calls == []


# -- freshness --------------------------------------------------------------------------


def test_first_sign_in_is_resolved_live_while_the_graph_loads_in_the_background() -> None:
    loader = Loader(graph({"Team": []}))
    resolve, live, _, spawner = resolver(loader)
    conn = cast(ldap3.Connection, object())
    assert names(resolve.groups(conn, person("Team"))) == ["LIVE"]
    assert live.calls == [conn]  # on the connection the sign-in was given
    assert loader.calls == 0 and len(spawner.jobs) == 1  # started, not waited for
    resolve.groups(conn, person("Team"))
    assert len(spawner.jobs) == 1  # single flight: no second load while one runs
    spawner.run()
    assert names(resolve.groups(NO_CONNECTION, person("Team"))) == ["Team"]
    assert resolve.counts.live_no_graph == 2 and resolve.counts.graph == 1


def test_unknown_direct_group_is_resolved_live_and_starts_a_reload() -> None:
    loader = Loader(graph({"Team": []}))
    resolve, live, clock, spawner = resolver(loader)
    resolve.cache.refresh()
    clock.now += 5
    conn = cast(ldap3.Connection, object())
    assert names(resolve.groups(conn, person("Team", "New Group"))) == ["LIVE"]
    assert live.calls == [conn] and resolve.counts.live_unknown_group == 1 and len(spawner.jobs) == 1
    loader.result = graph({"Team": [], "New Group": ["Team"]})
    spawner.run()
    assert names(resolve.groups(NO_CONNECTION, person("New Group"))) == ["New Group", "Team"]


def test_reloads_for_unknown_groups_are_spaced() -> None:
    loader = Loader(graph({"Team": []}))  # never learns "Ghost"
    resolve, live, clock, spawner = resolver(loader)
    resolve.cache.refresh()
    clock.now += 5
    resolve.groups(ANY_CONNECTION, person("Ghost"))
    spawner.run()
    resolve.groups(ANY_CONNECTION, person("Ghost"))
    assert spawner.jobs == []  # the load began less than a second ago
    clock.now += 1
    resolve.groups(ANY_CONNECTION, person("Ghost"))
    assert len(spawner.jobs) == 1 and len(live.calls) == 3  # always answered live meanwhile


def test_old_graph_is_used_while_a_reload_runs_and_too_old_one_is_not() -> None:
    loader = Loader(graph({"Team": ["Dept"]}))
    resolve, live, clock, spawner = resolver(loader, refresh=30, max_age=120)
    resolve.cache.refresh()
    clock.now += 29
    assert names(resolve.groups(NO_CONNECTION, person("Team"))) == ["Dept", "Team"]
    assert spawner.jobs == []  # fresh: no reload
    clock.now += 1
    assert names(resolve.groups(NO_CONNECTION, person("Team"))) == ["Dept", "Team"]
    assert len(spawner.jobs) == 1  # due: reloading in the background, the old graph still answers
    spawner.jobs.clear()  # that reload never finishes (hangs)
    clock.now += 91  # 121 s old
    assert names(resolve.groups(ANY_CONNECTION, person("Team"))) == ["LIVE"]
    assert resolve.counts.live_no_graph == 1


def test_failing_reloads_keep_the_graph_until_max_age_then_sign_ins_go_live(caplog: pytest.LogCaptureFixture) -> None:
    loader = Loader(graph({"Team": ["Dept"]}))
    resolve, live, clock, spawner = resolver(loader, refresh=30, max_age=120)
    resolve.cache.refresh()
    loader.result = DirectoryError(DirectoryErrorCode.UNAVAILABLE, "t: ldaps://dc1: connection refused")
    clock.now += 30
    resolve.groups(NO_CONNECTION, person("Team"))
    with caplog.at_level(logging.WARNING):
        spawner.run()
    assert "group graph reload failed (directory_unavailable: t: ldaps://dc1: connection refused)" in caplog.text
    clock.now += 29  # 59 s old, last attempt 29 s ago: no retry yet
    assert names(resolve.groups(NO_CONNECTION, person("Team"))) == ["Dept", "Team"]
    assert spawner.jobs == []
    clock.now += 1  # the next interval: retried
    resolve.groups(NO_CONNECTION, person("Team"))
    assert len(spawner.jobs) == 1
    spawner.run()
    clock.now += 60  # 120 s old: still served
    assert names(resolve.groups(NO_CONNECTION, person("Team"))) == ["Dept", "Team"]
    spawner.run()
    clock.now += 0.5  # past max age: live
    assert names(resolve.groups(ANY_CONNECTION, person("Team"))) == ["LIVE"]
    assert loader.calls == 4 and len(live.calls) == 1
    loader.result = graph({"Team": []})  # the directory is back
    clock.now += 30
    resolve.groups(ANY_CONNECTION, person("Team"))
    spawner.run()
    assert names(resolve.groups(NO_CONNECTION, person("Team"))) == ["Team"]


def test_an_unexpected_error_in_a_reload_does_not_stop_later_reloads() -> None:
    loader = Loader(RuntimeError("bug"))
    resolve, _, clock, spawner = resolver(loader, refresh=10, max_age=10)
    resolve.groups(ANY_CONNECTION, person())
    spawner.run()
    clock.now += 10
    resolve.groups(ANY_CONNECTION, person())
    assert len(spawner.jobs) == 1  # the flag was cleared: a new load started


def test_refresh_zero_reloads_at_every_sign_in_but_one_at_a_time() -> None:
    loader = Loader(graph({"Team": []}))
    resolve, _, _, spawner = resolver(loader, refresh=0, max_age=0)
    resolve.cache.refresh()
    resolve.groups(NO_CONNECTION, person("Team"))
    resolve.groups(NO_CONNECTION, person("Team"))
    assert len(spawner.jobs) == 1


def test_a_forked_child_forgets_the_parents_load_in_flight() -> None:
    pid = [1]
    resolve, _, _, spawner = resolver(Loader(graph({"Team": []})), pid=pid)
    resolve.groups(ANY_CONNECTION, person())
    assert len(spawner.jobs) == 1  # the parent's thread: it does not exist in the child
    pid[0] = 2
    resolve.groups(ANY_CONNECTION, person())
    assert len(spawner.jobs) == 2  # the child starts its own


def test_concurrent_sign_ins_start_one_load_in_a_real_thread() -> None:
    release = threading.Event()
    calls: list[int] = []

    def slow_load() -> GroupGraph:
        calls.append(1)
        release.wait(5)
        return graph({"Team": []})

    cache = GroupGraphCache("t", slow_load, refresh_seconds=30, max_age_seconds=120)
    threads = [threading.Thread(target=cache.current) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    release.set()
    for _ in range(500):
        if cache.loads:
            break
        threading.Event().wait(0.01)
    assert calls == [1] and cache.loads == 1 and cache.current() is not None


# -- the graph as read from a directory, against the live client-side walk --------------


class PagedGroupConn:
    """Serves groups for load_group_graph (memberOf derived from member, as the overlay does)
    and for RecursiveGroups (member searches), two entries per page."""

    def __init__(self, members: dict[str, list[str]]) -> None:
        self.members = members  # group name -> member DNs
        self.result: dict[str, object] = {}
        self.response: list[dict[str, object]] = []

    def _entry(self, name: str) -> dict[str, object]:
        parents = [dn(p).encode() for p, ms in self.members.items() if dn(name) in ms]
        return {"type": "searchResEntry", "dn": dn(name), "raw_attributes": {
            "cn": [name.encode()], "entryUUID": [ref(name).id.encode()], "memberOf": parents}}

    def search(self, base, ldap_filter, search_scope=None, attributes=None, size_limit=0,  # type: ignore[no-untyped-def]
               paged_size=None, paged_cookie=None):
        if paged_size:
            assert ldap_filter == "(member=*)" and "memberOf" in attributes
            names_ = sorted(self.members)
            start = int(paged_cookie or b"0")
            self.response = [self._entry(n) for n in names_[start:start + 2]]
            cookie = str(start + 2).encode() if start + 2 < len(names_) else b""
            self.result = {"result": 0, "controls": {"1.2.840.113556.1.4.319": {"value": {"cookie": cookie}}}}
        else:
            wanted = {part.rstrip(")").lower() for part in ldap_filter.split("(member=")[1:]}
            self.response = [self._entry(n) for n, ms in self.members.items() if wanted & {m.lower() for m in ms}]
            self.result = {"result": 0, "description": "success"}
        return True


def ldap_config(**overrides: object) -> LdapSourceConfig:
    values: dict[str, object] = {
        "type": "ldap", "id": "t", "urls": ["ldap://127.0.0.1"], "tls_mode": "plain", "allow_plain": True,
        "base_dn": "dc=t", "group_base_dn": BASE, "bind_dn": "cn=svc,dc=t", "bind_password": resolved_secret("x"),
        "user_attribute": "uid", "group_mode": "member_of",
    }
    values.update(overrides)
    return LdapSourceConfig.model_validate(values)


@pytest.mark.parametrize("seed", range(25))
def test_graph_answers_as_the_client_side_walk_does(seed: int) -> None:
    rng = random.Random(seed)
    group_names = [f"g{i}" for i in range(12)]
    people = [f"uid=p{i},ou=people,dc=t" for i in range(4)]
    members: dict[str, list[str]] = {n: [] for n in group_names}
    for name in group_names:
        members[name] += rng.sample(people, rng.randint(0, 2))
        members[name] += [dn(c) for c in rng.sample(group_names, rng.randint(0, 3)) if c != name]  # cycles allowed
    members = {n: ms for n, ms in members.items() if ms}  # an entry without member is no group
    conn = cast(ldap3.Connection, PagedGroupConn(members))
    depth = rng.randint(1, 5)
    loaded = load_group_graph(conn, ldap_config(group_max_depth=depth), page_size=2)
    resolve, live, _, _ = resolver(Loader(loaded), max_depth=depth, ad=False)
    resolve.cache.refresh()
    for who in people:
        entry = Entry(dn=who, raw={"memberOf": [dn(n).encode() for n, ms in members.items() if who in ms]})
        expected = RecursiveGroups(BASE, depth).groups(conn, entry)
        assert resolve.groups(NO_CONNECTION, entry) == expected
    assert live.calls == []


# -- configuration ----------------------------------------------------------------------


def test_member_of_is_accepted_for_both_types_and_defaults_are_unchanged() -> None:
    ldap = ldap_config()
    assert ldap.effective_group_mode == "member_of"
    assert (ldap.group_graph_refresh_seconds, ldap.group_graph_max_age_seconds) == (30, 120)
    ad = ldap_config(type="active_directory", urls=["ldaps://dc"], tls_mode="ldaps", allow_plain=False,
                     user_attribute="userPrincipalName")
    assert ad.effective_group_mode == "member_of"
    assert ldap_config(group_mode=None).effective_group_mode == "recursive"
    assert ldap_config(group_mode=None, type="active_directory", urls=["ldaps://dc"], tls_mode="ldaps",
                       user_attribute="userPrincipalName").effective_group_mode == "in_chain"


def test_max_age_must_not_be_below_refresh() -> None:
    with pytest.raises(ValidationError, match="group_graph_max_age_seconds must be at least"):
        ldap_config(group_graph_refresh_seconds=60, group_graph_max_age_seconds=30)
    assert ldap_config(group_graph_refresh_seconds=0, group_graph_max_age_seconds=0).group_graph_max_age_seconds == 0
    with pytest.raises(ValidationError):
        ldap_config(group_graph_refresh_seconds=-1)


def test_the_resolver_asks_for_member_of_with_the_user_search() -> None:
    pool = cast(ConnectionPool, object())  # not used until a graph is loaded
    ldap = build_group_resolver(ldap_config(), pool)
    assert isinstance(ldap, MemberOfGroups) and ldap.user_attributes == ("memberOf",)
    assert isinstance(ldap._live, RecursiveGroups)  # noqa: SLF001
    ad = build_group_resolver(ldap_config(type="active_directory", urls=["ldaps://dc"], tls_mode="ldaps",
                                          user_attribute="userPrincipalName"), pool)
    assert isinstance(ad, MemberOfGroups) and set(ad.user_attributes) == {"memberOf", "primaryGroupID", "objectSid"}
    assert isinstance(ad._live, InChainGroups)  # noqa: SLF001
    with pytest.raises(ValueError, match="needs the directory's connection pool"):
        build_group_resolver(ldap_config())
