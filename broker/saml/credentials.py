"""The IdP's signing credentials: the broker key ring's RS256 keys, each with a certificate.

SAML metadata carries X.509 certificates, so each published RS256 key gets a self-signed
certificate built from the key alone: fixed validity, serial and name derived from its
kid. RSA PKCS#1 v1.5 signatures are deterministic, so every worker and host derives the
same certificate bytes from the same key, and nothing more is stored. Keys rotate with the
ring (``supercloud keys rotate --alg RS256``): metadata publishes the ``current`` (signing)
and ``next`` certificates, so SPs learn the next key before it signs (SAML Metadata §2.4.1.1).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from broker.errors import BrokerError, BrokerErrorCode
from broker.keyring import KeyRing
from federation.jose import SigningKey

ALG = "RS256"
NOT_BEFORE = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2125, 1, 1, tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class Credential:
    """One signing key as PEM with its certificate (PEM and base64 DER for metadata)."""

    kid: str
    key_pem: bytes
    cert_pem: bytes
    cert_b64: str


class IdpCredentials:
    """Returns the current and next signing credentials from the key ring (cached per kid)."""

    def __init__(self, keyring: KeyRing) -> None:
        self._keyring = keyring
        self._cache: dict[str, Credential] = {}
        self._lock = threading.Lock()

    def current(self) -> Credential:
        """Return the credential that signs now. Raises BrokerError(NOT_INITIALISED) if the ring has none."""
        return self._credential(self._keyring.current(ALG))

    def published(self) -> list[Credential]:
        """Return the credentials to publish in metadata: current first, then next (rollover)."""
        keys = self._keyring.published(ALG)
        if "current" not in keys:
            raise BrokerError(BrokerErrorCode.NOT_INITIALISED, "no current RS256 key: run 'supercloud keys init'", status=500)
        return [self._credential(keys[s]) for s in ("current", "next") if s in keys]

    def _credential(self, key: SigningKey) -> Credential:
        found = self._cache.get(key.kid)
        if found is not None:
            return found
        with self._lock:
            found = self._cache.get(key.kid) or _build(key)
            self._cache[key.kid] = found
        return found


def _build(key: SigningKey) -> Credential:
    private = key.key.prepared_key
    if not isinstance(private, rsa.RSAPrivateKey):
        raise BrokerError(BrokerErrorCode.NOT_INITIALISED, "the RS256 key is not an RSA key", status=500)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Supercloud SAML IdP {key.kid[:16]}")])
    serial = int.from_bytes(hashlib.sha256(key.kid.encode()).digest()[:16], "big") >> 1
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(serial)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    key_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    der = cert.public_bytes(serialization.Encoding.DER)
    return Credential(key.kid, key_pem, cert.public_bytes(serialization.Encoding.PEM), base64.b64encode(der).decode())
