"""A second independent SP reads what ResponseIssuer issues: OneLogin's python3-saml (its own
parser and validation rules; it verifies and decrypts through libxmlsec1), in strict mode,
trusting only our certificate. Encrypted variants show it opens RSA-OAEP (mgf1p) + AES-256-GCM
and AES-256-CBC assertions.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from broker.saml.issuing import AssertionSpec, ResponseIssuer
from federation.upstream_saml.keys import KeyPair
from tests.saml_issuing.pysaml2_sp import ACS, IDP, REQUEST_ID, SP

# python3-saml rebuilds the URL it was reached at from the request, and compares it with Destination/Recipient.
REQUEST_DATA = {"https": "on", "http_host": "case-records.camden.test", "script_name": "/acs"}


def _settings(idp_pair: KeyPair, sp_pair: KeyPair, *, assertion_signed: bool, response_signed: bool, encrypted: bool) -> Any:
    return OneLogin_Saml2_Settings({
        "strict": True,
        "sp": {
            "entityId": SP,
            "assertionConsumerService": {"url": ACS, "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"},
            "NameIDFormat": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            "x509cert": sp_pair.cert_b64,
            "privateKey": sp_pair.key_pem,
        },
        "idp": {
            "entityId": IDP,
            "singleSignOnService": {"url": "https://broker.test/saml/sso", "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"},
            "x509cert": idp_pair.cert_b64,
        },
        "security": {
            "wantAssertionsSigned": assertion_signed,
            "wantMessagesSigned": response_signed,
            "wantAssertionsEncrypted": encrypted,
            "requestedAuthnContext": False,
            "rejectDeprecatedAlgorithm": True,
        },
    }, sp_validation_only=True)


def _read(settings: Any, xml: bytes) -> OneLogin_Saml2_Response:
    response = OneLogin_Saml2_Response(settings, base64.b64encode(xml).decode())
    response.is_valid(REQUEST_DATA, REQUEST_ID, raise_exceptions=True)
    return response


@pytest.mark.parametrize("assertion_signed, response_signed, content", [
    (True, True, None),
    (True, False, None),
    (False, True, None),
    (True, True, "aes256-gcm"),
    (True, False, "aes256-cbc"),
])
def test_python3_saml_accepts_the_response(
    assertion_signed: bool, response_signed: bool, content: str | None, idp_pair: KeyPair, sp_pair: KeyPair,
    issuer: ResponseIssuer, make_spec: Callable[..., AssertionSpec],
) -> None:
    spec = make_spec(
        sign_assertion=assertion_signed, sign_response=response_signed,
        encrypt_to_cert_pem=sp_pair.cert_pem.encode() if content else None, content_encryption=content or "aes256-gcm",
    )
    settings = _settings(idp_pair, sp_pair, assertion_signed=assertion_signed, response_signed=response_signed, encrypted=bool(content))
    response = _read(settings, issuer.issue(spec))
    assert response.get_nameid() == "p-3f9c2a7be01d44c1"
    assert response.get_nameid_format() == "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    assert response.get_session_index() == "_session-81d2"
    assert response.get_attributes() == {
        "urn:oid:1.3.6.1.4.1.25178.1.2.9": ["camden"],
        "urn:oid:2.5.4.11": ["Children's services", "Adult social care"],
    }
    assert response.get_friendlyname_attributes() == {"schacHomeOrganization": ["camden"], "ou": ["Children's services", "Adult social care"]}


def test_python3_saml_refuses_a_changed_attribute_and_a_foreign_signature(
    idp_pair: KeyPair, sp_pair: KeyPair, other_pair: KeyPair, issuer: ResponseIssuer, make_spec: Callable[..., AssertionSpec],
) -> None:
    settings = _settings(idp_pair, sp_pair, assertion_signed=True, response_signed=True, encrypted=False)
    xml = issuer.issue(make_spec())
    _read(settings, xml)
    with pytest.raises(Exception, match="(?i)signature|reference"):  # noqa: PT011 - python3-saml raises its ValidationError
        _read(settings, xml.replace(b">camden<", b">hackney<"))
    forger = ResponseIssuer(other_pair.key_pem.encode(), other_pair.cert_pem.encode())
    with pytest.raises(Exception, match="(?i)signature"):  # noqa: PT011
        _read(settings, forger.issue(make_spec()))
