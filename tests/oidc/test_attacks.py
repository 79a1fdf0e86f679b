"""RFC 9700 (OAuth 2.0 Security BCP) and RFC 8725 (JWT BCP) attacks against the provider."""

from __future__ import annotations

import concurrent.futures
import time

import pytest

from federation import jose
from tests.oidc import jwt_tools
from tests.oidc.conftest import JWT_APP_KEY
from tests.oidc.helpers import (
    ACCESS_TOKEN_TYPE,
    ISSUER,
    TOKEN_EXCHANGE,
    audit_events,
    authorize,
    basic,
    form_post_fields,
    query,
    refresh,
    tokens_for,
    verify_id_token,
)
from tests.support.flask_flow import authorize_params, basic_auth, code_flow, exchange, pkce_pair
from tests.support.settings import TEST_REDIRECT_URI

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _userinfo(client, token: str) -> int:  # type: ignore[no-untyped-def]
    return client.get("/userinfo", headers={"Authorization": f"Bearer {token}"}).status_code


def _our_jwk(app, alg: str = "ES256") -> dict:  # type: ignore[no-untyped-def]
    return next(k for k in app.test_client().get("/jwks.json").get_json()["keys"] if k["alg"] == alg)


# --- code injection and reuse (RFC 9700 §4.5, §4.2.4) -----------------------------------


def test_code_injection_an_attacker_cannot_redeem_a_stolen_code_without_the_verifier(app, services) -> None:
    victim = app.test_client()
    code, _verifier, _ = code_flow(victim)
    attacker_verifier, _ = pkce_pair()
    response = exchange(app.test_client(), code, attacker_verifier)
    assert response.get_json()["error"] == "invalid_grant"
    assert ("token", "failure") in audit_events(services)


def test_code_injection_into_another_clients_session_is_refused(app) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    from tests.oidc.conftest import SECRETS

    response = client.post("/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": TEST_REDIRECT_URI,
                                           "code_verifier": verifier, "client_id": "post-app", "client_secret": SECRETS["POST_APP_SECRET"]})
    assert response.get_json()["error"] == "invalid_grant"


def test_code_reuse_is_refused_and_revokes(app, services) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    tokens = exchange(client, code, verifier).get_json()
    assert exchange(client, code, verifier).get_json()["error"] == "invalid_grant"
    assert _userinfo(client, tokens["access_token"]) == 401


def test_concurrent_redemption_of_one_code_has_one_winner(app) -> None:
    client = app.test_client()
    code, verifier, _ = code_flow(client)
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda _: exchange(app.test_client(), code, verifier).status_code, range(6)))
    assert statuses.count(200) == 1


# --- PKCE downgrade (RFC 9700 §4.8.2) ----------------------------------------------------


def test_pkce_downgrade_no_challenge_is_refused_at_authorization(app) -> None:
    response, _ = authorize(app.test_client(), code_challenge=None, code_challenge_method=None)
    assert query(response.headers["Location"])["error"] == "invalid_request"


def test_pkce_downgrade_plain_is_refused(app) -> None:
    verifier = "a" * 64
    response, _ = authorize(app.test_client(), code_challenge=verifier, code_challenge_method="plain")
    assert query(response.headers["Location"])["error"] == "invalid_request"


def test_pkce_downgrade_dropping_the_verifier_at_the_token_endpoint_is_refused(app) -> None:
    client = app.test_client()
    code, _, _ = code_flow(client)
    assert exchange(client, code, None).get_json()["error"] == "invalid_grant"


# --- redirect URI manipulation (RFC 9700 §4.1, §2.1: exact string matching) -------------------

REDIRECT_VARIANTS = [
    "http://127.0.0.1:8001/callback/evil",             # path suffix
    "http://127.0.0.1:8001/callbackx",                 # path prefix match
    "http://127.0.0.1:8001/",                          # parent path
    "http://127.0.0.1:8001/callback?next=https://attacker.test",  # added query
    "http://127.0.0.1:8001/Callback",                  # case of path
    "HTTP://127.0.0.1:8001/callback",                  # case of scheme
    "http://user@127.0.0.1:8001/callback",             # userinfo
    "http://127.0.0.1:8001@attacker.test/callback",    # userinfo that hides another host
    "http://127.0.0.1:8002/callback",                  # other port
    "http://127.0.0.1/callback",                       # default port
    "http://127.0.0.1:8001/callback/",                 # trailing slash
    "http://127.0.0.1:8001/call%62ack",                # percent-encoded character
    "http://127.0.0.1:8001/callback%2F..%2Fevil",      # encoded traversal
    "http://127.0.0.1:8001/callback/../evil",          # dot segments
    "http://127.0.0.1:8001/callback#fragment",         # fragment
    "https://127.0.0.1:8001/callback",                 # other scheme (https for http)
    "http://localhost:8001/callback",                  # other loopback name
    "http://127.0.0.1:8001/callback ",                 # trailing space
]


@pytest.mark.parametrize("uri", REDIRECT_VARIANTS)
def test_redirect_uri_variants_are_never_redirected_to(app, uri) -> None:
    response, _ = authorize(app.test_client(), redirect_uri=uri)
    assert response.status_code == 400 and "Location" not in response.headers


def test_http_variant_of_an_https_registration_is_refused(app, settings, services) -> None:
    services.clients.add("Secure app", ["https://app.example.test/cb"])
    new = [c for c in services.clients.all() if c.name == "Secure app"][0]
    response, _ = authorize(app.test_client(), client_id=new.client_id, redirect_uri="http://app.example.test/cb")
    assert response.status_code == 400 and "Location" not in response.headers


# --- mix-up (RFC 9700 §4.4, RFC 9207) ----------------------------------------------------------


def test_mix_up_every_authorization_response_names_the_issuer(app) -> None:
    client = app.test_client()
    ok_code = code_flow(client)[2]
    assert ok_code["iss"] == ISSUER
    error, _ = authorize(app.test_client(), prompt="none")
    assert query(error.headers["Location"])["iss"] == ISSUER
    bad, _ = authorize(app.test_client(), response_type="token")
    assert query(bad.headers["Location"])["iss"] == ISSUER
    posted, _ = authorize(client, response_mode="form_post")
    assert form_post_fields(posted.get_data(as_text=True))[1]["iss"] == ISSUER
    assert app.test_client().get("/.well-known/openid-configuration").get_json()["issuer"] == ISSUER


# --- state and nonce swap (RFC 9700 §4.7, OIDC Core §15.5.2) ---------------------------------------


def test_state_and_nonce_swap_each_code_is_bound_to_its_own_request(app, services) -> None:
    client = app.test_client()
    tokens_for(client)  # signed in
    verifier_a, challenge_a = pkce_pair()
    verifier_b, challenge_b = pkce_pair()
    a = query(client.get("/authorize", query_string=authorize_params(challenge_a, state="A", nonce="nonce-A")).headers["Location"])
    b = query(client.get("/authorize", query_string=authorize_params(challenge_b, state="B", nonce="nonce-B")).headers["Location"])
    assert a["state"] == "A" and b["state"] == "B"
    # Swapped: code of A with the verifier of B fails; each code gives its own nonce.
    assert exchange(client, a["code"], verifier_b).get_json()["error"] == "invalid_grant"
    tokens_b = exchange(client, b["code"], verifier_b).get_json()
    assert verify_id_token(services, tokens_b["id_token"])["nonce"] == "nonce-B"


# --- refresh token reuse and race (RFC 9700 §4.14) ------------------------------------------------


def test_refresh_reuse_revokes_the_family(app) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    rotated = refresh(client, tokens["refresh_token"]).get_json()
    assert refresh(client, tokens["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert refresh(client, rotated["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_parallel_refresh_race_exactly_one_wins(app) -> None:
    token = tokens_for(app.test_client())["refresh_token"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda _: refresh(app.test_client(), token).status_code, range(10)))
    assert statuses.count(200) == 1 and statuses.count(400) == 9


# --- token confusion --------------------------------------------------------------------------------


def test_id_token_used_as_access_token_is_refused_everywhere(app) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    assert _userinfo(client, tokens["id_token"]) == 401
    assert client.post("/introspect", data={"token": tokens["id_token"]}, headers=basic_auth()).get_json() == {"active": False}
    swapped = client.post("/token", data={"grant_type": TOKEN_EXCHANGE, "subject_token": tokens["id_token"],
                                          "subject_token_type": ACCESS_TOKEN_TYPE, "audience": "care-records-api"}, headers=basic_auth())
    assert swapped.get_json()["error"] == "invalid_grant"


def test_logout_token_or_refresh_token_used_as_access_token_is_refused(app) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    assert _userinfo(client, tokens["refresh_token"]) == 401


def test_a_token_for_another_resource_is_refused_at_userinfo(app) -> None:
    client = app.test_client()
    service = client.post("/token", data={"grant_type": "client_credentials", "resource": "care-records-api"},
                          headers=basic("service-a", "SERVICE_A_SECRET")).get_json()["access_token"]
    assert _userinfo(client, service) == 401


# --- algorithm and key confusion (RFC 8725 §2.1, §3.1–§3.2) -----------------------------------------


def test_alg_none_is_refused(app) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    header, claims = jwt_tools.parts(tokens["access_token"])
    assert _userinfo(client, jwt_tools.unsigned(claims, kid=header["kid"], typ="at+jwt")) == 401
    for alg in ("None", "NONE", "nOnE", ""):
        token = jwt_tools.unsigned(claims, alg=alg, kid=header["kid"], typ="at+jwt")
        assert jwt_tools.parts(token)[0]["alg"] == alg
        assert _userinfo(client, token) == 401
    _, id_claims = jwt_tools.parts(tokens["id_token"])
    hinted, _ = authorize(client, id_token_hint=jwt_tools.unsigned(id_claims))
    assert query(hinted.headers["Location"])["error"] == "invalid_request"
    assertion = jwt_tools.unsigned({"iss": "jwt-app", "sub": "jwt-app", "aud": ISSUER, "jti": "n1",
                                    "iat": int(time.time()), "exp": int(time.time()) + 60})
    response = client.post("/token", data={"grant_type": "authorization_code", "client_assertion_type": JWT_BEARER,
                                           "client_assertion": assertion})
    assert response.status_code == 401


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
@pytest.mark.parametrize("form", ["pem", "der", "openssh"])
def test_hs256_signed_with_our_public_key_is_refused(app, alg, form) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    _, claims = jwt_tools.parts(tokens["access_token"])
    jwk = _our_jwk(app, alg)
    secret = jwt_tools.public_key_forms(jwk)[form]
    forged = jwt_tools.sign_hs256(claims, secret, kid=jwk["kid"], typ="at+jwt")
    assert _userinfo(client, forged) == 401
    # and as a client assertion, keyed with the client's own registered public key
    client_secret = jwt_tools.public_key_forms(jwt_tools.public_jwk(JWT_APP_KEY, "k1"))[form]
    assertion = jwt_tools.sign_hs256({"iss": "jwt-app", "sub": "jwt-app", "aud": ISSUER, "jti": f"h-{alg}-{form}",
                                      "iat": int(time.time()), "exp": int(time.time()) + 60}, client_secret, kid="k1")
    assert client.post("/token", data={"grant_type": "authorization_code", "client_assertion_type": JWT_BEARER,
                                       "client_assertion": assertion}).status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        {"jwk": "ATTACKER"},
        {"jku": "https://attacker.test/jwks.json"},
        {"x5u": "https://attacker.test/cert.pem"},
        {"kid": "../../../../dev/null"},
        {"kid": "' OR '1'='1"},
        {"kid": ""},
        {"kid": None},
        {"x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]},
    ],
)
def test_attacker_keys_named_in_the_header_are_never_used(app, header) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    real_header, claims = jwt_tools.parts(tokens["access_token"])
    attacker = jwt_tools.ec_key()
    extra = {k: v for k, v in header.items() if v is not None}
    if extra.get("jwk") == "ATTACKER":
        extra["jwk"] = jwt_tools.public_jwk(attacker, "attacker")
    if "kid" not in header:
        extra["kid"] = real_header["kid"]  # name our real key: only the signature can give the forgery away
    forged = jwt_tools.sign_es256(claims, attacker, typ="at+jwt", **extra)
    assert _userinfo(client, forged) == 401


def test_a_token_signed_with_an_unpublished_kid_is_refused(app) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    _, claims = jwt_tools.parts(tokens["access_token"])
    assert _userinfo(client, jwt_tools.sign_es256(claims, jwt_tools.ec_key(), kid="unknown", typ="at+jwt")) == 401


def test_algorithm_substitution_between_our_own_keys_is_refused(app, services) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    _, claims = jwt_tools.parts(tokens["access_token"])
    rsa_kid = _our_jwk(app, "RS256")["kid"]
    # An ES256 signature presented under the kid of our RS256 key.
    forged = jose.sign(claims, services.keyring.current("ES256"), typ="at+jwt")
    h, p, s = forged.split(".")
    header = jwt_tools.parts(forged)[0] | {"kid": rsa_kid}
    swapped = f"{jwt_tools.b64(__import__('json').dumps(header).encode())}.{p}.{s}"
    assert _userinfo(client, swapped) == 401


# --- clock skew edges (30 s leeway) ----------------------------------------------------------------


@pytest.mark.parametrize(("exp_offset", "status"), [(-31 - 5, 401), (-10, 200), (600, 200)])
def test_access_token_expiry_edges(app, services, exp_offset, status) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    _, claims = jwt_tools.parts(tokens["access_token"])
    token = jose.sign({**claims, "exp": int(time.time()) + exp_offset}, services.keyring.current("ES256"), typ="at+jwt")
    assert _userinfo(client, token) == status


def test_not_yet_valid_tokens_are_refused(app, services) -> None:
    client = app.test_client()
    tokens = tokens_for(client)
    _, claims = jwt_tools.parts(tokens["access_token"])
    token = jose.sign({**claims, "nbf": int(time.time()) + 120}, services.keyring.current("ES256"), typ="at+jwt")
    assert _userinfo(client, token) == 401


@pytest.mark.parametrize(
    ("iat", "exp", "accepted"),
    [
        (-70, -10, True),     # expired 10 s ago: within the 30 s leeway
        (-100, -40, False),   # expired 40 s ago
        (3600, 3660, False),  # issued an hour in the future
        (0, 301, False),      # lives longer than 300 s
        (0, 300, True),
    ],
)
def test_client_assertion_time_edges(app, iat, exp, accepted) -> None:
    now = int(time.time())
    assertion = jwt_tools.client_assertion("jwt-app", JWT_APP_KEY, ISSUER, iat=now + iat, exp=now + exp)
    response = app.test_client().post("/token", data={"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER,
                                                      "client_assertion": assertion})
    # Authentication passing shows as unauthorized_client (jwt-app has no client_credentials grant).
    assert (response.get_json()["error"] == "unauthorized_client") is accepted, response.get_json()


# --- private_key_jwt replay (RFC 7523 §3 item 7) ------------------------------------------------------


def test_private_key_jwt_replay_is_refused_and_audited(app, services) -> None:
    client = app.test_client()
    assertion = jwt_tools.client_assertion("jwt-app", JWT_APP_KEY, ISSUER + "/token")
    data = {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER, "client_assertion": assertion}
    assert client.post("/token", data=data).get_json()["error"] == "unauthorized_client"
    replay = client.post("/token", data=data)
    assert replay.status_code == 401 and "replay" in replay.get_json()["error_description"]
    failure = [r for r in services.audit.records() if r.event == "client_authentication"][-1]
    assert "replay" in failure.details["reason"] and assertion not in str(failure.details)


def test_private_key_jwt_replay_race_has_one_winner(app) -> None:
    assertion = jwt_tools.client_assertion("jwt-app", JWT_APP_KEY, ISSUER)
    data = {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER, "client_assertion": assertion}
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda _: app.test_client().post("/token", data=data).status_code, range(6)))
    assert statuses.count(400) == 1 and statuses.count(401) == 5
