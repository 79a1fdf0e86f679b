"""The IdP's responses, built and signed in process by ResponseIssuer, as an independent SP sees
them: pysaml2's Saml2Client parses them and verifies/decrypts them with the xmlsec1 program,
trusting only the IdP certificate in its metadata. Tampered, re-wrapped or foreign-signed
responses are refused by that same SP.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from saml2.response import StatusAuthnFailed, StatusNoPassive, StatusRequestDenied
from saml2.sigver import SignatureError

from broker.saml.issuing import AssertionSpec, IssuingError, ReleasedAttribute, ResponseIssuer
from federation.errors import FederationError, FederationErrorCode
from federation.upstream_saml.keys import KeyPair, generate_key_pair
from federation.upstream_saml.xmlsecurity import inspect_document
from tests.saml_issuing.conftest import DEPARTMENT, ORGANISATION, PERSISTENT, PPT, URI
from tests.saml_issuing.pysaml2_sp import ACS, IDP, REQUEST_ID, SP, Pysaml2Sp, make_sp

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "xenc": "http://www.w3.org/2001/04/xmlenc#",
}
SIGNING_VARIANTS = {  # name: (sign_assertion, sign_response)
    "assertion-only": (True, False),
    "response-only": (False, True),
    "both": (True, True),
}


def _sp(tmp_path: Path, idp_pair: KeyPair, sign_assertion: bool, sign_response: bool, encryption: KeyPair | None = None) -> Pysaml2Sp:
    return make_sp(
        tmp_path, idp_pair.cert_pem, want_response_signed=sign_response, want_assertions_signed=sign_assertion,
        encryption=(encryption.key_pem, encryption.cert_pem) if encryption is not None else None,
    )


def _released(parsed: Any) -> dict[str, tuple[str | None, str | None, list[str]]]:
    """Return name -> (NameFormat, FriendlyName, values) of every attribute the SP received."""
    found = {}
    for statement in parsed.assertion.attribute_statement:
        for attribute in statement.attribute:
            found[attribute.name] = (attribute.name_format, attribute.friendly_name, [v.text for v in attribute.attribute_value])
    return found


def _parse(xml: bytes) -> Any:
    return etree.fromstring(xml)


def _child_names(element: Any) -> list[str]:
    return [etree.QName(child).localname for child in element]


# --- Accepted by an independent SP ------------------------------------------------------------

@pytest.mark.parametrize("variant", SIGNING_VARIANTS)
def test_pysaml2_accepts_each_signing_variant_with_every_field(
    variant: str, tmp_path: Path, idp_pair: KeyPair, issuer: ResponseIssuer, make_spec: Callable[..., AssertionSpec],
) -> None:
    sign_assertion, sign_response = SIGNING_VARIANTS[variant]
    spec = make_spec(sign_assertion=sign_assertion, sign_response=sign_response, one_time_use=True)
    xml = issuer.issue(spec)

    parsed = _sp(tmp_path, idp_pair, sign_assertion, sign_response).accept(xml)

    assert parsed.name_id.text == "p-3f9c2a7be01d44c1"
    assert parsed.name_id.format == PERSISTENT
    assert parsed.name_id.sp_name_qualifier == SP
    assert parsed.in_response_to == REQUEST_ID
    assert parsed.response.destination == ACS
    assert parsed.response.issuer.text == IDP
    statement = parsed.assertion.authn_statement[0]
    assert statement.session_index == "_session-81d2"
    assert statement.authn_context.authn_context_class_ref.text == PPT
    assert statement.authn_instant == spec.authn_instant.strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions = parsed.assertion.conditions
    assert [a.audience[0].text for a in conditions.audience_restriction] == [SP]
    assert len(conditions.one_time_use) == 1
    assert conditions.not_on_or_after == spec.not_on_or_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    confirmation = parsed.assertion.subject.subject_confirmation[0]
    assert confirmation.method == "urn:oasis:names:tc:SAML:2.0:cm:bearer"
    assert confirmation.subject_confirmation_data.recipient == ACS
    assert confirmation.subject_confirmation_data.in_response_to == REQUEST_ID
    assert _released(parsed) == {
        "urn:oid:1.3.6.1.4.1.25178.1.2.9": (URI, "schacHomeOrganization", ["camden"]),
        "urn:oid:2.5.4.11": (URI, "ou", ["Children's services", "Adult social care"]),
    }

    root = _parse(xml)
    assertion = root.find("saml:Assertion", NS)
    # Signatures right after the Issuer (SAML Core §5.4.1), each referencing its own element.
    assert _child_names(root)[:3] == (["Issuer", "Signature", "Status"] if sign_response else ["Issuer", "Status", "Assertion"])
    assert _child_names(assertion)[:2] == (["Issuer", "Signature"] if sign_assertion else ["Issuer", "Subject"])
    for element in (root, assertion):
        signature = element.find("ds:Signature", NS)
        if signature is not None:
            assert [r.get("URI") for r in signature.iterfind(".//ds:Reference", NS)] == [f"#{element.get('ID')}"]
            assert signature.find(".//ds:X509Certificate", NS) is not None
    # And our own inbound rules (the ones upstream responses meet) accept what we issue.
    facts = inspect_document(xml)
    assert facts.signed_ids == {e.get("ID") for e, s in ((root, sign_response), (assertion, sign_assertion)) if s}


def test_without_one_time_use_and_attributes_there_is_no_such_element(
    tmp_path: Path, idp_pair: KeyPair, issuer: ResponseIssuer, make_spec: Callable[..., AssertionSpec],
) -> None:
    xml = issuer.issue(make_spec(attributes=(), one_time_use=False))
    parsed = _sp(tmp_path, idp_pair, True, True).accept(xml)
    assert parsed.assertion.conditions.one_time_use == []
    assert parsed.assertion.attribute_statement == []
    assert parsed.ava == {}


def test_an_idp_initiated_response_carries_no_in_response_to(
    tmp_path: Path, idp_pair: KeyPair, issuer: ResponseIssuer, make_spec: Callable[..., AssertionSpec],
) -> None:
    xml = issuer.issue(make_spec(in_response_to=None))
    root = _parse(xml)
    assert root.get("InResponseTo") is None
    assert root.find(".//saml:SubjectConfirmationData", NS).get("InResponseTo") is None
    parsed = _sp(tmp_path, idp_pair, True, True).accept(xml, outstanding={})
    assert parsed.name_id.text == "p-3f9c2a7be01d44c1"


@pytest.mark.parametrize("content, algorithm", [
    ("aes256-gcm", "http://www.w3.org/2009/xmlenc11#aes256-gcm"),
    ("aes256-cbc", "http://www.w3.org/2001/04/xmlenc#aes256-cbc"),
])
@pytest.mark.parametrize("variant", SIGNING_VARIANTS)
def test_an_encrypted_signed_assertion_is_decrypted_and_verified_by_pysaml2(
    variant: str, content: str, algorithm: str, tmp_path: Path, idp_pair: KeyPair, sp_pair: KeyPair,
    issuer: ResponseIssuer, make_spec: Callable[..., AssertionSpec],
) -> None:
    sign_assertion, sign_response = SIGNING_VARIANTS[variant]
    spec = make_spec(sign_assertion=sign_assertion, sign_response=sign_response,
                     encrypt_to_cert_pem=sp_pair.cert_pem.encode(), content_encryption=content)
    xml = issuer.issue(spec)

    root = _parse(xml)
    assert root.find("saml:Assertion", NS) is None
    encrypted = root.find("saml:EncryptedAssertion/xenc:EncryptedData", NS)
    assert encrypted.get("Type") == "http://www.w3.org/2001/04/xmlenc#Element"
    assert encrypted.find("xenc:EncryptionMethod", NS).get("Algorithm") == algorithm
    assert encrypted.find("ds:KeyInfo/xenc:EncryptedKey/xenc:EncryptionMethod", NS).get("Algorithm") == (
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p")
    assert b"Children's services" not in xml and b"p-3f9c2a7be01d44c1" not in xml and b"_session-81d2" not in xml

    parsed = _sp(tmp_path, idp_pair, sign_assertion, sign_response, encryption=sp_pair).accept(xml)
    assert parsed.name_id.text == "p-3f9c2a7be01d44c1"
    assert parsed.ava == {"schacHomeOrganization": ["camden"], "ou": ["Children's services", "Adult social care"]}


def test_an_assertion_encrypted_to_another_sp_cannot_be_read(
    tmp_path: Path, idp_pair: KeyPair, sp_pair: KeyPair, other_pair: KeyPair, issuer: ResponseIssuer,
    make_spec: Callable[..., AssertionSpec],
) -> None:
    xml = issuer.issue(make_spec(encrypt_to_cert_pem=other_pair.cert_pem.encode()))
    parsed = _sp(tmp_path, idp_pair, True, True, encryption=sp_pair).accept(xml)
    # pysaml2 keeps the (signed) Response but cannot open the assertion: no subject, no attributes.
    assert parsed.assertion is None and parsed.name_id is None and parsed.ava == {}
    assert _sp(tmp_path, idp_pair, True, True, encryption=other_pair).accept(xml).name_id.text == "p-3f9c2a7be01d44c1"


def test_sha1_never_appears_and_the_algorithms_are_pinned(
    issuer: ResponseIssuer, sp_pair: KeyPair, make_spec: Callable[..., AssertionSpec],
) -> None:
    documents = [issuer.issue(make_spec()), issuer.issue(make_spec(encrypt_to_cert_pem=sp_pair.cert_pem.encode())),
                 issuer.error(IDP, ACS, REQUEST_ID, "urn:oasis:names:tc:SAML:2.0:status:Responder")]
    for xml in documents:
        root = _parse(xml)
        # Every algorithm the document names (signature, digest, transforms, encryption, key transport, MGF);
        # the base64 ciphertext and signature values are random and may spell anything, so only names are read.
        named = {e.get("Algorithm") for e in root.iter() if e.get("Algorithm")}
        assert named and not [a for a in named if re.search(r"sha1|sha-1|md5", a, re.IGNORECASE)]
        assert {e.get("Algorithm") for e in root.iterfind(".//ds:SignatureMethod", NS)} == {
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"}
        assert {e.get("Algorithm") for e in root.iterfind(".//ds:DigestMethod", NS)} == {"http://www.w3.org/2001/04/xmlenc#sha256"}
        assert {e.get("Algorithm") for e in root.iterfind(".//ds:CanonicalizationMethod", NS)} == {
            "http://www.w3.org/2001/10/xml-exc-c14n#"}


def test_ids_are_unpredictable_and_start_with_a_letter_or_underscore(issuer: ResponseIssuer, make_spec: Callable[..., AssertionSpec]) -> None:
    ids = []
    for _ in range(20):
        root = _parse(issuer.issue(make_spec(sign_assertion=False, sign_response=True)))
        ids += [root.get("ID"), root.find("saml:Assertion", NS).get("ID")]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"_[0-9a-f]{40}", i) for i in ids)  # 160 random bits each


# --- Hostile values are escaped ----------------------------------------------------------------

HOSTILE = ["</saml:Attribute><x>", "]]>", "<![CDATA[x]]>", "a & b < c > d \" ' e", "<!-- c -->", "&amp;lt;"]


def test_hostile_values_arrive_exactly_as_given_and_add_no_element(
    tmp_path: Path, idp_pair: KeyPair, issuer: ResponseIssuer, make_spec: Callable[..., AssertionSpec],
) -> None:
    hostile = ReleasedAttribute('x"/><saml:Attribute Name="admin', URI, "</x>", tuple(HOSTILE))
    spec = make_spec(attributes=(hostile,), name_id="</saml:NameID><saml:NameID>admin]]>&",
                     session_index='"><x/>', in_response_to=REQUEST_ID)
    xml = issuer.issue(spec)

    root = _parse(xml)
    assert len(root.findall(".//saml:Attribute", NS)) == 1
    assert len(root.findall(".//saml:NameID", NS)) == 1
    assert root.find(".//x") is None
    parsed = _sp(tmp_path, idp_pair, True, True).accept(xml)
    assert parsed.name_id.text == "</saml:NameID><saml:NameID>admin]]>&"
    assert _released(parsed) == {'x"/><saml:Attribute Name="admin': (URI, "</x>", HOSTILE)}
    assert parsed.assertion.authn_statement[0].session_index == '"><x/>'


@pytest.mark.parametrize("field, value", [
    ("name_id", "nul\x00byte"),
    ("name_id", "bell\x07"),
    ("attributes", (ReleasedAttribute("mail", URI, None, ("esc\x1b[31m",)),)),
])
def test_values_xml_cannot_carry_are_refused(issuer: ResponseIssuer, make_spec: Callable[..., AssertionSpec], field: str, value: Any) -> None:
    with pytest.raises(IssuingError, match="cannot be carried in XML"):
        issuer.issue(make_spec(**{field: value}))


def test_an_assertion_already_expired_or_with_naive_times_is_refused(issuer: ResponseIssuer, make_spec: Callable[..., AssertionSpec]) -> None:
    with pytest.raises(IssuingError, match="already be expired"):
        issuer.issue(make_spec(not_on_or_after=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    with pytest.raises(IssuingError, match="timezone-aware"):
        issuer.issue(make_spec(authn_instant=dt.datetime.now()))  # noqa: DTZ005 - the point of the test
    with pytest.raises(IssuingError, match="timezone-aware"):
        issuer.issue(make_spec(not_on_or_after=dt.datetime.now() + dt.timedelta(minutes=5)))  # noqa: DTZ005
    with pytest.raises(IssuingError, match="content_encryption"):
        issuer.issue(make_spec(content_encryption="tripledes-cbc"))


# --- Tampering is refused by the same SP -------------------------------------------------------

def _edit(xml: bytes, change: Callable[[Any], None]) -> bytes:
    root = _parse(xml)
    change(root)
    return etree.tostring(root)


def _change_attribute(root: Any) -> None:
    value = root.find(".//saml:Attribute[@FriendlyName='schacHomeOrganization']/saml:AttributeValue", NS)
    value.text = "hackney"


@pytest.mark.parametrize("variant", SIGNING_VARIANTS)
def test_a_changed_attribute_is_refused(
    variant: str, tmp_path: Path, idp_pair: KeyPair, issuer: ResponseIssuer, make_spec: Callable[..., AssertionSpec],
) -> None:
    sign_assertion, sign_response = SIGNING_VARIANTS[variant]
    sp = _sp(tmp_path, idp_pair, sign_assertion, sign_response)
    xml = issuer.issue(make_spec(sign_assertion=sign_assertion, sign_response=sign_response))
    assert sp.accept(xml).ava["schacHomeOrganization"] == ["camden"]  # untouched: accepted
    with pytest.raises(SignatureError):
        sp.accept(_edit(xml, _change_attribute))


def test_a_response_signed_by_another_key_is_refused(
    tmp_path: Path, idp_pair: KeyPair, other_pair: KeyPair, make_spec: Callable[..., AssertionSpec],
) -> None:
    forger = ResponseIssuer(other_pair.key_pem.encode(), other_pair.cert_pem.encode())
    xml = forger.issue(make_spec())  # carries the forger's certificate in KeyInfo: must not be trusted
    with pytest.raises(SignatureError):
        _sp(tmp_path, idp_pair, True, True).accept(xml)


def test_the_response_signature_moved_onto_the_assertion_is_refused(
    tmp_path: Path, idp_pair: KeyPair, issuer: ResponseIssuer, make_spec: Callable[..., AssertionSpec],
) -> None:
    xml = issuer.issue(make_spec(sign_assertion=False, sign_response=True))

    def move(root: Any) -> None:
        signature = root.find("ds:Signature", NS)
        assertion = root.find("saml:Assertion", NS)
        assertion.find("saml:Issuer", NS).addnext(signature)  # still names the Response's ID (its digest still matches)

    with pytest.raises(SignatureError):
        _sp(tmp_path, idp_pair, True, False).accept(_edit(xml, move))


def _forged_copy(original: Any) -> Any:
    forged = copy.deepcopy(original)
    forged.set("ID", "_forged")
    signature = forged.find("ds:Signature", NS)
    if signature is not None:
        forged.remove(signature)
    forged.find(".//saml:AttributeValue", NS).text = "hackney"
    forged.find(".//saml:NameID", NS).text = "p-admin"
    return forged


@pytest.mark.parametrize("wrapping", ["forged-before-signed", "signed-inside-forged", "signed-in-extensions"])
def test_a_wrapped_assertion_is_refused(
    wrapping: str, tmp_path: Path, idp_pair: KeyPair, issuer: ResponseIssuer, make_spec: Callable[..., AssertionSpec],
) -> None:
    xml = issuer.issue(make_spec(sign_assertion=True, sign_response=False))

    def wrap(root: Any) -> None:
        original = root.find("saml:Assertion", NS)
        forged = _forged_copy(original)
        if wrapping == "forged-before-signed":  # XSW3
            original.addprevious(forged)
        elif wrapping == "signed-inside-forged":  # XSW4
            original.addprevious(forged)
            forged.append(original)
        else:  # the signed original hidden in the Response's Extensions
            extensions = etree.Element(f"{{{NS['samlp']}}}Extensions")
            root.find("saml:Issuer", NS).addnext(extensions)
            original.addprevious(forged)
            extensions.append(original)

    wrapped = _edit(xml, wrap)
    try:
        parsed = _sp(tmp_path, idp_pair, True, False).accept(wrapped)
    except Exception as exc:  # noqa: BLE001 - refused: the outcome wanted (which exception is pysaml2's choice)
        assert "p-admin" not in str(exc)
        return
    pytest.fail(f"pysaml2 accepted a wrapped assertion for {parsed.name_id.text}, ava {parsed.ava}")


def test_an_unsigned_response_is_refused_by_an_sp_that_wants_signatures(
    tmp_path: Path, idp_pair: KeyPair, issuer: ResponseIssuer, make_spec: Callable[..., AssertionSpec],
) -> None:
    def strip(root: Any) -> None:
        for signature in root.iterfind(".//ds:Signature", NS):
            signature.getparent().remove(signature)

    xml = _edit(issuer.issue(make_spec()), strip)
    with pytest.raises(SignatureError):
        _sp(tmp_path, idp_pair, True, False).accept(xml)
    with pytest.raises(IssuingError, match="must be signed"):  # and we never issue one (SAML Profiles §4.1.4.5)
        issuer.issue(make_spec(sign_assertion=False, sign_response=False))


# --- Error responses ----------------------------------------------------------------------------

@pytest.mark.parametrize("sub_status, raised", [
    ("urn:oasis:names:tc:SAML:2.0:status:NoPassive", StatusNoPassive),
    ("urn:oasis:names:tc:SAML:2.0:status:AuthnFailed", StatusAuthnFailed),
    ("urn:oasis:names:tc:SAML:2.0:status:RequestDenied", StatusRequestDenied),
])
def test_error_responses_reach_the_sp_with_their_status(
    sub_status: str, raised: type[Exception], tmp_path: Path, idp_pair: KeyPair, issuer: ResponseIssuer,
) -> None:
    xml = issuer.error(IDP, ACS, REQUEST_ID, "urn:oasis:names:tc:SAML:2.0:status:Responder", sub_status, "You cannot <sign in> & here")
    root = _parse(xml)
    assert root.find("saml:Assertion", NS) is None
    code = root.find("samlp:Status/samlp:StatusCode", NS)
    assert code.get("Value") == "urn:oasis:names:tc:SAML:2.0:status:Responder"
    assert code.find("samlp:StatusCode", NS).get("Value") == sub_status
    assert root.find("samlp:Status/samlp:StatusMessage", NS).text == "You cannot <sign in> & here"
    assert _child_names(root)[:2] == ["Issuer", "Signature"]
    assert inspect_document(xml).signed_ids == {root.get("ID")}
    with pytest.raises(raised, match="You cannot <sign in> & here"):
        _sp(tmp_path, idp_pair, False, True).accept(xml)


def test_an_unsigned_error_response_and_refused_status_codes(issuer: ResponseIssuer) -> None:
    xml = issuer.error(IDP, ACS, None, "urn:oasis:names:tc:SAML:2.0:status:Requester", sign=False)
    root = _parse(xml)
    assert root.find("ds:Signature", NS) is None and root.get("InResponseTo") is None
    assert root.get("Destination") == ACS
    with pytest.raises(IssuingError, match="status_code"):
        issuer.error(IDP, ACS, REQUEST_ID, "urn:oasis:names:tc:SAML:2.0:status:Success")
    with pytest.raises(IssuingError, match="sub_status_code"):
        issuer.error(IDP, ACS, REQUEST_ID, "urn:oasis:names:tc:SAML:2.0:status:Requester", "NoPassive")


# --- sign_xml: logout messages and metadata ---------------------------------------------------

def _xmlsec1_verify(xml: bytes, node: str, certificate_pem: str) -> None:
    from federation.upstream_saml.xmlsecurity import XmlSecurity

    XmlSecurity().verify_enveloped(xml, node, certificate_pem)


def test_sign_xml_signs_a_logout_request_after_its_issuer(issuer: ResponseIssuer, idp_pair: KeyPair, other_pair: KeyPair) -> None:
    request = (
        '<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        f'ID="_logout-1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" Destination="{ACS}">'
        f'<saml:Issuer>{IDP}</saml:Issuer><saml:NameID Format="{PERSISTENT}">p-1</saml:NameID>'
        "<samlp:SessionIndex>_s</samlp:SessionIndex></samlp:LogoutRequest>"
    ).encode()
    signed = issuer.sign_xml(request, "_logout-1")
    root = _parse(signed)
    assert _child_names(root) == ["Issuer", "Signature", "NameID", "SessionIndex"]
    _xmlsec1_verify(signed, "urn:oasis:names:tc:SAML:2.0:protocol:LogoutRequest", idp_pair.cert_pem)
    with pytest.raises(FederationError):
        _xmlsec1_verify(signed, "urn:oasis:names:tc:SAML:2.0:protocol:LogoutRequest", other_pair.cert_pem)
    with pytest.raises(FederationError):
        _xmlsec1_verify(signed.replace(b">p-1<", b">p-2<"), "urn:oasis:names:tc:SAML:2.0:protocol:LogoutRequest", idp_pair.cert_pem)


def test_sign_xml_signs_metadata_first_and_refuses_what_it_should_not_sign(issuer: ResponseIssuer, idp_pair: KeyPair) -> None:
    metadata = (
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" ID="_md" entityID="https://broker.test/saml/metadata">'
        '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://broker.test/saml/sso"/>'
        "</md:IDPSSODescriptor></md:EntityDescriptor>"
    ).encode()
    signed = issuer.sign_xml(metadata, "_md")
    assert _child_names(_parse(signed)) == ["Signature", "IDPSSODescriptor"]
    _xmlsec1_verify(signed, "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor", idp_pair.cert_pem)

    with pytest.raises(FederationError) as missing:
        issuer.sign_xml(metadata, "_nope")
    assert missing.value.code is FederationErrorCode.MISCONFIGURED
    with pytest.raises(FederationError) as twice:
        issuer.sign_xml(signed, "_md")
    assert twice.value.code is FederationErrorCode.MISCONFIGURED
    with pytest.raises(FederationError) as entity:
        issuer.sign_xml(b'<!DOCTYPE x [<!ENTITY e "x">]>' + metadata, "_md")
    assert entity.value.code is FederationErrorCode.INVALID_TOKEN


# --- The signing key ------------------------------------------------------------------------------

def test_a_key_that_does_not_match_its_certificate_or_is_weak_is_refused(idp_pair: KeyPair, other_pair: KeyPair) -> None:
    with pytest.raises(FederationError, match="does not belong") as mismatch:
        ResponseIssuer(other_pair.key_pem.encode(), idp_pair.cert_pem.encode())
    assert mismatch.value.code is FederationErrorCode.MISCONFIGURED
    weak = generate_key_pair("weak", bits=1024)
    with pytest.raises(FederationError, match="at least 2048 bits"):
        ResponseIssuer(weak.key_pem.encode(), weak.cert_pem.encode())
    with pytest.raises(FederationError, match="not an unencrypted PEM private key"):
        ResponseIssuer(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n", idp_pair.cert_pem.encode())


def test_an_encryption_certificate_that_is_weak_is_refused(issuer: ResponseIssuer, make_spec: Callable[..., AssertionSpec]) -> None:
    weak = generate_key_pair("weak sp", bits=1024)
    with pytest.raises(FederationError, match="at least 2048 bits"):
        issuer.issue(make_spec(encrypt_to_cert_pem=weak.cert_pem.encode()))


def test_the_spec_is_a_frozen_value(make_spec: Callable[..., AssertionSpec]) -> None:
    spec = make_spec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name_id = "other"  # type: ignore[misc]
    assert spec.attributes == (ORGANISATION, DEPARTMENT)


def test_one_issuer_shared_by_threads_signs_every_response_correctly(
    tmp_path: Path, idp_pair: KeyPair, sp_pair: KeyPair, issuer: ResponseIssuer, make_spec: Callable[..., AssertionSpec],
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def one(n: int) -> bytes:
        encrypted = sp_pair.cert_pem.encode() if n % 3 == 0 else None
        return issuer.issue(make_spec(name_id=f"p-{n}", encrypt_to_cert_pem=encrypted))

    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(one, range(40)))
    sp = _sp(tmp_path, idp_pair, True, True, encryption=sp_pair)
    for n in range(0, 40, 4):  # every fourth through the xmlsec1 verifier (encrypted ones included)
        assert sp.accept(responses[n]).name_id.text == f"p-{n}"
    for xml in responses:
        assert len(inspect_document(xml).signed_ids) == (1 if b"EncryptedAssertion" in xml else 2)
