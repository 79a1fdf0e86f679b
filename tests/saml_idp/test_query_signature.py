"""The HTTP-Redirect query signature (SAML Bindings §3.4.4.1) lives in one place, the XML-security
module, and the IdP and the upstream SP both go through it: the same allowlist, the raw octets."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from broker.saml import bindings
from federation.errors import FederationError
from federation.upstream_saml import redirect, xmlsecurity
from federation.upstream_saml.keys import generate_key_pair

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
HMAC_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"


def _der_b64(cert_pem: str) -> str:
    return base64.b64encode(x509.load_pem_x509_certificate(cert_pem.encode()).public_bytes(serialization.Encoding.DER)).decode()


def _ec_certificate(key: ec.EllipticCurvePrivateKey) -> str:
    import datetime as dt

    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "ec-sp")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def _query_signed_with(key, sig_alg: str, digest, relay_state: str = "r") -> bytes:  # type: ignore[no-untyped-def]
    """A Redirect query signed by hand (another implementation than ours) with ``sig_alg``."""
    base = redirect.encode("SAMLRequest", b"<samlp:AuthnRequest/>", relay_state, generate_key_pair("x", 2048).key_pem)
    parts = [p for p in base.split("&") if not p.startswith(("SigAlg=", "Signature="))]
    parts.append("SigAlg=" + quote(sig_alg, safe=""))
    octets = "&".join(parts).encode()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(octets, ec.ECDSA(digest)))
        size = (key.curve.key_size + 7) // 8
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    else:
        from cryptography.hazmat.primitives.asymmetric import padding

        signature = key.sign(octets, padding.PKCS1v15(), digest)
    return octets + b"&Signature=" + quote(base64.b64encode(signature).decode(), safe="").encode()


def test_idp_and_upstream_sp_read_the_same_signed_query_alike() -> None:
    pair, other = generate_key_pair("sp", 2048), generate_key_pair("other", 2048)
    query = bindings.encode_redirect("SAMLRequest", b"<samlp:LogoutRequest/>", "state", pair.key_pem.encode())
    # what the IdP signs, the upstream SP side verifies, and the reverse
    redirect.verify(redirect.decode(query.encode()), (_der_b64(pair.cert_pem),))
    sp_query = redirect.encode("SAMLResponse", b"<samlp:LogoutResponse/>", "state", pair.key_pem)
    assert bindings.verify_redirect_signature(bindings.decode_redirect(sp_query.encode()), (_der_b64(pair.cert_pem),))
    with pytest.raises(FederationError, match="does not verify"):
        redirect.verify(redirect.decode(query.encode()), (_der_b64(other.cert_pem),))


def test_rsa_sha512_from_another_implementation_verifies_on_both_sides() -> None:
    pair = generate_key_pair("sp", 2048)
    key = serialization.load_pem_private_key(pair.key_pem.encode(), None)
    query = _query_signed_with(key, RSA_SHA512, hashes.SHA512())
    assert bindings.verify_redirect_signature(bindings.decode_redirect(query), (_der_b64(pair.cert_pem),))
    redirect.verify(redirect.decode(query), (_der_b64(pair.cert_pem),))
    # the same signature presented as SHA-256 (the SigAlg is part of the signed octets) fails
    relabelled = query.replace(quote(RSA_SHA512, safe="").encode(), quote(RSA_SHA256, safe="").encode())
    assert not bindings.verify_redirect_signature(bindings.decode_redirect(relabelled), (_der_b64(pair.cert_pem),))


def test_ecdsa_query_signature_verifies_only_with_an_ec_metadata_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _ec_certificate(key)
    query = _query_signed_with(key, ECDSA_SHA256, hashes.SHA256())
    assert bindings.verify_redirect_signature(bindings.decode_redirect(query), (cert,))
    rsa_only = _der_b64(generate_key_pair("sp", 2048).cert_pem)
    assert not bindings.verify_redirect_signature(bindings.decode_redirect(query), (rsa_only,))
    # an RSA algorithm never verifies with the EC key (no algorithm/key confusion)
    rsa_named = query.replace(quote(ECDSA_SHA256, safe="").encode(), quote(RSA_SHA256, safe="").encode())
    assert not bindings.verify_redirect_signature(bindings.decode_redirect(rsa_named), (cert,))


@pytest.mark.parametrize("sig_alg", [RSA_SHA1, HMAC_SHA256, "http://www.w3.org/2000/09/xmldsig#dsa-sha1", "none"])
def test_sha1_hmac_and_unknown_algorithms_are_refused_on_both_sides(sig_alg: str) -> None:
    pair = generate_key_pair("sp", 2048)
    key = serialization.load_pem_private_key(pair.key_pem.encode(), None)
    query = _query_signed_with(key, sig_alg, hashes.SHA1() if "sha1" in sig_alg else hashes.SHA256())  # noqa: S303
    with pytest.raises(bindings.BindingError, match="not allowed"):
        bindings.verify_redirect_signature(bindings.decode_redirect(query), (_der_b64(pair.cert_pem),))
    with pytest.raises(FederationError, match="not allowed"):
        redirect.verify(redirect.decode(query), (_der_b64(pair.cert_pem),))


def test_a_signature_without_sigalg_and_a_non_ascii_query_are_refused() -> None:
    query = redirect.encode("SAMLRequest", b"<x/>", None, generate_key_pair("sp", 2048).key_pem)
    without_alg = "&".join(p for p in query.split("&") if not p.startswith("SigAlg=")).encode()
    for decode, error in ((bindings.decode_redirect, bindings.BindingError), (redirect.decode, FederationError)):
        with pytest.raises(error, match="Signature and SigAlg"):
            decode(without_alg)
        with pytest.raises(error, match="ASCII"):
            decode("SAMLRequest=é".encode())


def test_we_never_sign_with_a_weak_key() -> None:
    weak = generate_key_pair("weak", 1024)
    with pytest.raises(FederationError, match="at least 2048"):
        xmlsecurity.sign_query(b"SAMLRequest=x&SigAlg=y", weak.key_pem)
