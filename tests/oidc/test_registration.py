"""Dynamic client registration (RFC 7591) and its management protocol (RFC 7592), guarded by
initial access tokens: what a borough's application team sees when it onboards itself."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, update

from broker.storage.models import ClientRow, InitialAccessTokenRow
from broker.storage.types import utcnow
from tests.oidc import jwt_tools
from tests.oidc.helpers import ISSUER, authorize, basic_auth, code_flow, exchange

REDIRECT = "https://rota.camden.test/callback"
LOOPBACK = "http://127.0.0.1:8011/callback"
JWK = jwt_tools.public_jwk(jwt_tools.ec_key(), "team-k1")


def _token(services, **options: Any) -> str:  # type: ignore[no-untyped-def]
    options.setdefault("expires_in", dt.timedelta(days=7))
    token, _ = services.oidc.initial_tokens.issue(created_by="test-admin", **options)
    return token


def _register(client, token: str | None, metadata: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if "data" in kwargs:
        return client.post("/register", headers=headers, **kwargs)
    return client.post("/register", json=metadata, headers=headers)


def _path(uri: str) -> str:
    assert uri.startswith(ISSUER + "/register/")
    return uri[len(ISSUER):]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _clients(services) -> set[str]:  # type: ignore[no-untyped-def]
    with services.db() as session:
        return set(session.execute(select(ClientRow.client_id)).scalars())


def _uses(services) -> list[int]:  # type: ignore[no-untyped-def]
    return [t.uses for t in services.oidc.initial_tokens.all()]


def _events(services, event: str) -> list[Any]:  # type: ignore[no-untyped-def]
    return [r for r in services.audit.records() if r.event == event]


# --- happy path ----------------------------------------------------------------------------


def test_discovery_advertises_the_registration_endpoint(app) -> None:
    metadata = app.test_client().get("/.well-known/openid-configuration").get_json()
    assert metadata["registration_endpoint"] == f"{ISSUER}/register"


def test_a_team_registers_its_application_and_signs_people_in_with_it(app, services) -> None:
    token = _token(services, organisation="camden", description="Camden rota app")
    client = app.test_client()
    response = _register(client, token, {
        "client_name": "Camden Rota", "redirect_uris": [LOOPBACK], "post_logout_redirect_uris": ["http://127.0.0.1:8011/bye"],
        "grant_types": ["authorization_code", "refresh_token"], "contacts": ["rota-team@camden.test"], "scope": "openid profile email",
        "backchannel_logout_uri": "http://127.0.0.1:8011/bc", "backchannel_logout_session_required": True,
        "id_token_signed_response_alg": "RS256", "logo_uri": "https://rota.camden.test/logo.png",
    })
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["client_id"].startswith("dcr-") and len(body["client_secret"]) >= 43 and body["client_secret_expires_at"] == 0
    assert len(body["registration_access_token"]) >= 43 and body["registration_access_token"] != body["client_secret"]
    assert body["registration_client_uri"] == f"{ISSUER}/register/{body['client_id']}"
    assert body["client_name"] == "Camden Rota" and body["redirect_uris"] == [LOOPBACK]
    assert body["token_endpoint_auth_method"] == "client_secret_basic" and body["response_types"] == ["code"]
    assert body["grant_types"] == ["authorization_code", "refresh_token"] and body["id_token_signed_response_alg"] == "RS256"
    assert body["backchannel_logout_session_required"] is True and body["contacts"] == ["rota-team@camden.test"]
    assert "logo_uri" not in body, "metadata we do not use is ignored, not echoed (RFC 7591 §2)"
    assert abs(body["client_id_issued_at"] - utcnow().timestamp()) < 120

    code, verifier, _ = code_flow(client, client_id=body["client_id"], redirect_uri=LOOPBACK)
    tokens = exchange(client, code, verifier, redirect_uri=LOOPBACK, headers=basic_auth(body["client_id"], body["client_secret"]))
    assert tokens.status_code == 200, tokens.get_data(as_text=True)
    header, claims = jwt_tools.parts(tokens.get_json()["id_token"])
    assert header["alg"] == "RS256" and claims["aud"] == body["client_id"]

    found, disabled = services.clients.find(body["client_id"])
    assert found.organisation == "camden" and found.origin == "dcr" and not disabled
    record = _events(services, "client_registration")[-1]
    assert record.outcome == "success" and record.client_id == body["client_id"]
    assert record.details["organisation"] == "camden" and record.details["initial_access_token"]
    text = json.dumps([r.details for r in services.audit.records()])
    assert body["client_secret"] not in text and body["registration_access_token"] not in text and token not in text
    with services.db() as session:
        stored = session.get(ClientRow, body["client_id"])
        assert body["client_secret"] not in stored.secret_hash and body["registration_access_token"] not in (stored.registration_token_hash or "")
        stored_token = session.execute(select(InitialAccessTokenRow)).scalar_one()
        assert token not in stored_token.token_hash


def test_defaults_follow_rfc_7591(app, services) -> None:
    body = _register(app.test_client(), _token(services), {"redirect_uris": [REDIRECT], "client_name": "Defaults"}).get_json()
    assert body["grant_types"] == ["authorization_code"] and body["response_types"] == ["code"]
    assert body["token_endpoint_auth_method"] == "client_secret_basic" and body["subject_type"] == "public"
    assert body["id_token_signed_response_alg"] == "ES256"


def test_a_private_key_jwt_client_gets_no_secret(app, services) -> None:
    response = _register(app.test_client(), _token(services), {
        "client_name": "Keys", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [JWK]}})
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert "client_secret" not in body and body["jwks"] == {"keys": [JWK]}
    refused = app.test_client().post("/token", data={"grant_type": "client_credentials"}, headers=basic_auth(body["client_id"], ""))
    assert refused.status_code == 401


@pytest.fixture
def sector_server() -> Iterator[dict[str, Any]]:
    """An HTTP server on loopback serving a sector identifier document (OIDC Registration §5)."""
    state: dict[str, Any] = {"body": json.dumps([REDIRECT, "https://rota2.camden.test/cb"]).encode(), "status": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(state["body"])

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/sector.json"
    yield state
    server.shutdown()
    server.server_close()


def test_pairwise_with_a_sector_identifier_uri(app, services, sector_server) -> None:
    client = app.test_client()
    metadata = {"client_name": "Pairwise", "redirect_uris": [REDIRECT, "https://rota2.camden.test/cb"], "subject_type": "pairwise",
                "sector_identifier_uri": sector_server["url"]}
    response = _register(client, _token(services, max_uses=5), metadata)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["subject_type"] == "pairwise" and body["sector_identifier_uri"] == sector_server["url"]
    assert services.clients.get(body["client_id"]).sector == "127.0.0.1"

    sector_server["body"] = json.dumps([REDIRECT]).encode()
    missing = _register(client, _token(services), metadata)
    assert missing.status_code == 400 and missing.get_json()["error"] == "invalid_redirect_uri"
    assert "https://rota2.camden.test/cb" in missing.get_json()["error_description"]
    sector_server["body"] = b'{"not": "an array"}'
    wrong = _register(client, _token(services), metadata)
    assert wrong.get_json()["error"] == "invalid_client_metadata" and "JSON array" in wrong.get_json()["error_description"]
    sector_server["status"] = 404
    gone = _register(client, _token(services), metadata)
    assert gone.get_json()["error"] == "invalid_client_metadata" and "404" in gone.get_json()["error_description"]
    plain = _register(client, _token(services), {**metadata, "sector_identifier_uri": "http://sector.camden.test/s.json"})
    assert plain.get_json()["error"] == "invalid_client_metadata" and "must be https" in plain.get_json()["error_description"]


# --- every refusal -----------------------------------------------------------------------------

BASE = {"client_name": "Team App", "redirect_uris": [REDIRECT]}


@pytest.mark.parametrize(
    ("changes", "error", "says"),
    [
        ({"redirect_uris": ["http://rota.camden.test/cb"]}, "invalid_redirect_uri", "must be https://"),
        ({"redirect_uris": ["http://127.attacker.test/cb"]}, "invalid_redirect_uri", "must be https://"),
        ({"redirect_uris": ["https://rota.camden.test/cb#frag"]}, "invalid_redirect_uri", "fragment"),
        ({"redirect_uris": ["https://user:pw@rota.camden.test/cb"]}, "invalid_redirect_uri", "credentials"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri", "absolute http"),
        ({"redirect_uris": ["com.example.app:/cb"]}, "invalid_redirect_uri", "absolute http"),
        ({"redirect_uris": []}, "invalid_redirect_uri", "redirect_uris is required"),
        ({"redirect_uris": None}, "invalid_redirect_uri", "redirect_uris is required"),
        ({"redirect_uris": "https://rota.camden.test/cb"}, "invalid_redirect_uri", "array of strings"),
        ({"redirect_uris": [REDIRECT, REDIRECT]}, "invalid_redirect_uri", "more than once"),
        ({"post_logout_redirect_uris": ["http://rota.camden.test/bye"]}, "invalid_client_metadata", "post_logout_redirect_uris"),
        ({"token_endpoint_auth_method": "none"}, "invalid_client_metadata", "public clients are not supported"),
        ({"token_endpoint_auth_method": "client_secret_jwt"}, "invalid_client_metadata", "token_endpoint_auth_method must be"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata", "exactly one of jwks or jwks_uri"),
        ({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{**JWK, "d": "secret"}]}}, "invalid_client_metadata",
         "private key"),
        ({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://keys.camden.test/jwks"}, "invalid_client_metadata",
         "must be https://"),
        ({"jwks": {"keys": [JWK]}}, "invalid_client_metadata", "only for token_endpoint_auth_method: private_key_jwt"),
        ({"jwks": "keys"}, "invalid_client_metadata", "jwks must be a JWK Set"),
        ({"id_token_signed_response_alg": "none"}, "invalid_client_metadata", "ES256 or RS256"),
        ({"id_token_signed_response_alg": "HS256"}, "invalid_client_metadata", "ES256 or RS256"),
        ({"subject_type": "random"}, "invalid_client_metadata", "subject_type"),
        ({"grant_types": ["implicit"]}, "invalid_client_metadata", "must include authorization_code"),
        ({"grant_types": ["authorization_code", "client_credentials"]}, "invalid_client_metadata", "cannot be self-registered"),
        ({"grant_types": ["authorization_code", "password"]}, "invalid_client_metadata", "cannot be self-registered"),
        ({"grant_types": ["refresh_token"]}, "invalid_client_metadata", "must include authorization_code"),
        ({"response_types": ["token"]}, "invalid_client_metadata", "response_types must be"),
        ({"response_types": ["code id_token"]}, "invalid_client_metadata", "response_types must be"),
        ({"software_statement": "eyJhbGciOiJub25lIn0.e30."}, "invalid_software_statement", "software statements are not accepted"),
        ({"id_token_encrypted_response_alg": "RSA-OAEP"}, "invalid_client_metadata", "encrypted ID tokens"),
        ({"userinfo_signed_response_alg": "ES256"}, "invalid_client_metadata", "plain JSON"),
        ({"request_uris": ["https://rota.camden.test/req"]}, "invalid_client_metadata", "request objects"),
        ({"backchannel_logout_uri": "http://rota.camden.test/bc"}, "invalid_client_metadata", "backchannel_logout_uri"),
        ({"frontchannel_logout_uri": "https://rota.camden.test/fc#x"}, "invalid_client_metadata", "fragment"),
        ({"backchannel_logout_session_required": True}, "invalid_client_metadata", "needs a backchannel_logout_uri"),
        ({"backchannel_logout_session_required": "yes", "backchannel_logout_uri": "https://rota.camden.test/bc"},
         "invalid_client_metadata", "true or false"),
        ({"client_name": "x" * 201}, "invalid_client_metadata", "client_name"),
        ({"client_name": 7}, "invalid_client_metadata", "client_name must be a string"),
        ({"contacts": ["not an address"]}, "invalid_client_metadata", "not an e-mail address"),
        ({"scope": "openid  profile"}, "invalid_client_metadata", "scope"),
        ({"subject_type": "pairwise", "redirect_uris": [REDIRECT, "https://other.camden.test/cb"]}, "invalid_client_metadata",
         "need a sector_identifier"),
    ],
)
def test_bad_metadata_is_refused_with_the_rfc_error_and_a_useful_description(app, services, changes, error, says) -> None:
    before = _clients(services)
    metadata = {k: v for k, v in {**BASE, **changes}.items() if v is not None}
    response = _register(app.test_client(), _token(services), metadata)
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == error and says in body["error_description"], body
    assert _clients(services) == before, "nothing registered"
    assert _uses(services) == [0], "a refused registration does not use up the token"
    failure = _events(services, "client_registration")[-1]
    assert failure.outcome == "failure" and failure.details["error"] == error


@pytest.mark.parametrize(
    ("data", "content_type", "says"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b'["https://rota.camden.test/cb"]', "application/json", "JSON object"),
        (b"redirect_uris=https://rota.camden.test/cb", "application/x-www-form-urlencoded", "must be JSON"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(app, services, data, content_type, says) -> None:
    response = _register(app.test_client(), _token(services), None, data=data, content_type=content_type)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_client_metadata"
    assert says in response.get_json()["error_description"]


# --- the initial access token ---------------------------------------------------------------


def test_registration_needs_an_initial_access_token(app, services) -> None:
    client = app.test_client()
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic Zm9vOmJhcg=="}):
        response = client.post("/register", json=BASE, headers=headers)
        assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert [r.outcome for r in _events(services, "client_registration")] == ["failure"] * 3
    assert not [c for c in services.clients.all() if c.origin == "dcr"]


def test_an_expired_token_is_refused(app, services) -> None:
    token = _token(services)
    with services.db.begin() as session:
        session.execute(update(InitialAccessTokenRow).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    response = _register(app.test_client(), token, BASE)
    assert response.status_code == 401 and "expired" in response.get_json()["error_description"]


def test_a_single_use_token_registers_one_client_and_a_limited_one_its_number(app, services) -> None:
    client = app.test_client()
    once = _token(services)
    assert _register(client, once, BASE).status_code == 201
    again = _register(client, once, BASE)
    assert again.status_code == 401 and "used up" in again.get_json()["error_description"]
    twice = _token(services, max_uses=2)
    assert [_register(client, twice, BASE).status_code for _ in range(3)] == [201, 201, 401]


def test_a_revoked_token_is_refused(app, services) -> None:
    token, record = services.oidc.initial_tokens.issue(expires_in=dt.timedelta(days=1), created_by="admin")
    assert services.oidc.initial_tokens.revoke(record.id)
    response = _register(app.test_client(), token, BASE)
    assert response.status_code == 401 and "revoked" in response.get_json()["error_description"]


def test_concurrent_registrations_cannot_both_take_the_last_use(app, services) -> None:
    token = _token(services)
    statuses: list[int] = []
    barrier = threading.Barrier(4)

    def register() -> None:
        barrier.wait()
        statuses.append(_register(app.test_client(), token, BASE).status_code)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 401, 401, 401]
    assert len([c for c in services.clients.all() if c.origin == "dcr"]) == 1 and _uses(services) == [1]


# --- RFC 7592: read, update, delete ----------------------------------------------------------


@pytest.fixture
def registered(app, services) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = _register(app.test_client(), _token(services, max_uses=3), {**BASE, "redirect_uris": [LOOPBACK]})
    assert response.status_code == 201
    return response.get_json()


def test_read_returns_the_registration_with_its_token(app, registered) -> None:
    response = app.test_client().get(_path(registered["registration_client_uri"]), headers=_bearer(registered["registration_access_token"]))
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["client_id"] == registered["client_id"] and body["redirect_uris"] == [LOOPBACK]
    assert body["registration_access_token"] == registered["registration_access_token"]
    assert "client_secret" not in body, "the secret is kept only as a hash and shown only at registration"


def test_the_registration_token_is_required_and_bound_to_its_client(app, services, registered) -> None:
    other = _register(app.test_client(), _token(services), BASE).get_json()
    client = app.test_client()
    path = _path(registered["registration_client_uri"])
    for headers in ({}, _bearer("wrong"), _bearer(other["registration_access_token"]), _bearer(registered["client_secret"]),
                    basic_auth(registered["client_id"], registered["client_secret"])):
        for method in ("get", "put", "delete"):
            response = getattr(client, method)(path, headers=headers, json={**BASE, "client_id": registered["client_id"]})
            assert response.status_code == 401 and response.get_json()["error"] == "invalid_token", (method, headers)
    assert client.get("/register/discharge-hub", headers=_bearer(registered["registration_access_token"])).status_code == 401
    assert client.get("/register/no-such-client", headers=_bearer(registered["registration_access_token"])).status_code == 401
    assert services.clients.get(registered["client_id"]).redirect_uris == (LOOPBACK,), "nothing changed"
    assert {r.outcome for r in _events(services, "client_registration_update")} == {"failure"}


def test_update_replaces_the_metadata(app, services, registered) -> None:
    client = app.test_client()
    path, token = _path(registered["registration_client_uri"]), _bearer(registered["registration_access_token"])
    new_uri = "http://127.0.0.1:8012/callback"
    response = client.put(path, headers=token, json={"client_id": registered["client_id"], "client_name": "Renamed",
                                                     "redirect_uris": [new_uri], "client_secret": registered["client_secret"]})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["client_name"] == "Renamed" and body["redirect_uris"] == [new_uri] and "client_secret" not in body
    old, _ = authorize(client, client_id=registered["client_id"], redirect_uri=LOOPBACK)
    assert old.status_code == 400 and "Location" not in old.headers, "the replaced redirect URI is no longer accepted"
    code, verifier, _ = code_flow(client, client_id=registered["client_id"], redirect_uri=new_uri)
    tokens = exchange(client, code, verifier, redirect_uri=new_uri, headers=basic_auth(registered["client_id"], registered["client_secret"]))
    assert tokens.status_code == 200, "the secret survives an update"
    assert _events(services, "client_registration_update")[-1].outcome == "success"


@pytest.mark.parametrize(
    ("changes", "error", "says"),
    [
        ({"client_id": "dcr-someone-else"}, "invalid_client_metadata", "client_id must be this client's id"),
        ({"client_id": None}, "invalid_client_metadata", "client_id must be this client's id"),
        ({"client_secret": "chosen-by-the-client-0123456789abcdefghijkl"}, "invalid_client_metadata", "cannot be chosen"),
        ({"redirect_uris": ["http://rota.camden.test/cb"]}, "invalid_redirect_uri", "must be https://"),
        ({"grant_types": ["authorization_code", "client_credentials"]}, "invalid_client_metadata", "cannot be self-registered"),
    ],
)
def test_a_bad_update_is_refused_and_changes_nothing(app, services, registered, changes, error, says) -> None:
    document = {k: v for k, v in {**BASE, "client_id": registered["client_id"], **changes}.items() if v is not None}
    response = app.test_client().put(_path(registered["registration_client_uri"]), json=document,
                                     headers=_bearer(registered["registration_access_token"]))
    assert response.status_code == 400 and response.get_json()["error"] == error and says in response.get_json()["error_description"]
    assert services.clients.get(registered["client_id"]).redirect_uris == (LOOPBACK,)


def test_moving_to_private_key_jwt_retires_the_secret(app, services, registered) -> None:
    response = app.test_client().put(
        _path(registered["registration_client_uri"]), headers=_bearer(registered["registration_access_token"]),
        json={"client_id": registered["client_id"], "redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "private_key_jwt",
              "jwks": {"keys": [JWK]}})
    assert response.status_code == 200, response.get_data(as_text=True)
    refused = app.test_client().post("/introspect", data={"token": "x"}, headers=basic_auth(registered["client_id"], registered["client_secret"]))
    assert refused.status_code == 401


def test_delete_deregisters_the_client_and_revokes_its_tokens(app, services, registered) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client, client_id=registered["client_id"], redirect_uri=LOOPBACK)
    auth = basic_auth(registered["client_id"], registered["client_secret"])
    tokens = exchange(client, code, verifier, redirect_uri=LOOPBACK, headers=auth).get_json()
    path, token = _path(registered["registration_client_uri"]), _bearer(registered["registration_access_token"])
    response = client.delete(path, headers=token)
    assert response.status_code == 204 and response.get_data() == b""
    assert client.get(path, headers=token).status_code == 401
    assert client.delete(path, headers=token).status_code == 401
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401
    refresh = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens.get("refresh_token", "none")}, headers=auth)
    assert refresh.status_code == 401, "the client no longer authenticates"
    again, _ = authorize(client, client_id=registered["client_id"], redirect_uri=LOOPBACK)
    assert again.status_code == 400 and "Location" not in again.headers
    assert [r.outcome for r in _events(services, "client_registration_delete")] == ["success", "failure"]
    assert services.clients.find(registered["client_id"])[1] is True, "kept, disabled, for the audit trail"


def test_a_registered_scope_limits_what_the_client_gets(app, services) -> None:
    body = _register(app.test_client(), _token(services), {**BASE, "redirect_uris": [LOOPBACK], "scope": "openid email"}).get_json()
    client = app.test_client()
    code, verifier, _ = code_flow(client, client_id=body["client_id"], redirect_uri=LOOPBACK, scope="openid profile email")
    tokens = exchange(client, code, verifier, redirect_uri=LOOPBACK, headers=basic_auth(body["client_id"], body["client_secret"])).get_json()
    assert set(tokens["scope"].split()) == {"openid", "email"}


# --- one rule set for configuration, the command line and dynamic registration ----------------


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("http://rota.camden.test/cb", "must be https://"),
        ("http://127.attacker.test/cb", "must be https://"),
        ("https://rota.camden.test/cb#x", "fragment"),
        ("https://u:p@rota.camden.test/cb", "credentials"),
        ("ftp://rota.camden.test/cb", "absolute http"),
    ],
)
def test_configuration_command_line_and_registration_refuse_a_redirect_uri_alike(app, services, uri, says) -> None:
    from pydantic import ValidationError

    from config.schema import ApplicationConfig

    with pytest.raises(ValidationError) as in_config:
        ApplicationConfig.model_validate({"client_id": "app-one", "name": "App", "redirect_uris": [uri], "client_secret": {"env": "S"}})
    with pytest.raises(ValueError) as by_cli:
        services.clients.add("App", [uri])
    by_dcr = _register(app.test_client(), _token(services), {**BASE, "redirect_uris": [uri]}).get_json()
    assert says in str(in_config.value) and says in str(by_cli.value) and says in by_dcr["error_description"]
    assert by_dcr["error"] == "invalid_redirect_uri"


@pytest.mark.parametrize("uri", ["http://127.0.0.1:8011/cb", "http://127.3.4.5/cb", "http://[::1]:8011/cb", "http://localhost:8011/cb"])
def test_loopback_http_is_accepted_everywhere(app, services, uri) -> None:
    from config.schema import ApplicationConfig

    assert ApplicationConfig.model_validate({"client_id": "app-one", "name": "App", "redirect_uris": [uri], "client_secret": {"env": "S"}})
    assert services.clients.add("App", [uri]).client.redirect_uris == (uri,)
    assert _register(app.test_client(), _token(services), {**BASE, "redirect_uris": [uri]}).status_code == 201
