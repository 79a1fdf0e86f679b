"""openid-client 6 (OpenID Certified RP) over real HTTP: refresh-token rotation, private_key_jwt
and back-channel logout received by a test RP server (tests/node/rp_advanced.mjs).

The broker is served by ``supercloud serve`` (gunicorn) with this module's own applications,
so the basic code-flow tests keep their deployment unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from federation.keys import MasterKey
from tests.oidc import jwt_tools
from tests.support.databases import fresh_database
from tests.support.live import free_port, wait_for
from tests.support.node import NODE_DIR, RelyingPartyFailed, node_executable
from tests.support.settings import DEMO_PASSWORD, ROOT, demo_organisations

pytestmark = pytest.mark.peer("node")

AMARA = "amara.okafor@camden.test"
SECRET = "advanced-rp-secret-0123456789abcdefghijklmnop"
REDIRECT = "http://127.0.0.1:9/callback"
SIGNED_OUT = "http://127.0.0.1:9/signed-out"
SCRIPT = NODE_DIR / "rp_advanced.mjs"


class Deployment:
    """The live broker for this module and what the RP needs to know."""

    def __init__(self, issuer: str, backchannel_port: int, key_pem: str, process: subprocess.Popen[bytes]) -> None:
        self.issuer = issuer
        self.backchannel_port = backchannel_port
        self.key_pem = key_pem
        self.process = process


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    node_executable()
    folder = tmp_path_factory.mktemp("advanced")
    port, rp_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{port}"
    key = jwt_tools.ec_key()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    with fresh_database(folder) as url:
        document = {
            "broker": {"issuer": issuer, "environment": "development", "database_url": url, "master_key": {"env": "ADV_MASTER_KEY"}},
            "organisations": demo_organisations(),
            "applications": [
                {"client_id": "rp-refresh", "name": "Refreshing RP", "redirect_uris": [REDIRECT],
                 "client_secret": {"env": "ADV_CLIENT_SECRET"}},
                {"client_id": "rp-jwt", "name": "private_key_jwt RP", "redirect_uris": [REDIRECT],
                 "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [jwt_tools.public_jwk(key, "rp-k1")]}},
                {"client_id": "rp-logout", "name": "Back-channel RP", "redirect_uris": [REDIRECT],
                 "post_logout_redirect_uris": [SIGNED_OUT], "client_secret": {"env": "ADV_CLIENT_SECRET"},
                 "backchannel_logout_uri": f"http://127.0.0.1:{rp_port}/backchannel"},
            ],
        }
        config = folder / "advanced.yaml"
        config.write_text(yaml.safe_dump(document, sort_keys=False))
        env = {**os.environ, "ADV_MASTER_KEY": MasterKey.generate_text(), "ADV_CLIENT_SECRET": SECRET, "PYTHONPATH": str(ROOT)}
        log = open(folder / "broker.log", "wb")  # noqa: SIM115 - open for the process's life
        process = subprocess.Popen([sys.executable, "-m", "broker", "--config", str(config), "serve", "--port", str(port), "--workers", "2"],
                                   env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(f"{issuer}/.well-known/openid-configuration", process, timeout=60)
            yield Deployment(issuer, rp_port, pem, process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _rp(deployment: Deployment, client_id: str, mode: str, **extra: str) -> dict[str, Any]:
    command = [node_executable(), str(SCRIPT), "--issuer", deployment.issuer, "--client-id", client_id,
               "--redirect-uri", REDIRECT, "--email", AMARA, "--mode", mode]
    for name, value in extra.items():
        command += [f"--{name.replace('_', '-')}", value]
    env = {**os.environ, "RP_PASSWORD": DEMO_PASSWORD, "RP_CLIENT_SECRET": SECRET,
           "RP_PRIVATE_KEY_PEM": deployment.key_pem, "RP_KEY_ID": "rp-k1"}
    completed = subprocess.run(command, cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=90, check=False)
    if completed.returncode != 0:
        raise RelyingPartyFailed(f"rp_advanced exited {completed.returncode}:\n{completed.stderr.strip()[-3000:]}")
    return json.loads(completed.stdout)


def test_refresh_tokens_rotate_and_a_replay_revokes_the_family(deployment: Deployment) -> None:
    result = _rp(deployment, "rp-refresh", "refresh")
    assert result["refresh_tokens_distinct"]
    refreshed = result["refreshed_id_token_claims"]
    assert refreshed["sub"] == result["sub"] and refreshed["sid"] == result["sid"] and refreshed["iss"] == deployment.issuer
    assert result["userinfo"]["sub"] == result["sub"] and result["userinfo"]["email"] == AMARA
    assert result["replay_rejected"] and result["replay_error"]["error"] == "invalid_grant"
    assert result["family_revoked"] and result["family_error"]["error"] == "invalid_grant"


def test_private_key_jwt_client_signs_in_and_refreshes(deployment: Deployment) -> None:
    result = _rp(deployment, "rp-jwt", "private_key_jwt")
    assert result["refresh_tokens_distinct"] and result["userinfo"]["sub"] == result["sub"]
    assert result["replay_rejected"]


def test_back_channel_logout_token_reaches_the_rp_and_validates(deployment: Deployment) -> None:
    result = _rp(deployment, "rp-logout", "backchannel", post_logout_redirect_uri=SIGNED_OUT,
                 backchannel_port=str(deployment.backchannel_port))
    assert result["end_session_status"] == 302
    assert result["post_logout_location"] == f"{SIGNED_OUT}?state={result['expected_state']}"
    token = result["logout_token"]
    assert token["valid"], token
    assert token["header"]["typ"] == "logout+jwt" and token["path"] == "/backchannel"
    assert token["claims"]["sid"] == result["sid"] and token["claims"]["sub"] == result["sub"]
    assert token["content_type"] == "application/x-www-form-urlencoded"
    assert result["userinfo_after_logout_rejected"]

