"""Client registration in configuration: strict validation with clear messages (config.schema.ApplicationConfig)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from config.schema import ApplicationConfig
from tests.oidc import jwt_tools

BASE: dict[str, Any] = {"client_id": "app-one", "name": "App", "redirect_uris": ["https://app.test/cb"], "client_secret": {"env": "S"}}
JWK = jwt_tools.public_jwk(jwt_tools.ec_key(), "k1")


def _app(**changes: Any) -> ApplicationConfig:
    document = {**BASE, **changes}
    return ApplicationConfig.model_validate({k: v for k, v in document.items() if v is not None})


def test_defaults_are_a_confidential_web_app() -> None:
    app = _app()
    assert app.token_endpoint_auth_method == "client_secret_basic"
    assert app.grant_types == ["authorization_code", "refresh_token"] and app.subject_type == "public"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"token_endpoint_auth_method": "private_key_jwt"}, "exactly one of jwks or jwks_uri"),
        ({"token_endpoint_auth_method": "private_key_jwt", "client_secret": None, "jwks": {"keys": [JWK]},
          "jwks_uri": "https://app.test/jwks"}, "exactly one of jwks or jwks_uri"),
        ({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [JWK]}}, "has no client_secret"),
        ({"client_secret": None}, "client_secret_basic needs a client_secret"),
        ({"jwks": {"keys": [JWK]}}, "only for token_endpoint_auth_method: private_key_jwt"),
        ({"token_endpoint_auth_method": "private_key_jwt", "client_secret": None, "jwks": {"keys": [{**JWK, "d": "x"}]}}, "private key"),
        ({"token_endpoint_auth_method": "private_key_jwt", "client_secret": None, "jwks": {"keys": []}}, "JWK Set"),
        ({"token_endpoint_auth_method": "none"}, "token_endpoint_auth_method"),
        ({"redirect_uris": []}, "authorization_code needs at least one redirect_uri"),
        ({"redirect_uris": ["http://app.test/cb"]}, "must be https://"),
        ({"backchannel_logout_uri": "http://app.test/bc"}, "must be https://"),
        ({"grant_types": ["client_credentials"], "redirect_uris": []}, "client_credentials needs allowed_audiences"),
        ({"grant_types": ["client_credentials"], "allowed_audiences": ["api"]}, "redirect URIs are only for"),
        ({"grant_types": ["refresh_token"], "redirect_uris": []}, "refresh_token is only issued with authorization_code"),
        ({"grant_types": ["password"]}, "grant_types"),
        ({"grant_types": ["authorization_code", "authorization_code"]}, "more than once"),
        ({"grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:token-exchange"]}, "token exchange needs allowed_audiences"),
        ({"subject_type": "pairwise", "redirect_uris": ["https://a.test/cb", "https://b.test/cb"]}, "need a sector_identifier"),
        ({"sector_identifier": "x.test"}, "only for subject_type: pairwise"),
        ({"allowed_audiences": ["has space"]}, "not a valid value"),
        ({"unknown_option": True}, "Extra inputs are not permitted"),
        ({"redirect_uris": ["http://127.attacker.test/cb"]}, "must be https://"),
        ({"redirect_uris": ["https://app.test/cb", "https://app.test/cb"]}, "more than once"),
        ({"backchannel_logout_session_required": True}, "needs a backchannel_logout_uri"),
        ({"contacts": ["someone"]}, "not an e-mail address"),
        ({"scope": "openid\tprofile"}, "scope values separated by single spaces"),
        ({"token_endpoint_auth_signing_alg": "ES256"}, "only for token_endpoint_auth_method: private_key_jwt"),
    ],
)
def test_invalid_registrations_are_refused_with_a_clear_message(changes, message) -> None:
    with pytest.raises(ValidationError) as raised:
        _app(**changes)
    assert message in str(raised.value)


def test_valid_kinds_of_application() -> None:
    assert _app(token_endpoint_auth_method="private_key_jwt", client_secret=None, jwks={"keys": [JWK]}).jwks
    assert _app(token_endpoint_auth_method="private_key_jwt", client_secret=None, jwks_uri="https://app.test/jwks").jwks_uri
    service = _app(grant_types=["client_credentials"], redirect_uris=[], allowed_audiences=["care-records-api"])
    assert service.grant_types == ["client_credentials"]
    pairwise = _app(subject_type="pairwise")
    assert pairwise.sector == "app.test"
    assert _app(redirect_uris=["http://127.0.0.1:8000/cb"]).redirect_uris
