"""Web Browser SSO with pysaml2 as the SP: Redirect and POST bindings, signed and encrypted assertions."""

from __future__ import annotations

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT

from tests.saml_idp.conftest import (
    IDP_ENTITY_ID,
    decode_response,
    posted_response,
    send,
    sign_in_and_answer,
)


def _round_trip(saml_env, binding: str, sp_key: str = "a"):  # type: ignore[no-untyped-def]
    app, services, sps = saml_env
    sp = sps[sp_key]
    client = app.test_client()
    req_id, message = sp.authn_request(binding)
    page = sign_in_and_answer(client, send(client, message))
    acs, fields = posted_response(page)
    return sp, req_id, acs, fields, client


def test_redirect_binding_round_trip_signed_and_encrypted(saml_env) -> None:
    sp, req_id, acs, fields, _ = _round_trip(saml_env, BINDING_HTTP_REDIRECT)
    assert acs == sp.acs
    assert fields["RelayState"] == "relay-1"
    xml = decode_response(fields)
    assert "EncryptedAssertion" in xml and "<saml:Assertion" not in xml  # the SP publishes an encryption key
    assert "rsa-sha1" not in xml and "xmldsig#sha1" not in xml.replace("mgf1p", "")
    parsed = sp.parse(fields["SAMLResponse"], {req_id: "/"})
    assert parsed.issuer() == IDP_ENTITY_ID
    assert parsed.in_response_to == req_id
    assert parsed.assertion.conditions.audience_restriction[0].audience[0].text == sp.entity_id
    assert parsed.ava["mail"] == ["amara.okafor@camden.test"]
    assert parsed.ava["displayName"] == ["Amara Okafor"]
    statement = parsed.assertion.authn_statement[0]
    assert statement.authn_context.authn_context_class_ref.text == "urn:supercloud:aal1"


def test_post_binding_round_trip(saml_env) -> None:
    sp, req_id, acs, fields, _ = _round_trip(saml_env, BINDING_HTTP_POST)
    parsed = sp.parse(fields["SAMLResponse"], {req_id: "/"})
    assert parsed.in_response_to == req_id
    assert parsed.ava["mail"] == ["amara.okafor@camden.test"]


def test_unencrypted_for_an_sp_without_encryption_key_and_sso_reuse(saml_env) -> None:
    app, services, sps = saml_env
    client = app.test_client()
    # Sign in through SP a, then SP "plain" reuses the session without a sign-in page.
    req_id, message = sps["a"].authn_request()
    posted_response(sign_in_and_answer(client, send(client, message)))
    plain = sps["plain"]
    req_id, message = plain.authn_request()
    acs, fields = posted_response(send(client, message))
    xml = decode_response(fields)
    assert "EncryptedAssertion" not in xml and "<saml:Assertion" in xml
    parsed = plain.parse(fields["SAMLResponse"], {req_id: "/"})
    assert parsed.in_response_to == req_id
    issued = [r for r in services.audit.records() if r.event == "saml_assertion_issued"]
    assert [r.client_id for r in issued] == [sps["a"].entity_id, plain.entity_id]


def test_metadata_is_signed_and_lists_current_and_next_keys(saml_env) -> None:
    app, services, _ = saml_env
    from federation.upstream_saml.xmlsecurity import MD, certificate_pem, inspect_document, verify_with_any

    xml = app.test_client().get("/saml/metadata").get_data()
    facts = inspect_document(xml)
    certs = [c.text for c in facts.root.iter("{http://www.w3.org/2000/09/xmldsig#}X509Certificate")]
    published = services.saml_idp.credentials.published()
    assert len(published) == 2 and published[0].kid != published[1].kid
    descriptor_certs = [c.cert_b64 for c in published]
    assert all(c in certs for c in descriptor_certs)
    verify_with_any(xml, f"{MD.replace('{', '')}:EntityDescriptor", (published[0].cert_b64,))
    assert certificate_pem(published[0].cert_b64)
    # after rotation the old next key signs and a new next key is published
    services.keyring.rotate("RS256")
    services.keyring._loaded_at = 0.0  # noqa: SLF001 - the ring reloads each minute; the test does not wait
    services.saml_idp._metadata = None  # noqa: SLF001 - nor for the metadata cache
    rotated = services.saml_idp.credentials.published()
    assert rotated[0].kid == published[1].kid


def test_short_validity_audience_and_one_time_use_on_request(settings_factory, sps) -> None:
    import datetime as dt

    from tests.saml_idp.conftest import build_env

    app, _, sps = build_env(settings_factory, sps, plain={"one_time_use": True, "assertion_lifetime_seconds": 120})
    client = app.test_client()
    req_id, message = sps["plain"].authn_request()
    acs, fields = posted_response(sign_in_and_answer(client, send(client, message)))
    xml = decode_response(fields)
    assert "<saml:OneTimeUse/>" in xml
    parsed = sps["plain"].parse(fields["SAMLResponse"], {req_id: "/"})
    conditions = parsed.assertion.conditions
    not_after = dt.datetime.fromisoformat(conditions.not_on_or_after.replace("Z", "+00:00"))
    assert not_after - dt.datetime.now(dt.UTC) <= dt.timedelta(seconds=120)
    assert conditions.audience_restriction[0].audience[0].text == sps["plain"].entity_id
    # Without one_time_use the condition is absent.
    req_id, message = sps["a"].authn_request()
    assert "OneTimeUse" not in sps["a"].parse(posted_response(send(client, message))[1]["SAMLResponse"],
                                              {req_id: "/"}).assertion.conditions.to_string().decode()


def test_signing_follows_the_sps_choice(settings_factory, sps) -> None:
    from tests.saml_idp.conftest import build_env

    app, _, sps = build_env(settings_factory, sps, plain={"sign_response": False})
    client = app.test_client()
    req_id, message = sps["plain"].authn_request()
    xml = decode_response(posted_response(sign_in_and_answer(client, send(client, message)))[1])
    response_part, assertion_part = xml.split("<saml:Assertion", 1)
    assert "<ds:Signature" not in response_part, "the response itself is not signed, as configured"
    assert "<ds:Signature" in assertion_part and "rsa-sha256" in assertion_part


def test_metadata_is_refreshed_from_its_file(settings_factory, sps) -> None:
    from sqlalchemy import update

    from broker.storage.models import SamlServiceProviderRow
    from broker.storage.types import utcnow
    from tests.saml_idp.conftest import build_env

    app, services, sps = build_env(settings_factory, sps, a={"metadata": {"file": str(sps["a"].metadata_file),
                                                                          "refresh_seconds": 60}})
    sp = sps["a"]
    client = app.test_client()
    req_id, message = sp.authn_request()
    posted_response(sign_in_and_answer(client, send(client, message)))
    # The SP publishes a second ACS; once the refresh is due the broker answers there.
    new_acs = "http://a.sp.test/acs2"
    text = sp.metadata_file.read_text()
    marker = text.index("<ns0:AssertionConsumerService") if "<ns0:AssertionConsumerService" in text else text.index("AssertionConsumerService") - 4
    element = text[marker:text.index(">", marker) + 1]
    sp.metadata_file.write_text(text.replace(element, element + element.replace(sp.acs, new_acs).replace('index="1"', 'index="2"'), 1))
    _, message = sp.authn_request(assertion_consumer_service_url=new_acs)
    assert send(client, message).status_code == 400, "not before the refresh is due"
    import datetime as dt

    with services.db.begin() as session:
        session.execute(update(SamlServiceProviderRow).values(updated_at=utcnow() - dt.timedelta(seconds=61)))
    _, message = sp.authn_request(assertion_consumer_service_url=new_acs)
    acs, _ = posted_response(send(client, message))
    assert acs == new_acs


def test_the_sign_in_page_names_the_sp(saml_env) -> None:
    app, _, sps = saml_env
    client = app.test_client()
    _, message = sps["a"].authn_request()
    send(client, message)
    assert "To continue to Service A" in client.get("/login").get_data(as_text=True)
