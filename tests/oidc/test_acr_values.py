"""OIDF basic OP plan, acr_values (OIDC Core §3.1.2.1, §2: acr says what was achieved)."""

from __future__ import annotations

from tests.oidc.helpers import authorize, query, tokens_for, verify_id_token


def test_acr_is_the_level_achieved(app, services) -> None:
    tokens = tokens_for(app.test_client(), acr_values="urn:supercloud:aal1")
    claims = verify_id_token(services, tokens["id_token"])
    assert claims["acr"] == "urn:supercloud:aal1" and claims["amr"] == ["pwd"]


def test_unknown_acr_values_are_accepted_and_the_achieved_level_reported(app, services) -> None:
    tokens = tokens_for(app.test_client(), acr_values="urn:mace:incommon:iap:silver 0")
    assert verify_id_token(services, tokens["id_token"])["acr"] == "urn:supercloud:aal1"


def test_aal2_asked_of_a_password_session_steps_up_with_a_second_factor(app) -> None:
    client = app.test_client()
    tokens_for(client)
    response, _ = authorize(client, acr_values="urn:supercloud:aal2")
    assert response.headers["Location"].endswith("/mfa")
    assert "stronger sign-in (AAL2)" in client.get("/mfa", follow_redirects=True).get_data(as_text=True)


def test_aal2_with_prompt_none_is_interaction_required(app, services) -> None:
    client = app.test_client()
    tokens_for(client)
    response, _ = authorize(client, acr_values="urn:supercloud:aal2", prompt="none")
    params = query(response.headers["Location"])
    assert params["error"] == "interaction_required" and params["state"] == "state-123"


def test_an_unreachable_level_is_voluntary_and_the_achieved_acr_is_reported(app, services) -> None:
    client = app.test_client()
    tokens_for(client)
    tokens = tokens_for(client, acr_values="urn:supercloud:aal3")
    assert verify_id_token(services, tokens["id_token"])["acr"] == "urn:supercloud:aal1"


def test_a_level_the_session_meets_reuses_it(app) -> None:
    client = app.test_client()
    tokens_for(client)
    response, _ = authorize(client, acr_values="urn:supercloud:aal2 urn:supercloud:aal1", prompt="none")
    assert "code" in query(response.headers["Location"])
