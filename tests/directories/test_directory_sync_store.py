"""``supercloud directories sync`` against the real peers: people imported into the identity store,
full and incremental runs, and leavers (disabled or deleted) losing their live sessions and
refresh tokens at the next sync — Samba AD (Camden) and OpenLDAP (Hackney)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any

import ldap3
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from broker.cli import cli
from broker.directory_people import DirectoryPeople
from broker.directory_sync import DirectorySyncService
from broker.identity_store import people_in_store
from broker.storage.models import DirectoryPersonRow
from federation import jose
from tests.directories.broker_peers import (
    admin_connection,
    camden_source,
    create_ad_user,
    hackney_source,
    newham_source,
    set_ad_disabled,
)
from tests.directories.ldap_peers import DEAD_PORT
from tests.directories.test_broker_directory_signin import build_app, records
from tests.directories.test_leavers import PASSWORD, refresh, signed_in_with_tokens, sso_reuse
from tests.peers.samba import SambaDC
from tests.oidc.conftest import LogoutReceiver
from tests.peers.slapd import HACKNEY, SlapdServer
from tests.support.settings import TEST_CLIENT_ID

pytestmark = [pytest.mark.peer("samba"), pytest.mark.peer("slapd")]

NO_RECHECK = 3600  # the live re-check would not look again within the test: only the sync can end access


@pytest.fixture
def receiver() -> Iterator[LogoutReceiver]:
    """An application's back-channel logout endpoint (a real HTTP server on loopback)."""
    server = LogoutReceiver()
    yield server
    server.close()


@pytest.fixture
def sync_app(settings_factory, samba_camden: SambaDC, samba_newham: SambaDC, slapd_hackney: SlapdServer,  # type: ignore[no-untyped-def]
             receiver: LogoutReceiver, monkeypatch: pytest.MonkeyPatch):
    """(app, services, sync service) with the boroughs' real directories; the application
    registered a back-channel logout URI."""
    document = settings_factory.document
    monkeypatch.setattr(settings_factory, "document", lambda **kw: _with_backchannel(document(**kw), receiver.url))
    app, services = build_app(
        settings_factory,
        camden_source(samba_camden, status_recheck_seconds=NO_RECHECK),
        newham_source(samba_newham, status_recheck_seconds=NO_RECHECK),
        hackney_source(slapd_hackney, status_recheck_seconds=NO_RECHECK),
    )
    sync = DirectorySyncService(
        services.settings, DirectoryPeople(services.db),
        lambda subject_id, reason: services.oidc.end_sessions_for_subject(subject_id, reason, actor="directory-sync"),
        services.audit.append, page_size=4,
    )
    yield app, services, sync
    services.engine.dispose()


def _with_backchannel(document: dict[str, Any], url: str) -> dict[str, Any]:
    document["applications"][0]["backchannel_logout_uri"] = f"{url}/backchannel"
    return document


def logout_tokens(services, receiver: LogoutReceiver, expected: int) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Return the claims of the logout tokens the application received (waits up to 20 s for ``expected``)."""
    deadline = time.monotonic() + 20
    while len(receiver.received) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return [jose.verify(post["logout_token"], services.keyring.verification_keys(), audience=TEST_CLIENT_ID,
                        issuer=services.settings.broker.issuer, typ="logout+jwt") for post in receiver.received]


def id_token_sid(services, id_token: str) -> str:  # type: ignore[no-untyped-def]
    return jose.verify(id_token, services.keyring.verification_keys(), audience=TEST_CLIENT_ID,
                       issuer=services.settings.broker.issuer)["sid"]


def stored(services, organisation: str) -> dict[str, DirectoryPersonRow]:  # type: ignore[no-untyped-def]
    with services.db() as session:
        rows = session.execute(select(DirectoryPersonRow).where(DirectoryPersonRow.organisation == organisation)).scalars()
        return {row.username: row for row in rows}


def one(reports: list[Any]):  # type: ignore[no-untyped-def]
    [report] = reports
    assert report.error is None, report.error
    return report


def _ad_dn(dc: SambaDC, upn: str) -> str:
    return f"CN={upn.split('@')[0]},CN=Users,{dc.spec.base_dn}"


def test_active_directory_full_then_incremental_with_leavers(sync_app, samba_camden: SambaDC, receiver: LogoutReceiver) -> None:
    app, services, sync = sync_app
    first = one(sync.sync("camden"))
    assert first.full and first.read >= 9 and first.new == first.read and first.leavers >= 1
    people = stored(services, "camden")
    alice = people["asmith@camden.test"]
    assert alice.attributes["department"] == "Adult Social Care" and alice.status == "active"
    assert alice.source_server.startswith("ldaps://") and alice.source_change.isdigit()
    # groups as a sign-in sees them: nested (Care Staff through Adult Social Care) and the primary group
    assert alice.attributes["groups"] == ["Adult Social Care", "Care Staff", "Discharge Team", "Domain Users"]
    assert people["jleaver@camden.test"].status == "disabled"
    # the policies' who-can / what-can see the synced people with the teams and roles their groups give
    in_store = people_in_store(services.db, services.registry)
    facts = in_store.find("asmith@camden.test").facts  # type: ignore[union-attr]
    assert {"social-worker", "care-staff"} <= set(facts["job_roles"].value)
    assert {"camden-hospital-discharge", "camden-adult-social-care"} <= set(facts["teams"].value)
    assert in_store.find("jleaver@camden.test") is None and in_store.leavers >= 1

    leaver = create_ad_user(samba_camden, PASSWORD)
    deleted = create_ad_user(samba_camden, PASSWORD)
    mover = create_ad_user(samba_camden, PASSWORD)
    tokens = {}
    for email in (leaver, deleted, mover):
        client = app.test_client()
        tokens[email] = (client, signed_in_with_tokens(client, email))
    second = one(sync.sync("camden"))
    assert not second.full and second.new == 3 and second.leavers == 0 and second.sessions_ended == 0

    set_ad_disabled(samba_camden, leaver, True)
    admin = admin_connection(samba_camden)
    try:
        assert admin.modify(_ad_dn(samba_camden, mover), {"department": [(ldap3.MODIFY_REPLACE, ["Housing"])]})
        assert admin.delete(_ad_dn(samba_camden, deleted))
    finally:
        admin.unbind()
    newcomer = create_ad_user(samba_camden, PASSWORD)

    third = one(sync.sync("camden"))
    assert not third.full and third.new == 1 and third.changed == 2 and third.disabled == 1
    people = stored(services, "camden")
    assert people[newcomer].status == "active"
    assert people[mover].attributes["department"] == "Housing"
    assert people[leaver].status == "disabled" and people[leaver].access_ended_at is not None
    # the tombstone, read with the Show Deleted control (the service account was delegated that right)
    assert third.deletions_checked and third.deleted == 1 and third.leavers == 2 and third.sessions_ended == 2
    assert stored(services, "camden")[deleted].status == "deleted"

    sids = {claims["sid"] for claims in logout_tokens(services, receiver, 2)}  # the application was told, by back-channel
    assert sids == {id_token_sid(services, tokens[email][1]["id_token"]) for email in (leaver, deleted)}
    for email in (leaver, deleted):  # their live session and refresh token are gone
        client, issued = tokens[email]
        assert refresh(client, issued["refresh_token"]).status_code == 400
        assert "code=" not in sso_reuse(client).headers.get("Location", "")
    client, issued = tokens[mover]  # the one who only moved department keeps access
    assert refresh(client, issued["refresh_token"]).status_code == 200
    ended = [r for r in records(services, "subject_sessions_ended") if "directory sync" in r.details["reason"]]
    assert len(ended) == 2 and all(r.details["sessions"] == 1 for r in ended)

    again = one(sync.sync("camden"))  # idempotent: nothing new happens to anyone
    assert (again.new, again.changed, again.leavers, again.sessions_ended, again.deleted) == (0, 0, 0, 0, 0)
    full = one(sync.sync("camden", full=True))  # a full run agrees: nobody else is missing
    assert full.full and (full.new, full.deleted, full.leavers) == (0, 0, 0)
    assert len([r for r in records(services, "subject_sessions_ended") if "directory sync" in r.details["reason"]]) == 2
    audited = records(services, "directory_sync", "success")
    assert [r.details["directory_id"] for r in audited] == ["camden-ad"] * len(audited)
    assert all("@" not in str(r.details) for r in audited)  # counts, not people


def test_openldap_full_then_incremental_with_leavers(sync_app, slapd_hackney: SlapdServer) -> None:
    app, services, sync = sync_app
    admin = slapd_hackney.admin_connection()
    uids = {name: f"t{uuid.uuid4().hex[:10]}" for name in ("locked", "deleted", "mover", "newcomer")}
    emails = {name: f"{uid}@hackney.test" for name, uid in uids.items()}
    try:
        first = one(sync.sync("hackney", full=True))
        assert first.full and first.read >= 3
        rosa = stored(services, "hackney")["rosa.khan@hackney.test"]  # nested three deep, and a cycle
        assert rosa.attributes["groups"] == ["Admissions", "Admissions Officers", "Cycle A", "Cycle B", "Education Staff"]
        for name in ("locked", "deleted", "mover"):
            uid = uids[name]
            assert admin.add(HACKNEY.person_dn(uid), ["top", "inetOrgPerson"], {
                "uid": uid, "cn": f"Temp {name}", "sn": name, "mail": emails[name], "title": "Teacher",
                "userPassword": PASSWORD,
            }), admin.result
        tokens = {}
        for name in ("locked", "deleted"):
            client = app.test_client()
            tokens[name] = (client, signed_in_with_tokens(client, emails[name]))
        second = one(sync.sync("hackney"))
        assert not second.full and second.new == 3

        assert admin.modify(HACKNEY.person_dn(uids["mover"]), {"title": [(ldap3.MODIFY_REPLACE, ["Head of Year"])]})
        assert admin.modify(HACKNEY.group_dn("Libraries"), {"member": [(ldap3.MODIFY_ADD, [HACKNEY.person_dn(uids["mover"])])]})
        assert admin.modify(HACKNEY.person_dn(uids["locked"]),
                            {"pwdAccountLockedTime": [(ldap3.MODIFY_REPLACE, ["000001010000Z"])]}), admin.result
        assert admin.delete(HACKNEY.person_dn(uids["deleted"]))
        assert admin.add(HACKNEY.person_dn(uids["newcomer"]), ["top", "inetOrgPerson"], {
            "uid": uids["newcomer"], "cn": "Temp new", "sn": "new", "mail": emails["newcomer"], "userPassword": PASSWORD,
        })

        third = one(sync.sync("hackney"))  # incremental: sees the change, the lock and the newcomer
        people = stored(services, "hackney")
        assert third.new == 1 and third.disabled == 1 and third.deleted == 0
        assert people[emails["mover"]].attributes["job_title"] == "Head of Year"
        assert people[emails["mover"]].attributes["groups"] == ["Libraries"]
        assert people[emails["locked"]].status == "disabled"
        client, issued = tokens["locked"]
        assert refresh(client, issued["refresh_token"]).status_code == 400
        client, issued = tokens["deleted"]
        assert refresh(client, issued["refresh_token"]).status_code == 200  # not yet known to have left

        full = one(sync.sync("hackney", full=True))  # reconciles entryUUIDs: the deleted entry is found
        assert full.full and full.deleted == 1 and full.leavers == 1 and full.sessions_ended == 1
        assert stored(services, "hackney")[emails["deleted"]].status == "deleted"
        assert refresh(client, issued["refresh_token"]).status_code == 400
        assert "code=" not in sso_reuse(client).headers.get("Location", "")

        again = one(sync.sync("hackney"))
        assert (again.new, again.leavers, again.sessions_ended) == (0, 0, 0)

        time.sleep(1.1)  # modifyTimestamp has one-second resolution
        locked_dn = HACKNEY.person_dn(uids["locked"])
        assert admin.modify(locked_dn, {"pwdAccountLockedTime": [(ldap3.MODIFY_DELETE, [])]}), admin.result
        unlocked = one(sync.sync("hackney"))  # re-enabled: active again, and a later lock counts again
        assert unlocked.changed == 1 and unlocked.leavers == 0
        person = stored(services, "hackney")[emails["locked"]]
        assert person.status == "active" and person.access_ended_at is None
        time.sleep(1.1)
        assert admin.modify(locked_dn, {"pwdAccountLockedTime": [(ldap3.MODIFY_REPLACE, ["000001010000Z"])]})
        relocked = one(sync.sync("hackney"))
        assert relocked.leavers == 1 and relocked.disabled == 1
    finally:
        for uid in uids.values():
            admin.delete(HACKNEY.person_dn(uid))
        admin.unbind()


def test_a_sync_touches_only_its_own_organisation(sync_app, samba_camden: SambaDC) -> None:
    app, services, sync = sync_app
    assert stored(services, "camden") == {}
    [report] = sync.sync("camden")
    assert report.directory_id == "camden-ad"
    assert stored(services, "hackney") == {} and stored(services, "newham") == {}
    with pytest.raises(KeyError):
        sync.sync("nowhere")


def test_a_full_run_that_would_remove_most_people_is_refused(sync_app, slapd_hackney: SlapdServer) -> None:
    app, services, sync = sync_app
    one(sync.sync("hackney", full=True))
    before = {u: r.status for u, r in stored(services, "hackney").items()}
    narrowed = DirectorySyncService(
        services.settings.model_copy(update={"organisations": [
            o.model_copy(update={"sources": [o.sources[0].model_copy(update={"base_dn": f"ou=nobody,{HACKNEY.suffix}"})]})
            if o.id == "hackney" else o for o in services.settings.organisations
        ]}),
        DirectoryPeople(services.db), lambda s, r: 0, services.audit.append,
    )
    [report] = narrowed.sync("hackney", full=True)
    assert report.error is not None
    assert {u: r.status for u, r in stored(services, "hackney").items()} == before  # nobody marked deleted
    assert records(services, "directory_sync", "failure")


def test_the_command_prints_one_line_per_directory(sync_app) -> None:
    app, services, sync = sync_app
    config = str(services.settings.base_dir / "broker.yaml")
    result = CliRunner().invoke(cli, ["--config", config, "directories", "sync", "hackney"], obj={})
    assert result.exit_code == 0, result.output
    assert result.output.startswith("✓ hackney/hackney-ldap: full sync from ldap://")
    again = CliRunner().invoke(cli, ["--config", config, "directories", "sync", "hackney"], obj={})
    assert "incremental sync" in again.output and " 0 new, 0 changed" in again.output
    unknown = CliRunner().invoke(cli, ["--config", config, "directories", "sync", "atlantis"], obj={})
    assert unknown.exit_code != 0 and "no organisation 'atlantis'" in unknown.output



def test_an_unreadable_stored_cursor_means_a_full_run(sync_app) -> None:
    app, services, sync = sync_app
    one(sync.sync("hackney"))
    DirectoryPeople(services.db).save_cursor("hackney", "hackney-ldap", {"attribute": "modifyTimestamp", "value": "x)(uid=*"},
                                             full=False, now=dt.datetime.now(dt.UTC))
    report = one(sync.sync("hackney"))  # never spliced into a filter: read as "start again"
    assert report.full and report.new == 0 and report.unchanged == report.read


def test_an_unreachable_directory_fails_its_line_and_the_others_still_sync(
    settings_factory, samba_camden: SambaDC, samba_newham: SambaDC, slapd_hackney: SlapdServer
) -> None:
    address = samba_newham.address
    dead = newham_source(samba_newham, urls=[f"ldap://{address}:{DEAD_PORT}", f"ldap://{address}:{DEAD_PORT + 1}"])
    app, services = build_app(settings_factory, camden_source(samba_camden), dead, hackney_source(slapd_hackney))
    try:
        config = str(services.settings.base_dir / "broker.yaml")
        result = CliRunner().invoke(cli, ["--config", config, "directories", "sync"], obj={})
        assert result.exit_code == 1, result.output
        lines = result.output.splitlines()
        assert lines[0].startswith("✓ camden/camden-ad: full sync from ldaps://")
        assert lines[1].startswith("✗ newham/newham-ad: sync failed: ") and "refused" in lines[1].lower()
        assert lines[2].startswith("✓ hackney/hackney-ldap: full sync from ldap://")
        assert stored(services, "newham") == {} and stored(services, "camden") and stored(services, "hackney")
        assert [r.details["directory_id"] for r in records(services, "directory_sync", "failure")] == ["newham-ad"]
    finally:
        services.engine.dispose()


@pytest.mark.parametrize("borough", ["camden", "newham", "hackney"])
def test_synced_groups_are_the_groups_a_sign_in_sees(borough: str, samba_camden: SambaDC, samba_newham: SambaDC,
                                                     slapd_hackney: SlapdServer, build) -> None:  # type: ignore[no-untyped-def]
    from directories.ldap.sync import DirectorySync
    from tests.directories.ldap_peers import camden_settings, hackney_settings, newham_settings

    cfg = {"camden": lambda: camden_settings(samba_camden), "newham": lambda: newham_settings(samba_newham),
           "hackney": lambda: hackney_settings(slapd_hackney, user_attribute="mail")}[borough]()
    directory = build(cfg)
    synced: list[Any] = []
    DirectorySync(directory, page_size=3, groups=True).run(synced.extend)
    assert len(synced) >= 3
    compared = 0
    for record in synced:
        live = directory.lookup(record.username)  # what a sign-in resolves, one search or a few
        assert live is not None and live.object_id == record.object_id
        assert record.groups == live.groups, record.username
        compared += bool(record.groups)
    assert compared >= 2  # people with groups were compared, not only empty sets
