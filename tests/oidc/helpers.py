"""Small helpers for the OIDC tests (on top of ``tests.support.flask_flow``)."""

from __future__ import annotations

import base64
import html
import re
from typing import Any

from flask.testing import FlaskClient

from federation import jose
from tests.oidc.conftest import SECRETS
from tests.support.flask_flow import authorize_params, basic_auth, code_flow, exchange, pkce_pair, query  # noqa: F401
from tests.support.settings import TEST_CLIENT_ID

ISSUER = "http://127.0.0.1:8000"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


def basic(client_id: str, secret_env: str) -> dict[str, str]:
    """client_secret_basic header for one of the fixture's applications."""
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{SECRETS[secret_env]}".encode()).decode()}


def tokens_for(client: FlaskClient, **overrides: Any) -> dict[str, Any]:
    """Run the code flow for discharge-hub and return the token response."""
    code, verifier, _ = code_flow(client, **overrides)
    response = exchange(client, code, verifier)
    if response.status_code != 200:
        raise AssertionError(response.get_data(as_text=True))
    return response.get_json()


def refresh(client: FlaskClient, token: str, headers: dict[str, str] | None = None, **extra: str):  # type: ignore[no-untyped-def]
    """POST a refresh_token grant."""
    return client.post("/token", data={"grant_type": "refresh_token", "refresh_token": token, **extra},
                       headers=basic_auth() if headers is None else headers)


def verify_id_token(services, token: str, audience: str = TEST_CLIENT_ID, access_token: str | None = None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return jose.verify(token, services.keyring.verification_keys(), audience=audience, issuer=ISSUER, access_token=access_token)


def audit_events(services) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(r.event, r.outcome) for r in services.audit.records()]


def last_audit(services, event: str):  # type: ignore[no-untyped-def]
    return [r for r in services.audit.records() if r.event == event][-1]


def form_post_fields(page: str) -> tuple[str, dict[str, str]]:
    """Return (action, hidden fields) of a form_post response page."""
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page).group(1))
    fields = {html.unescape(n): html.unescape(v) for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)}
    return action, fields


def authorize(client: FlaskClient, **overrides: Any):  # type: ignore[no-untyped-def]
    """GET /authorize with valid parameters plus ``overrides``; return (response, verifier)."""
    verifier, challenge = pkce_pair()
    return client.get("/authorize", query_string=authorize_params(challenge, **overrides)), verifier
