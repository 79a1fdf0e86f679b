"""``supercloud directories sync``: an incremental run catches group changes alone.

A membership change moves the group, not the person (AD: only the group's ``uSNChanged``;
OpenLDAP's memberof overlay leaves the member's ``modifyTimestamp`` alone), so without the
group pass the identity store kept stale groups until the next full run. Each test makes its
own people and groups (unique names) and deletes them afterwards: the peers are shared.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import ldap3
import pytest

from broker.directory_people import DirectoryPeople
from broker.directory_sync import DirectorySyncService
from tests.directories.broker_peers import (
    admin_connection,
    camden_source,
    create_ad_user,
    hackney_source,
    newham_source,
)
from tests.directories.test_broker_directory_signin import build_app
from tests.directories.test_directory_sync_store import one, stored
from tests.directories.test_leavers import PASSWORD
from tests.peers.samba import SambaDC
from tests.peers.slapd import HACKNEY, SlapdServer

pytestmark = [pytest.mark.peer("samba"), pytest.mark.peer("slapd")]


@pytest.fixture
def group_sync(settings_factory, samba_camden: SambaDC, samba_newham: SambaDC,  # type: ignore[no-untyped-def]
               slapd_hackney: SlapdServer) -> Iterator[tuple[Any, DirectorySyncService]]:
    """(services, sync service) over the boroughs' real directories, small pages."""
    _, services = build_app(settings_factory, camden_source(samba_camden), newham_source(samba_newham),
                            hackney_source(slapd_hackney))
    sync = DirectorySyncService(services.settings, DirectoryPeople(services.db), lambda subject_id, reason: 0,
                                services.audit.append, page_size=4)
    yield services, sync
    services.engine.dispose()


def groups_of(services: Any, organisation: str, username: str) -> list[str]:
    return list(stored(services, organisation)[username].attributes["groups"])


# -- Camden: Samba AD --------------------------------------------------------------------------


def _ad_group_dn(dc: SambaDC, name: str) -> str:
    return f"CN={name},CN=Users,{dc.spec.base_dn}"


def _ad_user_dn(dc: SambaDC, upn: str) -> str:
    return f"CN={upn.split('@')[0]},CN=Users,{dc.spec.base_dn}"


def _add_ad_group(admin: ldap3.Connection, dc: SambaDC, name: str, members: list[str]) -> None:
    attributes: dict[str, Any] = {"sAMAccountName": name}
    if members:
        attributes["member"] = members
    assert admin.add(_ad_group_dn(dc, name), ["top", "group"], attributes), admin.result


def _member(admin: ldap3.Connection, group_dn: str, member_dn: str, operation: str) -> None:
    assert admin.modify(group_dn, {"member": [(operation, [member_dn])]}), admin.result


def test_active_directory_incremental_runs_see_membership_changes(group_sync, samba_camden: SambaDC) -> None:
    services, sync = group_sync
    tag = f"tg{uuid.uuid4().hex[:8]}"
    parent, child, team = f"{tag}-parent", f"{tag}-child", f"{tag}-team"
    admin = admin_connection(samba_camden)
    people: list[str] = []
    try:
        person, colleague = create_ad_user(samba_camden, PASSWORD), create_ad_user(samba_camden, PASSWORD)
        people += [person, colleague]
        _add_ad_group(admin, samba_camden, child, [])
        _add_ad_group(admin, samba_camden, parent, [_ad_group_dn(samba_camden, child)])  # child nested in parent
        _add_ad_group(admin, samba_camden, team, [_ad_user_dn(samba_camden, colleague)])
        one(sync.sync("camden", full=True))
        assert groups_of(services, "camden", person) == ["Domain Users"]
        assert groups_of(services, "camden", colleague) == ["Domain Users", team]

        # a person added to a group directly: their entry does not change, the group does
        _member(admin, _ad_group_dn(samba_camden, child), _ad_user_dn(samba_camden, person), ldap3.MODIFY_ADD)
        added = one(sync.sync("camden"))
        assert groups_of(services, "camden", person) == ["Domain Users", child, parent]  # and the nested parent
        assert (added.read, added.reread_for_groups, added.changed) == (1, 1, 1)
        assert "1 read (1 for group changes), 0 new, 1 changed" in added.line()

        # a group added into another: the people in it gain the parent
        _member(admin, _ad_group_dn(samba_camden, parent), _ad_group_dn(samba_camden, team), ldap3.MODIFY_ADD)
        nested = one(sync.sync("camden"))
        assert groups_of(services, "camden", colleague) == ["Domain Users", parent, team]
        assert nested.reread_for_groups == 2 and nested.changed == 1  # everyone under the parent; one gained it

        # removed: the store knew them in the group, the directory no longer lists them
        _member(admin, _ad_group_dn(samba_camden, child), _ad_user_dn(samba_camden, person), ldap3.MODIFY_DELETE)
        removed = one(sync.sync("camden"))
        assert groups_of(services, "camden", person) == ["Domain Users"]
        assert (removed.reread_for_groups, removed.changed) == (1, 1)

        # a deleted group (its tombstone, read with Show Deleted) leaves the people who were in it
        assert admin.delete(_ad_group_dn(samba_camden, team)), admin.result
        deleted = one(sync.sync("camden"))
        assert deleted.deletions_checked
        assert groups_of(services, "camden", colleague) == ["Domain Users"]  # the team, and the parent through it
        assert (deleted.reread_for_groups, deleted.changed, deleted.deleted) == (1, 1, 0)

        quiet = one(sync.sync("camden"))  # nothing changed: nobody is read again because of groups
        assert (quiet.read, quiet.reread_for_groups) == (0, 0)
        assert "0 read (0 for group changes)" in quiet.line()
    finally:
        for name in (team, parent, child):
            admin.delete(_ad_group_dn(samba_camden, name))
        for upn in people:
            admin.delete(_ad_user_dn(samba_camden, upn))
        admin.unbind()


def test_active_directory_removal_from_a_renamed_group_is_seen(group_sync, samba_camden: SambaDC) -> None:
    """A person removed from a group renamed in the same interval holds a name the directory
    no longer has: the changed set of groups finds them."""
    services, sync = group_sync
    tag = f"tg{uuid.uuid4().hex[:8]}"
    admin = admin_connection(samba_camden)
    person = create_ad_user(samba_camden, PASSWORD)
    renamed = f"{tag}-renamed"
    try:
        _add_ad_group(admin, samba_camden, tag, [_ad_user_dn(samba_camden, person)])
        one(sync.sync("camden", full=True))
        assert groups_of(services, "camden", person) == ["Domain Users", tag]
        _member(admin, _ad_group_dn(samba_camden, tag), _ad_user_dn(samba_camden, person), ldap3.MODIFY_DELETE)
        assert admin.modify_dn(_ad_group_dn(samba_camden, tag), f"CN={renamed}"), admin.result
        report = one(sync.sync("camden"))
        assert groups_of(services, "camden", person) == ["Domain Users"]
        assert report.reread_for_groups == 1
    finally:
        admin.delete(_ad_group_dn(samba_camden, renamed))
        admin.delete(_ad_group_dn(samba_camden, tag))
        admin.delete(_ad_user_dn(samba_camden, person))
        admin.unbind()


# -- Hackney: OpenLDAP -------------------------------------------------------------------------


def _add_person(admin: ldap3.Connection, uid: str) -> None:
    assert admin.add(HACKNEY.person_dn(uid), ["top", "inetOrgPerson"], {
        "uid": uid, "cn": f"Temp {uid}", "sn": uid, "mail": f"{uid}@hackney.test", "userPassword": PASSWORD,
    }), admin.result


def test_openldap_incremental_runs_see_membership_changes(group_sync, slapd_hackney: SlapdServer) -> None:
    services, sync = group_sync
    tag = f"tg{uuid.uuid4().hex[:8]}"
    person, anchor = f"{tag}p", f"{tag}a"  # groupOfNames needs a member: the anchor stays in the child group
    child, parent = f"{tag}-child", f"{tag}-parent"
    email = f"{person}@hackney.test"
    admin = slapd_hackney.admin_connection()
    try:
        _add_person(admin, person)
        _add_person(admin, anchor)
        time.sleep(1.1)  # modifyTimestamp has one-second resolution: the people are older than the cursor
        assert admin.add(HACKNEY.group_dn(child), ["top", "groupOfNames"],
                         {"cn": child, "member": [HACKNEY.person_dn(anchor)]}), admin.result
        assert admin.add(HACKNEY.group_dn(parent), ["top", "groupOfNames"],
                         {"cn": parent, "member": [HACKNEY.group_dn(child)]}), admin.result
        one(sync.sync("hackney", full=True))
        assert groups_of(services, "hackney", email) == []

        _member(admin, HACKNEY.group_dn(child), HACKNEY.person_dn(person), ldap3.MODIFY_ADD)
        added = one(sync.sync("hackney"))
        assert groups_of(services, "hackney", email) == [child, parent]  # and the nested parent
        assert (added.read, added.reread_for_groups, added.changed) == (2, 2, 1)  # everyone in the child group

        quiet = one(sync.sync("hackney"))  # the change is behind the cursor (entryCSN): not read again
        assert (quiet.read, quiet.reread_for_groups) == (0, 0)

        _member(admin, HACKNEY.group_dn(child), HACKNEY.person_dn(person), ldap3.MODIFY_DELETE)
        removed = one(sync.sync("hackney"))
        assert groups_of(services, "hackney", email) == []
        assert (removed.reread_for_groups, removed.changed) == (2, 1)  # the anchor (still in) and the person

        _member(admin, HACKNEY.group_dn(child), HACKNEY.person_dn(person), ldap3.MODIFY_ADD)
        one(sync.sync("hackney"))
        assert groups_of(services, "hackney", email) == [child, parent]
        # OpenLDAP keeps no tombstones: a deleted group is found through the changed set of groups
        assert admin.delete(HACKNEY.group_dn(parent)), admin.result
        gone = one(sync.sync("hackney"))
        assert groups_of(services, "hackney", email) == [child]
        assert groups_of(services, "hackney", f"{anchor}@hackney.test") == [child]
        assert gone.reread_for_groups == 2 and gone.changed == 2
    finally:
        for name in (parent, child):
            admin.delete(HACKNEY.group_dn(name))
        for uid in (person, anchor):
            admin.delete(HACKNEY.person_dn(uid))
        admin.unbind()
