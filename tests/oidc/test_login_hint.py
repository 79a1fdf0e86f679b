"""OIDF basic OP plan, login_hint (OIDC Core §3.1.2.1): a hint, never an identity."""

from __future__ import annotations

from tests.oidc.helpers import authorize, tokens_for, verify_id_token


def test_login_hint_fills_in_the_email_address(app) -> None:
    client = app.test_client()
    response, _ = authorize(client, login_hint="amara.okafor@camden.test")
    assert response.headers["Location"].endswith("/login")
    page = client.get("/login").get_data(as_text=True)
    assert 'value="amara.okafor@camden.test"' in page


def test_login_hint_that_is_not_an_email_is_ignored(app) -> None:
    client = app.test_client()
    authorize(client, login_hint="<script>alert(1)</script>")
    page = client.get("/login").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page


def test_login_hint_does_not_switch_the_signed_in_person(app, services) -> None:
    client = app.test_client()
    first = tokens_for(client)
    second = tokens_for(client, login_hint="kwame.mensah@newham.test")
    assert verify_id_token(services, first["id_token"])["sub"] == verify_id_token(services, second["id_token"])["sub"]
