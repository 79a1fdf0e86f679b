"""Key material: the master key, signing-key generation, and encryption of keys at rest.

The master key (32 random bytes, base64, from the environment or a file) never signs or
encrypts anything directly: each use derives its own subkey with HKDF-SHA256 (RFC 5869)
under a distinct label.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from federation.errors import FederationError, FederationErrorCode

SigningAlg = Literal["ES256", "RS256"]
SIGNING_ALGS: tuple[SigningAlg, ...] = ("ES256", "RS256")


class MasterKey:
    """The broker's root secret; derives purpose-specific subkeys."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise FederationError(FederationErrorCode.KEY_ERROR, "the master key must be 32 bytes")
        self._raw = raw
        self._subkeys: dict[tuple[str, int], bytes] = {}

    @classmethod
    def from_text(cls, text: str) -> MasterKey:
        """Return the key encoded in ``text`` (standard or URL-safe base64 of 32 bytes).

        Raises FederationError(KEY_ERROR) if it is not.
        """
        cleaned = text.strip()
        try:
            raw = base64.urlsafe_b64decode(cleaned.replace("+", "-").replace("/", "_") + "=" * (-len(cleaned) % 4))
        except (binascii.Error, ValueError):
            raise FederationError(FederationErrorCode.KEY_ERROR, "the master key is not base64") from None
        return cls(raw)

    @staticmethod
    def generate_text() -> str:
        """Return a new random master key as URL-safe base64 text."""
        return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")

    def derive(self, label: str, length: int = 32) -> bytes:
        """Return a subkey for ``label`` (HKDF-SHA256, RFC 5869), derived once per process.

        Session cookies, codes and client secrets are hashed under subkeys on every request.
        """
        key = (label, length)
        subkey = self._subkeys.get(key)
        if subkey is None:
            subkey = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label.encode()).derive(self._raw)
            self._subkeys[key] = subkey
        return subkey

    def keyed_hash(self, label: str, value: str) -> str:
        """Return hex HMAC-SHA256 of ``value`` under the subkey for ``label``.

        For high-entropy secrets (client secrets, tokens, session ids): fast, and useless
        to someone holding only the database.
        """
        return hmac.new(self.derive(label), value.encode(), hashlib.sha256).hexdigest()

    def encrypt(self, plaintext: bytes, associated: bytes) -> bytes:
        """Return nonce || AES-256-GCM ciphertext of ``plaintext`` bound to ``associated``."""
        nonce = os.urandom(12)
        return nonce + AESGCM(self.derive("key-encryption")).encrypt(nonce, plaintext, associated)

    def decrypt(self, blob: bytes, associated: bytes) -> bytes:
        """Return the plaintext of ``encrypt``'s output. Raises FederationError(KEY_ERROR) if tampered."""
        try:
            return AESGCM(self.derive("key-encryption")).decrypt(blob[:12], blob[12:], associated)
        except (InvalidTag, ValueError):
            raise FederationError(FederationErrorCode.KEY_ERROR, "stored key failed authentication") from None


def generate_private_pem(alg: SigningAlg) -> bytes:
    """Return a new private key for ``alg`` as unencrypted PKCS#8 PEM (encrypt before storing)."""
    if alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise FederationError(FederationErrorCode.KEY_ERROR, f"unsupported signing algorithm {alg!r}")
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def jwk_thumbprint(public_jwk: dict[str, str]) -> str:
    """Return the RFC 7638 SHA-256 thumbprint of a public JWK, base64url without padding."""
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}[public_jwk["kty"]]
    canonical = json.dumps({k: public_jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode().rstrip("=")
