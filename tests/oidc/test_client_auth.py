"""OIDF basic OP plan, client_secret_post; and client_secret_basic and private_key_jwt
(OIDC Core §9, RFC 6749 §2.3.1, RFC 7523 §3), each enforced as registered."""

from __future__ import annotations

import time

import pytest

from tests.oidc import jwt_tools
from tests.oidc.conftest import JWT_APP_KEY, SECRETS
from tests.oidc.helpers import ISSUER, audit_events, authorize, basic, query
from tests.support.flask_flow import password_sign_in

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _code_for(client, client_id: str, redirect_uri: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    response, verifier = authorize(client, client_id=client_id, redirect_uri=redirect_uri)
    if response.headers["Location"].endswith("/login"):
        signed = password_sign_in(client, "amara.okafor@camden.test")
        response = client.get(signed.headers["Location"])
    return query(response.headers["Location"])["code"], verifier


def _token(client, code, verifier, redirect_uri, headers=None, **auth):  # type: ignore[no-untyped-def]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier, **auth}
    return client.post("/token", data=data, headers=headers or {})


def test_client_secret_post_is_accepted_for_a_client_registered_for_it(app, services) -> None:
    client = app.test_client()
    code, verifier = _code_for(client, "post-app", "http://127.0.0.1:8002/callback")
    response = _token(client, code, verifier, "http://127.0.0.1:8002/callback", client_id="post-app", client_secret=SECRETS["POST_APP_SECRET"])
    assert response.status_code == 200, response.get_data(as_text=True)
    assert jwt_tools.parts(response.get_json()["id_token"])[0]["alg"] == "RS256", "post-app registered RS256"


def test_client_secret_post_client_may_not_use_basic(app) -> None:
    client = app.test_client()
    code, verifier = _code_for(client, "post-app", "http://127.0.0.1:8002/callback")
    response = _token(client, code, verifier, "http://127.0.0.1:8002/callback", headers=basic("post-app", "POST_APP_SECRET"))
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"


def test_basic_client_may_not_use_post(app) -> None:
    from tests.support.settings import TEST_CLIENT_SECRET, TEST_REDIRECT_URI

    client = app.test_client()
    code, verifier = _code_for(client, "discharge-hub", TEST_REDIRECT_URI)
    response = _token(client, code, verifier, TEST_REDIRECT_URI, client_id="discharge-hub", client_secret=TEST_CLIENT_SECRET)
    assert response.status_code == 401


def test_two_authentication_methods_at_once_are_refused(app) -> None:
    client = app.test_client()
    code, verifier = _code_for(client, "post-app", "http://127.0.0.1:8002/callback")
    response = _token(client, code, verifier, "http://127.0.0.1:8002/callback", headers=basic("post-app", "POST_APP_SECRET"),
                      client_id="post-app", client_secret=SECRETS["POST_APP_SECRET"])
    assert response.status_code == 401 and "more than one" in response.get_json()["error_description"]


def test_wrong_secret_is_refused_audited_and_not_recorded(app, services) -> None:
    response = app.test_client().post("/token", data={"grant_type": "authorization_code", "client_id": "post-app",
                                                      "client_secret": "wrong-secret-value"})
    assert response.status_code == 401
    assert ("client_authentication", "failure") in audit_events(services)
    assert all("wrong-secret-value" not in str(r.details) for r in services.audit.records())


@pytest.mark.parametrize("audience", [ISSUER, ISSUER + "/token", [ISSUER + "/token", "https://other.test"]])
def test_private_key_jwt_is_accepted_with_the_issuer_or_token_endpoint_as_audience(app, audience) -> None:
    client = app.test_client()
    code, verifier = _code_for(client, "jwt-app", "http://127.0.0.1:8003/callback")
    assertion = jwt_tools.client_assertion("jwt-app", JWT_APP_KEY, audience)
    response = _token(client, code, verifier, "http://127.0.0.1:8003/callback",
                      client_assertion_type=JWT_BEARER, client_assertion=assertion)
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"audience": "https://elsewhere.test/token"}, "aud"),
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"iat": int(time.time()), "exp": int(time.time()) + 3600}, "expire within"),
        ({"key": "other"}, "not valid"),
        ({"client_id": "post-app"}, "registered for client_secret_post"),
        ({"kid": "unknown"}, "not valid"),
        ({"sub": "someone-else"}, "iss and sub"),
    ],
)
def test_private_key_jwt_refusals(app, services, change, reason) -> None:
    key = jwt_tools.ec_key() if change.get("key") == "other" else JWT_APP_KEY
    client_id = change.get("client_id", "jwt-app")
    kwargs = {k: v for k, v in change.items() if k in ("exp", "iat", "kid")}
    extra = {"sub": change["sub"]} if "sub" in change else {}
    assertion = jwt_tools.client_assertion(client_id, key, change.get("audience", ISSUER), **kwargs)
    if extra:
        header, claims = jwt_tools.parts(assertion)
        assertion = jwt_tools.sign_es256({**claims, **extra}, key, kid="k1")
    response = app.test_client().post("/token", data={"grant_type": "authorization_code", "code": "x",
                                                      "client_assertion_type": JWT_BEARER, "client_assertion": assertion})
    assert response.status_code == 401, response.get_data(as_text=True)
    assert reason in response.get_json()["error_description"]


def test_private_key_jwt_with_a_wrong_assertion_type_is_refused(app) -> None:
    assertion = jwt_tools.client_assertion("jwt-app", JWT_APP_KEY, ISSUER)
    response = app.test_client().post("/token", data={"grant_type": "authorization_code", "client_assertion_type": "urn:x",
                                                      "client_assertion": assertion})
    assert response.status_code == 401


def test_private_key_jwt_client_may_not_use_a_secret(app) -> None:
    response = app.test_client().post("/token", data={"grant_type": "authorization_code", "client_id": "jwt-app", "client_secret": ""},
                                      headers=basic("post-app", "POST_APP_SECRET") | {"Authorization": "Basic " + __import__("base64").b64encode(b"jwt-app:").decode()})
    assert response.status_code == 401


def test_jwks_uri_keys_are_fetched_and_cached(services) -> None:
    from broker.clients import Client
    from broker.oidc.client_keys import ClientKeys

    fetched = []
    jwk = jwt_tools.public_jwk(JWT_APP_KEY, "k1")

    def fetcher(url: str):  # type: ignore[no-untyped-def]
        fetched.append(url)
        return {"keys": [jwk]}

    now = [1000.0]
    keys = ClientKeys(fetcher, clock=lambda: now[0])
    client = Client(client_id="c", name="c", redirect_uris=(), post_logout_redirect_uris=(), signing_alg=None,
                    token_endpoint_auth_method="private_key_jwt", jwks_uri="https://c.test/jwks")
    assert "k1" in keys.keys_for(client) and "k1" in keys.keys_for(client, kid="k1")
    assert len(fetched) == 1
    keys.keys_for(client, kid="rolled-over")  # unknown kid within the refetch floor: no fetch
    assert len(fetched) == 1
    now[0] += 61
    keys.keys_for(client, kid="rolled-over")  # after the floor: refetch once
    assert len(fetched) == 2
    now[0] += 400
    keys.keys_for(client)
    assert len(fetched) == 3
