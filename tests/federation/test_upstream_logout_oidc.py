"""Logout with an upstream OpenID Provider, both directions, against a real peer (node
oidc-provider 9 as NHS CIS2) — and the upstream's session lifetime bounding the broker's.

- Signing out of the broker sends the browser to the upstream's end_session_endpoint with
  the sign-in's ID token as id_token_hint and our post_logout_redirect_uri; afterwards the
  upstream no longer has a session (prompt=none answers login_required).
- Signing out at the upstream makes it POST a logout token to the broker, which ends the
  broker session that came from that upstream session.
- Forged, replayed or misdirected logout tokens (minted with the peer's own key, or a rogue
  one) are refused with 400 and audited, and the session stays.
- With session_max_age_seconds the broker asks max_age, refuses an older auth_time, and the
  SSO session ends when the upstream's authentication stops vouching for the person.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
import yaml

from config import load_settings
from federation.keys import MasterKey
from tests.peers.oidc_upstream import OidcUpstreamPeer, follow, served_broker, start_oidc_upstream
from tests.support.databases import fresh_database
from tests.support.http_login import csrf_token
from tests.support.live import free_port
from tests.support.settings import TEST_REDIRECT_URI, demo_organisations

pytestmark = pytest.mark.peer("node")

BROKER_CLIENT = "supercloud-broker"
GENERIC_SECRET = "generic-direct-secret-0123456789abcdefghij"
DIRECT = "http://127.0.0.1:9/direct"  # callback for a source driven without the broker
MAX_AGE = 300
CIS2_ATTRIBUTES = ["name", "given_name", "family_name", "email", "gmc_id", "nmc_id", "uid", "ods_code", "role_name",
                   "selected_role_id", "associated_ods_codes", "nhs_user_id", "id_assurance_level", "upstream_amr"]
TRUSTS_CIS2 = {"accepts_sources": ["nhs-cis2"], "asserts_national_roles": True, "authoritative_attributes": CIS2_ATTRIBUTES}
_XSRF = re.compile(r'name="xsrf" value="([^"]+)"')


@dataclasses.dataclass
class World:
    broker: str
    upstream: OidcUpstreamPeer
    services: Any


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A broker served over HTTP whose NHS CIS2 source (logout on, max_age 300 s) is the peer."""
    from broker.bootstrap import initialise
    from broker.services import build_services
    from broker.web.app import create_app

    folder = tmp_path_factory.mktemp("upstream-logout")
    broker_port, upstream_port = free_port(), free_port()
    broker = f"http://127.0.0.1:{broker_port}"
    with pytest.MonkeyPatch.context() as env, fresh_database(folder) as database_url:
        env.setenv("LOGOUT_WORLD_MASTER_KEY", MasterKey.generate_text())
        env.setenv("LOGOUT_WORLD_CLIENT_SECRET", "logout-world-client-secret-0123456789abcdef")
        organisations = [o for o in demo_organisations() if o["id"] != "nhs"] + [
            {"id": "nhs", "name": "NHS (trusts and GP practices)", "kind": "health", "domains": ["nhs.test"],
             **{k: v for k, v in TRUSTS_CIS2.items() if k != "accepts_sources"},
             "sources": [{"type": "nhs_cis2", "id": "nhs-cis2", "display_name": "NHS smartcard (CIS2)",
                          "issuer": f"http://127.0.0.1:{upstream_port}", "client_id": BROKER_CLIENT,
                          "session_max_age_seconds": MAX_AGE}]},
            {"id": "royal-free", "name": "Royal Free London NHS Foundation Trust", "kind": "health", "ods_codes": ["RAL"],
             **TRUSTS_CIS2},
            {"id": "uclh", "name": "University College London Hospitals", "kind": "health", "ods_codes": ["RRV"],
             **TRUSTS_CIS2},
        ]
        document = {
            "broker": {"issuer": broker, "environment": "development", "database_url": database_url,
                       "master_key": {"env": "LOGOUT_WORLD_MASTER_KEY"}},
            "organisations": organisations,
            "applications": [{"client_id": "discharge-hub", "name": "Hospital Discharge Hub",
                              "redirect_uris": [TEST_REDIRECT_URI],
                              "client_secret": {"env": "LOGOUT_WORLD_CLIENT_SECRET"}}],
        }
        path = folder / "broker.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        settings = load_settings(path)
        initialise(settings)
        services = build_services(settings)
        app = create_app(settings, services=services)
        clients = [{
            "client_id": BROKER_CLIENT, "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "RS256", "jwks_uri": f"{broker}/jwks.json",
            "redirect_uris": [f"{broker}/login/callback/nhs-cis2"],
            "post_logout_redirect_uris": [f"{broker}/logout/upstream/return"],
            "backchannel_logout_uri": f"{broker}/login/backchannel-logout/nhs-cis2",
            "backchannel_logout_session_required": True,
            "grant_types": ["authorization_code"], "response_types": ["code"],
        }, {
            "client_id": "generic-direct", "client_secret": GENERIC_SECRET, "token_endpoint_auth_method": "client_secret_post",
            "redirect_uris": [DIRECT], "grant_types": ["authorization_code"], "response_types": ["code"],
        }]
        with served_broker(app, broker_port) as url:
            upstream = start_oidc_upstream(folder, clients, port=upstream_port)
            try:
                yield World(broker=url, upstream=upstream, services=services)
            finally:
                upstream.stop()
                services.engine.dispose()


@pytest.fixture
def peer(world: World) -> Iterator[World]:
    yield world
    world.upstream.reset()


def _sign_in(world: World, email: str = "consultant@nhs.test") -> tuple[requests.Session, Any]:
    """Sign in at the broker through the upstream; return (browser, the live SSO session)."""
    browser = requests.Session()
    page = browser.get(f"{world.broker}/login", timeout=10)
    started = browser.post(f"{world.broker}/login", data={"csrf_token": csrf_token(page.text), "email": email},
                           allow_redirects=False, timeout=10)
    assert started.is_redirect and started.headers["Location"].startswith(world.upstream.issuer)
    done = follow(browser, started.headers["Location"])
    assert done.status_code == 200 and "is signed in" in done.text, (done.text[:1500], world.upstream.log())
    sso = world.services.sso.find(browser.cookies.get("supercloud-session"))
    assert sso is not None
    return browser, sso


def _upstream_has_session(world: World, browser: requests.Session) -> bool:
    """Ask the upstream with prompt=none: a code means it still has a session for this browser."""
    response = browser.get(f"{world.upstream.issuer}/auth", allow_redirects=False, timeout=10, params={
        "client_id": BROKER_CLIENT, "redirect_uri": f"{world.broker}/login/callback/nhs-cis2", "response_type": "code",
        "scope": "openid", "prompt": "none", "state": "probe", "nonce": "probe-nonce-0123456789",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"})
    location = response.headers.get("Location", "")
    if location.startswith(world.upstream.issuer):  # oidc-provider resumes through its own /auth/<uid>
        response = follow(browser, location, stop_prefix=f"{world.broker}/login/callback/")
        location = response.headers.get("Location", "")
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(f"{world.broker}/login/callback/nhs-cis2"), (response.status_code, location, response.text[:500])
    return "code" in query


def _confirm_upstream_logout(world: World, browser: requests.Session, url: str) -> requests.Response:
    """At the upstream's end-session page, confirm (as the person would) and follow where it leads."""
    page = follow(browser, url)
    assert page.status_code == 200, (page.status_code, page.text[:800], world.upstream.log())
    match = _XSRF.search(page.text)
    assert match, page.text[:800]
    confirmed = browser.post(f"{world.upstream.issuer}/session/end/confirm", data={"xsrf": match.group(1), "logout": "yes"},
                             allow_redirects=False, timeout=15)
    location = confirmed.headers.get("Location")
    return follow(browser, urljoin(f"{world.upstream.issuer}/", location)) if confirmed.is_redirect and location else confirmed


def _events(world: World, event: str) -> list[Any]:
    return [r for r in world.services.audit.records() if r.event == event]


def _upstream_record(world: World, sid: str) -> Any:
    record = world.services.upstream_logout.sessions.for_sid(sid)
    assert record is not None
    return record


# --- the broker records the upstream session ------------------------------------------------------


def test_the_upstream_session_is_recorded_and_bounds_the_broker_session(peer: World) -> None:
    _, sso = _sign_in(peer)
    upstream = _upstream_record(peer, sso.sid)
    assert upstream.source == "nhs-cis2" and upstream.subject == "555000000001"
    assert upstream.session_id  # oidc-provider's sid, since the broker requires it for back-channel logout
    assert upstream.id_token and upstream.id_token.count(".") == 2
    assert upstream.not_after == upstream.authenticated_at + dt.timedelta(seconds=MAX_AGE)
    live = peer.services.sso.by_sid(sso.sid)
    assert live.expires_at <= upstream.not_after  # not the broker's 8 hours
    with peer.services.db() as session:
        from broker.storage.models import UpstreamSessionRow

        row = session.get(UpstreamSessionRow, sso.sid)
        assert upstream.id_token.encode() not in row.encrypted_id_token  # encrypted at rest


# --- ours to theirs: RP-initiated logout at the upstream --------------------------------------------


def test_signing_out_of_the_broker_signs_out_at_the_upstream(peer: World) -> None:
    browser, sso = _sign_in(peer)
    assert _upstream_has_session(peer, browser)
    upstream = _upstream_record(peer, sso.sid)
    page = browser.get(f"{peer.broker}/logout", timeout=10)
    out = browser.post(f"{peer.broker}/logout", data={"csrf_token": csrf_token(page.text)}, allow_redirects=False, timeout=10)
    assert out.is_redirect, out.text[:500]
    target = out.headers["Location"]
    assert target.startswith(f"{peer.upstream.issuer}/session/end")
    query = parse_qs(urlsplit(target).query)
    assert query["id_token_hint"] == [upstream.id_token]
    assert query["post_logout_redirect_uri"] == [f"{peer.broker}/logout/upstream/return"]
    assert query["client_id"] == [BROKER_CLIENT] and query["state"][0]
    assert peer.services.sso.by_sid(sso.sid) is None  # the broker session ended first
    final = _confirm_upstream_logout(peer, browser, target)
    assert final.status_code == 200 and "You have signed out of the London Supercloud" in final.text, final.text[:800]
    assert not _upstream_has_session(peer, browser)
    outcomes = [(r.outcome, r.details.get("sid")) for r in _events(peer, "upstream_signout")]
    assert ("redirected", sso.sid) in outcomes and ("success", sso.sid) in outcomes


def test_the_return_from_the_upstream_is_taken_once(peer: World) -> None:
    browser, sso = _sign_in(peer)
    page = browser.get(f"{peer.broker}/logout", timeout=10)
    out = browser.post(f"{peer.broker}/logout", data={"csrf_token": csrf_token(page.text)}, allow_redirects=False, timeout=10)
    state = parse_qs(urlsplit(out.headers["Location"]).query)["state"][0]
    first = browser.get(f"{peer.broker}/logout/upstream/return", params={"state": state}, timeout=10)
    again = browser.get(f"{peer.broker}/logout/upstream/return", params={"state": state}, timeout=10)
    assert first.status_code == 200 and again.status_code == 200  # a page either way, never an error or a redirect
    outcomes = [r.outcome for r in _events(peer, "upstream_signout")][-2:]
    assert outcomes == ["success", "failure"]


# --- theirs to ours: back-channel logout ---------------------------------------------------------------


def test_signing_out_at_the_upstream_ends_the_broker_session(peer: World) -> None:
    browser, sso = _sign_in(peer)
    other_browser, other = _sign_in(peer, "nurse@nhs.test")
    upstream = _upstream_record(peer, sso.sid)
    _confirm_upstream_logout(peer, browser, f"{peer.upstream.issuer}/session/end")
    assert peer.services.sso.by_sid(sso.sid) is None
    assert peer.services.sso.find(browser.cookies.get("supercloud-session")) is None
    assert peer.services.sso.by_sid(other.sid) is not None  # another person's session is untouched
    record = [r for r in _events(peer, "upstream_backchannel_logout") if r.outcome == "success"][-1]
    assert record.details["upstream_sid"] == upstream.session_id and record.details["sessions_ended"] == 1
    signout = [r for r in _events(peer, "signout") if r.details.get("sid") == sso.sid or sso.sid in json.dumps(r.details)]
    assert signout, "ending the session is audited as a sign-out (reason upstream_logout)"


def _mint(world: World, **spec: Any) -> str:
    response = requests.post(f"{world.upstream.issuer}/test/logout-token", data=json.dumps(spec), timeout=5)
    response.raise_for_status()
    return response.json()["logout_token"]


def _post(world: World, token: str, source: str = "nhs-cis2") -> requests.Response:
    return requests.post(f"{world.broker}/login/backchannel-logout/{source}", data={"logout_token": token}, timeout=10)


ATTACKS = {
    "rogue key, same kid": ({"sign": "rogue"}, "signature"),
    "alg none": ({"sign": "none"}, "algorithm 'none' is not allowed"),
    "HS256 keyed with the public key": ({"sign": "hs256-public"}, "algorithm 'HS256' is not allowed"),
    "nonce present": ({"set": {"nonce": "n-0123456789abcdef"}}, "must not carry a nonce"),
    "another audience": ({"client_id": "someone-else"}, "aud"),
    "another issuer": ({"set": {"iss": "http://127.0.0.1:9/evil"}}, "issuer"),
    "no events claim": ({"unset": ["events"]}, "events lacks the back-channel logout event"),
    "wrong event": ({"set": {"events": {"http://schemas.openid.net/event/other": {}}}}, "events lacks"),
    "no jti": ({"unset": ["jti"]}, "jti missing"),
    "issued long ago": ({"set": {"iat": 1_000_000_000, "exp": 4_000_000_000}}, "issued too long ago"),
    "expired": ({"set": {"exp": 1_000_000_000}}, "expired"),
    "typed as an ID token": ({"typ": "JWT"}, "not logout+jwt"),
    "unknown sid": ({"sid": "no-such-upstream-session"}, "names no session"),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_a_bad_logout_token_is_refused_and_the_session_stays(peer: World, name: str) -> None:
    _, sso = _sign_in(peer)
    upstream = _upstream_record(peer, sso.sid)
    spec, reason = ATTACKS[name]
    token = _mint(peer, **{"client_id": BROKER_CLIENT, "sub": upstream.subject, "sid": upstream.session_id, **spec})
    response = _post(peer, token)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert response.headers["Cache-Control"] == "no-store"
    assert peer.services.sso.by_sid(sso.sid) is not None
    record = _events(peer, "upstream_backchannel_logout")[-1]
    assert record.outcome == "failure" and reason.lower() in record.details["reason"].lower(), record.details


def test_a_valid_logout_token_works_once_and_its_replay_is_refused(peer: World) -> None:
    _, sso = _sign_in(peer)
    upstream = _upstream_record(peer, sso.sid)
    token = _mint(peer, client_id=BROKER_CLIENT, sub=upstream.subject, sid=upstream.session_id)
    assert _post(peer, token, source="no-such-source").status_code == 400  # for another source: refused
    assert _post(peer, token).status_code == 200
    assert peer.services.sso.by_sid(sso.sid) is None
    replay = _post(peer, token)
    assert replay.status_code == 400
    assert "replayed" in _events(peer, "upstream_backchannel_logout")[-1].details["reason"]


def test_a_logout_token_for_another_persons_upstream_session_ends_nothing(peer: World) -> None:
    _, consultant = _sign_in(peer)
    _, nurse = _sign_in(peer, "nurse@nhs.test")
    upstream = _upstream_record(peer, consultant.sid)
    token = _mint(peer, client_id=BROKER_CLIENT, sub=_upstream_record(peer, nurse.sid).subject, sid=upstream.session_id)
    assert _post(peer, token).status_code == 400  # sid of one person, sub of another: no session matches both
    assert peer.services.sso.by_sid(consultant.sid) is not None and peer.services.sso.by_sid(nurse.sid) is not None


# --- the upstream's authentication lifetime ------------------------------------------------------------


def test_the_broker_asks_max_age_and_refuses_an_older_authentication(peer: World) -> None:
    browser = requests.Session()
    page = browser.get(f"{peer.broker}/login", timeout=10)
    started = browser.post(f"{peer.broker}/login", data={"csrf_token": csrf_token(page.text), "email": "consultant@nhs.test"},
                           allow_redirects=False, timeout=10)
    assert parse_qs(urlsplit(started.headers["Location"]).query)["max_age"] == [str(MAX_AGE)]
    peer.upstream.tamper(id_token={"set": {"auth_time": int(time.time()) - MAX_AGE - 600}})
    refused = follow(browser, started.headers["Location"])
    assert refused.status_code == 400 and "We could not sign you in" in refused.text
    last = [r for r in peer.services.audit.records() if r.event == "signin"][-1]
    # CIS2 always asks prompt=login as well, so the re-authentication check names it first.
    assert "auth_time" in last.details["reason"] and last.outcome == "failure"


def test_when_the_upstream_authentication_lapses_the_person_authenticates_there_again(peer: World) -> None:
    from tests.support.flask_flow import authorize_params, pkce_pair
    from broker.storage.models import SsoSessionRow

    browser, sso = _sign_in(peer)
    first = _upstream_record(peer, sso.sid)
    # The upstream's authentication lapses: the broker capped the session at not_after; move it into the past
    # as the clock would, rather than wait five minutes.
    with peer.services.db.begin() as session:
        session.get(SsoSessionRow, sso.sid).expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    _, challenge = pkce_pair()
    again = browser.get(f"{peer.broker}/authorize", params=authorize_params(challenge), allow_redirects=False, timeout=10)
    assert again.is_redirect and again.headers["Location"].endswith("/login")  # no silent reuse of the lapsed session
    time.sleep(1.1)  # auth_time has one-second resolution: the new authentication must be visibly later
    _, renewed = _sign_in(peer)
    assert renewed.sid != sso.sid
    assert _upstream_record(peer, renewed.sid).authenticated_at > first.authenticated_at


def _app_tokens(world: World, email: str = "nurse@nhs.test") -> tuple[requests.Session, dict[str, Any]]:
    """An application's code flow through the broker and the upstream; return (browser, token response)."""
    from tests.support.flask_flow import authorize_params, pkce_pair

    browser = requests.Session()
    verifier, challenge = pkce_pair()
    first = browser.get(f"{world.broker}/authorize", params=authorize_params(challenge), allow_redirects=False, timeout=10)
    assert first.is_redirect
    page = browser.get(f"{world.broker}/login", timeout=10)
    started = browser.post(f"{world.broker}/login", data={"csrf_token": csrf_token(page.text), "email": email},
                           allow_redirects=False, timeout=10)
    done = follow(browser, started.headers["Location"], stop_prefix=TEST_REDIRECT_URI)
    code = parse_qs(urlsplit(done.headers["Location"]).query)["code"][0]
    tokens = requests.post(f"{world.broker}/token", timeout=10, auth=("discharge-hub", SECRET), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": TEST_REDIRECT_URI, "code_verifier": verifier})
    assert tokens.status_code == 200, tokens.text
    return browser, tokens.json()


SECRET = "logout-world-client-secret-0123456789abcdef"


def _refresh(world: World, token: str) -> requests.Response:
    return requests.post(f"{world.broker}/token", timeout=10, auth=("discharge-hub", SECRET),
                         data={"grant_type": "refresh_token", "refresh_token": token})


def test_an_applications_refresh_token_ends_with_the_upstream_session(peer: World) -> None:
    browser2, tokens2 = _app_tokens(peer)
    sso = peer.services.sso.find(browser2.cookies.get("supercloud-session"))
    upstream = _upstream_record(peer, sso.sid)
    token = _mint(peer, client_id=BROKER_CLIENT, sub=upstream.subject, sid=upstream.session_id)
    assert _post(peer, token).status_code == 200  # the upstream says the person signed out there
    refused = _refresh(peer, tokens2["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


def test_a_refresh_token_does_not_outlive_the_upstream_authentication(peer: World) -> None:
    from broker.storage.models import SsoSessionRow

    browser, tokens = _app_tokens(peer)
    first = _refresh(peer, tokens["refresh_token"])
    assert first.status_code == 200, first.text
    sso = peer.services.sso.find(browser.cookies.get("supercloud-session"))
    with peer.services.db.begin() as session:  # the upstream's max age passes (the cap the broker set)
        session.get(SsoSessionRow, sso.sid).expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    refused = _refresh(peer, first.json()["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


def test_a_generic_upstream_refuses_an_authentication_older_than_max_age(peer: World, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Without CIS2's prompt=login, max_age alone must make the upstream authenticate again."""
    from config.oidc_source import OidcSourceConfig
    from federation.errors import FederationError
    from federation.sources import UpstreamRequest
    from federation.upstream_oidc.build import build_oidc_source

    monkeypatch.setenv("GENERIC_DIRECT_SECRET", GENERIC_SECRET)
    cfg = OidcSourceConfig.model_validate({
        "type": "oidc", "id": "generic-direct", "issuer": peer.upstream.issuer, "client_id": "generic-direct",
        "client_auth_method": "client_secret_post", "client_secret": {"env": "GENERIC_DIRECT_SECRET"},
        "scopes": ["openid", "profile", "email"], "claims": {"optional": ["name", "email"]},
        "session_max_age_seconds": MAX_AGE})
    cfg.client_secret.resolve(Path("."))
    source = build_oidc_source(cfg, "nhs", {}, production=False)

    def direct() -> tuple[dict[str, str], dict[str, Any], str]:
        started = source.start(UpstreamRequest(callback_url=DIRECT, login_hint="consultant@nhs.test"))
        response = follow(requests.Session(), started.url, stop_prefix=DIRECT)
        params = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}
        return params, dict(started.state), started.url

    params, state, url = direct()
    assert parse_qs(urlsplit(url).query)["max_age"] == [str(MAX_AGE)] and "prompt" not in parse_qs(urlsplit(url).query)
    identity, upstream = source.finish_session(params, state, DIRECT)
    assert upstream.not_after == upstream.authenticated_at + dt.timedelta(seconds=MAX_AGE)
    peer.upstream.tamper(id_token={"set": {"auth_time": int(time.time()) - MAX_AGE - 600}})
    params, state, _ = direct()
    with pytest.raises(FederationError, match="older than max_age"):
        source.finish_session(params, state, DIRECT)


def test_a_missing_or_repeated_logout_token_is_refused_and_audited(peer: World) -> None:
    url = f"{peer.broker}/login/backchannel-logout/nhs-cis2"
    token = _mint(peer, client_id=BROKER_CLIENT, sub="555000000001", sid="whatever")
    for data in ({}, [("logout_token", token), ("logout_token", token)]):
        response = requests.post(url, data=data, timeout=10)
        assert response.status_code == 400 and response.json()["error"] == "invalid_request"
        record = _events(peer, "upstream_backchannel_logout")[-1]
        assert record.outcome == "failure" and "not a compact JWS" in record.details["reason"]


def test_ods_codes_changed_by_an_administrator_place_cis2_people_at_once(peer: World) -> None:
    admin = peer.services.organisations
    _, before = _sign_in(peer)
    assert before.identity.organisation == "royal-free"  # the selected role's ODS code RAL
    try:
        admin.update("royal-free", {"ods_codes": []}, actor="admin:test")
        admin.update("uclh", {"ods_codes": ["RRV", "RAL"]}, actor="admin:test")
        _, after = _sign_in(peer)
        assert after.identity.organisation == "uclh"
    finally:
        admin.update("uclh", {"ods_codes": ["RRV"]}, actor="admin:test")
        admin.update("royal-free", {"ods_codes": ["RAL"]}, actor="admin:test")
