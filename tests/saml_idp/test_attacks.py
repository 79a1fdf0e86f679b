"""Adversarial AuthnRequests (issue 7 "Bad input"): each is refused with a page — never a
response sent anywhere — and audited with the reason."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT

from tests.saml_idp.conftest import SSO_URL, Sp, build_env, posted_response, send, sign_in_and_answer


def _refusals(services) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.details["reason"] for r in services.audit.records() if r.event == "saml_authn_request" and r.outcome == "failure"]


def _assert_refused(response, services, fragment: str) -> None:  # type: ignore[no-untyped-def]
    body = response.get_data(as_text=True)
    assert response.status_code == 400, _page_text(body)
    assert "SAMLResponse" not in body and "Location" not in response.headers
    assert any(fragment in reason for reason in _refusals(services)), (_refusals(services), _page_text(body))


def _page_text(body: str) -> str:
    import re

    return " | ".join(re.findall(r'class="govuk-body">([^<]*)', body)) or body[:300]


def _signed_in(app, sps):  # type: ignore[no-untyped-def]
    client = app.test_client()
    req_id, message = sps["a"].authn_request()
    posted_response(sign_in_and_answer(client, send(client, message)))
    return client


@pytest.mark.parametrize("binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST])
def test_unsigned_request_when_metadata_says_authn_requests_signed(saml_env, binding: str) -> None:
    app, services, sps = saml_env
    client = _signed_in(app, sps)
    _, message = sps["a"].authn_request(binding, sign=False)
    _assert_refused(send(client, message), services, "must sign its requests")


def test_unsigned_request_when_configuration_requires_signing(settings_factory, sps) -> None:
    app, services, sps = build_env(settings_factory, sps, plain={"require_signed_requests": True})
    _, message = sps["plain"].authn_request()
    _assert_refused(send(app.test_client(), message), services, "must sign its requests")


@pytest.mark.parametrize("binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST])
def test_request_signed_by_another_key(saml_env, tmp_path: Path, binding: str) -> None:
    app, services, sps = saml_env
    (tmp_path / "impostor-home").mkdir()
    impostor = Sp(tmp_path / "impostor-home", "a")
    impostor.connect(app.test_client().get("/saml/metadata").get_data(as_text=True))
    assert impostor.entity_id == sps["a"].entity_id  # same name, its own key
    client = _signed_in(app, sps)
    _, message = impostor.authn_request(binding)
    _assert_refused(send(client, message), services, "does not verify with the service's registered keys")


def test_tampered_redirect_query_is_refused(saml_env) -> None:
    app, services, sps = saml_env
    _, message = sps["a"].authn_request(relay_state="relay-1")
    url = message["url"].replace("RelayState=relay-1", "RelayState=relay-2")
    assert url != message["url"]
    _assert_refused(send(app.test_client(), {"url": url}), services, "does not verify")


def test_sha1_signatures_are_refused(saml_env) -> None:
    app, services, sps = saml_env
    sp = sps["a"]
    req_id, request = sp.client.create_authn_request(SSO_URL, binding=BINDING_HTTP_POST, sign=False)
    from saml2.xmldsig import SIG_RSA_SHA1

    info = sp.client.apply_binding(BINDING_HTTP_REDIRECT, str(request), SSO_URL, relay_state="r", sign=True, sigalg=SIG_RSA_SHA1)
    _assert_refused(send(app.test_client(), {"url": dict(info["headers"])["Location"]}), services, "is not allowed")
    # pysaml2's own default for an enveloped signature is RSA-SHA1 as well:
    req_id, request = sp.client.create_authn_request(SSO_URL, binding=BINDING_HTTP_POST, sign=True)
    import base64

    _assert_refused(send(app.test_client(), {"form": {"SAMLRequest": base64.b64encode(str(request).encode()).decode()}}),
                    services, "rsa-sha1")


@pytest.mark.parametrize("binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST])
def test_acs_url_injection_is_refused(saml_env, binding: str) -> None:
    app, services, sps = saml_env
    client = _signed_in(app, sps)
    _, message = sps["a"].authn_request(binding, assertion_consumer_service_url="http://evil.test/acs")
    _assert_refused(send(client, message), services, "address the service's metadata does not list")


def test_acs_of_another_sp_is_refused(saml_env) -> None:
    app, services, sps = saml_env
    client = _signed_in(app, sps)
    _, message = sps["a"].authn_request(assertion_consumer_service_url=sps["b"].acs)
    _assert_refused(send(client, message), services, "metadata does not list")


def test_unknown_acs_index_is_refused(saml_env) -> None:
    app, services, sps = saml_env
    _, message = sps["a"].authn_request(assertion_consumer_service_index="7")
    _assert_refused(send(app.test_client(), message), services, "ACS index")


@pytest.mark.parametrize("binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST])
def test_replayed_request_id_is_refused(saml_env, binding: str) -> None:
    app, services, sps = saml_env
    client = _signed_in(app, sps)
    req_id, message = sps["a"].authn_request(binding)
    first = send(client, message)
    posted_response(first)
    _assert_refused(send(client, message), services, "replay")
    assert len([r for r in services.audit.records() if r.event == "saml_assertion_issued"]) == 2  # sign-in + first only


def test_relay_state_longer_than_80_bytes_is_refused(saml_env) -> None:
    app, services, sps = saml_env
    _, message = sps["a"].authn_request(relay_state="x" * 81)
    response = send(app.test_client(), message)
    assert response.status_code == 400 and "SAMLResponse" not in response.get_data(as_text=True)
    failures = [r for r in services.audit.records() if r.event == "saml_authn_request" and r.outcome == "failure"]
    assert "RelayState is longer than 80 bytes" in failures[-1].details["reason"]
    _, message = sps["a"].authn_request(relay_state="x" * 80)
    assert send(app.test_client(), message).status_code == 302, "exactly 80 bytes is allowed"


def test_relay_state_is_never_followed_by_the_broker(saml_env) -> None:
    app, services, sps = saml_env
    client = _signed_in(app, sps)
    req_id, message = sps["a"].authn_request(relay_state="https://evil.test/phish")
    acs, fields = posted_response(send(client, message))
    assert acs == sps["a"].acs, "the response goes only to the ACS in the SP's metadata"
    assert fields["RelayState"] == "https://evil.test/phish", "returned to the SP unchanged, as opaque data"


def test_idp_initiated_relay_state_open_redirect_is_refused(settings_factory, sps) -> None:
    app, services, sps = build_env(settings_factory, sps, a={"idp_initiated": True})
    client = _signed_in(app, sps)
    evil = client.get(f"/saml/idp-initiated?sp={quote(sps['a'].entity_id)}&RelayState={quote('https://evil.test/x')}")
    assert evil.status_code == 400 and "SAMLResponse" not in evil.get_data(as_text=True)
    fine = client.get(f"/saml/idp-initiated?sp={quote(sps['a'].entity_id)}&RelayState={quote('http://a.sp.test/cases/1')}")
    acs, fields = posted_response(fine)
    parsed = sps["a"].parse(fields["SAMLResponse"], None)
    assert acs == sps["a"].acs and parsed.in_response_to is None and fields["RelayState"] == "http://a.sp.test/cases/1"


def test_idp_initiated_only_where_enabled(saml_env) -> None:
    app, services, sps = saml_env
    client = _signed_in(app, sps)
    response = client.get(f"/saml/idp-initiated?sp={quote(sps['b'].entity_id)}")
    assert response.status_code == 400 and "SAMLResponse" not in response.get_data(as_text=True)
    assert [r for r in services.audit.records() if r.event == "saml_idp_initiated" and r.outcome == "failure"]


def test_unknown_sp_is_refused(saml_env, tmp_path: Path) -> None:
    app, services, _ = saml_env
    (tmp_path / "stranger-home").mkdir()
    stranger = Sp(tmp_path / "stranger-home", "stranger")
    stranger.connect(app.test_client().get("/saml/metadata").get_data(as_text=True))
    _, message = stranger.authn_request()
    _assert_refused(send(app.test_client(), message), services, "not registered")


def test_request_addressed_to_another_destination_is_refused(saml_env) -> None:
    app, services, sps = saml_env
    sp = sps["a"]
    req_id, request = sp.client.create_authn_request("https://other-idp.test/sso", binding=BINDING_HTTP_POST, sign=False)
    from saml2.xmldsig import SIG_RSA_SHA256

    info = sp.client.apply_binding(BINDING_HTTP_REDIRECT, str(request), SSO_URL, relay_state="r", sign=True,
                                   sigalg=SIG_RSA_SHA256)
    _assert_refused(send(app.test_client(), {"url": dict(info["headers"])["Location"]}), services, "Destination")


def test_garbage_and_xxe_are_refused(saml_env) -> None:
    app, services, _ = saml_env
    import base64
    import zlib

    xxe = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    encoded = quote(base64.b64encode(deflater.compress(xxe) + deflater.flush()).decode(), safe="")
    _assert_refused(app.test_client().get(f"/saml/sso?SAMLRequest={encoded}"), services, "DTD")
    _assert_refused(app.test_client().get("/saml/sso?SAMLRequest=not-base64!!"), services, "base64")


def test_a_query_string_that_is_not_url_encoded_is_refused(saml_env) -> None:
    app, services, _ = saml_env
    response = app.test_client().get("/saml/sso", environ_overrides={"QUERY_STRING": "SAMLRequest=\xff\xfe"})
    assert response.status_code == 400
    assert "not URL-encoded ASCII" in _refusals(services)[-1]
