"""Introspection (RFC 7662) and revocation (RFC 7009), client-authenticated."""

from __future__ import annotations

from tests.oidc.helpers import basic, refresh, tokens_for, verify_id_token
from tests.support.flask_flow import basic_auth


def test_introspection_of_an_active_access_token(app, services) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    answer = client.post("/introspect", data={"token": tokens["access_token"]}, headers=basic_auth()).get_json()
    person = verify_id_token(services, tokens["id_token"])
    assert answer["active"] is True and answer["client_id"] == "discharge-hub" and answer["sub"] == person["sub"]
    assert answer["scope"] == tokens["scope"] and answer["iss"] == "http://127.0.0.1:8000" and answer["exp"] > answer["iat"]


def test_introspection_of_a_refresh_token_with_a_hint(app) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    answer = client.post("/introspect", data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
                         headers=basic_auth()).get_json()
    assert answer["active"] is True and answer["token_type"] == "refresh_token"


def test_other_clients_learn_nothing(app) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    from tests.oidc.conftest import SECRETS

    for token in (tokens["access_token"], tokens["refresh_token"]):
        answer = client.post("/introspect", data={"token": token, "client_id": "post-app", "client_secret": SECRETS["POST_APP_SECRET"]})
        assert answer.get_json() == {"active": False}
    answer = client.post("/introspect", data={"token": tokens["access_token"]}, headers=basic("service-a", "SERVICE_A_SECRET"))
    assert answer.get_json() == {"active": False}


def test_introspection_needs_client_authentication(app) -> None:
    response = app.test_client().post("/introspect", data={"token": "x"})
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"


def test_introspection_of_garbage_is_inactive(app) -> None:
    assert app.test_client().post("/introspect", data={"token": "garbage"}, headers=basic_auth()).get_json() == {"active": False}


def test_revoking_an_access_token(app) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    response = client.post("/revoke", data={"token": tokens["access_token"], "token_type_hint": "access_token"}, headers=basic_auth())
    assert response.status_code == 200 and response.get_data() == b""
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401
    assert refresh(client, tokens["refresh_token"]).status_code == 200, "revoking an access token leaves the refresh token"


def test_revoking_a_refresh_token_revokes_its_family(app) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    assert client.post("/revoke", data={"token": tokens["refresh_token"]}, headers=basic_auth()).status_code == 200
    assert refresh(client, tokens["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401


def test_revoking_someone_elses_or_an_unknown_token_is_a_quiet_200(app) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    from tests.oidc.conftest import SECRETS

    foreign = client.post("/revoke", data={"token": tokens["refresh_token"], "client_id": "post-app",
                                           "client_secret": SECRETS["POST_APP_SECRET"]})
    assert foreign.status_code == 200
    assert refresh(client, tokens["refresh_token"]).status_code == 200, "another client cannot revoke it"
    tokens = tokens_for(client)
    other = client.post("/revoke", data={"token": tokens["access_token"]}, headers=basic("service-a", "SERVICE_A_SECRET"))
    assert other.status_code == 200
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 200
    assert client.post("/revoke", data={"token": "unknown"}, headers=basic_auth()).status_code == 200


def test_revocation_requires_a_token(app) -> None:
    response = app.test_client().post("/revoke", data={}, headers=basic_auth())
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"
