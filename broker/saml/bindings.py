"""SAML HTTP-Redirect and HTTP-POST bindings (SAML 2.0 Bindings §3.4, §3.5): decoding messages,
the Redirect binding's query-string signature, and RelayState rules.

The Redirect binding signs the query string, not the XML (§3.4.4.1): the signature covers
``SAMLRequest=…&RelayState=…&SigAlg=…`` exactly as the values appeared URL-encoded in the
request, so the raw query string is kept, never re-encoded. The codec is the one shared with
the upstream SP (``federation.upstream_saml.redirect``) and the signature rules (RSA/ECDSA with
SHA-256/384/512 only, keys only from the SP's metadata, never from the message) live in the
XML-security module (``xmlsecurity.verify_query``, ``xmlsecurity.sign_query``); this module
adapts them to the IdP's ``BindingError``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses

from federation.errors import FederationError
from federation.upstream_saml import redirect
from federation.upstream_saml.xmlsecurity import MAX_DOCUMENT_BYTES

#: SAML Bindings §3.4.3: RelayState MUST NOT exceed 80 bytes.
MAX_RELAY_STATE_BYTES = redirect.MAX_RELAY_STATE_BYTES


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
    try:
        return redirect.check_relay_state(value)
    except FederationError as exc:
        raise BindingError(exc.reason) from None


def decode_redirect(raw_query: bytes) -> InboundMessage:
    """Decode an HTTP-Redirect message from the raw query string (§3.4.4.1) with the one
    Redirect codec (``federation.upstream_saml.redirect``).

    Raises BindingError for a repeated or missing parameter, bad base64/DEFLATE, an
    over-long document or RelayState, or a Signature without SigAlg.
    """
    try:
        message = redirect.decode(raw_query)
    except FederationError as exc:
        raise BindingError(exc.reason) from None
    return InboundMessage(message.kind, message.xml, message.relay_state, "redirect",
                          message.signed_octets, message.sig_alg, message.signature)


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
    """Return True if the Redirect signature verifies with one of the SP's metadata certificates
    (``xmlsecurity.verify_query``: the raw query octets, keys only from metadata).

    Raises BindingError for an algorithm not allowed (RSA/ECDSA with SHA-256/384/512 only,
    never SHA-1) or a message without a Redirect signature.
    """
    if message.signature is None or message.signed_query is None or message.sig_alg is None:
        raise BindingError("the message is not signed")
    try:
        return redirect.is_signed_by(
            redirect.RedirectMessage(message.kind, message.xml, message.relay_state, message.signed_query,
                                     message.sig_alg, message.signature),
            certificates_b64)
    except FederationError as exc:
        raise BindingError(exc.reason) from None


def encode_redirect(kind: str, xml: bytes, relay_state: str | None, key_pem: bytes) -> str:
    """Return the query string carrying ``xml`` under the Redirect binding, signed with
    ``key_pem`` (RSA-SHA256, §3.4.4.1; the one codec in ``federation.upstream_saml.redirect``).

    Raises BindingError if the key cannot sign.
    """
    try:
        return redirect.encode(kind, xml, relay_state, key_pem)
    except FederationError as exc:
        raise BindingError(exc.reason) from None


def encode_post(xml: bytes) -> str:
    """Return ``xml`` base64-encoded for an HTTP-POST form field (§3.5.4)."""
    return base64.b64encode(xml).decode()
