"""OIDF basic OP plan, refresh token area, and RFC 9700 §4.14 refresh token rotation."""

from __future__ import annotations

import concurrent.futures

from tests.oidc.helpers import audit_events, basic, refresh, tokens_for, verify_id_token
from tests.support.flask_flow import code_flow, exchange


def test_code_exchange_returns_a_refresh_token_that_rotates(app, services) -> None:
    client = app.test_client()
    first = tokens_for(client)
    assert first["refresh_token"] and len(first["refresh_token"]) >= 40
    response = refresh(client, first["refresh_token"])
    assert response.status_code == 200, response.get_data(as_text=True)
    second = response.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    claims = verify_id_token(services, second["id_token"], access_token=second["access_token"])
    original = verify_id_token(services, first["id_token"])
    assert claims["sub"] == original["sub"] and claims["auth_time"] == original["auth_time"] and claims["sid"] == original["sid"]
    assert "nonce" not in claims
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {second['access_token']}"}).status_code == 200


def test_refresh_tokens_are_stored_only_as_keyed_hashes(app, services) -> None:
    from sqlalchemy import select

    from broker.storage.models import RefreshTokenRow

    token = tokens_for(app.test_client())["refresh_token"]
    with services.db() as session:
        stored = session.execute(select(RefreshTokenRow.token_hash)).scalars().all()
    assert token not in stored and services.oidc.refresh_tokens.hash(token) in stored


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(app, services) -> None:
    client = app.test_client()
    first = tokens_for(client)
    second = refresh(client, first["refresh_token"]).get_json()
    replay = refresh(client, first["refresh_token"])
    assert replay.status_code == 400 and replay.get_json()["error"] == "invalid_grant"
    # The legitimate holder's newer tokens die with the family.
    assert refresh(client, second["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {second['access_token']}"}).status_code == 401
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"}).status_code == 401
    assert ("refresh_token_reused", "failure") in audit_events(services)


def test_parallel_refresh_race_has_exactly_one_winner(app, services) -> None:
    token = tokens_for(app.test_client())["refresh_token"]

    def attempt(_: int) -> int:
        return refresh(app.test_client(), token).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(attempt, range(8)))
    assert statuses.count(200) == 1, statuses
    assert statuses.count(400) == 7


def test_refresh_may_narrow_but_not_widen_the_scope(app, services) -> None:
    client = app.test_client()
    first = tokens_for(client)
    narrowed = refresh(client, first["refresh_token"], scope="openid email").get_json()
    assert narrowed["scope"] == "email openid"
    widened = refresh(client, narrowed["refresh_token"], scope="openid groups")
    assert widened.get_json()["error"] == "invalid_scope"


def test_refresh_token_is_bound_to_its_client(app, services) -> None:
    first = tokens_for(app.test_client())
    response = refresh(app.test_client(), first["refresh_token"],
                       headers={}, client_id="post-app", client_secret=__import__("tests.oidc.conftest", fromlist=["SECRETS"]).SECRETS["POST_APP_SECRET"])
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_refresh_fails_once_the_sign_in_session_has_ended(app, services) -> None:
    client = app.test_client()
    first = tokens_for(client)
    sid = verify_id_token(services, first["id_token"])["sid"]
    services.oidc.logout.end_session(sid, reason="admin", actor="test")
    response = refresh(client, first["refresh_token"])
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_refresh_fails_when_the_session_expired_even_if_not_revoked(app, services) -> None:
    from sqlalchemy import update

    from broker.storage.models import SsoSessionRow
    from broker.storage.types import utcnow

    client = app.test_client()
    first = tokens_for(client)
    with services.db.begin() as session:
        session.execute(update(SsoSessionRow).values(expires_at=utcnow()))
    response = refresh(client, first["refresh_token"])
    assert response.status_code == 400 and "session" in response.get_json()["error_description"]


def test_refresh_asks_the_access_gate_again(app, services) -> None:
    from broker.access import AccessDenied

    client = app.test_client()
    first = tokens_for(client)

    class Deny:
        def check(self, identity, client_id, service_name):  # type: ignore[no-untyped-def]
            raise AccessDenied("no longer permitted")

    services.oidc._access = Deny()
    response = refresh(client, first["refresh_token"])
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
    assert ("access_decision", "denied") in audit_events(services)


def test_clients_without_the_refresh_grant_get_no_refresh_token(app, services) -> None:
    from tests.oidc.conftest import SECRETS

    client = app.test_client()
    # post-app has the default grants (code + refresh); service-a cannot refresh at all.
    response = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": "x"}, headers=basic("service-a", "SERVICE_A_SECRET"))
    assert response.get_json()["error"] == "unauthorized_client"
    assert SECRETS  # fixture secrets are importable for other modules


def test_unknown_refresh_token_is_invalid_grant(app) -> None:
    response = refresh(app.test_client(), "not-a-token")
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_a_replayed_code_also_revokes_refresh_tokens_issued_from_it(app) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    first = exchange(client, code, verifier).get_json()
    assert exchange(client, code, verifier).status_code == 400
    assert refresh(client, first["refresh_token"]).get_json()["error"] == "invalid_grant"
