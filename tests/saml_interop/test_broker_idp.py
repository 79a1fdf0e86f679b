"""The broker's SAML IdP over real HTTP with two independent SPs: SimpleSAMLphp 1.19 and python3-saml.

Each SP signs a London persona in through the broker (AuthnRequest by HTTP-Redirect and by
HTTP-POST, both signed; response by HTTP-POST), and the tests assert what the SP actually
received: the NameID (persistent, pairwise: stable per person and SP, different between SPs),
exactly the attributes the London policies release for the service (release.cedar), and, in
the raw response as it was posted to the SP, a signed Response and an encrypted assertion.
Single logout, SP-initiated (from either SP, either binding) and IdP-initiated
(``/saml/logout``), ends the broker session and the other SP's session: the next sign-in
asks for the password again.

Personas (config/demo/users, password ``london-demo``): Amara Okafor, a Camden social worker
(Social Care Case Records), and Sofia Rossi, a Hackney school admissions officer (London
Admissions).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from lxml import etree

from tests.peers.python3_saml_sp import Python3SamlSp
from tests.peers.simplesamlphp_sp import SimpleSamlPhpSp
from tests.saml_interop.live_idp import LiveSamlIdp
from tests.support.saml_browser import SamlBrowser, SamlMessage
from tests.support.settings import DEMO_PASSWORD

pytestmark = [pytest.mark.peer("simplesamlphp")]

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
# A password sign-in achieves AAL1; with no class configured for the SP, the assertion names the
# level as the OIDC side does (broker/saml/authn_context.py).
AAL1 = "urn:supercloud:aal1"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
GCM = {"http://www.w3.org/2009/xmlenc11#aes128-gcm", "http://www.w3.org/2009/xmlenc11#aes256-gcm"}
OAEP = {"http://www.w3.org/2009/xmlenc11#rsa-oaep", "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"}

AMARA = "amara.okafor@camden.test"
SOFIA = "sofia.rossi@hackney.test"

# What release.cedar lets each service receive, under the broker's `uri` attribute profile
# (broker/saml/attributes.py): case-records gets organisation and department (SCENARIOS'
# "team"); admissions gets organisation and admissions_role. The policy attribute
# `organisation` is released as the organisation's id (schacHomeOrganization) and name (o);
# `department` as ou.
SCHAC_HOME_ORGANIZATION = "urn:oid:1.3.6.1.4.1.25178.1.2.9"
ORGANIZATION_NAME = "urn:oid:2.5.4.10"
ORGANIZATIONAL_UNIT = "urn:oid:2.5.4.11"
AMARA_AT_CASE_RECORDS = {
    SCHAC_HOME_ORGANIZATION: ["camden"],
    ORGANIZATION_NAME: ["London Borough of Camden"],
    ORGANIZATIONAL_UNIT: ["Adult Social Care"],
}
SOFIA_AT_ADMISSIONS = {
    SCHAC_HOME_ORGANIZATION: ["hackney"],
    ORGANIZATION_NAME: ["London Borough of Hackney"],
    "urn:supercloud:attribute:admissions_role": ["School Admissions Officer"],
}

KINDS = ["simplesamlphp", "python3-saml"]
LABELS = {"simplesamlphp": "SimpleSAMLphp", "python3-saml": "python3-saml"}  # in the SPs' registered names
Sp = SimpleSamlPhpSp | Python3SamlSp


@pytest.fixture
def sps(saml_idp: LiveSamlIdp, simplesamlphp_sp: SimpleSamlPhpSp, python3_saml_sp: Python3SamlSp) -> dict[str, Sp]:
    """Both SP peers, trusting the live broker's IdP."""
    return {"simplesamlphp": simplesamlphp_sp, "python3-saml": python3_saml_sp}


def _json(browser: SamlBrowser, response: Any, sp: Sp, idp: LiveSamlIdp) -> dict[str, Any]:
    try:
        return dict(response.json())
    except ValueError:
        log = sp.log_tail() if isinstance(sp, SimpleSamlPhpSp) else ""
        raise AssertionError(
            f"the SP did not show what it received ({response.status_code} {response.url}):\n{response.text[:1500]}\n"
            f"steps: {[(s.method, s.url, s.status) for s in browser.steps[-8:]]}\n{log}\n--- broker\n{idp.log_tail(2500)}"
        ) from None


def sign_in(browser: SamlBrowser, sp: Sp, sp_id: str, idp: LiveSamlIdp, *, email: str, binding: str = "redirect") -> dict[str, Any]:
    """Start a sign-in at the SP, answer the broker's pages, return the SP's JSON page."""
    final = browser.open(sp.login_url(sp_id, binding), email=email, password=DEMO_PASSWORD)
    seen = _json(browser, final, sp, idp)
    assert seen["authenticated"] is True, seen
    return seen


def only(messages: list[SamlMessage], what: bytes) -> SamlMessage:
    """Return the one message whose XML root is ``what`` (e.g. b"LogoutRequest").

    The broker re-posts a cross-site HTTP-POST once from its own origin (its cookie bounce),
    so the same message may be delivered twice to the same endpoint: counted once.
    """
    found: dict[tuple[str, bytes], SamlMessage] = {}
    for m in messages:
        if etree.QName(etree.fromstring(m.xml)).localname == what.decode():
            found.setdefault((m.destination, m.xml), m)
    assert len(found) == 1, [m.xml[:300] for m in messages]
    return next(iter(found.values()))


def attributes(seen: dict[str, Any]) -> dict[str, list[str]]:
    """The SP's attributes as {Name: sorted values}."""
    return {name: sorted(values) for name, values in seen["attributes"].items()}


def assert_only_released(received: dict[str, list[str]], released: dict[str, list[str]]) -> None:
    """Nothing the policy does not release reached the SP, and the organisation arrived exactly.

    (The exact set, team included, is asserted by test_case_records_receives_exactly_organisation_and_team.)
    """
    assert set(received) <= set(released), f"not released by policy: {sorted(set(received) - set(released))}"
    for name in (SCHAC_HOME_ORGANIZATION, ORGANIZATION_NAME):
        assert received.get(name) == released[name]


def assert_signed_and_encrypted(response: SamlMessage, idp: LiveSamlIdp, acs_prefix: str) -> None:
    """The raw Response the SP received is signed (RSA-SHA256) by the broker and carries only an
    encrypted assertion (AES-GCM content, RSA-OAEP key transport)."""
    root = etree.fromstring(response.xml)
    assert root.tag == f"{{{SAMLP}}}Response"
    assert root.findtext(f"{{{SAML}}}Issuer") == idp.entity_id
    assert root.get("Destination", "").startswith(acs_prefix)
    assert root.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode").get("Value") == SUCCESS
    signature = root.find(f"{{{DS}}}Signature")
    assert signature is not None, "the Response is not signed"
    assert signature.find(f".//{{{DS}}}SignatureMethod").get("Algorithm") == RSA_SHA256
    assert root.find(f"{{{SAML}}}Assertion") is None, "an assertion travelled in clear"
    encrypted = root.find(f"{{{SAML}}}EncryptedAssertion/{{{XENC}}}EncryptedData")
    assert encrypted is not None, "no EncryptedAssertion"
    assert encrypted.find(f"{{{XENC}}}EncryptionMethod").get("Algorithm") in GCM
    key_transport = encrypted.find(f".//{{{XENC}}}EncryptedKey/{{{XENC}}}EncryptionMethod")
    if key_transport is None:  # the EncryptedKey may sit beside EncryptedData (SAML Core §2.3.4)
        key_transport = root.find(f"{{{SAML}}}EncryptedAssertion/{{{XENC}}}EncryptedKey/{{{XENC}}}EncryptionMethod")
    assert key_transport is not None and key_transport.get("Algorithm") in OAEP


def decrypt_assertion(response: SamlMessage, key_pem: str) -> etree._Element:
    """Return the saml:Assertion inside the response's EncryptedAssertion, decrypted with the
    SP's private key (xmlsec, as the SPs themselves do). The EncryptedKey may be inside
    EncryptedData's KeyInfo or beside it (SAML Core §2.3.4, referenced by RetrievalMethod)."""
    import copy

    import xmlsec

    root = etree.fromstring(response.xml)
    wrapper = root.find(f"{{{SAML}}}EncryptedAssertion")
    data = copy.deepcopy(wrapper.find(f"{{{XENC}}}EncryptedData"))
    key_info = data.find(f"{{{DS}}}KeyInfo")
    beside = wrapper.find(f"{{{XENC}}}EncryptedKey")
    if beside is not None and key_info is not None and key_info.find(f"{{{XENC}}}EncryptedKey") is None:
        key_info.append(copy.deepcopy(beside))
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_memory(key_pem, xmlsec.constants.KeyDataFormatPem, None))
    assertion = xmlsec.EncryptionContext(manager).decrypt(data)
    assert assertion.tag == f"{{{SAML}}}Assertion"
    return assertion


def assert_assertion(assertion: etree._Element, idp: LiveSamlIdp, sp_entity_id: str, response: SamlMessage,
                     request_id: str) -> None:
    """The decrypted assertion is signed by the broker (RSA-SHA256, SHA-256 digest), for this SP
    only (AudienceRestriction), short-lived, bound to the request and ACS, and names the
    assurance achieved (SAML Core §2.3.3-2.7.2; Profiles §4.1.4.2)."""
    import datetime as dt

    def instant(value: str) -> dt.datetime:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))

    assert assertion.findtext(f"{{{SAML}}}Issuer") == idp.entity_id
    signature = assertion.find(f"{{{DS}}}Signature")
    assert signature is not None, "the assertion is not signed"
    assert signature.find(f".//{{{DS}}}SignatureMethod").get("Algorithm") == RSA_SHA256
    assert signature.find(f".//{{{DS}}}DigestMethod").get("Algorithm") == SHA256
    assert signature.find(f".//{{{DS}}}Reference").get("URI") == f"#{assertion.get('ID')}"
    audiences = [a.text for a in assertion.iterfind(f"{{{SAML}}}Conditions/{{{SAML}}}AudienceRestriction/{{{SAML}}}Audience")]
    assert audiences == [sp_entity_id]
    conditions = assertion.find(f"{{{SAML}}}Conditions")
    lifetime = instant(conditions.get("NotOnOrAfter")) - instant(conditions.get("NotBefore"))
    assert dt.timedelta(0) < lifetime <= dt.timedelta(seconds=300 + 120)
    confirmation = assertion.find(f"{{{SAML}}}Subject/{{{SAML}}}SubjectConfirmation")
    assert confirmation.get("Method") == "urn:oasis:names:tc:SAML:2.0:cm:bearer"
    data = confirmation.find(f"{{{SAML}}}SubjectConfirmationData")
    assert data.get("Recipient") == response.destination
    assert data.get("InResponseTo") == request_id
    assert assertion.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID").get("Format") == PERSISTENT
    assert assertion.findtext(f".//{{{SAML}}}AuthnContextClassRef") == AAL1


def assert_request_signed(request: SamlMessage, binding: str) -> None:
    """The AuthnRequest/LogoutRequest carried a signature for its binding (SAML Bindings §3.4.4.1, §3.5.4)."""
    assert request.binding == binding
    if binding == "redirect":
        assert request.signed_query and request.sig_alg == RSA_SHA256
    else:
        signature = etree.fromstring(request.xml).find(f"{{{DS}}}Signature")
        assert signature is not None
        assert signature.find(f".//{{{DS}}}SignatureMethod").get("Algorithm") == RSA_SHA256


# -- sign-in ------------------------------------------------------------------------------------


@pytest.mark.parametrize("binding", ["redirect", "post"])
@pytest.mark.parametrize("kind", KINDS)
def test_social_worker_signs_in_to_case_records(sps: dict[str, Sp], saml_idp: LiveSamlIdp, kind: str, binding: str) -> None:
    sp = sps[kind]
    browser = SamlBrowser()

    seen = sign_in(browser, sp, "case-records", saml_idp, email=AMARA, binding=binding)

    assert browser.emails_asked == 1 and browser.passwords_asked == 1
    assert_only_released(attributes(seen), AMARA_AT_CASE_RECORDS)
    assert seen["name_id"]["format"] == PERSISTENT
    assert seen["name_id"]["value"] and "amara" not in seen["name_id"]["value"].lower()
    request = only(browser.received("SAMLRequest", saml_idp.issuer), b"AuthnRequest")
    assert_request_signed(request, binding)
    [response] = browser.received("SAMLResponse", sp.base_url)
    assert response.binding == "post"
    assert_signed_and_encrypted(response, saml_idp, sp.base_url)
    assertion = decrypt_assertion(response, sp.private_key_pem("case-records"))
    assert_assertion(assertion, saml_idp, sp.entity_id("case-records"), response, etree.fromstring(request.xml).get("ID"))
    assert assertion.findtext(f"{{{SAML}}}Subject/{{{SAML}}}NameID") == seen["name_id"]["value"]
    # The SP itself saw the assurance achieved (AAL1: a password) as the context class.
    assert (seen["authn_context"] if kind == "simplesamlphp" else seen["authn_contexts"]) in (AAL1, [AAL1])


@pytest.mark.parametrize("binding", ["redirect", "post"])
@pytest.mark.parametrize("kind", KINDS)
def test_admissions_officer_signs_in_to_admissions(sps: dict[str, Sp], saml_idp: LiveSamlIdp, kind: str, binding: str) -> None:
    sp = sps[kind]
    browser = SamlBrowser()

    seen = sign_in(browser, sp, "admissions", saml_idp, email=SOFIA, binding=binding)

    assert attributes(seen) == SOFIA_AT_ADMISSIONS  # exactly: organisation (id and name), nothing else
    assert seen["name_id"]["format"] == PERSISTENT
    assert_request_signed(only(browser.received("SAMLRequest", saml_idp.issuer), b"AuthnRequest"), binding)
    [response] = browser.received("SAMLResponse", sp.base_url)
    assert_signed_and_encrypted(response, saml_idp, sp.base_url)


@pytest.mark.parametrize("kind", KINDS)
def test_case_records_receives_exactly_organisation_and_team(sps: dict[str, Sp], saml_idp: LiveSamlIdp, kind: str) -> None:
    seen = sign_in(SamlBrowser(), sps[kind], "case-records", saml_idp, email=AMARA)

    assert attributes(seen) == AMARA_AT_CASE_RECORDS


@pytest.mark.parametrize("kind", KINDS)
def test_idp_initiated_sign_in_reaches_an_sp_that_allows_it(sps: dict[str, Sp], saml_idp: LiveSamlIdp, kind: str) -> None:
    sp = sps[kind]
    browser = SamlBrowser()
    start = f"{saml_idp.issuer}/saml/idp-initiated?" + urlencode({"sp": sp.entity_id("admissions"),
                                                                  "RelayState": sp.whoami_url("admissions")})

    final = browser.open(start, email=SOFIA, password=DEMO_PASSWORD)

    seen = _json(browser, final, sp, saml_idp)
    assert seen["authenticated"] is True and attributes(seen) == SOFIA_AT_ADMISSIONS
    assert not [m for m in browser.messages if m.field == "SAMLRequest"], "no AuthnRequest: the broker started it"
    [response] = browser.received("SAMLResponse", sp.base_url)
    assert etree.fromstring(response.xml).get("InResponseTo") is None  # unsolicited (Profiles §4.1.5)
    assert_signed_and_encrypted(response, saml_idp, sp.base_url)
    assertion = decrypt_assertion(response, sp.private_key_pem("admissions"))
    assert [a.text for a in assertion.iter(f"{{{SAML}}}Audience")] == [sp.entity_id("admissions")]


@pytest.mark.parametrize("kind", KINDS)
def test_idp_initiated_sign_in_is_refused_for_an_sp_that_does_not_allow_it(sps: dict[str, Sp], saml_idp: LiveSamlIdp,
                                                                          kind: str) -> None:
    sp = sps[kind]
    browser = SamlBrowser()
    start = f"{saml_idp.issuer}/saml/idp-initiated?" + urlencode({"sp": sp.entity_id("case-records")})

    final = browser.open(start, email=AMARA, password=DEMO_PASSWORD)

    assert final.status_code >= 400 and final.url.startswith(saml_idp.issuer)
    assert not browser.received("SAMLResponse", sp.base_url), "a response went to the SP"
    assert browser.json(sp.whoami_url("case-records"))["authenticated"] is False


def test_social_worker_is_refused_admissions_and_the_sp_gets_no_assertion(sps: dict[str, Sp], saml_idp: LiveSamlIdp) -> None:
    sp = sps["python3-saml"]
    browser = SamlBrowser()

    final = browser.open(sp.login_url("admissions"), email=AMARA, password=DEMO_PASSWORD)

    delivered = browser.received("SAMLResponse", sp.base_url)
    for response in delivered:  # a refusal may be a SAML error status, never an assertion
        root = etree.fromstring(response.xml)
        assert root.find(f"{{{SAML}}}Assertion") is None and root.find(f"{{{SAML}}}EncryptedAssertion") is None
        assert root.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode").get("Value") != SUCCESS
    assert browser.json(sp.whoami_url("admissions"))["authenticated"] is False
    assert final.status_code in {200, 403}


def test_persistent_nameid_is_pairwise_and_stable(sps: dict[str, Sp], saml_idp: LiveSamlIdp) -> None:
    browser = SamlBrowser()
    at_ssp = sign_in(browser, sps["simplesamlphp"], "case-records", saml_idp, email=AMARA)
    # Same browser: single sign-on at the second SP, no password asked again.
    at_py = sign_in(browser, sps["python3-saml"], "case-records", saml_idp, email=AMARA)
    assert browser.passwords_asked == 1

    assert at_ssp["name_id"]["value"] != at_py["name_id"]["value"], "one NameID for two SPs: correlatable"
    assert attributes(at_py) == attributes(at_ssp)

    later = SamlBrowser()  # another day, a fresh browser: the same NameID at the same SP
    again = sign_in(later, sps["simplesamlphp"], "case-records", saml_idp, email=AMARA)
    assert later.passwords_asked == 1
    assert again["name_id"]["value"] == at_ssp["name_id"]["value"]
    assert again["session_index"] != at_ssp["session_index"]


# -- single logout ------------------------------------------------------------------------------


def _signed_in_at_both(sps: dict[str, Sp], idp: LiveSamlIdp) -> tuple[SamlBrowser, dict[str, dict[str, Any]]]:
    browser = SamlBrowser()
    seen = {kind: sign_in(browser, sps[kind], "case-records", idp, email=AMARA) for kind in KINDS}
    assert browser.passwords_asked == 1
    return browser, seen


def _assert_everything_signed_out(browser: SamlBrowser, sps: dict[str, Sp], idp: LiveSamlIdp) -> None:
    for kind in KINDS:
        assert browser.json(sps[kind].whoami_url("case-records"))["authenticated"] is False, kind
    # The broker session is gone too: a new sign-in at an SP asks for the password again.
    asked_before = browser.passwords_asked
    page = browser.open(sps["python3-saml"].login_url("case-records"), email=AMARA)
    assert 'name="password"' in page.text, page.text[:500]
    assert browser.passwords_asked == asked_before + 1


@pytest.mark.parametrize("binding", ["redirect", "post"])
@pytest.mark.parametrize("initiator", KINDS)
def test_sp_initiated_single_logout_ends_every_session(sps: dict[str, Sp], saml_idp: LiveSamlIdp,
                                                       initiator: str, binding: str) -> None:
    browser, seen = _signed_in_at_both(sps, saml_idp)
    other = next(kind for kind in KINDS if kind != initiator)
    start = len(browser.messages)

    final = browser.open(sps[initiator].logout_url("case-records", binding))
    if final.url.startswith(saml_idp.issuer):
        # The broker's "You are signed out" page lists both services; its link takes the
        # LogoutResponse back to an initiator that receives logout by HTTP-Redirect.
        assert "You are signed out" in final.text
        for kind in KINDS:
            assert f"Social Care Case Records ({LABELS[kind]})" in final.text
        final = browser.click(final, "app-continue")
    assert final.url.startswith(sps[initiator].base_url)

    messages = browser.messages[start:]
    to_broker = [m for m in messages if m.destination.startswith(saml_idp.issuer)]
    assert_request_signed(only([m for m in to_broker if m.field == "SAMLRequest"], b"LogoutRequest"), binding)
    # The broker asked the other SP to sign out, naming that SP's own NameID, signed.
    request_to_other = only(browser.received("SAMLRequest", sps[other].base_url), b"LogoutRequest")
    assert etree.fromstring(request_to_other.xml).findtext(f"{{{SAML}}}NameID") == seen[other]["name_id"]["value"]
    if request_to_other.binding == "redirect":
        assert request_to_other.signed_query and request_to_other.sig_alg == RSA_SHA256
    else:
        assert etree.fromstring(request_to_other.xml).find(f"{{{DS}}}Signature") is not None
    # And answered the initiator with a successful, signed LogoutResponse.
    to_initiator = [m for m in messages if m.field == "SAMLResponse" and m.destination.startswith(sps[initiator].base_url)]
    assert to_initiator, f"no LogoutResponse reached {initiator}; the browser ended on {final.url}:\n{final.text[:3000]}"
    answer = only(to_initiator, b"LogoutResponse")
    root = etree.fromstring(answer.xml)
    assert root.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode").get("Value") == SUCCESS
    assert answer.signed_query or root.find(f"{{{DS}}}Signature") is not None
    _assert_everything_signed_out(browser, sps, saml_idp)


@pytest.mark.parametrize("path", ["/saml/logout", "/logout"])  # the SAML sign-out page, and the broker's own
def test_idp_initiated_single_logout_signs_out_of_every_sp(sps: dict[str, Sp], saml_idp: LiveSamlIdp, path: str) -> None:
    browser, seen = _signed_in_at_both(sps, saml_idp)

    confirm = browser.open(f"{saml_idp.issuer}{path}")
    assert confirm.status_code == 200 and "Sign out" in confirm.text
    signed_out = browser.submit(confirm)

    assert signed_out.status_code == 200
    assert "signed out" in signed_out.text.lower()
    for kind in KINDS:
        request = only(browser.received("SAMLRequest", sps[kind].base_url), b"LogoutRequest")
        assert etree.fromstring(request.xml).findtext(f"{{{SAML}}}NameID") == seen[kind]["name_id"]["value"]
        assert f"Social Care Case Records ({LABELS[kind]})" in signed_out.text
    _assert_everything_signed_out(browser, sps, saml_idp)
