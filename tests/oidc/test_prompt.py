"""OIDF basic OP plan, prompt=none and prompt=login (OIDC Core §3.1.2.1, §3.1.2.6)."""

from __future__ import annotations

from tests.oidc.helpers import ISSUER, audit_events, authorize, query, tokens_for, verify_id_token
from tests.support.settings import TEST_REDIRECT_URI


def test_prompt_none_without_a_session_is_login_required_with_state_and_iss(app, services) -> None:
    response, _ = authorize(app.test_client(), prompt="none")
    assert response.status_code == 302 and response.headers["Location"].startswith(TEST_REDIRECT_URI)
    params = query(response.headers["Location"])
    assert params == {"error": "login_required", "error_description": params["error_description"], "state": "state-123", "iss": ISSUER}
    assert ("authorization_request", "failure") in audit_events(services)


def test_prompt_none_with_a_session_issues_a_code_without_a_page(app) -> None:
    client = app.test_client()
    tokens_for(client)
    response, _ = authorize(client, prompt="none")
    assert "code" in query(response.headers["Location"])


def test_prompt_login_asks_again_even_with_a_session(app, services) -> None:
    client = app.test_client()
    first = tokens_for(client)
    response, _ = authorize(client, prompt="login")
    assert response.headers["Location"].endswith("/login")
    second = tokens_for(client, prompt="login")
    a, b = verify_id_token(services, first["id_token"]), verify_id_token(services, second["id_token"])
    assert b["auth_time"] >= a["auth_time"] and a["sid"] != b["sid"]


def test_prompt_none_combined_with_login_is_refused(app) -> None:
    response, _ = authorize(app.test_client(), prompt="none login")
    assert query(response.headers["Location"])["error"] == "invalid_request"
