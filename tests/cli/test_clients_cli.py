"""``supercloud clients`` and ``supercloud logout deliver``: what an operator sees at the terminal."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from broker.cli import cli
from tests.oidc import jwt_tools
from tests.support.cli_results import ok, refused
from tests.support.flask_flow import basic_auth, code_flow, exchange

JWK = jwt_tools.public_jwk(jwt_tools.ec_key(), "ops-k1")
LOOPBACK = "http://127.0.0.1:8021/callback"


def run(settings, *args: str, input: str | None = None) -> Result:  # type: ignore[no-untyped-def]  # noqa: A002
    return CliRunner().invoke(cli, ["--config", str(settings.base_dir / "broker.yaml"), *args], obj={}, input=input)


def add(settings, *args: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return json.loads(ok(run(settings, "clients", "add", "--json", *args)))


def _events(services, event: str) -> list[Any]:  # type: ignore[no-untyped-def]
    return [r for r in services.audit.records() if r.event == event]


@pytest.fixture
def receiver() -> Iterator[list[str]]:
    """A back-channel logout endpoint on loopback recording the tokens POSTed to it."""
    received: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            from urllib.parse import parse_qs

            body = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode())
            received.append(body["logout_token"][0])
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    received.append(f"http://127.0.0.1:{server.server_address[1]}/bc")  # received[0] is the URL
    yield received
    server.shutdown()
    server.server_close()


# --- add: every kind of client -----------------------------------------------------------


def test_add_takes_every_metadata_flag(settings, services, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [JWK]}))
    created = add(settings, "--name", "Camden Care Portal", "--redirect-uri", "https://care.camden.test/cb",
                  "--redirect-uri", "https://care2.camden.test/cb", "--post-logout-redirect-uri", "https://care.camden.test/bye",
                  "--auth-method", "private_key_jwt", "--jwks-file", str(jwks), "--auth-signing-alg", "ES256",
                  "--signing-alg", "RS256", "--subject-type", "pairwise", "--sector-identifier", "care.camden.test",
                  "--backchannel-logout-uri", "https://care.camden.test/bc", "--backchannel-logout-session-required",
                  "--frontchannel-logout-uri", "https://care.camden.test/fc", "--frontchannel-logout-session-required",
                  "--grant-type", "authorization_code", "--grant-type", "refresh_token", "--grant-type", "token-exchange",
                  "--audience", "care-records-api", "--contact", "portal-team@camden.test", "--scope", "openid profile",
                  "--organisation", "camden")
    assert "client_secret" not in created, "a private_key_jwt client gets no secret"
    shown = json.loads(ok(run(settings, "clients", "show", created["client_id"], "--json")))
    assert shown["origin"] == "cli" and shown["organisation"] == "camden" and shown["removed"] is False
    assert shown["token_endpoint_auth_method"] == "private_key_jwt" and shown["jwks"] == {"keys": [JWK]}
    assert shown["token_endpoint_auth_signing_alg"] == "ES256" and shown["id_token_signed_response_alg"] == "RS256"
    assert shown["subject_type"] == "pairwise" and services.clients.get(created["client_id"]).sector == "care.camden.test"
    assert shown["grant_types"] == ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"]
    assert shown["allowed_audiences"] == ["care-records-api"] and shown["contacts"] == ["portal-team@camden.test"]
    assert shown["backchannel_logout_session_required"] and shown["frontchannel_logout_session_required"]
    assert shown["post_logout_redirect_uris"] == ["https://care.camden.test/bye"] and shown["scope"] == "openid profile"
    text = ok(run(settings, "clients", "show", created["client_id"]))
    assert "Camden Care Portal" in text and "private_key_jwt" in text


def test_a_service_client_gets_client_credentials_tokens(settings, services, app) -> None:  # type: ignore[no-untyped-def]
    created = add(settings, "--name", "Rota Sync", "--grant-type", "client_credentials", "--audience", "discharge-hub")
    assert len(created["client_secret"]) >= 43
    response = app.test_client().post("/token", data={"grant_type": "client_credentials", "audience": "discharge-hub"},
                                      headers=basic_auth(created["client_id"], created["client_secret"]))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert jwt_tools.parts(response.get_json()["access_token"])[1]["aud"] == "discharge-hub"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--redirect-uri", "http://care.camden.test/cb"], "must be https://"),
        (["--redirect-uri", "http://127.attacker.test/cb"], "must be https://"),
        (["--redirect-uri", "https://care.camden.test/cb#x"], "fragment"),
        ([], "authorization_code needs at least one redirect_uri"),
        (["--redirect-uri", "https://c.test/cb", "--auth-method", "private_key_jwt"], "exactly one of jwks or jwks_uri"),
        (["--redirect-uri", "https://c.test/cb", "--jwks-uri", "https://c.test/jwks"], "only for token_endpoint_auth_method"),
        (["--redirect-uri", "https://c.test/cb", "--jwks-file", "/nonexistent/jwks.json", "--auth-method", "private_key_jwt"],
         "cannot read /nonexistent/jwks.json"),
        (["--grant-type", "client_credentials"], "client_credentials needs allowed_audiences"),
        (["--grant-type", "token-exchange", "--redirect-uri", "https://c.test/cb"], "token exchange needs allowed_audiences"),
        (["--grant-type", "client_credentials", "--audience", "x", "--redirect-uri", "https://c.test/cb"], "redirect URIs are only for"),
        (["--grant-type", "password"], "Invalid value for '--grant-type'"),
        (["--redirect-uri", "https://c.test/cb", "--sector-identifier", "c.test"], "only for subject_type: pairwise"),
        (["--redirect-uri", "https://c.test/cb", "--backchannel-logout-uri", "http://c.test/bc"], "backchannel_logout_uri"),
        (["--redirect-uri", "https://c.test/cb", "--contact", "nobody"], "not an e-mail address"),
        (["--redirect-uri", "https://c.test/cb", "--organisation", "atlantis"], "no member organisation 'atlantis'"),
    ],
)
def test_add_refuses_bad_metadata_with_a_clear_message(settings, services, args, says) -> None:  # type: ignore[no-untyped-def]
    before = {c.client_id for c in services.clients.all()}
    output = refused(run(settings, "clients", "add", "--name", "Bad", *args))
    assert says in output
    assert {c.client_id for c in services.clients.all()} == before


def test_a_refused_add_is_audited(settings, services) -> None:  # type: ignore[no-untyped-def]
    refused(run(settings, "clients", "add", "--name", "Bad", "--redirect-uri", "http://care.camden.test/cb"))
    failure = _events(services, "client_registered")[-1]
    assert failure.outcome == "failure" and "must be https://" in failure.details["reason"]


def test_a_jwks_file_that_is_not_json_is_named(settings, services, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "keys.json"
    bad.write_text("-----BEGIN PUBLIC KEY-----")
    output = refused(run(settings, "clients", "add", "--name", "X", "--redirect-uri", "https://c.test/cb",
                         "--auth-method", "private_key_jwt", "--jwks-file", str(bad)))
    assert f"{bad} is not JSON" in output


# --- list, show, remove, rotate-secret ----------------------------------------------------------


def test_list_shows_every_registered_application(settings, services) -> None:  # type: ignore[no-untyped-def]
    created = add(settings, "--name", "Listed", "--redirect-uri", LOOPBACK)
    text = ok(run(settings, "clients", "list"))
    assert "discharge-hub" in text and created["client_id"] in text and "Listed" in text
    listed = json.loads(ok(run(settings, "clients", "list", "--json")))
    assert {c["client_id"]: c["origin"] for c in listed} == {"discharge-hub": "config", created["client_id"]: "cli"}


def test_show_of_an_unknown_client_says_so(settings, services) -> None:  # type: ignore[no-untyped-def]
    assert "no client 'nope' is registered" in refused(run(settings, "clients", "show", "nope"))


def test_remove_revokes_the_client_and_its_tokens(settings, services, app) -> None:  # type: ignore[no-untyped-def]
    created = add(settings, "--name", "Leaving", "--redirect-uri", LOOPBACK)
    client = app.test_client()
    code, verifier, _ = code_flow(client, client_id=created["client_id"], redirect_uri=LOOPBACK)
    auth = basic_auth(created["client_id"], created["client_secret"])
    tokens = exchange(client, code, verifier, redirect_uri=LOOPBACK, headers=auth).get_json()
    assert "aborted" in refused(run(settings, "clients", "remove", created["client_id"], input="n\n")).lower()
    assert services.clients.get(created["client_id"]) is not None
    assert f"removed {created['client_id']}" in ok(run(settings, "clients", "remove", created["client_id"], "--yes"))
    services.clients._cache.clear()  # the CLI ran in another ClientRegistry: this one's 2 s cache is what workers see
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401
    assert client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                       headers=auth).status_code == 401
    assert json.loads(ok(run(settings, "clients", "show", created["client_id"], "--json")))["removed"] is True
    assert "no client" in refused(run(settings, "clients", "remove", created["client_id"], "--yes"))
    assert _events(services, "client_removed")[-1].client_id == created["client_id"]


def test_configured_clients_are_changed_in_the_configuration(settings, services) -> None:  # type: ignore[no-untyped-def]
    assert "remove it there" in refused(run(settings, "clients", "remove", "discharge-hub", "--yes"))
    assert "change it there" in refused(run(settings, "clients", "rotate-secret", "discharge-hub"))
    assert services.clients.get("discharge-hub") is not None


def test_rotate_secret_retires_the_old_one(settings, services, app) -> None:  # type: ignore[no-untyped-def]
    created = add(settings, "--name", "Rotating", "--grant-type", "client_credentials", "--audience", "discharge-hub")
    rotated = json.loads(ok(run(settings, "clients", "rotate-secret", created["client_id"], "--json")))
    assert rotated["client_secret"] != created["client_secret"]
    services.clients._cache.clear()
    form = {"grant_type": "client_credentials", "audience": "discharge-hub"}
    client = app.test_client()
    assert client.post("/token", data=form, headers=basic_auth(created["client_id"], created["client_secret"])).status_code == 401
    assert client.post("/token", data=form, headers=basic_auth(created["client_id"], rotated["client_secret"])).status_code == 200
    assert _events(services, "client_secret_rotated")[-1].client_id == created["client_id"]
    keys_only = add(settings, "--name", "Keys", "--redirect-uri", LOOPBACK, "--auth-method", "private_key_jwt",
                    "--jwks-uri", "https://keys.camden.test/jwks")
    assert "has no secret" in refused(run(settings, "clients", "rotate-secret", keys_only["client_id"]))


# --- initial access tokens -------------------------------------------------------------------------


def test_an_initial_token_lets_a_team_register_once(settings, services, app) -> None:  # type: ignore[no-untyped-def]
    issued = json.loads(ok(run(settings, "clients", "initial-token", "--expires-in", "7d", "--organisation", "camden",
                               "--description", "Camden rota team", "--as", "officer-1", "--json")))
    assert issued["registration_endpoint"] == "http://127.0.0.1:8000/register" and issued["max_uses"] == 1
    metadata = {"client_name": "Rota", "redirect_uris": [LOOPBACK]}
    bearer = {"Authorization": f"Bearer {issued['initial_access_token']}"}
    first = app.test_client().post("/register", json=metadata, headers=bearer)
    assert first.status_code == 201 and services.clients.find(first.get_json()["client_id"])[0].organisation == "camden"
    assert app.test_client().post("/register", json=metadata, headers=bearer).status_code == 401
    listed = json.loads(ok(run(settings, "clients", "initial-tokens", "--json")))
    assert [(t["id"], t["uses"], t["state"], t["organisation"]) for t in listed] == [(issued["id"], 1, "used up", "camden")]
    assert issued["initial_access_token"] not in ok(run(settings, "clients", "initial-tokens"))
    issued_event = _events(services, "initial_access_token_issued")[-1]
    assert issued_event.actor == "officer-1" and issued["initial_access_token"] not in json.dumps(issued_event.details)


def test_an_initial_token_can_be_revoked(settings, services, app) -> None:  # type: ignore[no-untyped-def]
    issued = json.loads(ok(run(settings, "clients", "initial-token", "--uses", "5", "--json")))
    assert f"revoked {issued['id']}" in ok(run(settings, "clients", "revoke-initial-token", issued["id"]))
    response = app.test_client().post("/register", json={"client_name": "R", "redirect_uris": [LOOPBACK]},
                                      headers={"Authorization": f"Bearer {issued['initial_access_token']}"})
    assert response.status_code == 401 and "revoked" in response.get_json()["error_description"]
    assert "no live initial access token" in refused(run(settings, "clients", "revoke-initial-token", issued["id"]))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--expires-in", "soon"], "not a duration"),
        (["--expires-in", "0d"], "not a duration"),
        (["--expires-in", "91d"], "at most 90 days"),
        (["--uses", "0"], "number of uses must be 1 to 1000"),
        (["--organisation", "atlantis"], "no member organisation 'atlantis'"),
    ],
)
def test_initial_token_refuses_bad_options(settings, services, args, says) -> None:  # type: ignore[no-untyped-def]
    assert says in refused(run(settings, "clients", "initial-token", *args))
    assert services.oidc.initial_tokens.all() == []


# --- logout deliver ---------------------------------------------------------------------------------------


def test_logout_deliver_sends_what_a_stopped_process_left(settings, services, app, receiver) -> None:  # type: ignore[no-untyped-def]
    url = receiver[0]
    created = add(settings, "--name", "Notified", "--redirect-uri", LOOPBACK, "--backchannel-logout-uri", url)
    client = app.test_client()
    code, verifier, _ = code_flow(client, client_id=created["client_id"], redirect_uri=LOOPBACK)
    tokens = exchange(client, code, verifier, redirect_uri=LOOPBACK,
                      headers=basic_auth(created["client_id"], created["client_secret"])).get_json()
    sid = jwt_tools.parts(tokens["id_token"])[1]["sid"]
    services.oidc.logout.end_session(sid, reason="admin", actor="officer-1", deliver=False)  # the process stops here
    assert receiver[1:] == []
    assert "delivered 1, to retry 0, given up 0; pending now 0" in ok(run(settings, "logout", "deliver"))
    assert len(receiver) == 2 and jwt_tools.parts(receiver[1])[1]["sid"] == sid
    assert "delivered 0, to retry 0, given up 0; pending now 0" in ok(run(settings, "logout", "deliver"))
