"""The interop SPs themselves, proven against a real, independent IdP (the SimpleSAMLphp IdP peer).

Before the SPs judge the broker's IdP, they must be shown to be strict: each signs its
AuthnRequests (Redirect and POST bindings), demands a signed, encrypted assertion, records
exactly what arrived, completes SP-initiated single logout, and refuses a response altered
after signing. Here both SP harnesses (SimpleSAMLphp 1.19 and python3-saml) sign Barnet's
safeguarding officer in through the SimpleSAMLphp IdP, with instances of their own.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from lxml import etree

from tests.peers.python3_saml_sp import Python3SamlSp
from tests.peers.simplesamlphp import OFFICER_PASSWORD, USERS, SimpleSamlPhp, php
from tests.peers.simplesamlphp_sp import SimpleSamlPhpSp
from tests.saml_interop.conftest import python3_saml_instance, simplesamlphp_sp_instance
from tests.support.saml_browser import SamlBrowser

pytestmark = pytest.mark.peer("simplesamlphp")

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
HTTP_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
HTTP_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
SP_ID = "barnet-check"
OFFICER = {"username": "officer", "password": OFFICER_PASSWORD}
OFFICER_ATTRIBUTES = USERS[f"officer:{OFFICER_PASSWORD}"]


def _sp_remote_entry(sp_metadata: bytes) -> tuple[str, dict[str, Any]]:
    """Return (entity ID, saml20-sp-remote entry) for an interop SP's metadata."""
    root = etree.fromstring(sp_metadata)
    sp = root.find(f"{{{MD}}}SPSSODescriptor")
    keys = []
    for descriptor in sp.findall(f"{{{MD}}}KeyDescriptor"):
        use = descriptor.get("use")
        cert = "".join((descriptor.findtext(f".//{{{DS}}}X509Certificate") or "").split())
        keys.append({"type": "X509Certificate", "signing": use in (None, "signing"),
                     "encryption": use in (None, "encryption"), "X509Certificate": cert})
    return str(root.get("entityID")), {
        "AssertionConsumerService": [{"Binding": e.get("Binding"), "Location": e.get("Location")}
                                     for e in sp.findall(f"{{{MD}}}AssertionConsumerService")],
        "SingleLogoutService": [{"Binding": e.get("Binding"), "Location": e.get("Location")}
                                for e in sp.findall(f"{{{MD}}}SingleLogoutService")],
        "keys": keys,
        "validate.authnrequest": True,
        "validate.logout": True,
        "sign.logout": True,
        "saml20.sign.assertion": True,
        "saml20.sign.response": True,
        "assertion.encryption": True,
        "signature.algorithm": RSA_SHA256,
        "NameIDFormat": PERSISTENT,
        "attributes.NameFormat": "urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
        "authproc": {10: {"class": "saml:AttributeNameID", "attribute": "uid", "Format": PERSISTENT}},
    }


def _with_post_endpoints(idp_metadata: bytes) -> bytes:
    """Return the IdP metadata also listing HTTP-POST for each Redirect SSO/SLO endpoint.

    SimpleSAMLphp's SSOService.php and SingleLogoutService.php accept both bindings
    (SAML2\\Binding::getCurrentBinding), but its generated metadata names only HTTP-Redirect.
    """
    root = etree.fromstring(idp_metadata)
    for kind in ("SingleSignOnService", "SingleLogoutService"):
        for endpoint in list(root.iter(f"{{{MD}}}{kind}")):
            if endpoint.get("Binding") == HTTP_REDIRECT:
                twin = etree.Element(f"{{{MD}}}{kind}", Binding=HTTP_POST, Location=endpoint.get("Location"))
                endpoint.addnext(twin)
    return etree.tostring(root)


def _register(idp: SimpleSamlPhp, sp_metadata: bytes) -> None:
    entity_id, entry = _sp_remote_entry(sp_metadata)
    with open(idp.directory / "metadata" / "saml20-sp-remote.php", "a", encoding="utf-8") as remote:
        remote.write(f"$metadata[{php(entity_id)}] = {php(entry)};\n")


@pytest.fixture(scope="module")
def harness_sps(simplesamlphp_barnet: SimpleSamlPhp, worker_id: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Both SP harnesses (one SP each), trusting the SimpleSAMLphp IdP and registered in it."""
    import requests

    ssp = simplesamlphp_sp_instance(worker_id, tmp_path_factory.mktemp("ssp-sp-harness"), {SP_ID: "Barnet check"})
    try:
        py = python3_saml_instance(worker_id, (SP_ID,))
    except BaseException:
        ssp.stop()
        raise
    try:
        idp_metadata = _with_post_endpoints(requests.get(simplesamlphp_barnet.entity_id, timeout=10).content)
        for sp in (ssp, py):
            _register(simplesamlphp_barnet, sp.metadata(SP_ID))
            sp.trust_idp(idp_metadata)
        yield {"simplesamlphp": ssp, "python3-saml": py}
    finally:
        py.stop()
        ssp.stop()


def _sign_in(sp: SimpleSamlPhpSp | Python3SamlSp, binding: str) -> tuple[SamlBrowser, dict[str, Any]]:
    browser = SamlBrowser()
    final = browser.open(sp.login_url(SP_ID, binding), form_answers=OFFICER)
    try:
        return browser, final.json()
    except ValueError:
        log = sp.log_tail() if isinstance(sp, SimpleSamlPhpSp) else ""
        raise AssertionError(f"no JSON from the SP ({final.status_code} {final.url}): {final.text[:800]}\n{log}") from None


@pytest.mark.parametrize("binding", ["redirect", "post"])
@pytest.mark.parametrize("kind", ["simplesamlphp", "python3-saml"])
def test_sp_signs_in_through_a_real_idp_with_a_signed_encrypted_assertion(harness_sps, kind: str, binding: str) -> None:
    sp = harness_sps[kind]
    browser, seen = _sign_in(sp, binding)

    assert seen["authenticated"] is True
    assert seen["name_id"]["format"] == PERSISTENT
    assert seen["name_id"]["value"]
    attributes = {name: sorted(values) for name, values in seen["attributes"].items()}
    assert attributes == {name: sorted(values) for name, values in OFFICER_ATTRIBUTES.items()}

    [request] = [m for m in browser.messages if m.field == "SAMLRequest"]
    assert "/saml2/idp/SSOService.php" in request.destination
    assert request.binding == binding
    authn = etree.fromstring(request.xml)
    assert authn.tag == f"{{{SAMLP}}}AuthnRequest"
    if binding == "redirect":  # SAML Bindings §3.4.4.1: the signature is on the query
        assert request.signed_query and request.sig_alg == RSA_SHA256
    else:
        signature = authn.find(f"{{{DS}}}Signature")
        assert signature is not None
        assert signature.find(f".//{{{DS}}}SignatureMethod").get("Algorithm") == RSA_SHA256

    [response] = browser.received("SAMLResponse", sp.base_url)
    root = etree.fromstring(response.xml)
    assert root.find(f"{{{DS}}}Signature") is not None, "the Response carries its own signature"
    assert root.find(f"{{{SAML}}}EncryptedAssertion") is not None
    assert root.find(f"{{{SAML}}}Assertion") is None, "no assertion in clear"


@pytest.mark.parametrize("kind", ["simplesamlphp", "python3-saml"])
def test_sp_initiated_logout_ends_the_sp_session(harness_sps, kind: str) -> None:
    sp = harness_sps[kind]
    browser, seen = _sign_in(sp, "redirect")
    assert seen["authenticated"] is True

    browser.open(sp.logout_url(SP_ID, "redirect"))

    assert browser.json(sp.whoami_url(SP_ID))["authenticated"] is False
    [logout_request] = [m for m in browser.messages if m.field == "SAMLRequest" and b"LogoutRequest" in m.xml]
    assert logout_request.signed_query and logout_request.sig_alg == RSA_SHA256
    name_id = etree.fromstring(logout_request.xml).findtext(f"{{{SAML}}}NameID")
    assert name_id == seen["name_id"]["value"]
    [logout_response] = [m for m in browser.received("SAMLResponse", sp.base_url) if b"LogoutResponse" in m.xml]
    status = etree.fromstring(logout_response.xml).find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode")
    assert status.get("Value") == "urn:oasis:names:tc:SAML:2.0:status:Success"
    # A new sign-in at the SP goes back to the IdP, which asks for the password again.
    again = SamlBrowser()
    again.session.cookies = browser.session.cookies
    page = again.open(sp.login_url(SP_ID, "redirect"))
    assert 'name="password"' in page.text


XENC = "http://www.w3.org/2001/04/xmlenc#"


def _alter_response(xml: bytes) -> bytes:
    """Change the Response's IssueInstant (covered only by the Response's own signature)."""
    root = etree.fromstring(xml)
    root.set("IssueInstant", root.get("IssueInstant")[:-1] + ".5Z")
    return etree.tostring(root)


def _alter_assertion(xml: bytes) -> bytes:
    """Flip one byte in the middle of the encrypted assertion's ciphertext."""
    root = etree.fromstring(xml)
    cipher = root.find(f"{{{SAML}}}EncryptedAssertion/{{{XENC}}}EncryptedData/{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
    data = bytearray(base64.b64decode(cipher.text))
    data[len(data) // 2] ^= 0x01
    cipher.text = base64.b64encode(bytes(data)).decode()
    return etree.tostring(root)


@pytest.mark.parametrize(("kind", "alter"), [
    ("simplesamlphp", _alter_assertion),
    ("python3-saml", _alter_assertion),
    # python3-saml (wantMessagesSigned) demands the Response's own signature. SimpleSAMLphp does
    # not: it accepts a response whose outer signature fails when the assertion's holds.
    ("python3-saml", _alter_response),
])
def test_sp_refuses_a_response_altered_after_signing(harness_sps, kind: str, alter) -> None:  # type: ignore[no-untyped-def]
    sp = harness_sps[kind]
    browser = SamlBrowser()
    # Stop before the auto-submitting POST to the SP's ACS, alter the response, then send it.
    browser.open(sp.login_url(SP_ID, "redirect"), form_answers=OFFICER, stop_before=sp.base_url)
    [delivered] = browser.received("SAMLResponse", sp.base_url)
    fields = {"SAMLResponse": base64.b64encode(alter(delivered.xml)).decode()}
    if delivered.relay_state is not None:
        fields["RelayState"] = delivered.relay_state

    answer = browser.post(delivered.destination, fields)

    # python3-saml answers 403; SimpleSAMLphp under php -S shows its "Unhandled exception" page.
    assert answer.status_code >= 400 or "Unhandled exception" in answer.text, answer.text[:500]
    assert browser.json(sp.whoami_url(SP_ID))["authenticated"] is False
