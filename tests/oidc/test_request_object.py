"""OIDF basic OP plan, request object handling (OIDC Core §6.3): refused with the proper
error, since discovery says request objects are not supported; unknown parameters ignored."""

from __future__ import annotations

from tests.oidc import jwt_tools
from tests.oidc.helpers import ISSUER, authorize, query


def test_request_parameter_is_refused_with_request_not_supported(app) -> None:
    signed = jwt_tools.sign_es256({"iss": "discharge-hub", "aud": ISSUER, "scope": "openid"}, jwt_tools.ec_key())
    for request in (signed, jwt_tools.unsigned({"scope": "openid"})):
        response, _ = authorize(app.test_client(), request=request)
        params = query(response.headers["Location"])
        assert params["error"] == "request_not_supported" and params["state"] == "state-123" and params["iss"] == ISSUER


def test_request_uri_is_refused_with_request_uri_not_supported(app) -> None:
    response, _ = authorize(app.test_client(), request_uri="https://attacker.test/request.jwt")
    assert query(response.headers["Location"])["error"] == "request_uri_not_supported"


def test_unknown_parameters_are_ignored(app) -> None:
    response, _ = authorize(app.test_client(), made_up="x", claims_locales="fr", display="popup", ui_locales="cy en-GB")
    assert response.headers["Location"].endswith("/login")


def test_claims_parameter_is_ignored_not_honoured(app, services) -> None:
    from tests.oidc.helpers import tokens_for, verify_id_token

    tokens = tokens_for(app.test_client(), scope="openid", claims='{"id_token":{"email":{"essential":true}}}')
    assert "email" not in verify_id_token(services, tokens["id_token"])
