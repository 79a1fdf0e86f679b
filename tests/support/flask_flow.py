"""Drive the sign-in and the code flow through Flask's test client."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask.testing import FlaskClient

from tests.support.http_login import csrf_token
from tests.support.settings import DEMO_PASSWORD, TEST_CLIENT_ID, TEST_CLIENT_SECRET, TEST_REDIRECT_URI


def pkce_pair() -> tuple[str, str]:
    """Return (code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def authorize_params(challenge: str, **overrides: Any) -> dict[str, Any]:
    """Return valid authorization request parameters, with ``overrides`` (None removes a key)."""
    params = {
        "client_id": TEST_CLIENT_ID,
        "redirect_uri": TEST_REDIRECT_URI,
        "response_type": "code",
        "scope": "openid profile email organisation",
        "state": "state-123",
        "nonce": "nonce-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def basic_auth(client_id: str = TEST_CLIENT_ID, secret: str = TEST_CLIENT_SECRET) -> dict[str, str]:
    """Return the Authorization header for client_secret_basic."""
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def query(url: str) -> dict[str, str]:
    """Return the single-valued query parameters of ``url``."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def password_sign_in(client: FlaskClient, email: str, password: str = DEMO_PASSWORD):  # type: ignore[no-untyped-def]
    """Submit the email page then the password page; return the password POST's response."""
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", data={"csrf_token": csrf_token(page), "email": email})
    if response.status_code != 302:
        return response
    page = client.get("/login/password").get_data(as_text=True)
    return client.post("/login/password", data={"csrf_token": csrf_token(page), "password": password})


def code_flow(client: FlaskClient, email: str = "amara.okafor@camden.test", **overrides: Any) -> tuple[str, str, dict[str, str]]:
    """Run authorize → sign-in → resume; return (code, verifier, callback query)."""
    verifier, challenge = pkce_pair()
    response = client.get("/authorize", query_string=authorize_params(challenge, **overrides))
    if response.headers["Location"].endswith("/login"):
        signed = password_sign_in(client, email)
        if signed.status_code != 302:
            raise AssertionError(signed.get_data(as_text=True)[:1000])
        response = client.get(signed.headers["Location"])
    callback = query(response.headers["Location"])
    return callback["code"], verifier, callback


def exchange(client: FlaskClient, code_value: str, verifier: str, **overrides: Any):  # type: ignore[no-untyped-def]
    """POST the token request; ``headers`` override the client authentication."""
    headers = overrides.pop("headers", basic_auth())
    data = {"grant_type": "authorization_code", "code": code_value, "redirect_uri": TEST_REDIRECT_URI, "code_verifier": verifier}
    data.update(overrides)
    return client.post("/token", data={k: v for k, v in data.items() if v is not None}, headers=headers)
