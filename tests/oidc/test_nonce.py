"""OIDF basic OP plan, nonce area (OIDC Core §3.1.2.1, §3.1.3.7 item 11)."""

from __future__ import annotations

from tests.oidc.helpers import tokens_for, verify_id_token


def test_nonce_is_returned_unchanged_in_the_id_token(app, services) -> None:
    tokens = tokens_for(app.test_client(), nonce="n-0S6_WzA2Mj")
    assert verify_id_token(services, tokens["id_token"])["nonce"] == "n-0S6_WzA2Mj"


def test_without_a_nonce_the_id_token_has_none(app, services) -> None:
    tokens = tokens_for(app.test_client(), nonce=None)
    assert "nonce" not in verify_id_token(services, tokens["id_token"])


def test_each_request_gets_its_own_nonce_with_sso(app, services) -> None:
    client = app.test_client()
    first = tokens_for(client, nonce="first")
    second = tokens_for(client, nonce="second")
    assert verify_id_token(services, first["id_token"])["nonce"] == "first"
    assert verify_id_token(services, second["id_token"])["nonce"] == "second"
