"""Bad input at every endpoint: a clear error, an audit record, never a redirect to an unverified URI."""

from __future__ import annotations

import base64
import json

import pytest

from tests.support.flask_flow import authorize_params, basic_auth, code_flow, exchange, password_sign_in, pkce_pair, query
from tests.support.settings import TEST_REDIRECT_URI


def _last(services):  # type: ignore[no-untyped-def]
    return list(services.audit.records())[-1]


def test_unknown_client_gets_an_error_page_and_no_redirect(app, services) -> None:
    _, challenge = pkce_pair()
    response = app.test_client().get("/authorize", query_string=authorize_params(challenge, client_id="evil-app"))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "not registered" in response.get_data(as_text=True)
    record = _last(services)
    assert (record.event, record.outcome, record.details["reason"]) == ("authorization_request", "failure", "unknown_client")


@pytest.mark.parametrize(
    "uri",
    [
        "https://attacker.test/callback",
        TEST_REDIRECT_URI + "/../evil",
        TEST_REDIRECT_URI + "?x=1",
        TEST_REDIRECT_URI.upper(),
        TEST_REDIRECT_URI + "#frag",
        None,
    ],
)
def test_unregistered_redirect_uri_is_never_redirected_to(app, services, uri) -> None:
    _, challenge = pkce_pair()
    response = app.test_client().get("/authorize", query_string=authorize_params(challenge, redirect_uri=uri))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert _last(services).details["reason"] == "invalid_redirect_uri"


def test_duplicated_redirect_uri_is_not_trusted(app) -> None:
    _, challenge = pkce_pair()
    params = authorize_params(challenge)
    query_string = "&".join(f"{k}={v}" for k, v in params.items()) + "&redirect_uri=https://attacker.test/cb"
    response = app.test_client().get("/authorize?" + query_string)
    assert response.status_code == 400 and "Location" not in response.headers


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code id_token"}, "unsupported_response_type"),
        ({"scope": "profile"}, "invalid_scope"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
        ({"request_uri": "https://attacker.test/req"}, "request_uri_not_supported"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"max_age": "-1"}, "invalid_request"),
        ({"response_mode": "fragment"}, "invalid_request"),
    ],
)
def test_invalid_requests_are_redirected_with_the_error_state_and_iss(app, services, overrides, error) -> None:
    _, challenge = pkce_pair()
    response = app.test_client().get("/authorize", query_string=authorize_params(challenge, **overrides))
    assert response.status_code == 302
    assert response.headers["Location"].startswith(TEST_REDIRECT_URI + "?")
    params = query(response.headers["Location"])
    assert params["error"] == error
    assert params["state"] == "state-123"
    assert params["iss"] == "http://127.0.0.1:8000"
    assert "code" not in params
    assert _last(services).details["error"] == error


def test_replayed_code_is_refused_and_revokes_the_tokens_it_issued(app, services) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    first = exchange(client, code, verifier).get_json()
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"}).status_code == 200
    replay = exchange(client, code, verifier)
    assert replay.status_code == 400
    assert replay.get_json()["error"] == "invalid_grant"
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"}).status_code == 401
    events = [(r.event, r.outcome) for r in services.audit.records()]
    assert ("authorization_code_replayed", "failure") in events


def test_wrong_code_verifier_is_refused_and_burns_the_code(app) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    wrong, _ = pkce_pair()
    response = exchange(client, code, wrong)
    assert response.get_json()["error"] == "invalid_grant"
    assert exchange(client, code, verifier).get_json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("overrides", "status", "error"),
    [
        ({"code_verifier": None}, 400, "invalid_grant"),
        ({"redirect_uri": "http://127.0.0.1:8001/other"}, 400, "invalid_grant"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"code": "made-up-code"}, 400, "invalid_grant"),
        ({"headers": {}}, 401, "invalid_client"),
        ({"headers": basic_auth(secret="wrong-secret")}, 401, "invalid_client"),
        ({"headers": basic_auth(client_id="someone-else")}, 401, "invalid_client"),
        ({"headers": {"Authorization": "Basic !!!notbase64"}}, 401, "invalid_client"),
    ],
)
def test_token_endpoint_errors(app, overrides, status, error) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    response = exchange(client, code, verifier, **overrides)
    assert response.status_code == status
    assert response.get_json()["error"] == error
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_token_endpoint_refuses_json_bodies(app) -> None:
    response = app.test_client().post("/token", data=json.dumps({"grant_type": "authorization_code"}),
                                      headers={**basic_auth(), "Content-Type": "application/json"})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"


def test_code_issued_to_one_client_cannot_be_redeemed_by_another(app, services) -> None:
    new = services.clients.add("Other app", [TEST_REDIRECT_URI])
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    response = exchange(client, code, verifier, headers=basic_auth(new.client.client_id, new.client_secret))
    assert response.get_json()["error"] == "invalid_grant"


def test_wrong_password_shows_one_generic_message_and_audits_the_reason(app, services) -> None:
    response = password_sign_in(app.test_client(), "amara.okafor@camden.test", "not-her-password")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "There is a problem" in page and "Enter a correct email address and password" in page
    assert "<title>Error:" in page
    record = _last(services)
    assert (record.event, record.outcome) == ("signin", "failure")
    assert "wrong password" in record.details["reason"]
    assert "not-her-password" not in json.dumps(record.details)


@pytest.mark.parametrize(
    ("email", "reason"),
    [
        ("nobody@camden.test", "no such user"),
        ("sam.leaver@camden.test", "account_disabled"),
        ("lee.locked@camden.test", "account_locked"),
    ],
)
def test_unknown_and_inactive_accounts_look_alike_to_the_person(app, services, email, reason) -> None:
    response = password_sign_in(app.test_client(), email)
    assert "Enter a correct email address and password" in response.get_data(as_text=True)
    assert reason in _last(services).details["reason"]


def test_must_change_password_gets_guidance_after_the_right_password(app, services) -> None:
    response = password_sign_in(app.test_client(), "priya.shah@camden.test")
    assert "You need to set a new password" in response.get_data(as_text=True)
    assert "password_must_change" in _last(services).details["reason"]


@pytest.mark.parametrize("password", ["   ", "\t"])
def test_blank_passwords_are_refused_before_the_directory(app, services, password) -> None:
    response = password_sign_in(app.test_client(), "amara.okafor@camden.test", password)
    assert response.status_code == 400
    assert "empty_password" in _last(services).details["reason"]


def test_unknown_email_domain_is_explained(app) -> None:
    response = password_sign_in(app.test_client(), "someone@example.org")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "We do not recognise the organisation for this email address" in page


def test_forms_without_a_csrf_token_are_refused(app) -> None:
    client = app.test_client()
    response = client.post("/login", data={"email": "amara.okafor@camden.test"})
    assert response.status_code == 400
    assert "Your form has expired" in response.get_data(as_text=True)


def test_password_page_without_an_email_goes_back_to_the_start(app) -> None:
    response = app.test_client().get("/login/password")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")


def test_resume_without_a_pending_request_is_a_clear_error(app) -> None:
    client = app.test_client()
    password_sign_in(client, "amara.okafor@camden.test")
    response = client.get("/authorize/resume")
    assert response.status_code == 400
    assert "start again" in response.get_data(as_text=True)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."])
def test_userinfo_refuses_bad_tokens(app, token) -> None:
    response = app.test_client().get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_userinfo_refuses_an_id_token_used_as_an_access_token(app) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    tokens = exchange(client, code, verifier).get_json()
    response = client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['id_token']}"})
    assert response.status_code == 401


def test_userinfo_refuses_a_token_with_a_forged_signature(app) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    access = exchange(client, code, verifier).get_json()["access_token"]
    header, payload, signature = access.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    response = client.get("/userinfo", headers={"Authorization": f"Bearer {header}.{forged}.{signature}"})
    assert response.status_code == 401


def test_unexpected_errors_show_a_reference_not_a_trace(app, monkeypatch) -> None:
    def boom(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(app.extensions["supercloud"].oidc, "metadata", boom)
    response = app.test_client().get("/.well-known/openid-configuration")
    page = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "hunter2" not in page and "Traceback" not in page
    assert "quote reference" in page
