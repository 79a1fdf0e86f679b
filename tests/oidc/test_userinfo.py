"""OIDF basic OP plan, userinfo area: GET and POST (OIDC Core §5.3, RFC 6750 §2.1–§2.2)."""

from __future__ import annotations

from tests.oidc.helpers import tokens_for, verify_id_token


def test_userinfo_by_get_with_a_bearer_header(app, services) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    response = client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 200
    info = response.get_json()
    assert info["sub"] == verify_id_token(services, tokens["id_token"])["sub"]
    assert info["email"] == "amara.okafor@camden.test"


def test_userinfo_by_post_with_a_bearer_header_and_with_a_form_body(app) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    by_get = client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).get_json()
    assert client.post("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).get_json() == by_get
    assert client.post("/userinfo", data={"access_token": tokens["access_token"]}).get_json() == by_get


def test_userinfo_without_a_token_is_401_with_a_bearer_challenge(app) -> None:
    response = app.test_client().get("/userinfo")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_userinfo_claims_follow_the_access_tokens_scopes(app) -> None:
    client = app.test_client()
    tokens = tokens_for(client, scope="openid email")
    info = client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).get_json()
    assert set(info) == {"sub", "email"}


def test_userinfo_applies_the_access_gates_release(app, services) -> None:
    from broker.access import AccessGrant

    client = app.test_client()
    tokens = tokens_for(client)

    class ReleaseEmailOnly:
        def check(self, identity, client_id, service_name):  # type: ignore[no-untyped-def]
            return AccessGrant(released=frozenset({"email"}))

    services.oidc._access = ReleaseEmailOnly()
    info = client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).get_json()
    assert set(info) == {"sub", "email"}


def test_userinfo_refuses_service_tokens_without_openid(app) -> None:
    from tests.oidc.helpers import basic

    client = app.test_client()
    token = client.post("/token", data={"grant_type": "client_credentials", "resource": "care-records-api"},
                        headers=basic("service-a", "SERVICE_A_SECRET")).get_json()["access_token"]
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_userinfo_failures_are_audited_without_the_token(app, services) -> None:
    app.test_client().get("/userinfo", headers={"Authorization": "Bearer not-a-real-token-value"})
    record = [r for r in services.audit.records() if r.event == "userinfo"][-1]
    assert record.outcome == "failure" and record.details["error"] == "invalid_token"
    assert "not-a-real-token-value" not in str(record.details)
