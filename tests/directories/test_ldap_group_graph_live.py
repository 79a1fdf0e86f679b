"""group_mode member_of against the real peers: the same groups as the live modes, no group
search at sign-in, nesting changes after a reload, direct removals at once.

Tests that change a peer make their own people and groups (unique names) and delete them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import ldap3
import pytest

from config.ldap_source import LdapSourceConfig
from directories.ldap import LdapDirectory, build_group_resolver
from directories.ldap.groups import MemberOfGroups
from directories.ldap.operations import search
from directories.records import GroupRef
from tests.directories.broker_peers import admin_connection, create_ad_user
from tests.directories.ldap_peers import camden_settings, hackney_settings
from tests.peers.samba import CAMDEN, CAMDEN_PASSWORD, SambaDC
from tests.peers.slapd import HACKNEY, HACKNEY_PASSWORD, SlapdServer

Build = Callable[..., LdapDirectory]
# No reload happens on its own during a test: reloads are asked for explicitly.
NO_AUTOMATIC_RELOAD = {"group_graph_refresh_seconds": 3600, "group_graph_max_age_seconds": 3600}


class NoConnection:
    """A connection that must not be used: the groups come without asking the directory."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the directory was asked ({name})")


def member_of(build: Build, cfg: LdapSourceConfig) -> tuple[LdapDirectory, MemberOfGroups]:
    """Return a member_of directory and its resolver, the graph loaded."""
    pool = build(cfg).pool  # closed with the directory by the fixture
    resolver = build_group_resolver(cfg, pool)
    assert isinstance(resolver, MemberOfGroups)
    resolver.cache.refresh()
    return LdapDirectory(cfg, pool, resolver), resolver


def names(groups: tuple[GroupRef, ...]) -> list[str]:
    return [g.name for g in groups]


def wait_for_load(resolver: MemberOfGroups, loads: int) -> None:
    deadline = time.monotonic() + 10
    while resolver.cache.loads <= loads:
        assert time.monotonic() < deadline, "no reload happened"
        time.sleep(0.02)


# -- Camden (Samba AD) --------------------------------------------------------------------


@pytest.mark.peer("samba")
def test_camden_member_of_equals_in_chain_for_every_person(samba_camden: SambaDC, build: Build) -> None:
    cfg = {"user_attribute": "sAMAccountName", **NO_AUTOMATIC_RELOAD}
    in_chain = build(camden_settings(samba_camden, **cfg))
    directory, resolver = member_of(build, camden_settings(samba_camden, group_mode="member_of", **cfg))
    people = [u.sam for u in CAMDEN.users]
    for sam in [*people, "Administrator"]:
        expected = in_chain.lookup(sam)
        found = directory.lookup(sam)
        assert expected is not None and found is not None, sam
        assert found.groups == expected.groups, sam
    alice = directory.lookup("asmith")
    assert alice is not None
    # direct, nested ("Care Staff" through "Adult Social Care") and primary (Domain Users, RID 513)
    assert names(alice.groups) == ["Adult Social Care", "Care Staff", "Discharge Team", "Domain Users"]
    admin = directory.lookup("Administrator")
    assert admin is not None and "Administrators" in names(admin.groups)  # Builtin, through Domain Admins
    assert resolver.counts.graph == len(people) + 3 and resolver.counts.live == 0


@pytest.mark.peer("samba")
def test_camden_sign_in_reads_groups_without_a_group_search(samba_camden: SambaDC, build: Build) -> None:
    directory, resolver = member_of(build, camden_settings(samba_camden, group_mode="member_of"))
    record = directory.authenticate("jsmith@camden.test", CAMDEN_PASSWORD)  # DN "CN=Smith\, Jo (Agency),..."
    assert names(record.groups) == ["Adult Social Care", "Care Staff", "Domain Users"]
    assert resolver.counts.graph == 1 and resolver.counts.live == 0
    # what the sign-in's own user search returned is all the resolver needs: no connection at all
    [entry] = directory.pool.run("service", lambda conn: search(
        conn, CAMDEN.base_dn, "(sAMAccountName=jsmith)", ["objectGUID", *resolver.user_attributes]))
    assert resolver.groups(NoConnection(), entry) == record.groups  # type: ignore[arg-type]


@pytest.mark.peer("samba")
def test_camden_sign_in_borrows_no_connection_for_groups_the_graph_answers(
    samba_camden: SambaDC, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, resolver = member_of(build, camden_settings(samba_camden, group_mode="member_of"))
    borrowed: list[str] = []
    run = directory.pool.run

    def recording_run(kind, operation):  # type: ignore[no-untyped-def]
        borrowed.append(kind)
        return run(kind, operation)

    monkeypatch.setattr(directory.pool, "run", recording_run)
    record = directory.authenticate("asmith@camden.test", CAMDEN_PASSWORD)
    assert names(record.groups) == ["Adult Social Care", "Care Staff", "Discharge Team", "Domain Users"]
    assert borrowed == ["service", "auth"]  # the user search and the bind: nothing for the groups
    assert resolver.counts.graph == 1


@pytest.fixture
def camden_admin(samba_camden: SambaDC) -> Iterator[tuple[ldap3.Connection, list[str]]]:
    """An Administrator connection and a list of DNs the test made, deleted afterwards."""
    conn = admin_connection(samba_camden)
    made: list[str] = []
    try:
        yield conn, made
    finally:
        for dn in reversed(made):
            conn.delete(dn)
        conn.unbind()


def ad_group(conn: ldap3.Connection, made: list[str], label: str, members: tuple[str, ...] = ()) -> str:
    name = f"gg-{label}-{uuid.uuid4().hex[:8]}"
    dn = f"CN={name},CN=Users,{CAMDEN.base_dn}"
    assert conn.add(dn, ["top", "group"], {"sAMAccountName": name, **({"member": list(members)} if members else {})})
    made.append(dn)
    return dn


@pytest.mark.peer("samba")
def test_camden_nesting_changes_after_a_reload_and_direct_removal_at_once(
    samba_camden: SambaDC, build: Build, camden_admin: tuple[ldap3.Connection, list[str]]
) -> None:
    admin, made = camden_admin
    outer = ad_group(admin, made, "outer")
    inner = ad_group(admin, made, "inner")
    upn = create_ad_user(samba_camden, CAMDEN_PASSWORD)
    person_dn = f"CN={upn.split('@')[0]},CN=Users,{CAMDEN.base_dn}"
    made.insert(0, person_dn)  # deleted last, after the groups
    assert admin.modify(inner, {"member": [(ldap3.MODIFY_ADD, [person_dn])]})
    in_chain = build(camden_settings(samba_camden))
    directory, resolver = member_of(build, camden_settings(samba_camden, group_mode="member_of", **NO_AUTOMATIC_RELOAD))
    inner_name, outer_name = inner.split(",")[0][3:], outer.split(",")[0][3:]
    assert names(directory.authenticate(upn, CAMDEN_PASSWORD).groups) == ["Domain Users", inner_name]

    assert admin.modify(outer, {"member": [(ldap3.MODIFY_ADD, [inner])]})  # a group put into a group
    live = in_chain.authenticate(upn, CAMDEN_PASSWORD).groups
    assert names(live) == ["Domain Users", inner_name, outer_name]
    assert names(directory.authenticate(upn, CAMDEN_PASSWORD).groups) == ["Domain Users", inner_name]  # not yet
    resolver.cache.refresh()
    assert directory.authenticate(upn, CAMDEN_PASSWORD).groups == live  # after the reload

    loads = resolver.cache.loads
    assert admin.modify(inner, {"member": [(ldap3.MODIFY_DELETE, [person_dn])]})  # direct membership removed
    assert names(directory.authenticate(upn, CAMDEN_PASSWORD).groups) == ["Domain Users"]  # the next sign-in
    assert resolver.cache.loads == loads and resolver.counts.live == 0  # from the graph, no reload


@pytest.mark.peer("samba")
def test_camden_group_created_since_the_load_is_resolved_live_and_loaded(
    samba_camden: SambaDC, build: Build, camden_admin: tuple[ldap3.Connection, list[str]]
) -> None:
    admin, made = camden_admin
    upn = create_ad_user(samba_camden, CAMDEN_PASSWORD, groups=("Adult Social Care",))
    person_dn = f"CN={upn.split('@')[0]},CN=Users,{CAMDEN.base_dn}"
    made.append(person_dn)
    directory, resolver = member_of(build, camden_settings(samba_camden, group_mode="member_of", **NO_AUTOMATIC_RELOAD))
    loads = resolver.cache.loads
    new = ad_group(admin, made, "new", (person_dn,))  # deleted before the person
    new_name = new.split(",")[0][3:]
    expected = ["Adult Social Care", "Care Staff", "Domain Users", new_name]
    assert names(directory.authenticate(upn, CAMDEN_PASSWORD).groups) == expected  # live: in_chain
    assert resolver.counts.live_unknown_group == 1
    wait_for_load(resolver, loads)  # the reload it started
    assert names(directory.authenticate(upn, CAMDEN_PASSWORD).groups) == expected
    assert resolver.counts.graph == 1


# -- Hackney (OpenLDAP, memberof overlay) ---------------------------------------------------


@pytest.mark.peer("slapd")
@pytest.mark.parametrize("depth", [10, 2, 1])
def test_hackney_member_of_equals_recursive_for_every_person(slapd_hackney: SlapdServer, build: Build, depth: int) -> None:
    recursive = build(hackney_settings(slapd_hackney, group_max_depth=depth))
    directory, resolver = member_of(build, hackney_settings(slapd_hackney, group_mode="member_of", group_max_depth=depth))
    for person in HACKNEY.people:
        expected = recursive.authenticate(person.uid, HACKNEY_PASSWORD)
        assert directory.authenticate(person.uid, HACKNEY_PASSWORD).groups == expected.groups, person.uid
    rosa = directory.lookup("rkhan")
    assert rosa is not None
    # Admissions Officers ⊂ Admissions ⊂ Education Staff (three levels); Cycle A ⊂ Cycle B ⊂ Cycle A
    assert names(rosa.groups) == {
        10: ["Admissions", "Admissions Officers", "Cycle A", "Cycle B", "Education Staff"],
        2: ["Admissions", "Admissions Officers", "Cycle A", "Cycle B"],
        1: ["Admissions Officers", "Cycle A"],
    }[depth]
    assert resolver.counts.live == 0


def search_operations(server: SlapdServer) -> int:
    """Return how many searches slapd has completed (back_monitor)."""
    conn = server.admin_connection()
    try:
        conn.search("cn=Search,cn=Operations,cn=Monitor", "(objectClass=*)", search_scope=ldap3.BASE,
                    attributes=["monitorOpCompleted"])
        return int(conn.response[0]["raw_attributes"]["monitorOpCompleted"][0])
    finally:
        conn.unbind()


@pytest.mark.peer("slapd")
def test_hackney_sign_in_is_one_search_instead_of_one_per_level(slapd_hackney: SlapdServer, build: Build) -> None:
    recursive = build(hackney_settings(slapd_hackney))
    directory, _ = member_of(build, hackney_settings(slapd_hackney, group_mode="member_of", **NO_AUTOMATIC_RELOAD))

    def searches_of(sign_in: Callable[[], object]) -> int:
        sign_in()  # connections opened
        before = search_operations(slapd_hackney)
        idle = search_operations(slapd_hackney) - before  # the counter's own read
        before = search_operations(slapd_hackney)
        sign_in()
        return search_operations(slapd_hackney) - before - idle

    assert searches_of(lambda: directory.authenticate("rkhan", HACKNEY_PASSWORD)) == 1  # the user search
    assert searches_of(lambda: recursive.authenticate("rkhan", HACKNEY_PASSWORD)) == 5  # + one per level, 4 levels


@pytest.mark.peer("slapd")
def test_hackney_nesting_changes_after_a_reload_and_direct_removal_at_once(
    slapd_hackney: SlapdServer, build: Build
) -> None:
    tag = uuid.uuid4().hex[:8]
    uid, filler = f"gg-{tag}", f"gg-filler-{tag}"
    inner, outer = HACKNEY.group_dn(f"gg-inner-{tag}"), HACKNEY.group_dn(f"gg-outer-{tag}")
    admin = slapd_hackney.admin_connection()
    made: list[str] = []
    try:
        for who in (uid, filler):
            assert admin.add(HACKNEY.person_dn(who), ["top", "inetOrgPerson"],
                             {"uid": who, "cn": who, "sn": "Graph", "userPassword": HACKNEY_PASSWORD})
            made.append(HACKNEY.person_dn(who))
        assert admin.add(outer, ["top", "groupOfNames"], {"cn": f"gg-outer-{tag}", "member": [HACKNEY.person_dn(filler)]})
        made.append(outer)
        assert admin.add(inner, ["top", "groupOfNames"], {"cn": f"gg-inner-{tag}", "member": [HACKNEY.person_dn(uid)]})
        made.append(inner)
        recursive = build(hackney_settings(slapd_hackney))
        directory, resolver = member_of(build, hackney_settings(slapd_hackney, group_mode="member_of",
                                                                 **NO_AUTOMATIC_RELOAD))
        assert names(directory.authenticate(uid, HACKNEY_PASSWORD).groups) == [f"gg-inner-{tag}"]

        assert admin.modify(outer, {"member": [(ldap3.MODIFY_ADD, [inner])]})
        live = recursive.authenticate(uid, HACKNEY_PASSWORD).groups
        assert names(live) == [f"gg-inner-{tag}", f"gg-outer-{tag}"]
        assert names(directory.authenticate(uid, HACKNEY_PASSWORD).groups) == [f"gg-inner-{tag}"]  # not yet
        resolver.cache.refresh()
        assert directory.authenticate(uid, HACKNEY_PASSWORD).groups == live

        loads = resolver.cache.loads
        assert admin.modify(inner, {"member": [(ldap3.MODIFY_ADD, [HACKNEY.person_dn(filler)])]})  # stays a group
        assert admin.modify(inner, {"member": [(ldap3.MODIFY_DELETE, [HACKNEY.person_dn(uid)])]})
        assert directory.authenticate(uid, HACKNEY_PASSWORD).groups == ()  # the very next sign-in
        assert resolver.cache.loads == loads and resolver.counts.live == 0
    finally:
        for dn in reversed(made):
            admin.delete(dn)
        admin.unbind()
