"""OIDF basic OP plan, POST requests to the authorization endpoint (OIDC Core §3.1.2.1)."""

from __future__ import annotations

from tests.oidc.helpers import query
from tests.support.flask_flow import authorize_params, exchange, password_sign_in, pkce_pair


def test_authorization_request_by_form_post_completes_the_flow(app) -> None:
    client = app.test_client()
    verifier, challenge = pkce_pair()
    response = client.post("/authorize", data=authorize_params(challenge))
    assert response.headers["Location"].endswith("/login")
    signed = password_sign_in(client, "amara.okafor@camden.test")
    callback = client.get(signed.headers["Location"])
    params = query(callback.headers["Location"])
    assert params["state"] == "state-123"
    assert exchange(client, params["code"], verifier).status_code == 200


def test_token_endpoint_refuses_get(app) -> None:
    assert app.test_client().get("/token").status_code == 405
