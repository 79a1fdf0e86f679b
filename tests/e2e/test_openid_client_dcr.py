"""openid-client 6 (OpenID Certified RP) onboards itself over real HTTP: an administrator issues an
initial access token with ``supercloud clients initial-token``, the RP registers by RFC 7591
(``client.dynamicClientRegistration``), signs a person in with code + PKCE, refreshes, then reads
and deletes its registration (RFC 7592) and finds its tokens no longer accepted
(tests/node/rp_dynamic.mjs against the live broker under gunicorn)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.oidc import jwt_tools
from tests.support.live import LiveBroker
from tests.support.node import NODE_DIR, RelyingPartyFailed, node_executable
from tests.support.settings import DEMO_PASSWORD, ROOT

pytestmark = pytest.mark.peer("node")

AMARA = "amara.okafor@camden.test"
REDIRECT = "http://127.0.0.1:9/dcr-callback"
SCRIPT = NODE_DIR / "rp_dynamic.mjs"


def _initial_token(broker: LiveBroker) -> str:
    """Issue a single-use initial access token the way an administrator does: the CLI."""
    completed = subprocess.run(
        [sys.executable, "-m", "broker", "--config", str(broker.config_path), "clients", "initial-token", "--expires-in", "1h",
         "--organisation", "camden", "--description", "openid-client interop", "--json"],
        env=broker.env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)["initial_access_token"]


def _rp(broker: LiveBroker, token: str, *args: str, **env: str) -> dict[str, Any]:
    command = [node_executable(), str(SCRIPT), "--issuer", broker.issuer, "--redirect-uri", REDIRECT, "--email", AMARA, *args]
    completed = subprocess.run(command, cwd=NODE_DIR, capture_output=True, text=True, timeout=120, check=False,
                               env={**os.environ, "RP_PASSWORD": DEMO_PASSWORD, "RP_INITIAL_ACCESS_TOKEN": token, **env})
    if completed.returncode != 0:
        raise RelyingPartyFailed(f"rp_dynamic exited {completed.returncode}:\n{completed.stderr.strip()[-3000:]}")
    return json.loads(completed.stdout)


def _check_flow(result: dict[str, Any], broker: LiveBroker) -> None:
    assert result["client_id"].startswith("dcr-")
    assert result["registration_client_uri"] == f"{broker.issuer}/register/{result['client_id']}"
    assert result["claims"]["aud"] == result["client_id"] and result["claims"]["iss"] == broker.issuer
    assert result["userinfo"]["sub"] == result["claims"]["sub"] and result["userinfo"]["email"] == AMARA
    assert result["refreshed_sub"] == result["claims"]["sub"]
    assert result["read_status"] == 200 and result["read_client_id"] == result["client_id"]
    assert result["read_redirect_uris"] == [REDIRECT]
    assert result["delete_status"] == 204 and result["read_after_delete_status"] == 401
    assert result["refresh_after_delete"]["rejected"], "a deleted client's refresh token is refused"


def test_openid_client_registers_with_a_secret_and_signs_in(live_broker: LiveBroker) -> None:
    result = _rp(live_broker, _initial_token(live_broker))
    assert result["token_endpoint_auth_method"] == "client_secret_post" and result["has_secret"]
    assert result["id_token_header"]["alg"] == "ES256"
    _check_flow(result, live_broker)


def test_openid_client_registers_with_private_key_jwt_and_rs256(live_broker: LiveBroker) -> None:
    key = jwt_tools.ec_key()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    result = _rp(live_broker, _initial_token(live_broker), "--auth", "private_key_jwt", "--alg", "RS256",
                 RP_PRIVATE_KEY_PEM=pem, RP_PUBLIC_JWK=json.dumps(jwt_tools.public_jwk(key, "dcr-k1")), RP_KEY_ID="dcr-k1")
    assert result["token_endpoint_auth_method"] == "private_key_jwt" and not result["has_secret"]
    assert result["id_token_header"]["alg"] == "RS256"
    _check_flow(result, live_broker)


def test_a_used_initial_access_token_is_refused_to_openid_client(live_broker: LiveBroker) -> None:
    token = _initial_token(live_broker)
    _rp(live_broker, token)
    with pytest.raises(RelyingPartyFailed) as refused:
        _rp(live_broker, token)
    assert "invalid_token" in str(refused.value) or "401" in str(refused.value)
