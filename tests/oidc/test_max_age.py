"""OIDF basic OP plan, max_age (OIDC Core §3.1.2.1: re-authenticate if older; auth_time required)."""

from __future__ import annotations

import time

from tests.oidc.helpers import authorize, query, tokens_for, verify_id_token


def test_max_age_exceeded_needs_a_new_sign_in(app) -> None:
    client = app.test_client()
    tokens_for(client)
    time.sleep(1.2)
    response, _ = authorize(client, max_age="1")
    assert response.headers["Location"].endswith("/login")


def test_max_age_exceeded_with_prompt_none_is_login_required(app) -> None:
    client = app.test_client()
    tokens_for(client)
    time.sleep(1.2)
    response, _ = authorize(client, max_age="1", prompt="none")
    assert query(response.headers["Location"])["error"] == "login_required"


def test_max_age_within_limit_reuses_the_session_and_auth_time_is_present(app, services) -> None:
    client = app.test_client()
    first = tokens_for(client)
    second = tokens_for(client, max_age="3600")
    a, b = verify_id_token(services, first["id_token"]), verify_id_token(services, second["id_token"])
    assert b["auth_time"] == a["auth_time"] and b["sid"] == a["sid"]


def test_max_age_must_be_a_non_negative_integer(app) -> None:
    for value in ("-1", "soon", "1.5"):
        response, _ = authorize(app.test_client(), max_age=value)
        assert query(response.headers["Location"])["error"] == "invalid_request"
