"""OIDF basic OP plan, id_token_hint (OIDC Core §3.1.2.1, §3.1.2.6)."""

from __future__ import annotations

import time

from federation import jose
from tests.oidc.helpers import ISSUER, authorize, query, tokens_for, verify_id_token
from tests.oidc import jwt_tools


def test_a_valid_hint_for_the_signed_in_person_issues_a_code(app) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    response, _ = authorize(client, prompt="none", id_token_hint=tokens["id_token"])
    assert "code" in query(response.headers["Location"])


def test_a_hint_for_someone_else_with_prompt_none_is_login_required(app) -> None:
    other = tokens_for(app.test_client(), email="kwame.mensah@newham.test")
    client = app.test_client()
    tokens_for(client)
    response, _ = authorize(client, prompt="none", id_token_hint=other["id_token"])
    assert query(response.headers["Location"])["error"] == "login_required"


def test_a_hint_for_someone_else_sends_the_person_to_sign_in(app) -> None:
    other = tokens_for(app.test_client(), email="kwame.mensah@newham.test")
    client = app.test_client()
    tokens_for(client)
    response, _ = authorize(client, id_token_hint=other["id_token"])
    assert response.headers["Location"].endswith("/login")


def test_an_expired_hint_is_still_a_hint(app, services) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    claims = verify_id_token(services, tokens["id_token"])
    old = jose.sign({**claims, "iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600},
                    services.keyring.current("ES256"), typ="JWT")
    response, _ = authorize(client, prompt="none", id_token_hint=old)
    assert "code" in query(response.headers["Location"])


def test_a_forged_or_foreign_hint_is_invalid_request(app, services) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    header, claims = jwt_tools.parts(tokens["id_token"])
    forged = jwt_tools.sign_es256(claims, jwt_tools.ec_key(), kid=header["kid"])
    for hint in (forged, "not-a-jwt", jwt_tools.unsigned(claims)):
        response, _ = authorize(client, id_token_hint=hint)
        params = query(response.headers["Location"])
        assert params["error"] == "invalid_request" and params["iss"] == ISSUER


def test_a_hint_issued_to_another_client_is_refused(app, services) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    _, claims = jwt_tools.parts(tokens["id_token"])
    other = jose.sign({**claims, "aud": "post-app", "azp": "post-app"}, services.keyring.current("ES256"), typ="JWT")
    response, _ = authorize(client, id_token_hint=other)
    assert query(response.headers["Location"])["error"] == "invalid_request"
