"""OIDF basic OP plan, PKCE (RFC 7636): S256 mandatory, plain refused, verifier checked."""

from __future__ import annotations

import pytest

from tests.oidc.helpers import authorize, query
from tests.support.flask_flow import code_flow, exchange, pkce_pair


@pytest.mark.parametrize("overrides", [{"code_challenge": None}, {"code_challenge_method": "plain"},
                                       {"code_challenge_method": None}, {"code_challenge": "too-short"}])
def test_authorization_without_an_s256_challenge_is_refused(app, overrides) -> None:
    response, _ = authorize(app.test_client(), **overrides)
    assert query(response.headers["Location"])["error"] == "invalid_request"


def test_wrong_or_missing_verifier_is_invalid_grant(app) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    other, _ = pkce_pair()
    assert exchange(client, code, other).get_json()["error"] == "invalid_grant"
    code, verifier, _ = code_flow(client)
    assert exchange(client, code, None).get_json()["error"] == "invalid_grant"


def test_malformed_verifier_is_refused(app) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    assert exchange(client, code, "short").get_json()["error"] == "invalid_grant"


def test_the_right_verifier_succeeds(app) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    assert exchange(client, code, verifier).status_code == 200
