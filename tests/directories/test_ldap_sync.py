"""Directory sync against the real peers: paged full runs and incremental runs from a cursor."""

from __future__ import annotations

import time

import ldap3
import pytest

from directories import AccountRecord, AccountStatus
from directories.ldap import LdapDirectory
from directories.ldap.sync import DirectorySync, SyncCursor
from tests.directories.broker_peers import create_ad_user, set_ad_disabled
from tests.peers.samba import SambaDC
from tests.peers.slapd import HACKNEY, SlapdServer


def collect(sync: DirectorySync, since: SyncCursor | None = None) -> tuple[list[list[AccountRecord]], object]:
    pages: list[list[AccountRecord]] = []
    result = sync.run(pages.append, since)
    return pages, result


@pytest.mark.peer("slapd")
def test_full_openldap_sync_pages_through_every_person(hackney: LdapDirectory) -> None:
    pages, result = collect(DirectorySync(hackney, page_size=1))
    people = {r.username: r for page in pages for r in page}
    assert {"rkhan", "jpatel", "admin1"} <= set(people)
    assert all(len(page) == 1 for page in pages) and result.records == len(people)  # type: ignore[attr-defined]
    assert people["rkhan"].attributes["job_title"] == "School Admissions Officer"
    assert people["rkhan"].status is AccountStatus.ACTIVE
    assert result.full and result.cursor.attribute == "modifyTimestamp"  # type: ignore[attr-defined]


@pytest.mark.peer("slapd")
def test_incremental_openldap_sync_returns_what_changed(hackney: LdapDirectory, slapd_hackney: SlapdServer) -> None:
    sync = DirectorySync(hackney)
    _, full = collect(sync)
    for _ in range(2):
        time.sleep(1.1)  # modifyTimestamp has a resolution of one second
        _touch(slapd_hackney, "admin1")
        pages, incremental = collect(sync, SyncCursor.from_json(full.cursor.to_json()))  # type: ignore[attr-defined]
        changed = [r.username for page in pages for r in page]
        # inclusive (>=): what changed, plus what shares the cursor's second, never less
        assert "admin1" in changed and len(changed) <= 3
        assert incremental.cursor.value > full.cursor.value  # type: ignore[attr-defined]
        full = incremental
    assert changed == ["admin1"]  # the second run starts after the first change: only the new one


def _touch(server: SlapdServer, uid: str) -> None:
    admin = server.admin_connection()
    try:
        assert admin.modify(HACKNEY.person_dn(uid), {"title": [(ldap3.MODIFY_REPLACE, [f"Changed {time.time()}"])]})
    finally:
        admin.unbind()


@pytest.mark.peer("samba")
def test_active_directory_sync_full_and_incremental(camden: LdapDirectory, samba_camden: SambaDC) -> None:
    sync = DirectorySync(camden, page_size=3)
    pages, full = collect(sync)
    people = {r.username: r for page in pages for r in page}
    assert {"asmith@camden.test", "jleaver@camden.test", "pnew@camden.test"} <= set(people)
    assert people["jleaver@camden.test"].status is AccountStatus.DISABLED
    assert people["pnew@camden.test"].status is AccountStatus.PASSWORD_MUST_CHANGE
    assert all(len(page) <= 3 for page in pages) and full.pages >= 3  # type: ignore[attr-defined]
    assert full.cursor.attribute == "uSNChanged"  # type: ignore[attr-defined]
    created = create_ad_user(samba_camden, "Sync-Test-2026!")
    set_ad_disabled(samba_camden, created, True)
    pages, _ = collect(sync, full.cursor)  # type: ignore[attr-defined]
    changed = {r.username: r for page in pages for r in page}
    assert set(changed) == {created} and changed[created].status is AccountStatus.DISABLED


def test_cursor_is_validated() -> None:
    with pytest.raises(ValueError):
        SyncCursor.from_json({"attribute": "modifyTimestamp", "value": "20260101)(uid=*"})
    with pytest.raises(ValueError):
        SyncCursor.from_json({"attribute": "uSNChanged", "value": "1)(cn=*"})
    with pytest.raises(ValueError):
        SyncCursor.from_json({"attribute": "cn", "value": "x"})
