"""Sessions and logout: RP-initiated (OIDC RP-Initiated Logout 1.0), back-channel (OIDC
Back-Channel Logout 1.0) and front-channel (OIDC Front-Channel Logout 1.0), admin and leaver."""

from __future__ import annotations

import re

from federation import jose
from tests.oidc import jwt_tools
from tests.oidc.helpers import ISSUER, audit_events, authorize, query, refresh, tokens_for, verify_id_token
from tests.support.http_login import csrf_token

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def _drain(services) -> None:  # type: ignore[no-untyped-def]
    assert services.oidc.logout.outbox.drain(timeout=20)


def test_rp_initiated_logout_with_a_hint_ends_the_session_and_returns_with_state(app, services, receiver) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    sid = verify_id_token(services, tokens["id_token"])["sid"]
    response = client.get("/end-session", query_string={"id_token_hint": tokens["id_token"],
                                                        "post_logout_redirect_uri": "http://127.0.0.1:8001/", "state": "bye-1"})
    assert response.status_code == 200  # discharge-hub registered front-channel logout: a page with iframes
    page = response.get_data(as_text=True)
    assert f'src="http://127.0.0.1:8001/frontchannel?iss=http%3A%2F%2F127.0.0.1%3A8000&amp;sid={sid}"' in page
    assert 'href="http://127.0.0.1:8001/?state=bye-1"' in page
    csp = response.headers["Content-Security-Policy"]
    assert "frame-src http://127.0.0.1:8001" in csp
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert f'<script nonce="{nonce}">' in page
    assert "supercloud-session=;" in response.headers.get("Set-Cookie", "")
    after, _ = authorize(client, prompt="none")
    assert query(after.headers["Location"])["error"] == "login_required"
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401
    assert refresh(client, tokens["refresh_token"]).get_json()["error"] == "invalid_grant"
    _drain(services)


def test_back_channel_logout_token_is_posted_signed_and_audited(app, services, receiver) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    person = verify_id_token(services, tokens["id_token"])
    client.get("/end-session", query_string={"id_token_hint": tokens["id_token"]})
    _drain(services)
    posts = [p for p in receiver.received if p["path"] == "/backchannel"]
    assert len(posts) == 1 and posts[0]["content_type"] == "application/x-www-form-urlencoded"
    token = posts[0]["logout_token"]
    header, _ = jwt_tools.parts(token)
    assert header["typ"] == "logout+jwt"
    claims = jose.verify(token, services.keyring.verification_keys(), audience="discharge-hub", issuer=ISSUER, typ="logout+jwt")
    assert claims["events"] == {BACKCHANNEL_EVENT: {}} and claims["sid"] == person["sid"] and claims["sub"] == person["sub"]
    assert "nonce" not in claims and claims["jti"]
    assert ("backchannel_logout", "success") in audit_events(services)
    assert all(token not in str(r.details) for r in services.audit.records())


def test_every_application_in_the_session_is_told(app, services, receiver) -> None:
    from tests.oidc.test_client_auth import _code_for

    client = app.test_client()
    tokens = tokens_for(client)
    _code_for(client, "jwt-app", "http://127.0.0.1:8003/callback")  # the same SSO session reaches jwt-app
    sid = verify_id_token(services, tokens["id_token"])["sid"]
    services.oidc.logout.end_session(sid, reason="admin", actor="officer-1")
    _drain(services)
    assert sorted(p["path"] for p in receiver.received) == ["/backchannel", "/jwt-app/backchannel"]
    record = [r for r in services.audit.records() if r.event == "signout"][-1]
    assert record.actor == "officer-1" and sorted(record.details["notified"]) == ["discharge-hub", "jwt-app"]


def test_failed_deliveries_are_retried_a_bounded_number_of_times_and_audited(app, services, receiver) -> None:
    receiver.status = 503
    services.oidc.logout.outbox.backoff = (0.01,)
    services.oidc.logout.outbox.attempts = 3
    client = app.test_client()
    tokens = tokens_for(client)
    client.get("/end-session", query_string={"id_token_hint": tokens["id_token"]})
    _drain(services)
    assert len(receiver.received) == 3
    failure = [r for r in services.audit.records() if r.event == "backchannel_logout"][-1]
    assert failure.outcome == "failure" and failure.details["attempts"] == 3 and failure.details["status"] == 503


def test_an_unregistered_post_logout_redirect_uri_is_a_page_not_a_redirect(app, services) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    for uri in ("https://attacker.test/", "http://127.0.0.1:8001", "http://127.0.0.1:8001/?x=1"):
        response = client.get("/end-session", query_string={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": uri})
        assert response.status_code == 400 and "Location" not in response.headers
    assert ("end_session_request", "failure") in audit_events(services)
    still, _ = authorize(client, prompt="none")
    assert "code" in query(still.headers["Location"]), "a refused logout request leaves the session"


def test_a_redirect_needs_the_client_identified(app) -> None:
    response = app.test_client().get("/end-session", query_string={"post_logout_redirect_uri": "http://127.0.0.1:8001/"})
    assert response.status_code == 400


def test_client_id_must_agree_with_the_hint(app) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    response = client.get("/end-session", query_string={"id_token_hint": tokens["id_token"], "client_id": "post-app"})
    assert response.status_code == 400


def test_without_a_hint_the_person_confirms_first(app, services) -> None:
    client = app.test_client()
    tokens_for(client)
    page = client.get("/end-session", query_string={"client_id": "discharge-hub", "post_logout_redirect_uri": "http://127.0.0.1:8001/",
                                                     "state": "s2"})
    assert page.status_code == 200 and "Hospital Discharge Hub asked to sign you out" in page.get_data(as_text=True)
    still, _ = authorize(client, prompt="none")
    assert "code" in query(still.headers["Location"])
    done = client.post("/end-session/confirm", data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    assert done.status_code == 200 and 'href="http://127.0.0.1:8001/?state=s2"' in done.get_data(as_text=True)
    after, _ = authorize(client, prompt="none")
    assert query(after.headers["Location"])["error"] == "login_required"
    _drain(services)


def test_confirmation_needs_its_csrf_token(app) -> None:
    client = app.test_client()
    tokens_for(client)
    client.get("/end-session", query_string={"client_id": "discharge-hub"})
    assert client.post("/end-session/confirm", data={}).status_code == 400


def test_without_a_session_the_application_gets_its_redirect(app) -> None:
    response = app.test_client().get("/end-session", query_string={"client_id": "post-app", "post_logout_redirect_uri": "http://127.0.0.1:8001/"})
    assert response.status_code == 400, "post-app registered no post-logout URIs"
    response = app.test_client().get("/end-session", query_string={"client_id": "discharge-hub",
                                                                    "post_logout_redirect_uri": "http://127.0.0.1:8001/", "state": "s"})
    assert response.status_code == 302 and response.headers["Location"] == "http://127.0.0.1:8001/?state=s"


def test_an_expired_hint_still_signs_out(app, services) -> None:
    import time

    client = app.test_client()
    tokens = tokens_for(client)
    claims = verify_id_token(services, tokens["id_token"])
    old = jose.sign({**claims, "exp": int(time.time()) - 60}, services.keyring.current("ES256"), typ="JWT")
    client.get("/end-session", query_string={"id_token_hint": old})
    after, _ = authorize(client, prompt="none")
    assert query(after.headers["Location"])["error"] == "login_required"
    _drain(services)


def test_a_forged_hint_is_refused(app) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    header, claims = jwt_tools.parts(tokens["id_token"])
    forged = jwt_tools.sign_es256(claims, jwt_tools.ec_key(), kid=header["kid"])
    assert client.get("/end-session", query_string={"id_token_hint": forged}).status_code == 400


def test_signing_out_on_the_broker_notifies_applications(app, services, receiver) -> None:
    client = app.test_client()
    tokens_for(client)
    page = client.get("/logout").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_token(page)})
    _drain(services)
    assert [p["path"] for p in receiver.received] == ["/backchannel"]


def test_ending_every_session_of_a_leaver_notifies_and_revokes(app, services, receiver) -> None:
    first, second = app.test_client(), app.test_client()
    a, b = tokens_for(first), tokens_for(second)
    subject_id = services.sso.by_sid(verify_id_token(services, a["id_token"])["sid"]).subject_id
    assert services.oidc.end_sessions_for_subject(subject_id, "leaver", actor="directory-sync") == 2
    _drain(services)
    assert len([p for p in receiver.received if p["path"] == "/backchannel"]) == 2
    for tokens in (a, b):
        assert refresh(first, tokens["refresh_token"]).get_json()["error"] == "invalid_grant"
        assert first.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401
    assert ("subject_sessions_ended", "success") in audit_events(services)
