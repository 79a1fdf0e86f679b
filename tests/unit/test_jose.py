"""The JOSE module verifies only with pinned keys and allowed algorithms (RFC 8725)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from federation import jose
from federation.errors import FederationError
from federation.keys import generate_private_pem


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.fixture(scope="module")
def es256() -> jose.SigningKey:
    return jose.load_signing_key("ES256", generate_private_pem("ES256"))


@pytest.fixture(scope="module")
def rs256() -> jose.SigningKey:
    return jose.load_signing_key("RS256", generate_private_pem("RS256"))


def _claims(**extra) -> dict:  # type: ignore[no-untyped-def]
    now = int(time.time())
    return {"iss": "https://sso.test", "aud": "app", "sub": "s", "iat": now, "exp": now + 60, **extra}


def _keys(*signing: jose.SigningKey) -> dict[str, jose.VerificationKey]:
    return {k.kid: jose.verification_key(k.public_jwk) for k in signing}


@pytest.mark.parametrize("alg", ["es256", "rs256"])
def test_round_trip(alg: str, request) -> None:  # type: ignore[no-untyped-def]
    key = request.getfixturevalue(alg)
    token = jose.sign(_claims(), key)
    assert jose.verify(token, _keys(key), audience="app", issuer="https://sso.test")["sub"] == "s"


def test_alg_none_is_refused(es256: jose.SigningKey) -> None:
    token = f"{_b64({'alg': 'none', 'kid': es256.kid})}.{_b64(_claims())}."
    with pytest.raises(FederationError, match="not allowed"):
        jose.verify(token, _keys(es256), audience="app", issuer="https://sso.test")


def test_hmac_signed_with_the_public_key_is_refused(rs256: jose.SigningKey) -> None:
    # The classic confusion attack: HS256 keyed with the verifier's public key.
    public_pem = rs256.key.public_key().to_pem()
    signing_input = f"{_b64({'alg': 'HS256', 'kid': rs256.kid, 'typ': 'JWT'})}.{_b64(_claims())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
    with pytest.raises(FederationError):
        jose.verify(forged, _keys(rs256), audience="app", issuer="https://sso.test")


def test_a_key_is_used_only_with_its_own_algorithm(es256: jose.SigningKey, rs256: jose.SigningKey) -> None:
    token = jose.sign(_claims(), rs256)
    header, payload, signature = token.split(".")
    relabelled = f"{_b64({'alg': 'RS256', 'kid': es256.kid, 'typ': 'JWT'})}.{payload}.{signature}"
    with pytest.raises(FederationError, match="does not match the pinned key"):
        jose.verify(relabelled, _keys(es256, rs256), audience="app", issuer="https://sso.test")


def test_unknown_kid_and_embedded_keys_are_ignored(es256: jose.SigningKey) -> None:
    attacker = jose.load_signing_key("ES256", generate_private_pem("ES256"))
    token = jose.sign(_claims(), attacker)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["kid"] != es256.kid
    with pytest.raises(FederationError, match="unknown signing key"):
        jose.verify(token, _keys(es256), audience="app", issuer="https://sso.test")


@pytest.mark.parametrize(
    ("claims", "kwargs"),
    [
        ({"exp": int(time.time()) - 3600}, {}),
        ({"aud": "other-app"}, {}),
        ({"iss": "https://evil.test"}, {}),
    ],
)
def test_expiry_audience_and_issuer_are_checked(es256: jose.SigningKey, claims: dict, kwargs: dict) -> None:
    token = jose.sign(_claims(**claims), es256)
    with pytest.raises(FederationError):
        jose.verify(token, _keys(es256), audience="app", issuer="https://sso.test", **kwargs)


def test_typ_is_checked_when_asked(es256: jose.SigningKey) -> None:
    token = jose.sign(_claims(), es256, typ="JWT")
    with pytest.raises(FederationError, match="unexpected token type"):
        jose.verify(token, _keys(es256), audience="app", issuer="https://sso.test", typ="at+jwt")


def test_private_jwks_are_refused_as_pinned_keys(es256: jose.SigningKey) -> None:
    with pytest.raises(FederationError):
        jose.verification_key({**es256.public_jwk, "d": "AAAA"})


def test_malformed_tokens_are_refused(es256: jose.SigningKey) -> None:
    for token in ["", "abc", "a.b", "a.b.c.d.e", "!!!.###.$$$"]:
        with pytest.raises(FederationError):
            jose.verify(token, _keys(es256), audience="app", issuer="https://sso.test")
