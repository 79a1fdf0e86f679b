"""The SAML HTTP-Redirect binding (SAML Bindings §3.4): one codec for the broker's IdP
(broker/saml/bindings.py) and its upstream SP (logout with an upstream IdP).

Messages are DEFLATE-compressed, base64-encoded and carried in the query string; the
signature covers ``SAMLRequest|SAMLResponse=…&RelayState=…&SigAlg=…`` exactly as the octets
appear in the URL (§3.4.4.1), so an inbound query is verified over its raw octets, never
re-encoded. Signing and verifying those octets (the algorithm allowlist, keys only from the
peer's metadata) is ``xmlsecurity.sign_query`` / ``xmlsecurity.verify_query``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import zlib
from urllib.parse import quote, unquote_plus

from federation.errors import FederationError, FederationErrorCode
from federation.upstream_saml.xmlsecurity import MAX_DOCUMENT_BYTES, SIGN_ALG, sign_query, verify_query

MAX_QUERY_CHARS = 64 * 1024
MAX_RELAY_STATE_BYTES = 80  # SAML Bindings §3.4.3
DEFLATE_ENCODING = "urn:oasis:names:tc:SAML:2.0:bindings:URL-Encoding:DEFLATE"


def _refuse(reason: str) -> FederationError:
    return FederationError(FederationErrorCode.INVALID_TOKEN, reason)


@dataclasses.dataclass(frozen=True, slots=True)
class RedirectMessage:
    """An inbound Redirect-binding message: its kind, XML, RelayState and signature parts
    (``signed_octets``, ``sig_alg`` and ``signature`` are all None when it is unsigned)."""

    kind: str  # SAMLRequest | SAMLResponse
    xml: bytes
    relay_state: str | None
    signed_octets: bytes | None
    sig_alg: str | None
    signature: bytes | None


def check_relay_state(value: str | None) -> str | None:
    """Return ``value`` if it is at most 80 bytes of UTF-8 (SAML Bindings §3.4.3, §3.5.3).

    Raises FederationError(INVALID_TOKEN) otherwise.
    """
    if value is not None and len(value.encode("utf-8")) > MAX_RELAY_STATE_BYTES:
        raise _refuse(f"RelayState is longer than {MAX_RELAY_STATE_BYTES} bytes (SAML Bindings §3.4.3)")
    return value


def encode(kind: str, xml: bytes, relay_state: str | None, key_pem: str | bytes) -> str:
    """Return the query string carrying ``xml`` as ``kind`` (SAMLRequest/SAMLResponse), signed with
    ``key_pem`` (RSA-SHA256, §3.4.4.1). An empty RelayState is left out.

    Raises FederationError(MISCONFIGURED) if the key is not a usable RSA key.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = compressor.compress(xml) + compressor.flush()
    parts = [f"{kind}={quote(base64.b64encode(deflated).decode(), safe='')}"]
    if relay_state:
        parts.append(f"RelayState={quote(relay_state, safe='')}")
    parts.append(f"SigAlg={quote(SIGN_ALG, safe='')}")
    signed = "&".join(parts).encode("ascii")
    signature = sign_query(signed, key_pem)
    return signed.decode() + "&Signature=" + quote(base64.b64encode(signature).decode(), safe="")


def decode(raw_query: bytes) -> RedirectMessage:
    """Parse a Redirect-binding query string, keeping the octets its signature covers.

    Raises FederationError(INVALID_TOKEN) for a non-ASCII, over-long, repeated-parameter,
    undecodable or oversized message, a RelayState over 80 bytes, another SAMLEncoding, or
    a Signature without SigAlg (or the reverse).
    """
    if len(raw_query) > MAX_QUERY_CHARS:
        raise _refuse("the query string is too long")
    try:
        query = raw_query.decode("ascii")
    except UnicodeDecodeError:
        raise _refuse("the query string is not URL-encoded ASCII") from None
    raw: dict[str, str] = {}
    for item in query.split("&") if query else []:
        name, _, value = item.partition("=")
        if name in raw:
            raise _refuse(f"the parameter {name} is repeated")
        raw[name] = value
    kinds = [k for k in ("SAMLRequest", "SAMLResponse") if k in raw]
    if len(kinds) != 1:
        raise _refuse("exactly one of SAMLRequest or SAMLResponse is required")
    kind = kinds[0]
    if unquote_plus(raw.get("SAMLEncoding", DEFLATE_ENCODING)) != DEFLATE_ENCODING:
        raise _refuse("unsupported SAMLEncoding (SAML Bindings §3.4.4)")
    try:
        compressed = base64.b64decode(unquote_plus(raw[kind]), validate=True)
        inflater = zlib.decompressobj(-15)
        xml = inflater.decompress(compressed, MAX_DOCUMENT_BYTES + 1)
    except (binascii.Error, ValueError, zlib.error):
        raise _refuse(f"{kind} is not base64 DEFLATE (SAML Bindings §3.4.4.1)") from None
    if len(xml) > MAX_DOCUMENT_BYTES or inflater.unconsumed_tail:
        raise _refuse(f"{kind} is larger than {MAX_DOCUMENT_BYTES} bytes")
    relay_state = check_relay_state(unquote_plus(raw["RelayState"]) if "RelayState" in raw else None)
    if ("Signature" in raw) != ("SigAlg" in raw):
        raise _refuse("Signature and SigAlg must come together")
    if "Signature" not in raw:
        return RedirectMessage(kind, xml, relay_state, None, None, None)
    try:
        signature = base64.b64decode(unquote_plus(raw["Signature"]), validate=True)
    except (binascii.Error, ValueError):
        raise _refuse("the Signature is not base64") from None
    signed = "&".join(f"{k}={raw[k]}" for k in (kind, "RelayState", "SigAlg") if k in raw).encode("ascii")
    return RedirectMessage(kind, xml, relay_state, signed, unquote_plus(raw["SigAlg"]), signature)


def is_signed_by(message: RedirectMessage, certificates_b64: tuple[str, ...]) -> bool:
    """Return True if the message's query signature verifies with one of ``certificates_b64``
    (the peer's metadata keys), False if it does not.

    Raises FederationError(INVALID_TOKEN) if the message is unsigned or names an algorithm not
    allowed (``xmlsecurity.QUERY_SIGNATURE_ALGORITHMS``: never SHA-1).
    """
    if message.signature is None or message.sig_alg is None or message.signed_octets is None:
        raise _refuse("the message is not signed")
    return verify_query(message.signed_octets, message.sig_alg, message.signature, certificates_b64)


def verify(message: RedirectMessage, certificates_b64: tuple[str, ...]) -> None:
    """Require a valid query signature by one of the IdP's metadata certificates.

    Raises FederationError(INVALID_TOKEN): unsigned, an algorithm not allowed, or no key verifies.
    """
    if message.signature is None:
        raise _refuse("the logout message is not signed")
    if not is_signed_by(message, certificates_b64):
        raise _refuse("the logout message's signature does not verify with the IdP's keys")
