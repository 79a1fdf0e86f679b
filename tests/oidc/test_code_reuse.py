"""OIDF basic OP plan, authorization code reuse (RFC 6749 §4.1.2: single use; reuse revokes)."""

from __future__ import annotations

from tests.oidc.helpers import audit_events
from tests.support.flask_flow import code_flow, exchange


def test_second_use_is_invalid_grant_and_revokes_what_the_code_issued(app, services) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    first = exchange(client, code, verifier).get_json()
    second = exchange(client, code, verifier)
    assert second.status_code == 400 and second.get_json()["error"] == "invalid_grant"
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"}).status_code == 401
    introspected = client.post("/introspect", data={"token": first["access_token"]},
                               headers={"Authorization": "Basic " + __import__("base64").b64encode(b"discharge-hub:test-client-secret-0123456789abcdefghijklmnop").decode()})
    assert introspected.get_json() == {"active": False}
    assert ("authorization_code_replayed", "failure") in audit_events(services)


def test_codes_expire_within_sixty_seconds(app, services, monkeypatch) -> None:
    import datetime as dt

    from broker.storage import types

    client = app.test_client()
    code, verifier, _ = code_flow(client)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=61)
    monkeypatch.setattr("broker.state.utcnow", lambda: later)
    response = exchange(client, code, verifier)
    assert response.get_json()["error"] == "invalid_grant"
    assert types.utcnow() < later


def test_code_audit_records_never_contain_the_code(app, services) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    exchange(client, code, verifier)
    exchange(client, code, verifier)
    for record in services.audit.records():
        assert code not in str(record.details)
