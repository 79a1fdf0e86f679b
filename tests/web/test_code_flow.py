"""The authorization code flow through the HTTP layer: what an application and a person see."""

from __future__ import annotations

from urllib.parse import urlsplit

from broker.audit import AuditLog
from federation import jose
from tests.support.flask_flow import authorize_params, basic_auth, code_flow, exchange, pkce_pair, query
from tests.support.settings import TEST_CLIENT_ID, TEST_REDIRECT_URI


def _audit_events(services) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(r.event, r.outcome) for r in services.audit.records()]


def test_sign_in_issues_code_to_the_registered_uri_with_state_and_iss(app, services) -> None:
    client = app.test_client()
    code, _, callback = code_flow(client)
    assert callback["state"] == "state-123"
    assert callback["iss"] == "http://127.0.0.1:8000"
    assert len(code) >= 40


def test_token_response_carries_a_verifiable_id_token_with_the_persons_claims(app, services) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    response = exchange(client, code, verifier)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    claims = jose.verify(
        body["id_token"], services.keyring.verification_keys(), audience=TEST_CLIENT_ID,
        issuer="http://127.0.0.1:8000", access_token=body["access_token"],
    )
    assert claims["nonce"] == "nonce-456"
    assert claims["name"] == "Amara Okafor"
    assert claims["organisation"] == "camden"
    assert claims["acr"] == "urn:supercloud:aal1" and claims["amr"] == ["pwd"]
    assert claims["azp"] == TEST_CLIENT_ID and claims["sid"]


def test_userinfo_returns_claims_for_the_access_token(app, services) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    tokens = exchange(client, code, verifier).get_json()
    response = client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 200
    info = response.get_json()
    assert info["email"] == "amara.okafor@camden.test"
    assert info["organisation_name"] == "London Borough of Camden"
    post = client.post("/userinfo", data={"access_token": tokens["access_token"]})
    assert post.get_json() == info


def test_second_sign_in_keeps_the_subject_but_gets_a_new_session(app, services) -> None:
    first = app.test_client()
    code, verifier, _ = code_flow(first)
    a = exchange(first, code, verifier).get_json()
    second = app.test_client()
    code, verifier, _ = code_flow(second)
    b = exchange(second, code, verifier).get_json()
    keys = services.keyring.verification_keys()
    ca = jose.verify(a["id_token"], keys, audience=TEST_CLIENT_ID, issuer="http://127.0.0.1:8000", access_token=a["access_token"])
    cb = jose.verify(b["id_token"], keys, audience=TEST_CLIENT_ID, issuer="http://127.0.0.1:8000", access_token=b["access_token"])
    assert ca["sub"] == cb["sub"]
    assert ca["sid"] != cb["sid"]


def test_same_username_in_two_boroughs_gets_two_subjects(app, services) -> None:
    # Subjects are keyed by (directory issuer, object id), never by the name typed.
    from federation.identity import SubjectRef

    camden = services.subjects.subject_for(SubjectRef("urn:supercloud:directory:camden-demo", "6f0e"))
    newham = services.subjects.subject_for(SubjectRef("urn:supercloud:directory:newham-demo", "6f0e"))
    assert camden != newham
    assert services.subjects.subject_for(SubjectRef("urn:supercloud:directory:camden-demo", "6f0e")) == camden


def test_existing_sso_session_is_reused_without_a_password(app, services) -> None:
    client = app.test_client()
    code_flow(client)
    _, challenge = pkce_pair()
    response = client.get("/authorize", query_string=authorize_params(challenge, state="again"))
    assert response.headers["Location"].startswith(TEST_REDIRECT_URI)
    assert query(response.headers["Location"])["state"] == "again"


def test_prompt_login_forces_a_new_password(app, services) -> None:
    client = app.test_client()
    code_flow(client)
    _, challenge = pkce_pair()
    response = client.get("/authorize", query_string=authorize_params(challenge, prompt="login"))
    assert response.headers["Location"].endswith("/login")


def test_prompt_none_without_a_session_returns_login_required(app) -> None:
    _, challenge = pkce_pair()
    response = app.test_client().get("/authorize", query_string=authorize_params(challenge, prompt="none"))
    params = query(response.headers["Location"])
    assert params["error"] == "login_required" and params["state"] == "state-123"


def test_sign_out_ends_the_session_and_revokes_its_tokens(app, services) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    tokens = exchange(client, code, verifier).get_json()
    from tests.support.http_login import csrf_token

    page = client.get("/logout").get_data(as_text=True)
    response = client.post("/logout", data={"csrf_token": csrf_token(page)})
    assert "You have signed out" in response.get_data(as_text=True)
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401
    _, challenge = pkce_pair()
    assert client.get("/authorize", query_string=authorize_params(challenge)).headers["Location"].endswith("/login")
    assert ("signout", "success") in _audit_events(services)


def test_every_step_is_audited_and_the_chain_verifies(app, services) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    exchange(client, code, verifier)
    events = _audit_events(services)
    for expected in [("signin", "success"), ("authorization_code_issued", "success"), ("token_issued", "success")]:
        assert expected in events
    assert services.audit.verify().ok


def test_discovery_and_jwks_describe_what_the_provider_enforces(app, services) -> None:
    client = app.test_client()
    meta = client.get("/.well-known/openid-configuration").get_json()
    assert meta["issuer"] == "http://127.0.0.1:8000"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["response_types_supported"] == ["code"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    keys = client.get("/jwks.json").get_json()["keys"]
    assert {k["alg"] for k in keys} == {"ES256", "RS256"}
    assert all("d" not in k for k in keys), "private key material published"
    assert len(keys) == 4  # current and next for each algorithm
    assert urlsplit(meta["jwks_uri"]).path == "/jwks.json"
