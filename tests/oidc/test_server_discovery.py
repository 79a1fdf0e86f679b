"""OIDF basic OP plan, server area: discovery metadata says exactly what is supported (OIDC Discovery §3, §4)."""

from __future__ import annotations

from tests.oidc.helpers import ISSUER


def test_discovery_document_describes_the_provider(app) -> None:
    response = app.test_client().get("/.well-known/openid-configuration")
    assert response.status_code == 200
    meta = response.get_json()
    assert meta["issuer"] == ISSUER
    for name in ("authorization", "token", "userinfo", "end_session", "introspection", "revocation"):
        assert meta[f"{name}_endpoint"].startswith(ISSUER + "/")
    assert meta["response_types_supported"] == ["code"]
    assert meta["response_modes_supported"] == ["query", "form_post"]
    assert set(meta["grant_types_supported"]) == {
        "authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"}
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post", "private_key_jwt"}
    assert meta["subject_types_supported"] == ["public", "pairwise"]
    assert meta["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    assert meta["acr_values_supported"] == ["urn:supercloud:aal1", "urn:supercloud:aal2", "urn:supercloud:aal3"]
    assert meta["request_parameter_supported"] is False and meta["request_uri_parameter_supported"] is False
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["backchannel_logout_supported"] and meta["backchannel_logout_session_supported"]
    assert meta["frontchannel_logout_supported"] and meta["frontchannel_logout_session_supported"]
    assert "none" not in meta["id_token_signing_alg_values_supported"]


def test_rfc8414_metadata_is_the_same_document(app) -> None:
    client = app.test_client()
    assert client.get("/.well-known/oauth-authorization-server").get_json() == client.get("/.well-known/openid-configuration").get_json()


def test_every_advertised_endpoint_answers(app) -> None:
    client = app.test_client()
    meta = client.get("/.well-known/openid-configuration").get_json()
    assert client.get(meta["jwks_uri"].removeprefix(ISSUER)).status_code == 200
    assert client.post(meta["token_endpoint"].removeprefix(ISSUER), data={}).status_code in (400, 401)
    assert client.get(meta["userinfo_endpoint"].removeprefix(ISSUER)).status_code == 401
    assert client.post(meta["introspection_endpoint"].removeprefix(ISSUER), data={"token": "x"}).status_code == 401
    assert client.post(meta["revocation_endpoint"].removeprefix(ISSUER), data={"token": "x"}).status_code == 401
    assert client.get(meta["end_session_endpoint"].removeprefix(ISSUER)).status_code in (200, 302)


def test_jwks_publishes_current_and_next_keys_of_each_algorithm_without_private_parts(app, services) -> None:
    keys = app.test_client().get("/jwks.json").get_json()["keys"]
    assert sorted(k["alg"] for k in keys) == ["ES256", "ES256", "RS256", "RS256"]
    assert all("d" not in k and k["use"] == "sig" and k["kid"] for k in keys)
