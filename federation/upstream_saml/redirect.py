"""The HTTP-Redirect binding for logout messages with an upstream IdP (SAML Bindings §3.4).

Messages are DEFLATE-compressed, base64-encoded and carried in the query string; the
signature covers ``SAMLRequest|SAMLResponse=…&RelayState=…&SigAlg=…`` exactly as the octets
appear in the URL (§3.4.4.1), so an inbound query is verified over its raw octets, never
re-encoded. Only RSA-SHA256 is accepted, with keys only from the IdP's metadata; we sign
with our current SP signing key.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import zlib
from urllib.parse import quote, unquote_plus

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from federation.errors import FederationError, FederationErrorCode
from federation.upstream_saml.xmlsecurity import MAX_DOCUMENT_BYTES, SIGN_ALG

MAX_QUERY_CHARS = 64 * 1024
MAX_RELAY_STATE_BYTES = 80  # SAML Bindings §3.4.3


def _refuse(reason: str) -> FederationError:
    return FederationError(FederationErrorCode.INVALID_TOKEN, reason)


@dataclasses.dataclass(frozen=True, slots=True)
class RedirectMessage:
    """An inbound Redirect-binding message: its kind, XML, RelayState and signature parts."""

    kind: str  # SAMLRequest | SAMLResponse
    xml: bytes
    relay_state: str | None
    signed_octets: bytes
    sig_alg: str | None
    signature: bytes | None


def encode(kind: str, xml: bytes, relay_state: str | None, key_pem: str) -> str:
    """Return the signed query string carrying ``xml`` as ``kind`` (SAMLRequest/SAMLResponse)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = compressor.compress(xml) + compressor.flush()
    parts = [f"{kind}={quote(base64.b64encode(deflated).decode(), safe='')}"]
    if relay_state:
        parts.append(f"RelayState={quote(relay_state, safe='')}")
    parts.append(f"SigAlg={quote(SIGN_ALG, safe='')}")
    signed = "&".join(parts).encode("ascii")
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise FederationError(FederationErrorCode.MISCONFIGURED, "the SP signing key is not RSA")
    signature = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    return signed.decode() + "&Signature=" + quote(base64.b64encode(signature).decode(), safe="")


def decode(raw_query: bytes) -> RedirectMessage:
    """Parse a Redirect-binding query string, keeping the octets its signature covers.

    Raises FederationError(INVALID_TOKEN) for a malformed, repeated, oversized or
    undecodable message.
    """
    if len(raw_query) > MAX_QUERY_CHARS:
        raise _refuse("the query string is too long")
    raw: dict[str, str] = {}
    for item in raw_query.decode("ascii", errors="strict").split("&"):
        name, _, value = item.partition("=")
        if name in raw:
            raise _refuse(f"{name} is repeated")
        raw[name] = value
    kinds = [k for k in ("SAMLRequest", "SAMLResponse") if k in raw]
    if len(kinds) != 1:
        raise _refuse("exactly one SAMLRequest or SAMLResponse is expected")
    kind = kinds[0]
    if raw.get("SAMLEncoding", "urn:oasis:names:tc:SAML:2.0:bindings:URL-Encoding:DEFLATE") != \
            "urn:oasis:names:tc:SAML:2.0:bindings:URL-Encoding:DEFLATE":
        raise _refuse("unsupported SAMLEncoding")
    try:
        compressed = base64.b64decode(unquote_plus(raw[kind]), validate=True)
        inflater = zlib.decompressobj(-15)
        xml = inflater.decompress(compressed, MAX_DOCUMENT_BYTES)
        if inflater.unconsumed_tail:
            raise _refuse("the message inflates beyond the size limit")
    except (binascii.Error, ValueError, zlib.error):
        raise _refuse("the message is not DEFLATE and base64 encoded") from None
    relay_state = unquote_plus(raw["RelayState"]) if "RelayState" in raw else None
    if relay_state is not None and len(relay_state.encode()) > MAX_RELAY_STATE_BYTES:
        raise _refuse("RelayState is longer than 80 bytes")
    signed = "&".join(f"{k}={raw[k]}" for k in (kind, "RelayState", "SigAlg") if k in raw).encode("ascii")
    signature = None
    if "Signature" in raw:
        try:
            signature = base64.b64decode(unquote_plus(raw["Signature"]), validate=True)
        except (binascii.Error, ValueError):
            raise _refuse("the Signature is not base64") from None
    return RedirectMessage(kind, xml, relay_state, signed, unquote_plus(raw["SigAlg"]) if "SigAlg" in raw else None,
                           signature)


def verify(message: RedirectMessage, certificates_b64: tuple[str, ...]) -> None:
    """Require a valid RSA-SHA256 signature by one of the IdP's metadata certificates.

    Raises FederationError(INVALID_TOKEN): unsigned, another algorithm, or no key verifies.
    """
    if message.signature is None or message.sig_alg is None:
        raise _refuse("the logout message is not signed")
    if message.sig_alg != SIGN_ALG:
        raise _refuse(f"signature algorithm {message.sig_alg!r} is not allowed")
    for certificate in certificates_b64:
        public_key = x509.load_der_x509_certificate(base64.b64decode(certificate)).public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            continue
        try:
            public_key.verify(message.signature, message.signed_octets, padding.PKCS1v15(), hashes.SHA256())
            return
        except InvalidSignature:
            continue
    raise _refuse("the logout message's signature does not verify with the IdP's keys")
