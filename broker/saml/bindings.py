"""SAML HTTP-Redirect and HTTP-POST bindings (SAML 2.0 Bindings §3.4, §3.5): decoding messages,
the Redirect binding's query-string signature, and RelayState rules.

The Redirect binding signs the query string, not the XML (§3.4.4.1): the signature covers
``SAMLRequest=…&RelayState=…&SigAlg=…`` exactly as the values appeared URL-encoded in the
request, so the raw query string is kept, never re-encoded. Only RSA with SHA-256/384/512 is
accepted and the key comes only from the SP's metadata, never from the message.
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

from federation.upstream_saml.xmlsecurity import MAX_DOCUMENT_BYTES

#: SAML Bindings §3.4.3: RelayState MUST NOT exceed 80 bytes.
MAX_RELAY_STATE_BYTES = 80
REDIRECT_SIG_ALGS: dict[str, hashes.HashAlgorithm] = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": hashes.SHA256(),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": hashes.SHA384(),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": hashes.SHA512(),
}
OUR_SIG_ALG = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"


class BindingError(Exception):
    """A message that cannot be read under its binding; ``reason`` is safe to audit and show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True, slots=True)
class InboundMessage:
    """One SAML protocol message as received: its XML, RelayState, and how it was signed."""

    kind: str  # "SAMLRequest" or "SAMLResponse"
    xml: bytes
    relay_state: str | None
    binding: str  # "redirect" or "post"
    signed_query: bytes | None = None  # the octets the Redirect signature covers
    sig_alg: str | None = None
    signature: bytes | None = None


def _relay_state(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value.encode("utf-8")) > MAX_RELAY_STATE_BYTES:
        raise BindingError(f"RelayState is longer than {MAX_RELAY_STATE_BYTES} bytes (SAML Bindings §3.4.3)")
    return value


def decode_redirect(raw_query: bytes) -> InboundMessage:
    """Decode an HTTP-Redirect message from the raw query string (§3.4.4.1).

    Raises BindingError for a repeated or missing parameter, bad base64/DEFLATE, an
    over-long document or RelayState.
    """
    raw: dict[str, str] = {}
    try:
        query = raw_query.decode("ascii")
    except UnicodeDecodeError:
        raise BindingError("the query string is not URL-encoded ASCII") from None
    for part in query.split("&") if query else []:
        name, _, value = part.partition("=")
        if name in raw:
            raise BindingError(f"the parameter {name} is repeated")
        raw[name] = value
    kinds = [k for k in ("SAMLRequest", "SAMLResponse") if k in raw]
    if len(kinds) != 1:
        raise BindingError("exactly one of SAMLRequest or SAMLResponse is required")
    kind = kinds[0]
    try:
        compressed = base64.b64decode(unquote_plus(raw[kind]), validate=True)
        inflater = zlib.decompressobj(-15)
        xml = inflater.decompress(compressed, MAX_DOCUMENT_BYTES + 1)
    except (binascii.Error, ValueError, zlib.error):
        raise BindingError(f"{kind} is not base64 DEFLATE (SAML Bindings §3.4.4.1)") from None
    if len(xml) > MAX_DOCUMENT_BYTES or inflater.unconsumed_tail:
        raise BindingError(f"{kind} is larger than {MAX_DOCUMENT_BYTES} bytes")
    relay = _relay_state(unquote_plus(raw["RelayState"]) if "RelayState" in raw else None)
    signature = sig_alg = signed = None
    if "Signature" in raw or "SigAlg" in raw:
        if "Signature" not in raw or "SigAlg" not in raw:
            raise BindingError("Signature and SigAlg must come together")
        sig_alg = unquote_plus(raw["SigAlg"])
        try:
            signature = base64.b64decode(unquote_plus(raw["Signature"]), validate=True)
        except (binascii.Error, ValueError):
            raise BindingError("Signature is not base64") from None
        parts = [f"{kind}={raw[kind]}"]
        if "RelayState" in raw:
            parts.append(f"RelayState={raw['RelayState']}")
        parts.append(f"SigAlg={raw['SigAlg']}")
        signed = "&".join(parts).encode("ascii")
    return InboundMessage(kind, xml, relay, "redirect", signed, sig_alg, signature)


def decode_post(form: dict[str, str]) -> InboundMessage:
    """Decode an HTTP-POST message (§3.5.4): base64 XML, signed (if at all) inside the XML.

    Raises BindingError as ``decode_redirect``.
    """
    kinds = [k for k in ("SAMLRequest", "SAMLResponse") if k in form]
    if len(kinds) != 1:
        raise BindingError("exactly one of SAMLRequest or SAMLResponse is required")
    kind = kinds[0]
    encoded = form[kind]
    if len(encoded) > (MAX_DOCUMENT_BYTES * 4) // 3 + 4:
        raise BindingError(f"{kind} is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        xml = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BindingError(f"{kind} is not base64 (SAML Bindings §3.5.4)") from None
    return InboundMessage(kind, xml, _relay_state(form.get("RelayState")), "post")


def verify_redirect_signature(message: InboundMessage, certificates_b64: tuple[str, ...]) -> bool:
    """Return True if the Redirect signature verifies with one of the SP's metadata certificates.

    Raises BindingError for an algorithm other than RSA-SHA256/384/512 (never SHA-1) or a
    message without a Redirect signature.
    """
    if message.signature is None or message.signed_query is None or message.sig_alg is None:
        raise BindingError("the message is not signed")
    algorithm = REDIRECT_SIG_ALGS.get(message.sig_alg)
    if algorithm is None:
        raise BindingError(f"signature algorithm {message.sig_alg!r} is not allowed")
    for cert_b64 in certificates_b64:
        try:
            key = x509.load_der_x509_certificate(base64.b64decode(cert_b64)).public_key()
        except ValueError:
            continue
        if not isinstance(key, rsa.RSAPublicKey):
            continue
        try:
            key.verify(message.signature, message.signed_query, padding.PKCS1v15(), algorithm)
            return True
        except InvalidSignature:
            continue
    return False


def encode_redirect(kind: str, xml: bytes, relay_state: str | None, key_pem: bytes) -> str:
    """Return the query string carrying ``xml`` under the Redirect binding, signed with
    ``key_pem`` (RSA-SHA256, §3.4.4.1)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    encoded = base64.b64encode(deflater.compress(xml) + deflater.flush()).decode()
    parts = [f"{kind}={quote(encoded, safe='')}"]
    if relay_state is not None:
        parts.append(f"RelayState={quote(relay_state, safe='')}")
    parts.append(f"SigAlg={quote(OUR_SIG_ALG, safe='')}")
    signed = "&".join(parts).encode("ascii")
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise BindingError("the IdP signing key is not RSA")
    signature = base64.b64encode(key.sign(signed, padding.PKCS1v15(), hashes.SHA256())).decode()
    return "&".join([*parts, f"Signature={quote(signature, safe='')}"])


def encode_post(xml: bytes) -> str:
    """Return ``xml`` base64-encoded for an HTTP-POST form field (§3.5.4)."""
    return base64.b64encode(xml).decode()
