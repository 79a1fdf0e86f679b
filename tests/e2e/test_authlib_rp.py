"""An independent relying-party library (authlib) completes the code flow against the broker over real HTTP."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
import time

import pytest
import requests
import yaml
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.jose.errors import BadSignatureError
from authlib.oidc.core import CodeIDToken

from tests.support.http_login import sign_in
from tests.support.live import LiveBroker


def _metadata(live: LiveBroker) -> dict:
    return requests.get(f"{live.issuer}/.well-known/openid-configuration", timeout=5).json()


def _authlib_sign_in(live: LiveBroker, client_id: str, email: str = "kwame.mensah@newham.test"):  # type: ignore[no-untyped-def]
    meta = _metadata(live)
    rp = OAuth2Session(
        client_id,
        live.client_secret,
        scope="openid profile email organisation",
        redirect_uri=live.redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier = generate_token(64)
    nonce = secrets.token_urlsafe(16)
    url, state = rp.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    callback = sign_in(requests.Session(), url, email, "london-demo", stop_prefix=live.redirect_uri)
    token = rp.fetch_token(meta["token_endpoint"], authorization_response=callback, code_verifier=verifier, state=state)
    jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=5).json())
    return rp, meta, token, jwks, nonce


def _validated_claims(token, jwks, nonce, client_id, issuer):  # type: ignore[no-untyped-def]
    claims = jwt.decode(
        token["id_token"],
        jwks,
        claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": issuer}},
        claims_params={"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
    )
    claims.validate()
    return claims


@pytest.mark.parametrize(("client_id", "alg"), [("test-rp", "ES256"), ("test-rp-rs256", "RS256")])
def test_authlib_completes_the_code_flow_and_validates_the_id_token(live_broker: LiveBroker, client_id: str, alg: str) -> None:
    rp, meta, token, jwks, nonce = _authlib_sign_in(live_broker, client_id)
    claims = _validated_claims(token, jwks, nonce, client_id, live_broker.issuer)
    assert claims.header["alg"] == alg
    assert claims["name"] == "Kwame Mensah"
    assert claims["organisation"] == "newham"
    userinfo = rp.get(meta["userinfo_endpoint"]).json()
    assert userinfo["sub"] == claims["sub"]
    assert userinfo["email"] == "kwame.mensah@newham.test"


def test_authlib_rejects_an_id_token_checked_against_the_wrong_nonce(live_broker: LiveBroker) -> None:
    _, _, token, jwks, _ = _authlib_sign_in(live_broker, "test-rp")
    # authlib delegates claim checks to joserfc, so accept either library's error naming the nonce.
    with pytest.raises(Exception, match="nonce"):
        _validated_claims(token, jwks, "another-nonce", "test-rp", live_broker.issuer)


def test_authlib_rejects_a_tampered_id_token(live_broker: LiveBroker) -> None:
    _, _, token, jwks, nonce = _authlib_sign_in(live_broker, "test-rp")
    header, payload, signature = token["id_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["organisation"] = "nhs"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    tampered = {**token, "id_token": f"{header}.{forged}.{signature}"}
    with pytest.raises(BadSignatureError):
        _validated_claims(tampered, jwks, nonce, "test-rp", live_broker.issuer)


def test_code_replayed_over_http_is_refused(live_broker: LiveBroker) -> None:
    meta = _metadata(live_broker)
    rp = OAuth2Session("test-rp", live_broker.client_secret, scope="openid", redirect_uri=live_broker.redirect_uri,
                       code_challenge_method="S256")
    verifier = generate_token(64)
    url, state = rp.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
    callback = sign_in(requests.Session(), url, "sofia.rossi@hackney.test", "london-demo", stop_prefix=live_broker.redirect_uri)
    rp.fetch_token(meta["token_endpoint"], authorization_response=callback, code_verifier=verifier, state=state)
    code = dict(p.split("=", 1) for p in callback.split("?", 1)[1].split("&"))["code"]
    replay = requests.post(
        meta["token_endpoint"],
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": live_broker.redirect_uri, "code_verifier": verifier},
        auth=("test-rp", live_broker.client_secret),
        timeout=5,
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"


def test_the_audit_log_of_the_live_broker_verifies(live_broker: LiveBroker) -> None:
    _authlib_sign_in(live_broker, "test-rp")
    result = subprocess.run(
        [sys.executable, "-m", "broker", "--config", str(live_broker.config_path), "audit", "verify"],
        env=live_broker.env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "audit log intact" in result.stdout


def test_the_live_broker_seals_its_audit_records_without_further_requests(live_broker: LiveBroker) -> None:
    # gunicorn workers seal in a background thread: the records of the last requests are linked into
    # the chain soon after, with no later request (an append finding a seal due) needed to do it.
    from sqlalchemy import create_engine, func, select

    from broker.storage.models import AuditRecordRow

    _authlib_sign_in(live_broker, "test-rp")
    introspection = _metadata(live_broker)["introspection_endpoint"]
    for n in range(10):  # audited requests in quick succession, over both workers
        answer = requests.post(introspection, data={"token": f"not-a-token-{n}"},
                               auth=("test-rp", live_broker.client_secret), timeout=5)
        assert answer.status_code == 200 and answer.json() == {"active": False}
    url = yaml.safe_load(live_broker.config_path.read_text())["broker"]["database_url"]
    engine = create_engine(url)
    unsealed = select(func.count()).select_from(AuditRecordRow).where(AuditRecordRow.seq.is_(None))
    try:
        deadline = time.monotonic() + 15
        while True:
            with engine.connect() as connection:
                left = connection.execute(unsealed).scalar_one()
            if left == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        engine.dispose()
    assert left == 0
