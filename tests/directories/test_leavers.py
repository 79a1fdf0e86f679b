"""Leavers (SCENARIOS policy 5): an account disabled in its directory loses access at the next
SSO use or token refresh and its sessions are ended — proven against a real Samba AD DC."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from flask.testing import FlaskClient

from broker.access import AccessDenied, AccessGrant
from broker.leavers import LeaverCheck
from federation.errors import FederationError, FederationErrorCode
from federation.identity import AssuranceLevel, AuthnContext, Identity, SubjectRef
from federation.organisations import Organisation, OrganisationRegistry, RoleMapping
from tests.directories.broker_peers import (
    TcpRelay,
    camden_source,
    create_ad_user,
    hackney_source,
    newham_source,
    set_ad_disabled,
)
from tests.directories.test_broker_directory_signin import build_app, code_flow, records
from tests.peers.samba import SambaDC
from tests.peers.slapd import SlapdServer
from tests.support.flask_flow import authorize_params, basic_auth, exchange, pkce_pair

PASSWORD = "Leaver-Test-2026!"


@pytest.fixture
def leaver_app(settings_factory, samba_camden: SambaDC, samba_newham: SambaDC, slapd_hackney: SlapdServer):  # type: ignore[no-untyped-def]
    """(app, services): Camden re-checked at every use (status_recheck_seconds: 0)."""
    app, services = build_app(
        settings_factory,
        camden_source(samba_camden, status_recheck_seconds=0),
        newham_source(samba_newham),
        hackney_source(slapd_hackney),
    )
    yield app, services
    services.engine.dispose()


def signed_in_with_tokens(client: FlaskClient, email: str) -> dict[str, Any]:
    code, verifier, _ = code_flow(client, email, PASSWORD)
    response = exchange(client, code, verifier)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def sso_reuse(client: FlaskClient):  # type: ignore[no-untyped-def]
    """GET /authorize with the browser's SSO session (no sign-in page expected)."""
    _, challenge = pkce_pair()
    return client.get("/authorize", query_string=authorize_params(challenge))


def refresh(client: FlaskClient, token: str):  # type: ignore[no-untyped-def]
    return client.post("/token", data={"grant_type": "refresh_token", "refresh_token": token}, headers=basic_auth())


@pytest.mark.peer("samba")
def test_disabled_account_loses_access_at_the_next_sso_use_and_its_sessions_end(leaver_app, samba_camden: SambaDC) -> None:
    app, services = leaver_app
    email = create_ad_user(samba_camden, PASSWORD, groups=("Adult Social Care",))
    client = app.test_client()
    tokens = signed_in_with_tokens(client, email)
    subject_id = records(services, "signin", "success")[-1].actor
    reused = sso_reuse(client)
    assert "code=" in reused.headers["Location"]  # still active: SSO reuse works, checked live
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 200

    set_ad_disabled(samba_camden, email, True)  # HR's leaver process disables the account in AD

    refused = sso_reuse(client)
    assert "code=" not in refused.headers.get("Location", "")
    assert refused.status_code == 403
    assert "can no longer be used to sign in" in refused.get_data(as_text=True)
    assert services.sso.live_sids_for_subject(subject_id) == []  # every session ended
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401
    assert refresh(client, tokens["refresh_token"]).status_code == 400  # refresh token revoked
    [denied] = records(services, "leaver_check", "denied")
    assert denied.actor == subject_id and denied.details["status"] == "account_not_active"
    assert "disabled" in denied.details["reason"] and denied.details["sessions_ended"] == 1
    assert any(r.details.get("subject_id") == subject_id for r in records(services, "subject_sessions_ended"))
    # signing in again is refused with the generic message; the audit has AD's sub-code
    again = app.test_client()
    from tests.support.flask_flow import password_sign_in

    assert "Enter a correct email address and password." in password_sign_in(again, email, PASSWORD).get_data(as_text=True)
    assert "(533)" in records(services, "signin", "failure")[-1].details["reason"]


@pytest.mark.peer("samba")
def test_disabled_account_loses_access_at_the_next_token_refresh(leaver_app, samba_camden: SambaDC) -> None:
    app, services = leaver_app
    email = create_ad_user(samba_camden, PASSWORD)
    client = app.test_client()
    tokens = signed_in_with_tokens(client, email)
    subject_id = records(services, "signin", "success")[-1].actor
    renewed = refresh(client, tokens["refresh_token"])
    assert renewed.status_code == 200, renewed.get_data(as_text=True)

    set_ad_disabled(samba_camden, email, True)

    response = refresh(client, renewed.get_json()["refresh_token"])
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
    assert services.sso.live_sids_for_subject(subject_id) == []
    assert "code=" not in sso_reuse(client).headers.get("Location", "")  # the SSO cookie is dead too
    assert records(services, "leaver_check", "denied")


@pytest.mark.peer("samba")
def test_unreachable_directory_at_sso_reuse_fails_closed_but_keeps_the_session(
    settings_factory, samba_camden: SambaDC, samba_newham: SambaDC, slapd_hackney: SlapdServer
) -> None:
    relay = TcpRelay(samba_camden.address, (samba_camden.address, 636))
    camden = camden_source(
        samba_camden, urls=[f"ldaps://{samba_camden.address}:{relay.port}"], status_recheck_seconds=0
    )
    app, services = build_app(settings_factory, camden, newham_source(samba_newham), hackney_source(slapd_hackney))
    try:
        email = create_ad_user(samba_camden, PASSWORD)
        client = app.test_client()
        signed_in_with_tokens(client, email)
        subject_id = records(services, "signin", "success")[-1].actor
        relay.stop()  # Camden's only DC goes down
        response = sso_reuse(client)
        assert "code=" not in response.headers.get("Location", "")
        assert response.status_code == 403
        assert "Sign-in for London Borough of Camden is unavailable" in response.get_data(as_text=True)
        assert len(services.sso.live_sids_for_subject(subject_id)) == 1  # an outage is not a leaver
        [error] = records(services, "leaver_check", "error")
        assert error.details["status"] == "source_unavailable"
        assert records(services, "leaver_check", "denied") == []
    finally:
        relay.stop()
        services.engine.dispose()


# -- the gate on its own (no peers): cache, fresh sign-ins, other sources -------------------------


class FakeSource:
    """A RefreshableSource whose answers the test sets."""

    def __init__(self, source_id: str = "camden-ad") -> None:
        self.id = source_id
        self.organisation = "camden"
        self.calls = 0
        self.error: FederationError | None = None
        self.groups: tuple[str, ...] = ("Adult Social Care",)

    def refresh(self, identity: Identity) -> Identity:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return dataclasses.replace(identity, groups=self.groups)


class RecordingGate:
    def __init__(self) -> None:
        self.seen: list[Identity] = []

    def check(self, identity: Identity, client_id: str, service_name: str) -> AccessGrant:
        self.seen.append(identity)
        return AccessGrant(released=None)


NOW = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)


def identity(authenticated_at: dt.datetime, source: str = "camden-ad") -> Identity:
    return Identity(
        subject=SubjectRef("urn:supercloud:directory:camden-ad", "0b7e6c8e-4a4e-4d55-9d7f-5d2b0c9a1f01"),
        organisation="camden",
        attributes={},
        groups=(),
        roles=(),
        authn=AuthnContext(methods=("pwd",), assurance=AssuranceLevel.AAL1, authenticated_at=authenticated_at, source=source),
    )


def gate(source: FakeSource, *, recheck: float = 60.0):  # type: ignore[no-untyped-def]
    org = Organisation(id="camden", name="London Borough of Camden", kind="borough", domains=("camden.test",),
                       ods_codes=(), sources=(source,),
                       role_mappings=(RoleMapping(groups=frozenset({"Adult Social Care"}), job_roles=("social-worker",)),))
    inner, ended, audit, clock = RecordingGate(), [], [], [1000.0]
    check = LeaverCheck(
        inner, OrganisationRegistry([org]), lambda subject, reason: ended.append((subject, reason)) or 1,
        subject_for=lambda ref: "broker-subject-1", audit=audit.append,
        recheck_seconds={source.id: recheck}, clock=lambda: clock[0], now=lambda: NOW,
    )
    return check, inner, ended, audit, clock


def test_a_fresh_sign_in_counts_as_the_check() -> None:
    source = FakeSource()
    check, inner, _, _, _ = gate(source)
    check.check(identity(NOW - dt.timedelta(seconds=10)), "discharge-hub", "Hub")
    assert source.calls == 0 and len(inner.seen) == 1


def test_checks_are_cached_per_sign_in_for_the_interval() -> None:
    source = FakeSource()
    check, inner, _, _, clock = gate(source)
    person = identity(NOW - dt.timedelta(minutes=5))
    for _ in range(3):
        check.check(person, "discharge-hub", "Hub")
    assert source.calls == 1
    assert inner.seen[-1].attributes["job_roles"].value == ("social-worker",)  # refreshed groups, re-derived roles
    clock[0] += 61
    check.check(person, "discharge-hub", "Hub")
    assert source.calls == 2
    check.check(identity(NOW - dt.timedelta(minutes=4)), "discharge-hub", "Hub")  # another sign-in: its own entry
    assert source.calls == 3


def test_a_leaver_is_denied_and_their_sessions_ended() -> None:
    source = FakeSource()
    check, inner, ended, audit, clock = gate(source)
    person = identity(NOW - dt.timedelta(minutes=5))
    check.check(person, "discharge-hub", "Hub")
    source.error = FederationError(FederationErrorCode.ACCOUNT_NOT_ACTIVE, "camden-ad: account disabled")
    clock[0] += 61
    with pytest.raises(AccessDenied) as info:
        check.check(person, "discharge-hub", "Hub")
    assert info.value.reasons == ("account_not_active",)
    assert "disabled" not in info.value.message  # the person is not told why
    assert ended == [("broker-subject-1", "leaver: camden-ad: account disabled")]
    assert audit[-1].event == "leaver_check" and audit[-1].outcome == "denied"


@pytest.mark.parametrize(
    ("code", "message"),
    [(FederationErrorCode.SOURCE_UNAVAILABLE, "Sign-in for London Borough of Camden is unavailable"),
     (FederationErrorCode.MISCONFIGURED, "could not check your account")],
)
def test_other_failures_fail_closed_without_ending_sessions(code: FederationErrorCode, message: str) -> None:
    source = FakeSource()
    source.error = FederationError(code, "no DC answered")
    check, inner, ended, audit, _ = gate(source)
    with pytest.raises(AccessDenied) as info:
        check.check(identity(NOW - dt.timedelta(minutes=5)), "discharge-hub", "Hub")
    assert message in info.value.message
    assert ended == [] and inner.seen == []
    assert audit[-1].outcome == "error"
    source.error = None
    check.check(identity(NOW - dt.timedelta(minutes=5)), "discharge-hub", "Hub")  # failures are not cached
    assert len(inner.seen) == 1


def test_identities_of_sources_that_cannot_refresh_pass_through() -> None:
    source = FakeSource()
    check, inner, _, _, _ = gate(source)
    check.check(identity(NOW - dt.timedelta(hours=1), source="nhs-cis2"), "discharge-hub", "Hub")
    assert source.calls == 0 and len(inner.seen) == 1


def test_zero_interval_checks_every_use() -> None:
    source = FakeSource()
    check, _, _, _, _ = gate(source, recheck=0)
    person = identity(NOW)
    check.check(person, "discharge-hub", "Hub")
    check.check(person, "discharge-hub", "Hub")
    assert source.calls == 2


def test_by_default_every_use_is_checked_live_even_just_after_sign_in() -> None:
    from config.ldap_source import LdapSourceConfig

    assert LdapSourceConfig.model_fields["status_recheck_seconds"].default == 0
    source = FakeSource()
    org = Organisation(id="camden", name="London Borough of Camden", kind="borough", domains=("camden.test",),
                       ods_codes=(), sources=(source,))
    check = LeaverCheck(RecordingGate(), OrganisationRegistry([org]), lambda subject, reason: 1,
                        subject_for=lambda ref: "broker-subject-1", audit=lambda event: None, now=lambda: NOW)
    person = identity(NOW - dt.timedelta(seconds=1))  # signed in a second ago
    for _ in range(3):
        check.check(person, "discharge-hub", "Hub")
    assert source.calls == 3


@pytest.mark.peer("slapd")
def test_account_deleted_from_openldap_loses_access_at_the_next_sso_use(
    settings_factory, samba_camden: SambaDC, samba_newham: SambaDC, slapd_hackney: SlapdServer
) -> None:
    import uuid

    from tests.peers.slapd import HACKNEY

    app, services = build_app(settings_factory, camden_source(samba_camden), newham_source(samba_newham),
                              hackney_source(slapd_hackney, status_recheck_seconds=0))
    uid = f"t{uuid.uuid4().hex[:10]}"
    admin = slapd_hackney.admin_connection()
    try:
        assert admin.add(HACKNEY.person_dn(uid), ["top", "inetOrgPerson"],
                         {"uid": uid, "cn": "Temp Worker", "sn": "Worker", "mail": f"{uid}@hackney.test", "userPassword": PASSWORD})
        client = app.test_client()
        signed_in_with_tokens(client, f"{uid}@hackney.test")
        subject_id = records(services, "signin", "success")[-1].actor
        assert "code=" in sso_reuse(client).headers["Location"]
        assert admin.delete(HACKNEY.person_dn(uid))  # the leaver's entry is removed
        refused = sso_reuse(client)
        assert refused.status_code == 403
        assert services.sso.live_sids_for_subject(subject_id) == []
        [denied] = records(services, "leaver_check", "denied")
        assert "no longer exists" in denied.details["reason"]
    finally:
        admin.unbind()
        services.engine.dispose()
