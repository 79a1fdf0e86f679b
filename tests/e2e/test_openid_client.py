"""A certified relying party (node openid-client 6) signs people in through the live broker.

openid-client validates what a real application would: discovery and the issuer, the
RFC 9207 ``iss`` parameter, state, PKCE, the ID token's signature against the JWKS, its
``iss``/``aud``/``azp``/``nonce``/``exp``, and that userinfo's ``sub`` matches. These tests
then assert on the claims such an application ends up with, and that openid-client (or
the broker, as seen through openid-client) refuses tampered responses.
"""

from __future__ import annotations

import base64
import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.support.live import LiveBroker
from tests.support.node import RelyingPartyFailed, node_executable, run_relying_party

pytestmark = pytest.mark.peer("node")

AMARA = "amara.okafor@camden.test"
TOM = "tom.hughes@camden.test"
CLIENTS = {"test-rp": "ES256", "test-rp-rs256": "RS256"}


def _rp(broker: LiveBroker, email: str, client_id: str = "test-rp", *, mode: str = "signin", **kwargs: Any) -> dict[str, Any]:
    return run_relying_party(
        issuer=broker.issuer,
        client_id=client_id,
        client_secret=broker.client_secret,
        redirect_uri=broker.redirect_uri,
        email=email,
        alg=CLIENTS.get(client_id),
        mode=mode,
        **kwargs,
    )


@pytest.fixture(scope="module")
def sign_ins(live_broker: LiveBroker) -> dict[str, dict[str, Any]]:
    """Independent sign-ins (each a fresh browser jar), run side by side to keep the module quick."""
    node_executable()
    runs = {
        "amara/test-rp": (AMARA, "test-rp"),
        "amara/test-rp again": (AMARA, "test-rp"),
        "amara/test-rp-rs256": (AMARA, "test-rp-rs256"),
        "tom/test-rp": (TOM, "test-rp"),
    }
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        futures = {name: pool.submit(_rp, live_broker, email, client_id) for name, (email, client_id) in runs.items()}
        return {name: future.result() for name, future in futures.items()}


def _half_hash(token: str) -> str:
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


@pytest.mark.parametrize("client_id", sorted(CLIENTS))
def test_relying_party_gets_a_valid_id_token_with_the_persons_claims(
    sign_ins: dict[str, dict[str, Any]], live_broker: LiveBroker, client_id: str
) -> None:
    result = sign_ins[f"amara/{client_id}"]
    header, claims = result["id_token_header"], result["id_token_claims"]

    # The driver went through the broker's real pages, and the callback carried the RFC 9207 iss.
    assert result["pages"] == ["GET /login", "POST /login", "GET /login/password", "POST /login/password", "GET /authorize/resume"]
    assert result["callback_parameters"] == ["code", "iss", "state"]

    assert header["alg"] == CLIENTS[client_id]
    assert header.get("kid")
    assert claims["iss"] == live_broker.issuer
    assert claims["aud"] in (client_id, [client_id])
    assert claims["azp"] == client_id
    assert claims["nonce"] == result["expected_nonce"]
    assert claims["name"] == "Amara Okafor"
    assert claims["given_name"] == "Amara"
    assert claims["family_name"] == "Okafor"
    assert claims["email"] == AMARA
    assert claims["organisation"] == "camden"
    assert claims["organisation_name"] == "London Borough of Camden"
    assert claims["department"] == "Adult Social Care"
    assert claims["job_title"] == "Social Worker"
    # A directory password is authenticator assurance level 1, by password.
    assert claims["acr"] == "urn:supercloud:aal1"
    assert claims["amr"] == ["pwd"]
    assert isinstance(claims["sid"], str) and len(claims["sid"]) >= 16
    assert claims["auth_time"] <= claims["iat"] < claims["exp"]
    assert 60 <= claims["exp"] - claims["iat"] <= 3600
    # at_hash binds the ID token to the access token it came with (OIDC Core §3.1.3.6).
    assert claims["at_hash"] == _half_hash(result["token_response"]["access_token"])
    # The subject is the broker's own opaque identifier, not the username.
    assert "@" not in claims["sub"] and "amara" not in claims["sub"].lower()

    assert result["token_response"]["token_type"].lower() == "bearer"
    assert set(result["token_response"]["scope"].split()) == {"openid", "profile", "email", "organisation"}


@pytest.mark.parametrize("client_id", sorted(CLIENTS))
def test_userinfo_agrees_with_the_id_token(sign_ins: dict[str, dict[str, Any]], client_id: str) -> None:
    result = sign_ins[f"amara/{client_id}"]
    claims, userinfo = result["id_token_claims"], result["userinfo"]

    assert userinfo["sub"] == claims["sub"]  # openid-client checked this too
    for name in ("name", "given_name", "family_name", "email", "organisation", "organisation_name", "department", "job_title"):
        assert userinfo[name] == claims[name], name
    # Session and protocol claims belong in the ID token only.
    assert not {"nonce", "at_hash", "sid", "aud", "iss", "acr", "amr"} & set(userinfo)


def test_subject_is_stable_per_person_and_sessions_are_new_each_sign_in(sign_ins: dict[str, dict[str, Any]]) -> None:
    first = sign_ins["amara/test-rp"]["id_token_claims"]
    again = sign_ins["amara/test-rp again"]["id_token_claims"]
    other_client = sign_ins["amara/test-rp-rs256"]["id_token_claims"]
    tom = sign_ins["tom/test-rp"]["id_token_claims"]

    assert again["sub"] == first["sub"]
    # Discovery says subject_types_supported is ["public"]: one sub for every application.
    assert other_client["sub"] == first["sub"]
    assert tom["sub"] != first["sub"]
    assert tom["name"] == "Tom Hughes"
    # Every sign-in is a new SSO session with its own sid and nonce.
    assert len({first["sid"], again["sid"], other_client["sid"], tom["sid"]}) == 4
    assert again["nonce"] != first["nonce"]


@pytest.fixture(scope="module")
def adversarial(live_broker: LiveBroker) -> dict[str, dict[str, Any]]:
    """The adversarial scenarios of rp_code_flow.mjs, once per client, side by side."""
    node_executable()
    with ThreadPoolExecutor(max_workers=len(CLIENTS)) as pool:
        futures = {client_id: pool.submit(_rp, live_broker, AMARA, client_id, mode="adversarial") for client_id in CLIENTS}
        return {client_id: future.result()["scenarios"] for client_id, future in futures.items()}


def _refused(scenario: dict[str, Any]) -> dict[str, Any]:
    assert scenario["rejected"] is True, f"accepted: {scenario}"
    return scenario["error"]


@pytest.mark.parametrize("client_id", sorted(CLIENTS))
def test_openid_client_refuses_a_tampered_state(adversarial: dict[str, dict[str, Any]], client_id: str) -> None:
    scenario = adversarial[client_id]["tampered_state"]
    error = _refused(scenario)
    assert error["code"] == "OAUTH_INVALID_RESPONSE"
    assert '"state"' in error["cause"]
    # The very same callback with its true state is accepted: the refusal was about the state.
    assert scenario["control_rejected"] is False, scenario.get("control_error")


@pytest.mark.parametrize("client_id", sorted(CLIENTS))
def test_openid_client_refuses_an_id_token_with_another_nonce(adversarial: dict[str, dict[str, Any]], client_id: str) -> None:
    error = _refused(adversarial[client_id]["wrong_nonce"])
    assert error["code"] == "OAUTH_JWT_CLAIM_COMPARISON_FAILED"
    assert "nonce" in error["cause"]


@pytest.mark.parametrize("client_id", sorted(CLIENTS))
def test_openid_client_refuses_a_callback_from_another_issuer(adversarial: dict[str, dict[str, Any]], client_id: str) -> None:
    error = _refused(adversarial[client_id]["wrong_iss_parameter"])
    assert error["code"] == "OAUTH_INVALID_RESPONSE"
    assert '"iss"' in error["cause"]


@pytest.mark.parametrize("client_id", sorted(CLIENTS))
def test_openid_client_refuses_an_id_token_signed_with_another_alg(adversarial: dict[str, dict[str, Any]], client_id: str) -> None:
    scenario = adversarial[client_id]["unexpected_alg"]
    assert scenario["expected_alg"] != CLIENTS[client_id]
    error = _refused(scenario)
    assert '"alg"' in error["cause"]


@pytest.mark.parametrize("client_id", sorted(CLIENTS))
def test_broker_refuses_a_code_with_the_wrong_pkce_verifier(adversarial: dict[str, dict[str, Any]], client_id: str) -> None:
    error = _refused(adversarial[client_id]["wrong_pkce_verifier"])
    assert (error["status"], error["error"]) == (400, "invalid_grant")


@pytest.mark.parametrize("client_id", sorted(CLIENTS))
def test_broker_refuses_a_replayed_code_and_revokes_its_tokens(adversarial: dict[str, dict[str, Any]], client_id: str) -> None:
    scenario = adversarial[client_id]["code_replay"]
    assert scenario["first_rejected"] is False, scenario.get("first_error")
    error = _refused(scenario)
    assert (error["status"], error["error"]) == (400, "invalid_grant")
    # RFC 6749 §4.1.2: the access token from the first redemption stops working.
    assert scenario["userinfo_after_replay_rejected"] is True
    assert scenario["userinfo_after_replay_error"]["status"] == 401


@pytest.mark.parametrize("client_id", sorted(CLIENTS))
def test_broker_refuses_a_client_with_the_wrong_secret(adversarial: dict[str, dict[str, Any]], client_id: str) -> None:
    error = _refused(adversarial[client_id]["wrong_client_secret"])
    assert error["status"] == 401


def test_a_wrong_password_never_reaches_the_application(live_broker: LiveBroker) -> None:
    with pytest.raises(RelyingPartyFailed) as failure:
        _rp(live_broker, AMARA, password="not-her-password")
    message = str(failure.value)
    assert "unexpected page" in message
    assert "/login/password (HTTP 400)" in message
    assert "Error: Enter your password" in message
    assert 'errors "Enter a correct email address and password."' in message
