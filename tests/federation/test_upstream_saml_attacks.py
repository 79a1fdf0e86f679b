"""Attacks on our SAML SP side, built from real SimpleSAMLphp responses: modified and left
with a broken signature, re-signed with the IdP's own key (to reach the rule behind the
signature), or signed with a key of the attacker's.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
import time
from typing import Any

import pytest
import requests
from lxml import etree

from broker.login import UPSTREAM_FAILED
from federation.errors import FederationError, FederationErrorCode
from federation.identity import AssuranceLevel
from federation.sources import UpstreamRequest
from federation.upstream_saml.keys import generate_key_pair
from tests.federation.test_upstream_saml import SamlBroker, saml_broker  # noqa: F401 - fixture
from tests.peers.simplesamlphp import (
    ATTR_MAIL,
    ATTR_NAME,
    ATTR_UID,
    DS_NS,
    OFFICER_PASSWORD,
    SAML_NS,
    SAMLP_NS,
    decode_response,
    idp_login,
    resign_assertion,
    simplesamlphp_barnet,  # noqa: F401 - the session fixture
    with_response,
)

ACS = "http://127.0.0.1:8000/login/callback/barnet-saml"


def _refused(broker: SamlBroker, response: Any, reason: str | None = None) -> str:
    """Check the callback answered the generic failure page; return the audited reason."""
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.headers.get("Location") is None
    record = list(broker.services.audit.records())[-1]
    assert (record.event, record.outcome) == ("signin", "failure")
    assert "bola" not in str(record.details).lower() and "okafor" not in str(record.details).lower()
    if reason is not None:
        assert reason in record.details["reason"], record.details["reason"]
    return str(record.details["reason"])


def _edit(fields: dict[str, str], change: Any, *, resign_with: tuple[str, str] | None = None) -> dict[str, str]:
    """Return ``fields`` with the response changed by ``change(root)`` (and re-signed if asked)."""
    root = etree.fromstring(decode_response(fields))
    change(root)
    xml = etree.tostring(root)
    if resign_with is not None:
        xml = resign_assertion(xml, *resign_with)
    return with_response(fields, xml)


def _assertion(root: Any) -> Any:
    return root.find(f"{{{SAML_NS}}}Assertion")


def _idp_key(broker: SamlBroker) -> tuple[str, str]:
    return broker.idp.idp_key_pem, broker.idp.idp_cert_pem


def test_an_untouched_response_is_accepted_after_re_signing_with_the_idp_key(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture()
    resigned = _edit(fields, lambda root: None, resign_with=_idp_key(saml_broker))
    assert saml_broker.deliver(client, resigned).status_code == 302  # the forging itself is sound


def test_an_unsigned_response_is_refused(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture()

    def strip(root: Any) -> None:
        assertion = _assertion(root)
        assertion.remove(assertion.find(f"{{{DS_NS}}}Signature"))

    _refused(saml_broker, saml_broker.deliver(client, _edit(fields, strip)), "pysaml2 refused")


def test_an_empty_signature_is_refused(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture()

    def empty(root: Any) -> None:
        signature = _assertion(root).find(f"{{{DS_NS}}}Signature")
        signature.find(f"{{{DS_NS}}}SignatureValue").text = ""

    _refused(saml_broker, saml_broker.deliver(client, _edit(fields, empty)))


def test_a_tampered_assertion_is_refused(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture()

    def promote(root: Any) -> None:
        for value in root.iter(f"{{{SAML_NS}}}AttributeValue"):
            if value.text == "Children's Services":
                value.text = "Camden Social Care"

    _refused(saml_broker, saml_broker.deliver(client, _edit(fields, promote)), "pysaml2 refused")


def test_an_assertion_signed_by_another_key_with_its_certificate_embedded_is_refused(saml_broker: SamlBroker) -> None:
    attacker = generate_key_pair("attacker", bits=2048)
    client, fields = saml_broker.capture()
    forged = _edit(fields, lambda root: None, resign_with=(attacker.key_pem, attacker.cert_pem))
    _refused(saml_broker, saml_broker.deliver(client, forged), "pysaml2 refused")


def test_an_hmac_signature_is_refused(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture()

    def hmac(root: Any) -> None:
        method = root.find(f".//{{{DS_NS}}}SignatureMethod")
        method.set("Algorithm", "http://www.w3.org/2000/09/xmldsig#hmac-sha1")

    _refused(saml_broker, saml_broker.deliver(client, _edit(fields, hmac)), "signature algorithm")


def test_a_sha1_signature_is_refused(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture()
    _refused(saml_broker, saml_broker.deliver(client, _edit(
        fields, lambda root: root.find(f".//{{{DS_NS}}}DigestMethod").set("Algorithm", "http://www.w3.org/2000/09/xmldsig#sha1"),
    )), "digest algorithm")


def test_a_replayed_response_is_refused_by_the_kept_state(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture()
    assert saml_broker.deliver(client, fields).status_code == 302
    bounce = saml_broker.deliver(client, fields)  # no sign-in in progress: bounced once, like a cross-site POST
    assert bounce.status_code == 200 and 'name="_bounced"' in bounce.get_data(as_text=True)
    from tests.support.http_login import csrf_token

    replay = saml_broker.deliver(client, {**fields, "_bounced": "1", "csrf_token": csrf_token(bounce.get_data(as_text=True))})
    assert replay.status_code == 400 and "Start again" in replay.get_data(as_text=True)
    assert list(saml_broker.services.audit.records())[-1].details["reason"] == "no sign-in in progress for this browser"


def _direct(broker: SamlBroker, **request: Any) -> tuple[Any, dict[str, Any], dict[str, str]]:
    """Start at the source itself (no browser binding); return (source, kept state, IdP answer)."""
    source = broker.services.registry.source("barnet-saml")
    started = source.start(UpstreamRequest(ACS, **request))
    fields = idp_login(requests.Session(), started.url, "officer", OFFICER_PASSWORD)
    return source, dict(started.state), {k: v for k, v in fields.items() if k != "action"}


def test_a_replayed_assertion_is_refused_by_the_assertion_id_cache(saml_broker: SamlBroker) -> None:
    source, state, fields = _direct(saml_broker)
    assert source.finish(fields, state, ACS).organisation == "barnet"
    with pytest.raises(FederationError) as caught:
        source.finish(fields, state, ACS)
    assert caught.value.code is FederationErrorCode.INVALID_TOKEN and "replayed" in caught.value.reason


def test_a_concurrent_replay_is_accepted_exactly_once(saml_broker: SamlBroker) -> None:
    source, state, fields = _direct(saml_broker)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        try:
            source.finish(fields, state, ACS)
            outcomes.append("accepted")
        except FederationError as exc:
            outcomes.append(exc.reason)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("accepted") == 1 and sum("replayed" in o for o in outcomes) == 3


@pytest.mark.parametrize(
    ("what", "path", "attribute"),
    [
        ("audience", f".//{{{SAML_NS}}}Audience", None),
        ("recipient", f".//{{{SAML_NS}}}SubjectConfirmationData", "Recipient"),
    ],
)
def test_an_assertion_for_another_sp_is_refused(saml_broker: SamlBroker, what: str, path: str, attribute: str | None) -> None:
    client, fields = saml_broker.capture()

    def elsewhere(root: Any) -> None:
        element = root.find(path)
        if attribute is None:
            element.text = "https://other-sp.test/saml"
        else:
            element.set(attribute, "https://other-sp.test/acs")

    _refused(saml_broker, saml_broker.deliver(client, _edit(fields, elsewhere, resign_with=_idp_key(saml_broker))))


def test_a_response_for_another_destination_is_refused(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture()
    forged = _edit(fields, lambda root: root.set("Destination", "https://other-sp.test/acs"))
    _refused(saml_broker, saml_broker.deliver(client, forged), "Destination")


def test_a_response_without_destination_is_refused(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture()

    def drop(root: Any) -> None:
        del root.attrib["Destination"]

    _refused(saml_broker, saml_broker.deliver(client, _edit(fields, drop)), "Destination is missing")


def test_an_expired_assertion_is_refused(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture()
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def expire(root: Any) -> None:
        for element in root.iter(f"{{{SAML_NS}}}Conditions", f"{{{SAML_NS}}}SubjectConfirmationData"):
            element.set("NotOnOrAfter", past)

    _refused(saml_broker, saml_broker.deliver(client, _edit(fields, expire, resign_with=_idp_key(saml_broker))))


def test_a_response_to_another_browsers_request_is_refused(saml_broker: SamlBroker) -> None:
    _, victims = saml_broker.capture()  # the victim's response, captured
    attacker, _ = saml_broker.begin()  # the attacker's own sign-in, with its own request ID
    _refused(saml_broker, saml_broker.deliver(attacker, victims), "pysaml2 refused")


def _idp_initiated(broker: SamlBroker) -> dict[str, str]:
    """Sign in at the IdP without any request from us (IdP-initiated SSO); return the POST fields."""
    from tests.peers.simplesamlphp import form_fields

    browser = requests.Session()
    page = browser.get(f"{broker.idp.base_url}saml2/idp/SSOService.php",
                       params={"spentityid": "http://127.0.0.1:8000/saml/sp/barnet-saml"}, timeout=10)
    action, login = form_fields(page.text)
    login.update({"username": "officer", "password": OFFICER_PASSWORD})
    answer = browser.post(requests.compat.urljoin(page.url, action), data=login, timeout=10)
    _, fields = form_fields(answer.text)
    assert b"InResponseTo" not in decode_response(fields)
    return fields


def test_an_unsolicited_response_is_refused(saml_broker: SamlBroker) -> None:
    fields = _idp_initiated(saml_broker)
    # In a browser that started a sign-in: the response answers no request of ours.
    client, _ = saml_broker.begin()
    _refused(saml_broker, saml_broker.deliver(client, fields), "pysaml2 refused")
    # At the source itself, with no request kept: unsolicited, refused unless enabled.
    source = saml_broker.services.registry.source("barnet-saml")
    with pytest.raises(FederationError) as caught:
        source.finish(fields, {}, ACS)
    assert caught.value.code is FederationErrorCode.INVALID_TOKEN


def test_an_unsolicited_response_is_accepted_only_by_an_idp_enabled_for_it(saml_broker: SamlBroker) -> None:
    from federation.upstream_saml import build_saml_source

    settings = saml_broker.services.settings
    barnet = next(o for o in settings.organisations if o.id == "barnet")
    enabled = build_saml_source(barnet.sources[0].model_copy(update={"allow_unsolicited": True}), "barnet", settings)
    enabled.use_replay_cache(saml_broker.services.state)
    fields = _idp_initiated(saml_broker)
    assert enabled.finish(fields, {}, ACS).subject.subject == "b.okafor"
    with pytest.raises(FederationError) as caught:  # and still only once
        enabled.finish(fields, {}, ACS)
    assert "replayed" in caught.value.reason
    _, state, solicited = _direct(saml_broker)
    with pytest.raises(FederationError):  # a response to a request, presented without its request
        enabled.finish(solicited, {}, ACS)


def test_xsw_an_unsigned_assertion_beside_the_signed_one_is_refused(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture()

    def wrap(root: Any) -> None:
        original = _assertion(root)
        evil = etree.fromstring(etree.tostring(original))
        evil.set("ID", "_evil")
        evil.remove(evil.find(f"{{{DS_NS}}}Signature"))
        evil.find(f".//{{{SAML_NS}}}NameID").text = "someone.else"
        original.addprevious(evil)

    _refused(saml_broker, saml_broker.deliver(client, _edit(fields, wrap)))


def test_xsw_a_copy_with_the_same_id_is_refused(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture()

    def wrap(root: Any) -> None:
        original = _assertion(root)
        evil = etree.fromstring(etree.tostring(original))
        evil.remove(evil.find(f"{{{DS_NS}}}Signature"))
        evil.find(f".//{{{SAML_NS}}}NameID").text = "someone.else"
        original.addprevious(evil)

    _refused(saml_broker, saml_broker.deliver(client, _edit(fields, wrap)), "same ID")


def test_xsw_the_signed_assertion_hidden_in_extensions_is_refused(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture()

    def wrap(root: Any) -> None:
        original = _assertion(root)
        evil = etree.fromstring(etree.tostring(original))
        evil.set("ID", "_evil")
        evil.remove(evil.find(f"{{{DS_NS}}}Signature"))
        evil.find(f".//{{{SAML_NS}}}NameID").text = "someone.else"
        extensions = etree.SubElement(root, f"{{{SAMLP_NS}}}Extensions")
        root.remove(original)
        extensions.append(original)
        root.find(f"{{{SAML_NS}}}Issuer").addnext(extensions)
        root.append(evil)

    _refused(saml_broker, saml_broker.deliver(client, _edit(fields, wrap)))


def test_xsw_the_signature_moved_into_a_forged_assertion_is_refused(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture()

    def wrap(root: Any) -> None:
        original = _assertion(root)
        evil = etree.fromstring(etree.tostring(original))
        evil.set("ID", "_evil")
        evil.find(f".//{{{SAML_NS}}}NameID").text = "someone.else"
        signature = evil.find(f"{{{DS_NS}}}Signature")
        evil.remove(signature)
        evil.find(f"{{{SAML_NS}}}Issuer").addnext(signature)  # still references the original's ID
        root.replace(original, evil)
        signature.append(original)  # the original, signed, rides inside the signature

    _refused(saml_broker, saml_broker.deliver(client, _edit(fields, wrap)))


def test_a_comment_in_the_name_id_is_refused(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture()

    def inject(root: Any) -> None:
        name_id = root.find(f".//{{{SAML_NS}}}NameID")
        text = name_id.text
        name_id.text = text[:3]
        comment = etree.Comment("")
        name_id.append(comment)
        comment.tail = text[3:]

    _refused(saml_broker, saml_broker.deliver(client, _edit(fields, inject)), "comment")


def test_entity_expansion_and_xxe_are_refused_quickly(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture()
    body = decode_response(fields).split(b"?>", 1)[-1]
    bomb = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
            b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY x SYSTEM "file:///etc/passwd">]>' + body)
    started = time.monotonic()
    _refused(saml_broker, saml_broker.deliver(client, with_response(fields, bomb)), "DTD")
    assert time.monotonic() - started < 1.0


def test_a_relay_state_pointing_elsewhere_is_never_followed(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture()
    response = saml_broker.deliver(client, {**fields, "RelayState": "https://evil.test/phish"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/signed-in") and "evil" not in response.headers["Location"]


def test_an_unencrypted_assertion_is_refused_where_encryption_is_wanted(saml_broker: SamlBroker) -> None:
    _, fields = saml_broker.capture("barnet-saml")  # signed, not encrypted
    client, url = saml_broker.begin("barnet-saml-enc")
    request_id = etree.fromstring(_inflate(url)).get("ID")
    enc_acs = "http://127.0.0.1:8000/login/callback/barnet-saml-enc"

    def readdress(root: Any) -> None:  # everything right for the encrypting SP, except encryption
        root.set("Destination", enc_acs)
        root.set("InResponseTo", request_id)
        root.find(f".//{{{SAML_NS}}}Audience").text = "http://127.0.0.1:8000/saml/sp/barnet-saml-enc"
        data = root.find(f".//{{{SAML_NS}}}SubjectConfirmationData")
        data.set("Recipient", enc_acs)
        data.set("InResponseTo", request_id)

    forged = _edit(fields, readdress, resign_with=_idp_key(saml_broker))
    _refused(saml_broker, saml_broker.deliver(client, forged, "barnet-saml-enc"), "not encrypted")


def _inflate(url: str) -> bytes:
    import base64
    import zlib
    from urllib.parse import parse_qs, urlsplit

    return zlib.decompress(base64.b64decode(parse_qs(urlsplit(url).query)["SAMLRequest"][0]), -15)


def test_a_response_from_another_idp_is_refused(saml_broker: SamlBroker) -> None:
    other = generate_key_pair("other-idp", bits=2048)
    client, fields = saml_broker.capture()

    def reissue(root: Any) -> None:
        for issuer in root.iter(f"{{{SAML_NS}}}Issuer"):
            issuer.text = "https://adfs.camden.test/adfs/services/trust"

    _refused(saml_broker, saml_broker.deliver(client, _edit(fields, reissue, resign_with=(other.key_pem, other.cert_pem))))


def _evil_copy(original: Any) -> Any:
    evil = etree.fromstring(etree.tostring(original))
    evil.set("ID", "_evil")
    evil.remove(evil.find(f"{{{DS_NS}}}Signature"))
    evil.find(f".//{{{SAML_NS}}}NameID").text = "someone.else"
    return evil


def test_xsw_the_signed_assertion_inside_the_forged_one_is_refused(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture()

    def wrap(root: Any) -> None:  # XSW4: the original becomes a child of the forgery
        original = _assertion(root)
        evil = _evil_copy(original)
        root.replace(original, evil)
        evil.append(original)

    _refused(saml_broker, saml_broker.deliver(client, _edit(fields, wrap)))


def test_xsw_the_signed_assertion_in_a_signature_object_is_refused(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture()

    def wrap(root: Any) -> None:  # XSW8: the original rides in a ds:Object of the forgery's signature
        original = _assertion(root)
        evil = _evil_copy(original)
        signature = etree.fromstring(etree.tostring(original.find(f"{{{DS_NS}}}Signature")))
        evil.find(f"{{{SAML_NS}}}Issuer").addnext(signature)
        holder = etree.SubElement(signature, f"{{{DS_NS}}}Object")
        root.replace(original, evil)
        holder.append(original)

    _refused(saml_broker, saml_broker.deliver(client, _edit(fields, wrap)))


def test_a_broken_response_signature_is_refused_even_beside_a_signed_assertion(saml_broker: SamlBroker) -> None:
    from federation.upstream_saml import build_saml_source
    from federation.upstream_saml.keys import KeyPair
    from federation.upstream_saml.xmlsecurity import signature_template

    settings = saml_broker.services.settings
    barnet = next(o for o in settings.organisations if o.id == "barnet")
    either = build_saml_source(barnet.sources[0].model_copy(update={"signed": "assertion_or_response"}), "barnet", settings)
    either.use_replay_cache(saml_broker.services.state)
    started = either.start(UpstreamRequest(ACS))
    fields = {"SAMLResponse": idp_login(requests.Session(), started.url, "officer", OFFICER_PASSWORD)["SAMLResponse"]}

    def broken_signature(root: Any) -> None:
        template = etree.fromstring(signature_template(root.get("ID"), KeyPair(*_idp_key(saml_broker)).cert_b64))
        template.find(f".//{{{DS_NS}}}DigestValue").text = "AAAA"
        template.find(f"{{{DS_NS}}}SignatureValue").text = "AAAA"
        root.find(f"{{{SAML_NS}}}Issuer").addnext(template)

    with pytest.raises(FederationError) as caught:
        either.finish(_edit(fields, broken_signature), dict(started.state), ACS)
    assert caught.value.code is FederationErrorCode.INVALID_TOKEN
    from federation.upstream_saml.xmlsecurity import XmlSecurity

    root = etree.fromstring(decode_response(fields))
    root.find(f"{{{SAML_NS}}}Issuer").addnext(
        etree.fromstring(signature_template(root.get("ID"), KeyPair(*_idp_key(saml_broker)).cert_b64)))
    signed = XmlSecurity().sign_enveloped(etree.tostring(root), "urn:oasis:names:tc:SAML:2.0:protocol:Response",
                                          root.get("ID"), *_idp_key(saml_broker))
    assert either.finish(with_response(fields, signed), dict(started.state), ACS).subject.subject == "b.okafor"


def test_step_up_needs_a_fresh_authentication(saml_broker: SamlBroker) -> None:
    source, state, fields = _direct(saml_broker, min_assurance=AssuranceLevel.AAL2, force_authn=True)
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    stale = _edit(fields, lambda root: root.find(f".//{{{SAML_NS}}}AuthnStatement").set("AuthnInstant", old),
                  resign_with=_idp_key(saml_broker))
    with pytest.raises(FederationError) as caught:
        source.finish(stale, state, ACS)
    assert "ForceAuthn" in caught.value.reason
    identity = source.finish(fields, state, ACS)  # the real, fresh answer
    assert identity.authn.assurance is AssuranceLevel.AAL2


# --- XML Signature Wrapping: XSW1-XSW8 ---------------------------------------------------------
#
# The eight classic wrappings (Somorovsky et al., "On Breaking SAML: Be Whoever You Want to Be",
# USENIX Security 2012; SAML Raider's XSW1-XSW8). Each builder takes a real response from
# SimpleSAMLphp (its assertion signed by the IdP; for XSW1/2 its Response signed too, with the
# IdP's own key) and rearranges it so that the signed bytes still verify somewhere in the document
# while an evil copy, about someone else, sits where a careless SP would read it. The evil copy
# always gets fresh IDs, so the attack gets past the "every ID unique" rule to the rules behind it.

EVIL_SUBJECT = "m.mallory"
EVIL_MAIL = "mallory@camden.test"
EVIL_NAME = "Mallory Intruder"
EVIL_MARKS = (EVIL_SUBJECT, EVIL_MAIL, EVIL_NAME)


def _signature_of(element: Any) -> Any:
    """Return the ds:Signature enveloped directly in ``element``."""
    return element.find(f"{{{DS_NS}}}Signature")


def _unsigned_copy(element: Any) -> Any:
    """Return a deep copy of ``element`` without its own ds:Signature."""
    clone = copy.deepcopy(element)
    clone.remove(_signature_of(clone))
    return clone


def _impersonate(assertion: Any) -> Any:
    """Make ``assertion`` (in place) say it is about the evil user (NameID, uid, mail, name), with a fresh ID."""
    assertion.set("ID", "_evil_assertion")
    assertion.find(f".//{{{SAML_NS}}}NameID").text = EVIL_SUBJECT
    evil_values = {ATTR_UID: EVIL_SUBJECT, ATTR_MAIL: EVIL_MAIL, ATTR_NAME: EVIL_NAME}
    for attribute in assertion.iter(f"{{{SAML_NS}}}Attribute"):
        if attribute.get("Name") in evil_values:
            for value in attribute.iter(f"{{{SAML_NS}}}AttributeValue"):
                value.text = evil_values[attribute.get("Name")]
    return assertion


def _evil_response(response: Any) -> Any:
    """Turn ``response`` (in place) into the evil Response: new ID, its assertion unsigned and impersonated."""
    response.set("ID", "_evil_response")
    assertion = _assertion(response)
    assertion.remove(_signature_of(assertion))
    _impersonate(assertion)
    return response


def xsw1(response: Any) -> Any:
    """XSW1: the signed Response is cloned; the evil clone becomes the document and keeps the
    Response signature, and the genuine Response (minus that signature) is hidden *inside* the
    ds:Signature (after KeyInfo), where the signature's reference still finds it."""
    genuine = _unsigned_copy(response)
    _evil_response(response)
    _signature_of(response).append(genuine)
    return response


def xsw2(response: Any) -> Any:
    """XSW2: as XSW1, but the genuine Response (minus its signature) is placed *before* the
    signature as a sibling inside the evil Response: a detached signature over the hidden original."""
    genuine = _unsigned_copy(response)
    _evil_response(response)
    _signature_of(response).addprevious(genuine)
    return response


def xsw3(response: Any) -> Any:
    """XSW3: an unsigned evil copy of the Assertion is inserted *before* the signed one (first
    assertion wins in a careless SP); the signed Assertion is left untouched."""
    original = _assertion(response)
    original.addprevious(_impersonate(_unsigned_copy(original)))
    return response


def xsw4(response: Any) -> Any:
    """XSW4: the unsigned evil copy takes the Assertion's place and the signed Assertion becomes its
    *child* (the signature still verifies over the nested original)."""
    original = _assertion(response)
    evil = _impersonate(_unsigned_copy(original))
    response.replace(original, evil)
    evil.append(original)
    return response


def xsw5(response: Any) -> Any:
    """XSW5: the Assertion in place is altered to the evil identity (new ID) and *keeps the
    signature*, which now points elsewhere: at an unsigned copy of the genuine Assertion (original
    ID) appended *after* it at the end of the Response."""
    original = _assertion(response)
    genuine = _unsigned_copy(original)
    _impersonate(original)
    response.append(genuine)
    return response


def xsw6(response: Any) -> Any:
    """XSW6: as XSW5, but the unsigned genuine copy is hidden *inside* the signature the evil
    Assertion carries (after KeyInfo)."""
    original = _assertion(response)
    genuine = _unsigned_copy(original)
    _impersonate(original)
    _signature_of(original).append(genuine)
    return response


def xsw7(response: Any) -> Any:
    """XSW7: an unsigned evil copy of the Assertion is put in a samlp:Extensions element of the
    Response (before the signed Assertion, which is left untouched): Extensions are schema-lax."""
    original = _assertion(response)
    extensions = etree.Element(f"{{{SAMLP_NS}}}Extensions")
    extensions.append(_impersonate(_unsigned_copy(original)))
    response.find(f"{{{SAML_NS}}}Issuer").addnext(extensions)
    return response


def xsw8(response: Any) -> Any:
    """XSW8: as XSW6, but the unsigned genuine copy sits in a ds:Object inside the signature the
    evil Assertion (altered in place, new ID) carries: ds:Object is where XML Signature allows content."""
    original = _assertion(response)
    genuine = _unsigned_copy(original)
    _impersonate(original)
    holder = etree.SubElement(_signature_of(original), f"{{{DS_NS}}}Object")
    holder.append(genuine)
    return response


XSW_VARIANTS = {"XSW1": xsw1, "XSW2": xsw2, "XSW3": xsw3, "XSW4": xsw4,
                "XSW5": xsw5, "XSW6": xsw6, "XSW7": xsw7, "XSW8": xsw8}
RESPONSE_WRAPPINGS = {"XSW1", "XSW2"}  # these need the Response itself signed
#: The rule that stops each one first (the audit reason); each would be stopped by a later one too.
XSW_REFUSED_BY = {
    "XSW1": "a signature does not reference exactly its enclosing element",
    "XSW2": "an assertion is not a child of the Response",  # the hidden original's assertion, met first
    "XSW3": "pysaml2 refused the response",  # two assertions, the first unsigned
    "XSW4": "an assertion is not a child of the Response",
    "XSW5": "a signature does not reference exactly its enclosing element",
    "XSW6": "a signature does not reference exactly its enclosing element",
    "XSW7": "an assertion is not a child of the Response",  # accepted (as the genuine person) before this rule
    "XSW8": "a signature does not reference exactly its enclosing element",
}


@pytest.fixture(params=["assertion", "assertion_or_response"])
def xsw_broker(request, settings_factory, simplesamlphp_barnet):  # type: ignore[no-untyped-def]
    """The broker over Barnet's SimpleSAMLphp, ``barnet-saml`` requiring a signed assertion, or
    accepting a signed assertion or a signed Response (the laxer setting, where XSW1/2 aim)."""
    from broker.bootstrap import initialise
    from broker.services import build_services
    from broker.web.app import create_app
    from config import load_settings
    from tests.federation.test_upstream_saml import barnet_document

    document = barnet_document(settings_factory, simplesamlphp_barnet, signed=request.param)
    settings = load_settings(settings_factory.write(document))
    initialise(settings)
    services = build_services(settings)
    app = create_app(settings, services=services)
    app.config["TESTING"] = True
    yield SamlBroker(app, services, simplesamlphp_barnet)
    services.engine.dispose()


def _sign_response(xml: bytes, broker: SamlBroker) -> bytes:
    """Return ``xml`` with its Response signed (enveloped, after the Issuer) by the IdP's own key,
    as an IdP configured to sign responses would; the assertion keeps SimpleSAMLphp's signature."""
    from federation.upstream_saml.keys import KeyPair
    from federation.upstream_saml.xmlsecurity import XmlSecurity, signature_template

    root = etree.fromstring(xml)
    template = etree.fromstring(signature_template(root.get("ID"), KeyPair(*_idp_key(broker)).cert_b64))
    root.find(f"{{{SAML_NS}}}Issuer").addnext(template)
    return XmlSecurity().sign_enveloped(etree.tostring(root), "urn:oasis:names:tc:SAML:2.0:protocol:Response",
                                        root.get("ID"), *_idp_key(broker))


def _signed_capture(broker: SamlBroker, variant: str) -> tuple[Any, dict[str, str]]:
    """Capture a fresh response from SimpleSAMLphp; for XSW1/2 sign its Response too."""
    client, fields = broker.capture()
    if variant in RESPONSE_WRAPPINGS:
        fields = with_response(fields, _sign_response(decode_response(fields), broker))
    return client, fields


DIGESTS = {"http://www.w3.org/2001/04/xmlenc#sha256": "sha256", "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
           "http://www.w3.org/2001/04/xmlenc#sha512": "sha512"}


def _every_reference_still_digests(xml: bytes) -> None:
    """Check each ds:Signature's Reference in ``xml`` still finds an element whose exclusive-c14n
    digest (after the enveloped-signature transform) is the signed DigestValue: SignedInfo is the
    IdP's, untouched, so a verifier that only checks signatures would accept the wrapped document."""
    import base64
    import hashlib

    root = etree.fromstring(xml)
    signatures = list(root.iter(f"{{{DS_NS}}}Signature"))
    assert signatures
    for signature in signatures:
        reference = signature.find(f"{{{DS_NS}}}SignedInfo/{{{DS_NS}}}Reference")
        targets = [e for e in root.iter() if e.get("ID") == reference.get("URI", "")[1:]]
        assert len(targets) == 1, reference.get("URI")
        signed = copy.deepcopy(targets[0])
        for enveloped in signed.iter(f"{{{DS_NS}}}Signature"):  # the enveloped-signature transform
            if enveloped.find(f".//{{{DS_NS}}}Reference").get("URI") == reference.get("URI"):
                enveloped.getparent().remove(enveloped)
                break
        algorithm = DIGESTS[reference.find(f"{{{DS_NS}}}DigestMethod").get("Algorithm")]
        digest = hashlib.new(algorithm, etree.tostring(signed, method="c14n", exclusive=True)).digest()
        assert base64.b64encode(digest).decode() == "".join(reference.findtext(f"{{{DS_NS}}}DigestValue").split())


def _no_evil_identity_anywhere(broker: SamlBroker, page: Any) -> None:
    """Check nothing of the evil copy reached the person, the audit log or a session."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from broker.storage.models import SsoSessionRow

    body = page.get_data(as_text=True)
    assert "supercloud-session=" not in " ".join(page.headers.getlist("Set-Cookie"))
    records = list(broker.services.audit.records())
    assert not any(r.event == "signin" and r.outcome == "success" for r in records)
    with Session(broker.services.engine) as db:
        sessions = [str(row.identity) for row in db.scalars(select(SsoSessionRow))]
    for mark in EVIL_MARKS:
        assert mark not in body
        assert not any(mark in str(r.details) for r in records)
        assert not any(mark in identity for identity in sessions)


def test_the_response_signed_as_for_xsw1_and_xsw2_is_accepted_unwrapped(xsw_broker: SamlBroker) -> None:
    """The control for XSW1/2: the re-signed Response, unwrapped, signs Bola in (the forging is sound)."""
    client, fields = _signed_capture(xsw_broker, "XSW1")
    answer = xsw_broker.deliver(client, fields)
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    assert xsw_broker.session_of(answer).identity.subject.subject == "b.okafor"


@pytest.mark.parametrize("variant", sorted(XSW_VARIANTS))
def test_xml_signature_wrapping_is_refused(xsw_broker: SamlBroker, variant: str) -> None:
    """Each XSW variant, built from a live SimpleSAMLphp response with every IdP signature still
    intact, is refused: the generic page, no session cookie, a failure audited with its rule, and
    nothing of the evil identity anywhere (page, audit, sessions)."""
    client, fields = _signed_capture(xsw_broker, variant)
    wrapped = etree.tostring(XSW_VARIANTS[variant](etree.fromstring(decode_response(fields))))
    assert all(mark.encode() in wrapped for mark in EVIL_MARKS)  # the evil identity is in the document
    _every_reference_still_digests(wrapped)  # and the IdP's signed bytes are all still there
    page = xsw_broker.deliver(client, with_response(fields, wrapped))
    _refused(xsw_broker, page, XSW_REFUSED_BY[variant])
    assert UPSTREAM_FAILED.replace("'", "&#39;") in page.get_data(as_text=True)  # the person's clear page
    _no_evil_identity_anywhere(xsw_broker, page)
