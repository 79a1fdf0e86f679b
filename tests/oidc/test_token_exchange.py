"""Token exchange (RFC 8693) for a service calling another on a person's behalf."""

from __future__ import annotations

from federation import jose
from tests.oidc.helpers import ACCESS_TOKEN_TYPE, ISSUER, TOKEN_EXCHANGE, basic, tokens_for, verify_id_token
from tests.support.flask_flow import basic_auth


def _exchange(client, subject_token, headers=None, **extra):  # type: ignore[no-untyped-def]
    data = {"grant_type": TOKEN_EXCHANGE, "subject_token": subject_token, "subject_token_type": ACCESS_TOKEN_TYPE,
            "audience": "care-records-api", **extra}
    return client.post("/token", data={k: v for k, v in data.items() if v is not None}, headers=headers or basic_auth())


def test_hub_exchanges_the_persons_token_for_one_to_care_records(app, services) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    response = _exchange(client, tokens["access_token"])
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE and body["token_type"] == "Bearer"
    claims = jose.verify(body["access_token"], services.keyring.verification_keys(), audience="care-records-api", issuer=ISSUER, typ="at+jwt")
    person = verify_id_token(services, tokens["id_token"])
    assert claims["sub"] == person["sub"] and claims["act"] == {"sub": "discharge-hub"} and claims["client_id"] == "discharge-hub"
    assert claims["sid"] == person["sid"]


def test_the_target_may_introspect_the_exchanged_token(app) -> None:
    client = app.test_client()
    exchanged = _exchange(client, tokens_for(client)["access_token"]).get_json()["access_token"]
    answer = client.post("/introspect", data={"token": exchanged}, headers=basic("care-records-api", "CARE_RECORDS_SECRET")).get_json()
    assert answer["active"] is True and answer["act"] == {"sub": "discharge-hub"} and answer["aud"] == ["care-records-api"]


def test_audience_must_be_allowed_for_the_acting_client(app) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    assert _exchange(client, tokens["access_token"], audience="post-app").get_json()["error"] == "invalid_target"


def test_exchanged_tokens_cannot_widen_scope(app) -> None:
    client = app.test_client()
    tokens = tokens_for(client, scope="openid email")
    assert _exchange(client, tokens["access_token"], scope="openid groups").get_json()["error"] == "invalid_scope"
    assert _exchange(client, tokens["access_token"], scope="email").status_code == 200


def test_invalid_subject_tokens_are_refused(app, services) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    assert _exchange(client, tokens["id_token"]).get_json()["error"] == "invalid_grant"
    assert _exchange(client, "garbage").get_json()["error"] == "invalid_grant"
    assert _exchange(client, tokens["access_token"], subject_token_type="urn:ietf:params:oauth:token-type:id_token").get_json()["error"] == "invalid_request"
    assert _exchange(client, tokens["access_token"], actor_token="x", actor_token_type=ACCESS_TOKEN_TYPE).get_json()["error"] == "invalid_request"


def test_a_client_cannot_exchange_a_token_issued_to_someone_else(app) -> None:
    client = app.test_client()
    service_token = client.post("/token", data={"grant_type": "client_credentials", "resource": "care-records-api"},
                                headers=basic("service-a", "SERVICE_A_SECRET")).get_json()["access_token"]
    assert _exchange(client, service_token).get_json()["error"] == "invalid_grant"


def test_no_exchange_after_the_session_ends(app, services) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    sid = verify_id_token(services, tokens["id_token"])["sid"]
    services.oidc.logout.end_session(sid, reason="test", actor="test")
    assert _exchange(client, tokens["access_token"]).get_json()["error"] == "invalid_grant"


def test_exchange_needs_the_grant_registered(app) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    response = _exchange(client, tokens["access_token"], headers=basic("service-a", "SERVICE_A_SECRET"))
    assert response.get_json()["error"] == "unauthorized_client"
