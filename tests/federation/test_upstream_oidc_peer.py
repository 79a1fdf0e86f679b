"""Upstream OIDC and the NHS CIS2 profile against a real peer: node oidc-provider 9 as CIS2.

The broker is served over real HTTP (so the peer fetches the broker's /jwks.json to verify
our private_key_jwt client assertions) and a ``requests.Session`` plays the browser across
both. Adversarial answers come from the real peer, tampered once per test (see
tests/node/oidc_upstream.mjs).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml

from config import load_settings
from config.oidc_source import OidcSourceConfig
from federation.errors import FederationError, FederationErrorCode
from federation.identity import AssuranceLevel
from federation.sources import UpstreamRequest
from federation.upstream_oidc.build import build_oidc_source
from federation.upstream_oidc.source import OidcUpstream
from federation.keys import MasterKey
from tests.peers.oidc_upstream import OidcUpstreamPeer, follow, served_broker, start_oidc_upstream
from tests.support.databases import fresh_database
from tests.support.http_login import csrf_token
from tests.support.live import free_port
from tests.support.settings import LONDON_BUNDLE, TEST_REDIRECT_URI, demo_organisations

pytestmark = pytest.mark.peer("node")

BROKER_CLIENT = "supercloud-broker"
DIRECT = "http://127.0.0.1:9/direct"  # callback for tests that drive a source without the broker
POST_SECRET = "cis2-post-secret-0123456789abcdefghij"
ODS_INDEX = {"RAL": "royal-free", "RRV": "uclh"}
CIS2_ATTRIBUTES = ["name", "given_name", "family_name", "email", "gmc_id", "nmc_id", "uid", "ods_code", "role_name",
                   "selected_role_id", "associated_ods_codes", "nhs_user_id", "id_assurance_level", "upstream_amr"]
# What a trust declares (federation.scoping): it accepts CIS2, which may assert national roles and these attributes.
TRUSTS_CIS2 = {"accepts_sources": ["nhs-cis2"], "asserts_national_roles": True, "authoritative_attributes": CIS2_ATTRIBUTES,
               "memberships": ["NHS", "London health organisations"]}


@dataclasses.dataclass
class World:
    """A broker served over HTTP with an NHS CIS2 source pointing at the peer."""

    broker: str
    upstream: OidcUpstreamPeer
    services: Any

    def source(self, **overrides: Any) -> OidcUpstream:
        """A source like the broker's (private_key_jwt with the broker's key ring), with overrides."""
        document = {"type": "nhs_cis2", "id": "nhs-cis2-direct", "issuer": self.upstream.issuer, "client_id": BROKER_CLIENT,
                    **overrides}
        cfg = OidcSourceConfig.model_validate(document)
        if cfg.client_secret is not None:
            cfg.client_secret.resolve(Path("."))
        source = build_oidc_source(cfg, "nhs", ODS_INDEX, production=False)
        source.use_signing_keys(self.services.keyring)
        return source

    def sign_in_direct(self, source: OidcUpstream, email: str | None = "consultant@nhs.test",
                       **request: Any) -> tuple[dict[str, str], dict[str, Any]]:
        """Start at ``source``, let the peer authenticate, return (callback params, kept state)."""
        started = source.start(UpstreamRequest(callback_url=DIRECT, login_hint=email, **request))
        response = follow(requests.Session(), started.url, stop_prefix=DIRECT)
        location = response.headers.get("Location", "")
        assert location.startswith(DIRECT), (response.status_code, response.text[:500], self.upstream.log())
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}, dict(started.state)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The broker and the CIS2 stand-in, once per test session (per xdist worker)."""
    from broker.bootstrap import initialise
    from broker.services import build_services
    from broker.web.app import create_app

    folder = tmp_path_factory.mktemp("cis2")
    broker_port, upstream_port = free_port(), free_port()
    broker = f"http://127.0.0.1:{broker_port}"
    upstream_issuer = f"http://127.0.0.1:{upstream_port}"
    with pytest.MonkeyPatch.context() as env, fresh_database(folder) as database_url:
        env.setenv("CIS2_WORLD_MASTER_KEY", MasterKey.generate_text())
        env.setenv("CIS2_WORLD_CLIENT_SECRET", "cis2-world-client-secret-0123456789abcdef")
        organisations = [o for o in demo_organisations() if o["id"] != "nhs"] + [
            {"id": "nhs", "name": "NHS (trusts and GP practices)", "kind": "health", "domains": ["nhs.test"],
             **{k: v for k, v in TRUSTS_CIS2.items() if k != "accepts_sources"},
             "sources": [{"type": "nhs_cis2", "id": "nhs-cis2", "display_name": "NHS smartcard (CIS2)",
                          "issuer": upstream_issuer, "client_id": BROKER_CLIENT}]},
            {"id": "royal-free", "name": "Royal Free London NHS Foundation Trust", "kind": "health", "ods_codes": ["RAL"],
             **TRUSTS_CIS2},
            {"id": "uclh", "name": "University College London Hospitals", "kind": "health", "ods_codes": ["RRV"],
             **TRUSTS_CIS2},
        ]
        document = {
            "broker": {"issuer": broker, "environment": "development", "database_url": database_url,
                       "master_key": {"env": "CIS2_WORLD_MASTER_KEY"}},
            "organisations": organisations,
            "applications": [{"client_id": "discharge-hub", "name": "Hospital Discharge Hub",
                              "redirect_uris": [TEST_REDIRECT_URI], "client_secret": {"env": "CIS2_WORLD_CLIENT_SECRET"}}],
            "policies": {"bundle": str(LONDON_BUNDLE)},
        }
        path = folder / "broker.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        settings = load_settings(path)
        initialise(settings)
        services = build_services(settings)
        app = create_app(settings, services=services)
        clients = [
            {"client_id": BROKER_CLIENT, "token_endpoint_auth_method": "private_key_jwt",
             "token_endpoint_auth_signing_alg": "RS256", "jwks_uri": f"{broker}/jwks.json",
             "redirect_uris": [f"{broker}/login/callback/nhs-cis2", DIRECT],
             "grant_types": ["authorization_code"], "response_types": ["code"]},
            {"client_id": "supercloud-post", "client_secret": POST_SECRET, "token_endpoint_auth_method": "client_secret_post",
             "redirect_uris": [DIRECT], "grant_types": ["authorization_code"], "response_types": ["code"]},
            {"client_id": "supercloud-basic", "client_secret": POST_SECRET, "token_endpoint_auth_method": "client_secret_basic",
             "redirect_uris": [DIRECT], "grant_types": ["authorization_code"], "response_types": ["code"]},
        ]
        with served_broker(app, broker_port) as url:
            upstream = start_oidc_upstream(folder, clients, port=upstream_port)
            try:
                yield World(broker=url, upstream=upstream, services=services)
            finally:
                upstream.stop()
                services.engine.dispose()


@pytest.fixture
def peer(world: World) -> Iterator[World]:
    """The world, with any unused tampering cleared after each test."""
    yield world
    world.upstream.reset()


def _browser_sign_in(world: World, email: str) -> tuple[requests.Session, requests.Response]:
    browser = requests.Session()
    page = browser.get(f"{world.broker}/login", timeout=10)
    response = browser.post(f"{world.broker}/login", data={"csrf_token": csrf_token(page.text), "email": email},
                            allow_redirects=False, timeout=10)
    assert response.is_redirect and response.headers["Location"].startswith(world.upstream.issuer)
    return browser, follow(browser, response.headers["Location"])


def _session_identity(world: World, browser: requests.Session):  # type: ignore[no-untyped-def]
    session = world.services.sso.find(browser.cookies.get("supercloud-session"))
    assert session is not None
    return session.identity


def _last_signin(world: World) -> Any:
    return [r for r in world.services.audit.records() if r.event == "signin"][-1]


# --- through the broker --------------------------------------------------------------------


def test_nhs_consultant_signs_in_through_cis2_with_aal3_role_and_trust(peer: World) -> None:
    browser, page = _browser_sign_in(peer, "consultant@nhs.test")
    assert page.status_code == 200 and "Dr Ada Okafor is signed in" in page.text, page.text[:2000]
    identity = _session_identity(peer, browser)
    assert identity.subject.issuer == peer.upstream.issuer and identity.subject.subject == "555000000001"
    assert identity.organisation == "royal-free"  # the active role's ODS code RAL, declared by the trust
    assert identity.roles == ("S0010:G0020:R8000",)  # the selected role only, not the RRV admin role
    assert identity.value("activity_codes") == ("B0172", "B0264")
    assert identity.authn.assurance is AssuranceLevel.AAL3 and "sc" in identity.authn.methods
    assert identity.authn.source == "nhs-cis2"
    assert identity.text("gmc_id") == "7012345" and identity.text("name") == "Dr Ada Okafor"
    assert identity.attributes["gmc_id"].source == "nhs-cis2"
    assert identity.value("associated_ods_codes") == ("RAL", "RRV")
    record = _last_signin(peer)
    assert (record.outcome, record.details["assurance"], record.details["source"]) == ("success", "AAL3", "nhs-cis2")


def test_an_application_receives_a_code_after_cis2_sign_in(peer: World) -> None:
    from tests.support.flask_flow import authorize_params, pkce_pair

    browser = requests.Session()
    _, challenge = pkce_pair()
    params = authorize_params(challenge)
    first = browser.get(f"{peer.broker}/authorize", params=params, allow_redirects=False, timeout=10)
    assert first.is_redirect
    page = browser.get(f"{peer.broker}/login", timeout=10)
    started = browser.post(f"{peer.broker}/login", data={"csrf_token": csrf_token(page.text), "email": "nurse@nhs.test"},
                           allow_redirects=False, timeout=10)
    done = follow(browser, started.headers["Location"], stop_prefix=TEST_REDIRECT_URI)
    location = done.headers.get("Location", "")
    assert location.startswith(TEST_REDIRECT_URI) and "code=" in location, (done.status_code, done.text[:1000])
    identity = _session_identity(peer, browser)
    assert identity.authn.assurance is AssuranceLevel.AAL2 and identity.organisation == "uclh"
    assert identity.roles == ("S0010:G0020:R8001",)


def _authorize(world: World, email: str) -> tuple[requests.Session, requests.Response]:
    """An application's request, then the email page, then wherever the upstream and policies lead."""
    from tests.support.flask_flow import authorize_params, pkce_pair

    browser = requests.Session()
    _, challenge = pkce_pair()
    first = browser.get(f"{world.broker}/authorize", params=authorize_params(challenge), allow_redirects=False, timeout=10)
    assert first.is_redirect
    page = browser.get(f"{world.broker}/login", timeout=10)
    started = browser.post(f"{world.broker}/login", data={"csrf_token": csrf_token(page.text), "email": email},
                           allow_redirects=False, timeout=10)
    return browser, follow(browser, started.headers["Location"], stop_prefix=TEST_REDIRECT_URI)


def test_discharge_hub_policy_steps_an_aal1_clinician_up_at_cis2(peer: World) -> None:
    browser, done = _authorize(peer, "locum@nhs.test")
    location = done.headers.get("Location", "")
    assert location.startswith(TEST_REDIRECT_URI) and "code=" in location, (done.status_code, done.text[:1000])
    redirects = [r for r in peer.services.audit.records() if r.event == "upstream_redirect"]
    assert len(redirects) >= 2  # the sign-in, then the step-up
    identity = _session_identity(peer, browser)
    assert identity.authn.assurance is AssuranceLevel.AAL2 and identity.roles == ("S0010:G0020:R8000",)
    assert identity.organisation == "royal-free"


@pytest.mark.parametrize("email", ["privacy-officer@nhs.test", "no-role@nhs.test"])
def test_discharge_hub_policy_refuses_nhs_staff_without_a_clinical_role(peer: World, email: str) -> None:
    _, done = _authorize(peer, email)
    assert not done.headers.get("Location", "").startswith(TEST_REDIRECT_URI)
    decision = [r for r in peer.services.audit.records() if r.event == "policy_decision"][-1]
    assert decision.outcome == "deny"


def test_step_up_goes_back_to_cis2_with_acr_values_and_prompt_login(peer: World) -> None:
    browser, page = _browser_sign_in(peer, "nurse@nhs.test")
    assert _session_identity(peer, browser).authn.assurance is AssuranceLevel.AAL2
    step_up = browser.get(f"{peer.broker}/login/upstream/nhs-cis2", params={"min_assurance": "3"},
                          allow_redirects=False, timeout=10)
    query = parse_qs(urlsplit(step_up.headers["Location"]).query)
    assert query["acr_values"] == ["AAL3_ANY"] and query["prompt"] == ["login"]
    finished = follow(browser, step_up.headers["Location"])
    assert finished.status_code == 200, finished.text[:1000]
    identity = _session_identity(peer, browser)
    assert identity.authn.assurance is AssuranceLevel.AAL3 and "hwk" in identity.authn.methods


def test_an_upstream_that_cannot_reach_the_level_asked_is_refused(peer: World) -> None:
    browser, _ = _browser_sign_in(peer, "no-role@nhs.test")
    step_up = browser.get(f"{peer.broker}/login/upstream/nhs-cis2", params={"min_assurance": "3"},
                          allow_redirects=False, timeout=10)
    refused = follow(browser, step_up.headers["Location"])
    assert refused.status_code == 400 and "We could not sign you in" in refused.text
    assert "AAL1, AAL3 was asked for" in _last_signin(peer).details["reason"]


def test_a_person_with_no_role_signs_in_with_no_roles(peer: World) -> None:
    browser, page = _browser_sign_in(peer, "no-role@nhs.test")
    assert "Nell Norole is signed in" in page.text
    identity = _session_identity(peer, browser)
    assert identity.roles == () and identity.organisation == "nhs" and identity.value("activity_codes") is None
    assert identity.authn.assurance is AssuranceLevel.AAL1
    assert identity.text("id_assurance_level") == "2"


def test_a_replayed_callback_is_refused(peer: World) -> None:
    browser = requests.Session()
    page = browser.get(f"{peer.broker}/login", timeout=10)
    started = browser.post(f"{peer.broker}/login", data={"csrf_token": csrf_token(page.text), "email": "consultant@nhs.test"},
                           allow_redirects=False, timeout=10)
    callback_prefix = f"{peer.broker}/login/callback/"
    at_callback = follow(browser, started.headers["Location"], stop_prefix=callback_prefix)
    callback = at_callback.headers["Location"]
    assert browser.get(callback, allow_redirects=False, timeout=10).status_code == 302
    replay = browser.get(callback, allow_redirects=False, timeout=10)
    assert replay.status_code == 400 and "Start again" in replay.text
    assert _last_signin(peer).outcome == "failure"


def test_a_token_endpoint_failure_is_refused_and_audited(peer: World) -> None:
    peer.upstream.tamper(token={"status": 500})
    _, page = _browser_sign_in(peer, "consultant@nhs.test")
    # A server error at the upstream is an outage to the person, not a failed sign-in.
    assert page.status_code == 400 and "is unavailable at the moment" in page.text
    assert "token endpoint answered HTTP 500" in _last_signin(peer).details["reason"]


# --- a source driven directly against the peer ---------------------------------------------


def test_privacy_officer_role_and_activity(peer: World) -> None:
    source = peer.source()
    params, state = peer.sign_in_direct(source, "privacy-officer@nhs.test")
    identity = source.finish(params, state, DIRECT)
    assert identity.roles == ("S8000:G8001:R0001",) and identity.value("activity_codes") == ("B0015",)
    assert identity.organisation == "royal-free" and identity.text("ods_code") == "RAL"


def test_the_authentication_request_is_cis2_shaped(peer: World) -> None:
    started = peer.source().start(UpstreamRequest(callback_url=DIRECT, login_hint="nurse@nhs.test",
                                                  min_assurance=AssuranceLevel.AAL2))
    query = {k: v[0] for k, v in parse_qs(urlsplit(started.url).query).items()}
    assert query["scope"].split() == ["openid", "profile", "email", "nhsperson", "associatedorgs", "nationalrbacaccess",
                                      "professionalmemberships", "organisationalmemberships", "selectedrole"]
    assert query["prompt"] == "login" and query["acr_values"] == "AAL2_OR_AAL3_ANY"
    assert query["code_challenge_method"] == "S256" and query["login_hint"] == "nurse@nhs.test"
    assert query["state"] == started.state["state"] and query["nonce"] == started.state["nonce"]
    assert "code_verifier" not in query and started.state["code_verifier"] not in started.url


@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic"])
def test_client_secrets_authenticate_too(peer: World, method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIS2_POST_SECRET", POST_SECRET)
    client = "supercloud-post" if method == "client_secret_post" else "supercloud-basic"
    source = peer.source(type="oidc" if method == "client_secret_basic" else "nhs_cis2", client_id=client,
                         client_auth_method=method, client_secret={"env": "CIS2_POST_SECRET"},
                         **({"scopes": ["openid", "profile", "email"]} if method == "client_secret_basic" else {}))
    params, state = peer.sign_in_direct(source, "nurse@nhs.test")
    identity = source.finish(params, state, DIRECT)
    assert identity.subject.subject == "555000000002"


def _refused(world: World, reason: str, *, source: OidcUpstream | None = None, email: str = "consultant@nhs.test",
             code: FederationErrorCode = FederationErrorCode.INVALID_TOKEN, **tamper: Any) -> None:
    source = source or world.source()
    params, state = world.sign_in_direct(source, email)
    if tamper:
        world.upstream.tamper(**tamper)
    with pytest.raises(FederationError) as caught:
        source.finish(params, state, DIRECT)
    assert caught.value.code is code, caught.value
    assert re.search(reason, caught.value.reason), caught.value.reason


def test_an_issuer_that_differs_only_by_a_port_or_slash_is_refused(peer: World) -> None:
    issuer = peer.upstream.issuer
    for similar in (issuer + "/", issuer + ":443", issuer.replace("127.0.0.1", "localhost")):
        _refused(peer, "(?i)issuer", id_token={"set": {"iss": similar}})


def test_a_configured_issuer_must_match_discovery_exactly(peer: World) -> None:
    port = urlsplit(peer.upstream.issuer).port
    for configured in (peer.upstream.issuer + "/", f"http://localhost:{port}"):
        source = peer.source(issuer=configured, discovery_url=f"{peer.upstream.issuer}/.well-known/openid-configuration")
        with pytest.raises(FederationError) as caught:
            source.start(UpstreamRequest(callback_url=DIRECT))
        assert caught.value.code is FederationErrorCode.SOURCE_UNAVAILABLE and "expected exactly" in caught.value.reason


def test_wrong_audience_is_refused(peer: World) -> None:
    _refused(peer, "(?i)audience|not for this client", id_token={"set": {"aud": "another-client"}})


def test_extra_audience_and_foreign_azp_are_refused(peer: World) -> None:
    _refused(peer, "untrusted additional audiences", id_token={"set": {"aud": [BROKER_CLIENT, "another-client"]}})
    _refused(peer, "azp", id_token={"set": {"azp": "another-client"}})


def test_bad_nonce_is_refused(peer: World) -> None:
    _refused(peer, "nonce mismatch", id_token={"set": {"nonce": "guessed"}})
    _refused(peer, "nonce mismatch", id_token={"unset": ["nonce"]})


def test_expired_and_future_tokens_are_refused(peer: World) -> None:
    now = int(time.time())
    _refused(peer, "(?i)expired", id_token={"set": {"exp": now - 3600, "iat": now - 4000}})
    _refused(peer, "iat is in the future", id_token={"set": {"iat": now + 3600, "exp": now + 7200}})
    _refused(peer, "issued too long ago", id_token={"set": {"iat": now - 3000, "exp": now + 600}})


@pytest.mark.parametrize(
    ("sign", "reason"),
    [
        ("none", "algorithm 'none' is not allowed"),
        ("hs256-public", "algorithm 'HS256' is not allowed"),
        ("rogue", "unknown signing key"),
        ("rogue-jwk-header", "unknown signing key"),
    ],
)
def test_forged_signatures_are_refused(peer: World, sign: str, reason: str) -> None:
    _refused(peer, reason, id_token={"sign": sign})


def test_a_rogue_key_named_by_the_real_kid_or_embedded_in_the_header_is_refused(peer: World) -> None:
    kid = requests.get(f"{peer.upstream.issuer}/jwks", timeout=5).json()["keys"][0]["kid"]
    _refused(peer, "(?i)signature", id_token={"sign": "rogue-jwk-header", "kid": kid})


def test_an_algorithm_outside_the_upstreams_allowlist_is_refused(peer: World) -> None:
    _refused(peer, "unknown signing key|not allowed", source=peer.source(id_token_signing_algs=["ES256"]))


def test_userinfo_for_another_subject_is_refused(peer: World) -> None:
    _refused(peer, "userinfo sub does not match", userinfo={"set": {"sub": "555000000002"}})


def test_a_missing_required_claim_is_refused(peer: World) -> None:
    _refused(peer, "required claim 'name' is missing", email="incomplete@nhs.test")
    _refused(peer, "required claim 'nhsid_useruid' is missing", userinfo={"unset": ["nhsid_useruid"]})


def test_a_selected_role_the_person_does_not_hold_is_refused(peer: World) -> None:
    _refused(peer, "selected_roleid names no single role", id_token={"set": {"selected_roleid": "999"}})


def test_token_endpoint_errors(peer: World) -> None:
    _refused(peer, "token endpoint refused the code: invalid_grant",
             token={"status": 400, "body": {"error": "invalid_grant"}})
    _refused(peer, "token endpoint answered HTTP 503", code=FederationErrorCode.SOURCE_UNAVAILABLE, token={"status": 503})


def test_a_code_is_redeemed_once(peer: World) -> None:
    source = peer.source()
    params, state = peer.sign_in_direct(source)
    source.finish(params, state, DIRECT)
    with pytest.raises(FederationError) as caught:
        source.finish(params, state, DIRECT)
    assert "invalid_grant" in caught.value.reason


def test_state_iss_and_callback_mismatches_are_refused(peer: World) -> None:
    source = peer.source()
    params, state = peer.sign_in_direct(source)
    for changed, reason in (({"state": "forged"}, "state mismatch"), ({"iss": peer.upstream.issuer + "/"}, "iss parameter"),
                            ({"iss": None}, "iss parameter")):
        tampered = {k: v for k, v in {**params, **changed}.items() if v is not None}
        with pytest.raises(FederationError, match=reason):
            source.finish(tampered, state, DIRECT)
    with pytest.raises(FederationError, match="callback URL differs"):
        source.finish(params, state, DIRECT + "/other")


def test_the_upstream_refusing_the_person_is_reported(peer: World) -> None:
    source = peer.source()
    started = source.start(UpstreamRequest(callback_url=DIRECT, login_hint="nobody@nhs.test"))
    response = follow(requests.Session(), started.url, stop_prefix=DIRECT)
    params = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}
    with pytest.raises(FederationError) as caught:
        source.finish(params, dict(started.state), DIRECT)
    assert caught.value.code is FederationErrorCode.ACCOUNT_NOT_ACTIVE and "login_required" in caught.value.reason


def test_tokens_and_secrets_never_reach_the_log(peer: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    source = peer.source(claims={"required": ["name"], "optional": []})
    params, state = peer.sign_in_direct(source)
    identity = source.finish(params, state, DIRECT)
    assert identity.roles == ()  # nhsid_nrbac_roles not trusted by this configuration: not used
    text = caplog.text
    assert "not used" in text and "nhsid_nrbac_roles" in text
    assert params["code"] not in text and state["code_verifier"] not in text and "eyJ" not in text


def test_upstream_down_shows_the_organisation_unavailable(settings_factory: Any) -> None:  # type: ignore[no-untyped-def]
    from broker.bootstrap import initialise
    from broker.services import build_services
    from broker.web.app import create_app

    document = settings_factory.document()
    for org in document["organisations"]:
        if org["id"] == "nhs":
            org["sources"] = [{"type": "nhs_cis2", "id": "nhs-cis2", "issuer": f"http://127.0.0.1:{free_port()}",
                               "client_id": BROKER_CLIENT, "http_timeout_seconds": 2}]
    settings = load_settings(settings_factory.write(document))
    initialise(settings)
    services = build_services(settings)
    try:
        client = create_app(settings, services=services).test_client()
        page = client.get("/login").get_data(as_text=True)
        response = client.post("/login", data={"csrf_token": csrf_token(page), "email": "ada@nhs.test"})
        assert "Sign-in for NHS (trusts and GP practices) is unavailable" in response.get_data(as_text=True)
        record = [r for r in services.audit.records() if r.event == "signin"][-1]
        assert record.details["source"] == "nhs-cis2" and "cannot reach" in record.details["reason"]
    finally:
        services.engine.dispose()


def test_the_organisation_comes_only_from_declared_health_ods_codes(peer: World) -> None:
    source = build_oidc_source(OidcSourceConfig.model_validate(
        {"type": "nhs_cis2", "id": "nhs-cis2-direct", "issuer": peer.upstream.issuer, "client_id": BROKER_CLIENT}),
        "nhs", {"RRV": "uclh"}, production=False)
    source.use_signing_keys(peer.services.keyring)
    params, state = peer.sign_in_direct(source)
    assert source.finish(params, state, DIRECT).organisation == "nhs"  # RAL not declared here: the source's own

