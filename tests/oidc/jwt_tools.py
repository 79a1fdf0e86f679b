"""Hand-made JWTs for tests: client assertions, forged and malformed tokens.

Built from ``cryptography`` and ``hmac`` directly, so a test can make exactly the token an
attacker would (``alg: none``, HS256 keyed with our public key, foreign ``jwk`` headers).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (header, payload) of a compact JWS without verifying it."""
    header, payload, _ = token.split(".")
    return json.loads(unb64(header)), json.loads(unb64(payload))


def _signing_input(header: dict[str, Any], claims: dict[str, Any]) -> bytes:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}".encode()


def sign_es256(claims: dict[str, Any], key: ec.EllipticCurvePrivateKey, **header: Any) -> str:
    h = {"alg": "ES256", "typ": "JWT", **header}
    data = _signing_input(h, claims)
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return data.decode() + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def sign_rs256(claims: dict[str, Any], key: rsa.RSAPrivateKey, **header: Any) -> str:
    h = {"alg": "RS256", "typ": "JWT", **header}
    data = _signing_input(h, claims)
    return data.decode() + "." + b64(key.sign(data, padding.PKCS1v15(), hashes.SHA256()))


def sign_hs256(claims: dict[str, Any], secret: bytes, **header: Any) -> str:
    h = {"alg": "HS256", "typ": "JWT", **header}
    data = _signing_input(h, claims)
    return data.decode() + "." + b64(hmac.new(secret, data, hashlib.sha256).digest())


def unsigned(claims: dict[str, Any], **header: Any) -> str:
    h = {"alg": "none", "typ": "JWT", **header}
    return _signing_input(h, claims).decode() + "."


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    """Return the public JWK of ``key`` with ``kid``."""
    pub = key.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        n = pub.public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": b64(n.x.to_bytes(32, "big")), "y": b64(n.y.to_bytes(32, "big")), "kid": kid}
    n = pub.public_numbers()
    return {"kty": "RSA", "n": b64(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")), "e": b64(n.e.to_bytes(3, "big")), "kid": kid}


def public_key_forms(jwk: dict[str, str]) -> dict[str, bytes]:
    """Return our public key as PEM, DER and OpenSSH bytes (what an HS256 confusion attack keys with)."""
    if jwk["kty"] == "EC":
        numbers = ec.EllipticCurvePublicNumbers(int.from_bytes(unb64(jwk["x"]), "big"), int.from_bytes(unb64(jwk["y"]), "big"), ec.SECP256R1())
    else:
        numbers = rsa.RSAPublicNumbers(int.from_bytes(unb64(jwk["e"]), "big"), int.from_bytes(unb64(jwk["n"]), "big"))
    pub = numbers.public_key()
    return {
        "pem": pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "der": pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        "openssh": pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
    }


def client_assertion(client_id: str, key: ec.EllipticCurvePrivateKey, audience: str | list[str], *, kid: str | None = "k1",
                     jti: str | None = None, iat: int | None = None, exp: int | None = None, **extra: Any) -> str:
    """Return a private_key_jwt client assertion (RFC 7523 §3)."""
    now = int(time.time())
    iat = now if iat is None else iat
    claims = {"iss": client_id, "sub": client_id, "aud": audience, "jti": jti or secrets.token_urlsafe(12),
              "iat": iat, "exp": iat + 60 if exp is None else exp, **extra}
    header = {"kid": kid} if kid else {}
    return sign_es256(claims, key, **header)
