"""Sign-in through the broker (Flask test client) with the boroughs' real directories as sources.

Camden and Newham are Samba AD DCs, Hackney is OpenLDAP; the settings file names them as
``active_directory`` / ``ldap`` sources with ``{env:}`` secrets, exactly as in production.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from config import load_settings
from tests.directories.broker_peers import (
    TcpRelay,
    camden_source,
    export_secrets,
    hackney_source,
    newham_source,
    peer_organisations,
)
from tests.directories.ldap_peers import DEAD_PORT
from tests.peers.samba import CAMDEN_PASSWORD, NEWHAM_PASSWORD, SambaDC
from tests.peers.slapd import HACKNEY_PASSWORD, SlapdServer
from tests.support.flask_flow import authorize_params, exchange, password_sign_in, pkce_pair, query
from tests.support.http_login import csrf_token

pytestmark = [pytest.mark.peer("samba"), pytest.mark.peer("slapd")]

GENERIC = "Enter a correct email address and password."
PEOPLE = {
    "camden": ("asmith@camden.test", CAMDEN_PASSWORD, "camden-ad", "Alice Smith"),
    "newham": ("mokafor@newham.test", NEWHAM_PASSWORD, "newham-ad", "Mary Okafor"),
    "hackney": ("rosa.khan@hackney.test", HACKNEY_PASSWORD, "hackney-ldap", "Rosa Khan"),
}


def build_app(settings_factory, camden: dict[str, Any], newham: dict[str, Any], hackney: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Return (app, services) for a settings file whose boroughs use these sources."""
    from broker.bootstrap import initialise
    from broker.services import build_services
    from broker.web.app import create_app

    export_secrets()
    document = settings_factory.document()
    document["organisations"] = peer_organisations(camden, newham, hackney)
    settings = load_settings(settings_factory.write(document))
    initialise(settings)
    services = build_services(settings)
    app = create_app(settings, services=services)
    app.config["TESTING"] = True
    return app, services


@pytest.fixture
def peer_app(settings_factory, samba_camden: SambaDC, samba_newham: SambaDC, slapd_hackney: SlapdServer):  # type: ignore[no-untyped-def]
    """(app, services) with the three boroughs on their real directories."""
    app, services = build_app(
        settings_factory, camden_source(samba_camden), newham_source(samba_newham), hackney_source(slapd_hackney)
    )
    yield app, services
    services.engine.dispose()


def code_flow(client: FlaskClient, email: str, password: str) -> tuple[str, str, dict[str, str]]:
    """Run authorize → sign-in with ``password`` → resume; return (code, verifier, callback query)."""
    verifier, challenge = pkce_pair()
    response = client.get("/authorize", query_string=authorize_params(challenge))
    assert response.headers["Location"].endswith("/login")
    signed = password_sign_in(client, email, password)
    assert signed.status_code == 302, signed.get_data(as_text=True)[:1000]
    callback = query(client.get(signed.headers["Location"]).headers["Location"])
    return callback["code"], verifier, callback


def records(services, event: str, outcome: str | None = None) -> list[Any]:  # type: ignore[no-untyped-def]
    return [r for r in services.audit.records() if r.event == event and (outcome is None or r.outcome == outcome)]


def session_identity(services, subject_id: str):  # type: ignore[no-untyped-def]
    sids = services.sso.live_sids_for_subject(subject_id)
    assert len(sids) == 1
    return services.sso.by_sid(sids[0]).identity


@pytest.mark.parametrize("borough", sorted(PEOPLE))
def test_each_borough_signs_in_through_its_directory_and_reaches_the_application(peer_app, borough: str) -> None:
    app, services = peer_app
    email, password, source, name = PEOPLE[borough]
    client = app.test_client()
    code, verifier, callback = code_flow(client, email, password)
    assert callback["state"] == "state-123"
    response = exchange(client, code, verifier)
    assert response.status_code == 200, response.get_data(as_text=True)
    [signin] = records(services, "signin", "success")
    assert signin.details["organisation"] == borough and signin.details["source"] == source
    identity = session_identity(services, signin.actor)
    assert identity.organisation == borough
    assert identity.subject.issuer == f"urn:supercloud:directory:{source}"
    assert uuid.UUID(identity.subject.subject)  # objectGUID / entryUUID, never the username
    assert identity.text("name") == name
    assert identity.authn.source == source and identity.authn.methods == ("pwd",)


def test_nested_groups_reach_teams_and_job_roles_through_the_registry(peer_app) -> None:
    app, services = peer_app
    expected = {
        # Alice: Adult Social Care ⊂ Care Staff (nested), Discharge Team
        "camden": ({"camden-hospital-discharge", "camden-adult-social-care"}, {"social-worker", "care-staff"}),
        # Mary: Discharge Coordinators ⊂ Hospital Discharge Team (the team is only reachable by nesting)
        "newham": ({"newham-discharge"}, {"discharge-coordinator"}),
        # Rosa: Admissions Officers ⊂ Admissions ⊂ Education Staff (three levels, plus a cycle)
        "hackney": ({"hackney-education"}, {"admissions-officer"}),
    }
    for borough, (teams, roles) in expected.items():
        email, password, _, _ = PEOPLE[borough]
        response = password_sign_in(app.test_client(), email, password)
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        actor = records(services, "signin", "success")[-1].actor
        identity = session_identity(services, actor)
        assert set(identity.attributes["teams"].value) == teams, borough
        assert set(identity.attributes["job_roles"].value) == roles, borough
        assert identity.attributes["teams"].source == f"organisation-registry:{borough}"
    camden_groups = session_identity(services, records(services, "signin", "success")[0].actor).groups
    assert {"Adult Social Care", "Care Staff", "Discharge Team", "Domain Users"} <= set(camden_groups)


def test_same_username_in_two_boroughs_is_two_people(peer_app) -> None:
    app, services = peer_app
    # sAMAccountName "jpatel" exists in both domains (and uid jpatel in Hackney)
    assert password_sign_in(app.test_client(), "jpatel@camden.test", CAMDEN_PASSWORD).status_code == 302
    assert password_sign_in(app.test_client(), "jpatel@newham.test", NEWHAM_PASSWORD).status_code == 302
    assert password_sign_in(app.test_client(), "jay.patel@hackney.test", HACKNEY_PASSWORD).status_code == 302
    actors = [r.actor for r in records(services, "signin", "success")]
    assert len(set(actors)) == 3
    identities = [session_identity(services, a) for a in actors]
    assert [i.organisation for i in identities] == ["camden", "newham", "hackney"]
    assert len({(i.subject.issuer, i.subject.subject) for i in identities}) == 3
    assert identities[0].text("department") == "Housing" and identities[1].text("department") == "Parking"
    # one borough's password is no good in the other
    assert GENERIC in password_sign_in(app.test_client(), "jpatel@newham.test", CAMDEN_PASSWORD).get_data(as_text=True)


@pytest.mark.parametrize(
    ("user", "code", "subcode", "message"),
    [
        ("jleaver@camden.test", "account_not_active", "533", GENERIC),
        ("pnew@camden.test", "password_change_required", "773", "You need to set a new password"),
        ("tlocked@camden.test", "account_not_active", "775", GENERIC),
        ("cexpired@camden.test", "account_not_active", "701", GENERIC),
    ],
)
def test_account_status_gives_the_generic_message_and_the_audit_the_reason(
    peer_app, user: str, code: str, subcode: str, message: str
) -> None:
    app, services = peer_app
    response = password_sign_in(app.test_client(), user, CAMDEN_PASSWORD)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert message in page
    page = page.replace(user, "")  # the page repeats the address typed, nothing more
    for word in ("disabled", "locked", "expired", "533", "775", "701", "773"):
        assert word not in page.lower()
    [failure] = records(services, "signin", "failure")
    assert failure.details["reason"].startswith(f"{code}: ")
    assert f"({subcode})" in failure.details["reason"]  # AD's sub-code, for the audit log only
    assert CAMDEN_PASSWORD not in json.dumps(failure.details)
    assert records(services, "signin", "success") == []


INJECTIONS = [
    "*@camden.test",
    "*",
    "asmith*@camden.test",
    "*)(objectClass=*@camden.test",
    "asmith@camden.test)(objectClass=*",
    "*)(userPrincipalName=*))(|(userPrincipalName=*@camden.test",
    ")(|(memberOf=*@camden.test",
    "asmith@camden.test)(|(memberOf=*",
    "asmith\x00@camden.test",
    "asmith@camden.test\x00",
    "\\2a@camden.test",
    "asmith\\2a@camden.test",
    "asmith@camden.test\\29\\28cn=*",
]


@pytest.mark.parametrize("email", INJECTIONS)
def test_ldap_injection_in_the_email_signs_no_one_in(peer_app, email: str) -> None:
    app, services = peer_app
    response = password_sign_in(app.test_client(), email, CAMDEN_PASSWORD)
    page = response.get_data(as_text=True)
    assert response.status_code in {200, 400}, page[:300]
    assert "Set-Cookie" not in response.headers or "sso" not in response.headers.get("Set-Cookie", "")
    assert records(services, "signin", "success") == []
    for revealing in ("Alice", "asmith", "Smith", "objectClass", "memberOf", "DC=camden"):
        assert revealing not in page.replace(email, "")
    health = services.registry.source("camden-ad")._directory.health()  # noqa: SLF001
    assert all(h.total_failures == 0 for h in health)  # no malformed filter ever reached the DC


@pytest.mark.parametrize("password", ["*", "*)(objectClass=*", ")(|(memberOf=*", "\\2a", "\x00", "pass\x00word", ""])
def test_ldap_injection_in_the_password_signs_no_one_in(peer_app, password: str) -> None:
    app, services = peer_app
    response = password_sign_in(app.test_client(), "asmith@camden.test", password)
    assert response.status_code in {200, 400}
    assert records(services, "signin", "success") == []


def _form_post(client: FlaskClient, path: str, **fields: Any):  # type: ignore[no-untyped-def]
    page = client.get(path).get_data(as_text=True)
    return client.post(path, data={"csrf_token": csrf_token(page), **fields})


def test_lists_and_json_bodies_sign_no_one_in(peer_app) -> None:
    app, services = peer_app
    client = app.test_client()
    # the same field twice (a list): only one value is ever used, and it is a plain string
    response = _form_post(client, "/login", email=["*@camden.test", "asmith@camden.test"])
    if response.status_code == 302:
        response = _form_post(client, "/login/password", password=[CAMDEN_PASSWORD, "*"])
    assert records(services, "signin", "success") == []
    # JSON bodies (lists and dicts where strings belong) are not form posts: refused
    for body in ({"email": ["asmith@camden.test"]}, {"email": {"$ne": ""}}, {"email": "asmith@camden.test", "password": {"*": "*"}}):
        response = app.test_client().post("/login", data=json.dumps(body), content_type="application/json")
        assert response.status_code in {400, 415}
        response = app.test_client().post("/login/password", data=json.dumps(body), content_type="application/json")
        assert response.status_code in {302, 400, 415}
        assert "Location" not in response.headers or response.headers["Location"].endswith("/login")
    assert records(services, "signin", "success") == []


def test_a_domain_controller_stopped_mid_test_fails_over_within_the_timeout(
    settings_factory, samba_camden: SambaDC, samba_newham: SambaDC, slapd_hackney: SlapdServer
) -> None:
    import time

    relay = TcpRelay(samba_camden.address, (samba_camden.address, 636))
    camden = camden_source(
        samba_camden,
        urls=[f"ldaps://{samba_camden.address}:{relay.port}", f"ldaps://{samba_camden.address}:636"],
        connect_timeout_seconds=1,
        response_timeout_seconds=2,
    )
    app, services = build_app(settings_factory, camden, newham_source(samba_newham), hackney_source(slapd_hackney))
    try:
        assert password_sign_in(app.test_client(), "asmith@camden.test", CAMDEN_PASSWORD).status_code == 302
        first, second = services.registry.source("camden-ad")._directory.health()  # noqa: SLF001
        assert first.total_successes >= 1 and second.total_successes == 0  # the first DC served it
        relay.stop()  # the first DC goes down, with pooled connections open to it
        started = time.perf_counter()
        response = password_sign_in(app.test_client(), "asmith@camden.test", CAMDEN_PASSWORD)
        elapsed = time.perf_counter() - started
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        assert elapsed < 1 + 2 + 1  # connect + response timeout, plus slack
        first, second = services.registry.source("camden-ad")._directory.health()  # noqa: SLF001
        assert first.total_failures >= 1 and second.total_successes >= 1
        assert len(records(services, "signin", "success")) == 2
    finally:
        relay.stop()
        services.engine.dispose()


def test_an_unreachable_borough_is_unavailable_and_the_others_are_unaffected(
    settings_factory, samba_camden: SambaDC, samba_newham: SambaDC, slapd_hackney: SlapdServer
) -> None:
    address = samba_newham.address
    newham = newham_source(samba_newham, urls=[f"ldap://{address}:{DEAD_PORT}", f"ldap://{address}:{DEAD_PORT + 1}"])
    app, services = build_app(settings_factory, camden_source(samba_camden), newham, hackney_source(slapd_hackney))
    try:
        response = password_sign_in(app.test_client(), "mokafor@newham.test", NEWHAM_PASSWORD)
        page = response.get_data(as_text=True)
        assert "Sign-in for London Borough of Newham is unavailable" in page
        [failure] = records(services, "signin", "failure")
        assert failure.details["reason"].startswith("source_unavailable: ")
        assert password_sign_in(app.test_client(), "asmith@camden.test", CAMDEN_PASSWORD).status_code == 302
        assert password_sign_in(app.test_client(), "rosa.khan@hackney.test", HACKNEY_PASSWORD).status_code == 302
        assert [r.details["organisation"] for r in records(services, "signin", "success")] == ["camden", "hackney"]
    finally:
        services.engine.dispose()
