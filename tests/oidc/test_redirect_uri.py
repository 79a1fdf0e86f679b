"""OIDF basic OP plan, registered redirect URI (OIDC Core §3.1.2.1: exact match; RFC 6749 §4.1.2.1)."""

from __future__ import annotations

from tests.oidc.helpers import authorize
from tests.support.flask_flow import code_flow, exchange


def test_an_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(app, services) -> None:
    response, _ = authorize(app.test_client(), redirect_uri="https://attacker.test/callback")
    assert response.status_code == 400 and "Location" not in response.headers
    assert list(services.audit.records())[-1].details["reason"] == "invalid_redirect_uri"


def test_a_missing_redirect_uri_gets_an_error_page(app) -> None:
    response, _ = authorize(app.test_client(), redirect_uri=None)
    assert response.status_code == 400 and "Location" not in response.headers


def test_the_token_request_must_repeat_the_same_redirect_uri(app) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    response = exchange(client, code, verifier, redirect_uri=None)
    assert response.get_json()["error"] == "invalid_grant"


def test_an_application_with_no_redirect_uris_cannot_start_the_code_flow(app) -> None:
    response, _ = authorize(app.test_client(), client_id="service-a")
    assert response.status_code == 400 and "Location" not in response.headers
