"""A change made while a sync runs, to an entry the run has already read, is delivered by the
next run, even when the run then read something changed later (the cursor is the run's start,
not the greatest change stamp seen). Against the real Camden Samba and Hackney OpenLDAP."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import Any

import ldap3
import pytest

from directories import AccountRecord
from directories.ldap import LdapDirectory
from directories.ldap import sync as sync_module
from directories.ldap.group_index import GroupIndex
from directories.ldap.sync import DirectorySync, SyncCursor
from tests.directories.broker_peers import admin_connection, create_ad_user
from tests.directories.ldap_peers import camden_settings, hackney_settings
from tests.peers.samba import SambaDC
from tests.peers.slapd import HACKNEY, SlapdServer
from tests.support.secrets import resolved_secret


def _retitle(admin: ldap3.Connection, dn: str) -> None:
    assert admin.modify(dn, {"title": [(ldap3.MODIFY_REPLACE, [f"Changed {uuid.uuid4().hex}"])]}), admin.result


class _ChangeDuringRun:
    """``on_page`` that, when the first of ``pair`` is delivered, changes it and then the other;
    it records the order of delivery and the change stamp each was delivered with."""

    def __init__(self, sync: DirectorySync, pair: tuple[str, str], change: Callable[[str], None]) -> None:
        self.sync, self.pair, self.change = sync, pair, change
        self.order: list[str] = []
        self.stamps: dict[str, str] = {}

    def __call__(self, page: list[AccountRecord]) -> None:
        for record in page:
            if record.username in self.pair:
                self.order.append(record.username)
                self.stamps[record.username] = self.sync.page_changes[record.object_id]
                if len(self.order) == 1:
                    self.change(record.username)  # already delivered: this run will not see it again
                    other = next(u for u in self.pair if u != record.username)
                    self.change(other)  # delivered later in the run, with a greater stamp


@pytest.mark.peer("slapd")
def test_openldap_change_to_an_entry_already_read_is_delivered_next_run(
    hackney: LdapDirectory, slapd_hackney: SlapdServer
) -> None:
    tag = f"tr{uuid.uuid4().hex[:8]}"
    first, second = f"{tag}a", f"{tag}b"
    admin = slapd_hackney.admin_connection()

    def change(uid: str) -> None:
        _retitle(admin, HACKNEY.person_dn(uid))
        if uid == first:
            time.sleep(1.1)  # modifyTimestamp has one-second resolution: the second change is later

    try:
        for uid in (first, second):  # created in this order: the paged search returns them in it
            assert admin.add(HACKNEY.person_dn(uid), ["top", "inetOrgPerson"], {"uid": uid, "cn": uid, "sn": uid})
        sync = DirectorySync(hackney, page_size=1)
        during = _ChangeDuringRun(sync, (first, second), change)
        run = sync.run(during)
        assert during.order == [first, second]
        assert during.stamps[second] > during.stamps[first]  # the run saw the later change

        delivered: list[str] = []
        sync.run(lambda page: delivered.extend(r.username for r in page), run.cursor)
        assert first in delivered
        assert run.cursor is not None and run.cursor.value <= during.stamps[first]
    finally:
        for uid in (first, second):
            admin.delete(HACKNEY.person_dn(uid))
        admin.unbind()


@pytest.mark.peer("samba")
def test_active_directory_change_to_an_entry_already_read_is_delivered_next_run(
    camden: LdapDirectory, samba_camden: SambaDC
) -> None:
    first = create_ad_user(samba_camden, "Sync-Race-2026!")
    second = create_ad_user(samba_camden, "Sync-Race-2026!")
    admin = admin_connection(samba_camden)

    def change(upn: str) -> None:
        _retitle(admin, f"CN={upn.split('@')[0]},CN=Users,{samba_camden.spec.base_dn}")

    try:
        sync = DirectorySync(camden, page_size=1)
        during = _ChangeDuringRun(sync, (first, second), change)
        run = sync.run(during)
        # whichever of the two came first was changed after it was read, the other before it was
        [early, late] = during.order
        assert int(during.stamps[late]) > int(during.stamps[early])  # the run saw a later USN
        assert run.cursor is not None and run.cursor.server == run.server

        delivered: list[str] = []
        again = sync.run(lambda page: delivered.extend(r.username for r in page),
                         SyncCursor.from_json(run.cursor.to_json()))
        assert not again.full and early in delivered
        assert int(run.cursor.value) < int(during.stamps[late])
    finally:
        for upn in (first, second):
            admin.delete(f"CN={upn.split('@')[0]},CN=Users,{samba_camden.spec.base_dn}")
        admin.unbind()


class _PagedHook:
    """A connection standing in for the real one: after each search, ``after(response)`` runs."""

    def __init__(self, conn: ldap3.Connection, after: Callable[[list[dict[str, Any]]], None]) -> None:
        self._conn, self._after = conn, after

    def search(self, *args: Any, **kwargs: Any) -> Any:
        answer = self._conn.search(*args, **kwargs)
        self._after(list(self._conn.response or ()))
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.mark.peer("slapd")
def test_openldap_group_changed_while_the_group_index_is_read_is_found_next_run(
    hackney: LdapDirectory, slapd_hackney: SlapdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = f"tq{uuid.uuid4().hex[:8]}"
    uid, early, late = f"{tag}p", f"{tag}-early", f"{tag}-late"
    early_dn, late_dn = HACKNEY.group_dn(early), HACKNEY.group_dn(late)
    admin = slapd_hackney.admin_connection()
    read = GroupIndex.read
    changed: list[str] = []

    def after(response: list[dict[str, Any]]) -> None:
        dns = {item.get("dn", "").lower() for item in response}
        if early_dn.lower() in dns and not changed:  # the early group's page has been read
            for dn in (early_dn, late_dn):  # the late group, on a later page, is read changed
                assert admin.modify(dn, {"description": [(ldap3.MODIFY_REPLACE, [tag])]}), admin.result
                changed.append(dn)

    def hooked_read(conn: ldap3.Connection, *args: Any, **kwargs: Any) -> GroupIndex:
        return read(_PagedHook(conn, after), *args, **kwargs)  # type: ignore[arg-type]

    try:
        assert admin.add(HACKNEY.person_dn(uid), ["top", "inetOrgPerson"], {"uid": uid, "cn": uid, "sn": uid})
        for group in (early, late):
            assert admin.add(HACKNEY.group_dn(group), ["top", "groupOfNames"],
                             {"cn": group, "member": [HACKNEY.person_dn(uid)]}), admin.result
        time.sleep(1.1)  # everything is older than the run's start: only the group change may re-read uid
        sync = DirectorySync(hackney, page_size=1, groups=True)
        full = sync.run(lambda page: None)
        monkeypatch.setattr(sync_module.GroupIndex, "read", hooked_read)
        during = sync.run(lambda page: None, full.cursor)
        monkeypatch.undo()
        assert changed == [early_dn, late_dn]
        assert during.cursor is not None

        delivered: list[AccountRecord] = []
        after_run = sync.run(delivered.extend, during.cursor, lambda changes: [])
        assert uid in [r.username for r in delivered]
        assert after_run.groups_changed >= 2  # both groups changed after the previous run began
    finally:
        for group in (early, late):
            admin.delete(HACKNEY.group_dn(group))
        admin.delete(HACKNEY.person_dn(uid))
        admin.unbind()


@pytest.mark.peer("slapd")
def test_openldap_cursor_stays_a_clock_skew_behind_the_run_start(
    slapd_hackney: SlapdServer, build: Callable[..., LdapDirectory]
) -> None:
    skewed = build(hackney_settings(slapd_hackney, sync_clock_skew_seconds=300))
    run = DirectorySync(skewed, groups=True).run(lambda page: None)
    assert run.cursor is not None
    limit = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=300)  # the run started before now
    assert run.cursor.value <= f"{limit:%Y%m%d%H%M%S}Z"
    assert run.cursor.group_csn < f"{limit:%Y%m%d%H%M%S.%f}Z"


@pytest.mark.peer("slapd")
def test_openldap_cursor_uses_the_server_clock_where_cn_monitor_is_readable(
    slapd_hackney: SlapdServer, build: Callable[..., LdapDirectory]
) -> None:
    # bound as the rootdn, which the peer lets read back_monitor: the server's own time counts,
    # not this machine's clock less the skew allowance (a day here)
    monitor = build(hackney_settings(slapd_hackney, bind_dn=HACKNEY.admin_dn,
                                     bind_password=resolved_secret(HACKNEY.admin_password),
                                     sync_clock_skew_seconds=86400))
    run = DirectorySync(monitor).run(lambda page: None)  # the peer's entries were all made today
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=86400)
    assert run.cursor is not None and run.cursor.value > f"{yesterday:%Y%m%d%H%M%S}Z"


@pytest.mark.peer("samba")
def test_active_directory_cursor_keeps_its_server_and_old_cursors_load(
    samba_camden: SambaDC, build: Callable[..., LdapDirectory]
) -> None:
    sync = DirectorySync(build(camden_settings(samba_camden)))
    run = sync.run(lambda page: None)
    assert run.cursor is not None and run.cursor.server == run.server and run.cursor.value.isdigit()
    old = SyncCursor.from_json({"attribute": "uSNChanged", "value": run.cursor.value, "server": run.server})
    again = sync.run(lambda page: None, old)
    assert not again.full and again.records == 0 and again.cursor is not None
    assert again.cursor.server == run.server and int(again.cursor.value) >= int(run.cursor.value)


def test_csn_bound_sits_between_the_microsecond_before_and_the_moment() -> None:
    moment = dt.datetime(2026, 3, 1, 12, 0, 0, 500000, tzinfo=dt.UTC)
    bound = sync_module._csn_below(moment)
    assert "20260301120000.499999Z#ffffff#fff#ffffff" == bound
    assert "20260301120000.499999Z#000001#000#000000" < bound < "20260301120000.500000Z#000000#000#000000"
    assert sync_module._csn_below(dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)).startswith("20260301115959.999999Z")
