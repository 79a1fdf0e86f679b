"""The SAML IdP's pure rules: RequestedAuthnContext comparisons, NameID policy, Redirect binding decoding."""

from __future__ import annotations

import base64
import zlib
from urllib.parse import quote

import pytest

from broker.saml import authn_context, nameid
from broker.saml.bindings import BindingError, decode_post, decode_redirect, encode_redirect, verify_redirect_signature
from federation.identity import AssuranceLevel
from federation.upstream_saml.keys import generate_key_pair

AAL1, AAL2, AAL3 = AssuranceLevel.AAL1, AssuranceLevel.AAL2, AssuranceLevel.AAL3
PPT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"


@pytest.mark.parametrize(("refs", "comparison", "achieved", "expected"), [
    ((), "exact", AAL1, ("ok", None)),
    (("urn:supercloud:aal2",), "minimum", AAL1, ("step_up", AAL2)),
    (("urn:supercloud:aal2",), "minimum", AAL3, ("ok", None)),
    (("urn:supercloud:aal2",), "exact", AAL2, ("ok", None)),
    (("urn:supercloud:aal2",), "exact", AAL3, ("refuse", None)),
    (("urn:supercloud:aal2",), "exact", AAL1, ("step_up", AAL2)),
    ((PPT,), "better", AAL1, ("step_up", AAL2)),
    (("urn:supercloud:aal3",), "better", AAL3, ("refuse", None)),
    (("urn:supercloud:aal1",), "maximum", AAL2, ("refuse", None)),
    (("https://refeds.org/profile/mfa",), "minimum", AAL2, ("ok", None)),
    (("urn:example:unknown",), "minimum", AAL3, ("refuse", None)),
    (("urn:example:unknown", "urn:supercloud:aal1"), "minimum", AAL1, ("ok", None)),
])
def test_requested_authn_context(refs, comparison, achieved, expected) -> None:  # type: ignore[no-untyped-def]
    outcome = authn_context.evaluate(refs, comparison, achieved, {})
    assert (outcome.action, outcome.level) == expected


def test_configured_class_refs_are_issued_and_understood() -> None:
    configured = {"AAL2": "http://schemas.microsoft.com/claims/multipleauthn"}
    assert authn_context.class_ref(AAL2, configured) == configured["AAL2"]
    assert authn_context.class_ref(AAL1, configured) == "urn:supercloud:aal1"
    assert authn_context.level_of(configured["AAL2"], configured) == AAL2


def test_nameid_policy() -> None:
    assert nameid.choose_format(None, "persistent") == nameid.PERSISTENT
    assert nameid.choose_format(nameid.UNSPECIFIED, "transient") == nameid.TRANSIENT
    assert nameid.choose_format(nameid.TRANSIENT, "persistent") == nameid.TRANSIENT
    assert nameid.choose_format(nameid.EMAIL, "email") == nameid.EMAIL
    with pytest.raises(nameid.NameIdPolicyError):
        nameid.choose_format(nameid.EMAIL, "persistent")
    with pytest.raises(nameid.NameIdPolicyError):
        nameid.choose_format("urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName", "persistent")


def _cert_b64(pair) -> str:  # type: ignore[no-untyped-def]
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return base64.b64encode(x509.load_pem_x509_certificate(pair.cert_pem.encode()).public_bytes(serialization.Encoding.DER)).decode()


def test_redirect_signature_covers_the_raw_query() -> None:
    pair, other = generate_key_pair("sp", 2048), generate_key_pair("other", 2048)
    query = encode_redirect("SAMLRequest", b"<samlp:AuthnRequest/>", "a b&c", pair.key_pem.encode())
    message = decode_redirect(query.encode())
    assert message.xml == b"<samlp:AuthnRequest/>" and message.relay_state == "a b&c"
    assert verify_redirect_signature(message, (_cert_b64(pair),))
    assert not verify_redirect_signature(message, (_cert_b64(other),)), "only the SP's metadata key verifies"
    swapped = decode_redirect(query.replace("RelayState=a%20b%26c", "RelayState=x").encode())
    assert not verify_redirect_signature(swapped, (_cert_b64(pair),))
    sha1 = decode_redirect(query.replace(quote("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", safe=""),
                                         quote("http://www.w3.org/2000/09/xmldsig#rsa-sha1", safe="")).encode())
    with pytest.raises(BindingError, match="not allowed"):
        verify_redirect_signature(sha1, (_cert_b64(pair),))


@pytest.mark.parametrize(("query", "reason"), [
    (b"", "exactly one"),
    (b"SAMLRequest=a&SAMLRequest=b", "repeated"),
    (b"SAMLRequest=%%%", "base64"),
    (b"SAMLRequest=" + quote(base64.b64encode(zlib.compress(b"<x/>"))).encode(), "DEFLATE"),
])
def test_bad_redirect_messages(query: bytes, reason: str) -> None:
    with pytest.raises(BindingError, match=reason):
        decode_redirect(query)


def test_deflate_bomb_is_bounded() -> None:
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = deflater.compress(b"<a>" + b" " * (4 * 1024 * 1024) + b"</a>") + deflater.flush()
    with pytest.raises(BindingError, match="larger than"):
        decode_redirect(b"SAMLRequest=" + quote(base64.b64encode(bomb).decode(), safe="").encode())


def test_relay_state_limit_applies_to_post_as_well() -> None:
    xml = base64.b64encode(b"<x/>").decode()
    assert decode_post({"SAMLRequest": xml, "RelayState": "é" * 40}).relay_state == "é" * 40  # 80 bytes
    with pytest.raises(BindingError, match="80 bytes"):
        decode_post({"SAMLRequest": xml, "RelayState": "é" * 40 + "x"})
