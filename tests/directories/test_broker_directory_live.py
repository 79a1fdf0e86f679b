"""Directory sign-in over real HTTP: the broker under gunicorn (two workers) with the boroughs'
real Samba AD and OpenLDAP directories as its sources."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
import yaml

from federation.keys import MasterKey
from tests.directories.broker_peers import (
    camden_source,
    create_ad_user,
    export_secrets,
    hackney_source,
    newham_source,
    peer_organisations,
    set_ad_disabled,
)
from tests.directories.ldap_peers import DEAD_PORT
from tests.peers.samba import CAMDEN_PASSWORD, NEWHAM_PASSWORD, SambaDC
from tests.peers.slapd import HACKNEY_PASSWORD, SlapdServer
from tests.support.databases import fresh_database
from tests.support.flask_flow import pkce_pair
from tests.support.http_login import csrf_token, sign_in
from tests.support.live import free_port, wait_for
from tests.support.settings import ROOT

pytestmark = [pytest.mark.peer("samba"), pytest.mark.peer("slapd")]

CLIENT_ID = "directory-rp"
CLIENT_SECRET = "directory-rp-secret-0123456789abcdefghijklmnop"
REDIRECT_URI = "http://127.0.0.1:9/callback"  # never listened on: tests read the Location
GENERIC = "Enter a correct email address and password."


class Live:
    """A running broker and what tests need to talk to it."""

    def __init__(self, issuer: str, process: subprocess.Popen[bytes]) -> None:
        self.issuer = issuer
        self.process = process

    def authorize_url(self) -> str:
        self.verifier, challenge = pkce_pair()  # the verifier of the latest request, for token()
        params = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code", "scope": "openid profile email",
                  "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8), "code_challenge": challenge,
                  "code_challenge_method": "S256"}
        return f"{self.issuer}/authorize?{urlencode(params)}"

    def sign_in(self, session: requests.Session, email: str, password: str) -> str:
        """Sign in through the pages; return the code the application receives."""
        callback = sign_in(session, self.authorize_url(), email, password, stop_prefix=REDIRECT_URI)
        return parse_qs(urlsplit(callback).query)["code"][0]

    def token(self, code: str) -> dict[str, Any]:
        response = requests.post(f"{self.issuer}/token", auth=(CLIENT_ID, CLIENT_SECRET), timeout=10, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": self.verifier})
        assert response.status_code == 200, response.text
        return response.json()

    def password_page(self, session: requests.Session, email: str, password: str) -> requests.Response:
        """Post the email then the password pages; return the password POST's response."""
        page = session.get(f"{self.issuer}/login", timeout=10).text
        first = session.post(f"{self.issuer}/login", data={"csrf_token": csrf_token(page), "email": email},
                             allow_redirects=False, timeout=10)
        if first.status_code != 302:
            return first
        page = session.get(f"{self.issuer}/login/password", timeout=10).text
        return session.post(f"{self.issuer}/login/password", data={"csrf_token": csrf_token(page), "password": password},
                            allow_redirects=False, timeout=30)


def claims(id_token: str) -> dict[str, Any]:
    """Return the payload of a JWT (its signature is checked by the broker's own tests)."""
    payload = id_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, samba_camden: SambaDC, samba_newham: SambaDC, slapd_hackney: SlapdServer
) -> Iterator[Live]:
    """The broker under gunicorn with Camden, Newham, Hackney on their directories and Barking unreachable."""
    folder = tmp_path_factory.mktemp("live-directories")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    export_secrets()
    organisations = peer_organisations(
        camden_source(samba_camden, status_recheck_seconds=0),
        newham_source(samba_newham),
        hackney_source(slapd_hackney),
    )
    address = samba_newham.address
    barking = newham_source(samba_newham, id="barking-ad",
                            urls=[f"ldap://{address}:{DEAD_PORT}", f"ldap://{address}:{DEAD_PORT + 1}"])
    organisations.append({"id": "barking", "name": "London Borough of Barking and Dagenham", "kind": "borough",
                          "domains": ["barking.test"], "sources": [barking]})
    with fresh_database(folder) as database_url:
        document = {
            "broker": {"issuer": issuer, "environment": "development", "database_url": database_url,
                       "master_key": {"env": "LIVE_DIRECTORY_MASTER_KEY"}},
            "organisations": organisations,
            "applications": [{"client_id": CLIENT_ID, "name": "Directory test service", "redirect_uris": [REDIRECT_URI],
                              "client_secret": {"env": "LIVE_DIRECTORY_CLIENT_SECRET"}}],
        }
        config = folder / "live.yaml"
        config.write_text(yaml.safe_dump(document, sort_keys=False))
        env = {**os.environ, "LIVE_DIRECTORY_MASTER_KEY": MasterKey.generate_text(),
               "LIVE_DIRECTORY_CLIENT_SECRET": CLIENT_SECRET, "PYTHONPATH": str(ROOT)}
        with open(folder / "broker.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "broker", "--config", str(config), "serve", "--port", str(port), "--workers", "2"],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            try:
                wait_for(f"{issuer}/.well-known/openid-configuration", process)
            except RuntimeError:
                raise RuntimeError((folder / "broker.log").read_text(errors="replace")[-4000:]) from None
            yield Live(issuer, process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.parametrize(
    ("email", "password", "organisation"),
    [("asmith@camden.test", CAMDEN_PASSWORD, "camden"),
     ("mokafor@newham.test", NEWHAM_PASSWORD, "newham"),
     ("rosa.khan@hackney.test", HACKNEY_PASSWORD, "hackney")],
)
def test_each_borough_signs_in_over_http(live: Live, email: str, password: str, organisation: str) -> None:
    tokens = live.token(live.sign_in(requests.Session(), email, password))
    id_token = claims(tokens["id_token"])
    assert id_token["iss"] == live.issuer and id_token["aud"] == CLIENT_ID
    userinfo = requests.get(f"{live.issuer}/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10)
    assert userinfo.status_code == 200 and userinfo.json()["sub"] == id_token["sub"]


def test_same_username_in_two_boroughs_has_two_subjects_over_http(live: Live) -> None:
    camden = claims(live.token(live.sign_in(requests.Session(), "jpatel@camden.test", CAMDEN_PASSWORD))["id_token"])
    newham = claims(live.token(live.sign_in(requests.Session(), "jpatel@newham.test", NEWHAM_PASSWORD))["id_token"])
    assert camden["sub"] != newham["sub"]


def test_disabled_account_gets_the_generic_message_over_http(live: Live) -> None:
    response = live.password_page(requests.Session(), "jleaver@camden.test", CAMDEN_PASSWORD)
    assert response.status_code == 400 and GENERIC in response.text
    assert "disabled" not in response.text.lower().replace("jleaver", "")


@pytest.mark.parametrize("email", ["*@camden.test", "*)(objectClass=*@camden.test", ")(|(memberOf=*@camden.test",
                                   "asmith\x00@camden.test", "\\2a@camden.test"])
def test_ldap_injection_over_http_signs_no_one_in(live: Live, email: str) -> None:
    response = live.password_page(requests.Session(), email, CAMDEN_PASSWORD)
    assert response.status_code in {200, 400}
    assert "Alice" not in response.text


def test_json_body_with_lists_and_dicts_signs_no_one_in(live: Live) -> None:
    session = requests.Session()
    for body in ({"email": ["asmith@camden.test"], "password": CAMDEN_PASSWORD}, {"email": {"$ne": ""}}):
        response = session.post(f"{live.issuer}/login", json=body, allow_redirects=False, timeout=10)
        assert response.status_code in {400, 415}
    # nothing was remembered: the password page sends the browser back to the email page
    assert session.get(f"{live.issuer}/login/password", allow_redirects=False, timeout=10).headers["Location"].endswith("/login")


def test_unreachable_borough_is_unavailable_over_http_and_others_unaffected(live: Live) -> None:
    response = live.password_page(requests.Session(), "someone@barking.test", "Barking-2026!")
    assert "Sign-in for London Borough of Barking and Dagenham is unavailable" in response.text
    live.token(live.sign_in(requests.Session(), "asmith@camden.test", CAMDEN_PASSWORD))


def test_leaver_loses_access_at_the_next_sso_use_over_http(live: Live, samba_camden: SambaDC) -> None:
    password = "Leaver-Http-2026!"
    email = create_ad_user(samba_camden, password)
    browser = requests.Session()
    live.token(live.sign_in(browser, email, password))
    reuse = browser.get(live.authorize_url(), allow_redirects=False, timeout=10)
    assert "code=" in reuse.headers["Location"]  # SSO reuse, no sign-in page
    set_ad_disabled(samba_camden, email, True)
    refused = browser.get(live.authorize_url(), allow_redirects=False, timeout=10)
    assert refused.status_code == 403 and "can no longer be used to sign in" in refused.text
    after = browser.get(live.authorize_url(), allow_redirects=False, timeout=10)
    assert after.status_code == 302 and after.headers["Location"].endswith("/login")  # the session is gone
