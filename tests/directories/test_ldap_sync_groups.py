"""DirectorySync's group pass against the real Hackney OpenLDAP: who is under a group, what the
``holders`` callback is asked, and the cursor fields that keep group changes exact."""

from __future__ import annotations

import time
import uuid

import ldap3
import pytest

from directories import AccountRecord
from directories.ldap import LdapDirectory
from directories.ldap.group_index import GroupIndex, normalise_dn
from directories.ldap.sync import DirectorySync, GroupChanges, SyncCursor
from tests.peers.slapd import HACKNEY, SlapdServer


@pytest.mark.peer("slapd")
def test_members_under_follows_nesting_and_cycles(hackney: LdapDirectory) -> None:
    index = hackney.pool.run("service", lambda conn: GroupIndex.read(conn, hackney.config))
    rkhan = normalise_dn(HACKNEY.person_dn("rkhan"))
    # Education Staff ∋ Admissions ∋ Admissions Officers ∋ rkhan
    assert index.members_under([normalise_dn(HACKNEY.group_dn("Education Staff"))]) == {rkhan}
    # Cycle B ∋ Cycle A ∋ (rkhan, Cycle B): the walk ends
    assert index.members_under([normalise_dn(HACKNEY.group_dn("Cycle B"))]) == {rkhan}
    assert index.members_under([normalise_dn(HACKNEY.group_dn("Nowhere"))]) == set()


@pytest.mark.peer("slapd")
def test_the_holders_callback_is_asked_about_changed_and_vanished_groups(
    hackney: LdapDirectory, slapd_hackney: SlapdServer
) -> None:
    tag = f"tg{uuid.uuid4().hex[:8]}"
    uid, group = f"{tag}p", f"{tag}-group"
    admin = slapd_hackney.admin_connection()
    asked: list[GroupChanges] = []
    delivered: list[AccountRecord] = []

    def holders(changes: GroupChanges) -> list[str]:
        asked.append(changes)
        return []

    sync = DirectorySync(hackney, page_size=2, groups=True)
    try:
        assert admin.add(HACKNEY.person_dn(uid), ["top", "inetOrgPerson"], {"uid": uid, "cn": uid, "sn": uid})
        time.sleep(1.1)  # the person is older than the cursor's second
        assert admin.add(HACKNEY.group_dn(group), ["top", "groupOfNames"],
                         {"cn": group, "member": [HACKNEY.person_dn(uid)]}), admin.result
        full = sync.run(delivered.extend)
        assert full.cursor is not None and full.cursor.group_csn and full.cursor.group_set
        cursor = SyncCursor.from_json(full.cursor.to_json())  # stored and read back between runs
        assert cursor == full.cursor

        quiet = sync.run(delivered.extend, cursor, holders)
        assert asked == [] and (quiet.records, quiet.reread_for_groups, quiet.groups_changed) == (0, 0, 0)

        assert admin.modify(HACKNEY.group_dn(group), {"description": [(ldap3.MODIFY_REPLACE, ["changed"])]})
        delivered.clear()
        changed = sync.run(delivered.extend, quiet.cursor, holders)
        assert asked == [GroupChanges(names=frozenset({group}), current=None)]  # same groups, same names
        assert [r.username for r in delivered] == [uid] and [g.name for g in delivered[0].groups] == [group]
        assert changed.reread_for_groups == 1 and changed.groups_changed == 1

        assert admin.delete(HACKNEY.group_dn(group)), admin.result
        asked.clear()
        sync.run(delivered.extend, changed.cursor, holders)
        [vanished] = asked
        assert vanished.names == frozenset() and vanished.current is not None
        assert group not in vanished.current and {"Libraries", "Education Staff"} <= vanished.current
    finally:
        admin.delete(HACKNEY.group_dn(group))
        admin.delete(HACKNEY.person_dn(uid))
        admin.unbind()


def test_group_cursor_fields_are_validated() -> None:
    old = SyncCursor.from_json({"attribute": "modifyTimestamp", "value": "20260101000000Z"})  # before group fields
    assert (old.group_csn, old.group_set) == ("", "")
    good = {"attribute": "modifyTimestamp", "value": "20260101000000Z",
            "group_csn": "20261128080413.515894Z#000000#000#000000", "group_set": "0123abcd"}
    assert SyncCursor.from_json(good).group_csn == good["group_csn"]
    with pytest.raises(ValueError):
        SyncCursor.from_json({**good, "group_csn": "20260101000000Z)(uid=*"})
    with pytest.raises(ValueError):
        SyncCursor.from_json({**good, "group_set": "not hex"})
