"""client_credentials for service-to-service calls (RFC 6749 §4.4, RFC 9068 §2.2, RFC 8707)."""

from __future__ import annotations

from tests.oidc import jwt_tools
from tests.oidc.helpers import ISSUER, audit_events, basic
from federation import jose


def _grant(client, **data):  # type: ignore[no-untyped-def]
    return client.post("/token", data={"grant_type": "client_credentials", **data}, headers=basic("service-a", "SERVICE_A_SECRET"))


def test_service_gets_an_at_jwt_for_the_named_resource(app, services) -> None:
    response = _grant(app.test_client(), resource="care-records-api")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    header, _ = jwt_tools.parts(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    claims = jose.verify(body["access_token"], services.keyring.verification_keys(), audience="care-records-api", issuer=ISSUER, typ="at+jwt")
    assert claims["sub"] == "service-a" and claims["client_id"] == "service-a" and claims["jti"]
    assert ("token_issued", "success") in audit_events(services)


def test_audience_parameter_works_too_and_must_be_allowed(app) -> None:
    client = app.test_client()
    assert _grant(client, audience="https://api.example.test/records").status_code == 200
    refused = _grant(client, audience="discharge-hub")
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_target"


def test_resource_is_required_when_more_than_one_is_allowed(app) -> None:
    assert _grant(app.test_client()).get_json()["error"] == "invalid_target"


def test_service_tokens_carry_no_user_scopes(app) -> None:
    assert _grant(app.test_client(), resource="care-records-api", scope="openid email").get_json()["error"] == "invalid_scope"


def test_clients_not_registered_for_the_grant_are_unauthorized(app) -> None:
    from tests.support.flask_flow import basic_auth

    response = app.test_client().post("/token", data={"grant_type": "client_credentials", "resource": "care-records-api"},
                                      headers=basic_auth())
    assert response.status_code == 400 and response.get_json()["error"] == "unauthorized_client"


def test_unknown_grant_type_is_unsupported(app) -> None:
    response = app.test_client().post("/token", data={"grant_type": "password", "username": "a", "password": "b"},
                                      headers=basic("service-a", "SERVICE_A_SECRET"))
    assert response.get_json()["error"] == "unsupported_grant_type"


def test_missing_grant_type_is_invalid_request(app) -> None:
    response = app.test_client().post("/token", data={"resource": "care-records-api"}, headers=basic("service-a", "SERVICE_A_SECRET"))
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"


def test_the_token_record_and_its_audit_record_are_one_commit(app, services, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from broker.oidc import tokens
    from broker.storage.models import IssuedTokenRow

    client = app.test_client()
    assert _grant(client, resource="care-records-api").status_code == 200
    # The next token reuses a jti already recorded: its INSERT fails, so its audit record must not exist either.
    with services.db() as session:
        taken = session.execute(select(IssuedTokenRow.jti).where(IssuedTokenRow.kind == "client")).scalar_one()
    monkeypatch.setattr(tokens.secrets, "token_urlsafe", lambda n=None: taken)
    assert _grant(client, resource="care-records-api").status_code == 500
    monkeypatch.undo()
    issued = [r for r in services.audit.records() if r.event == "token_issued" and r.client_id == "service-a"]
    with services.db() as session:
        recorded = session.execute(select(func.count()).select_from(IssuedTokenRow).where(IssuedTokenRow.kind == "client")).scalar_one()
    assert len(issued) == recorded == 1
    assert services.audit.verify().ok
