"""Assurance in SAML (issue 8): AuthnContextClassRef reflects the level achieved,
RequestedAuthnContext is honoured by step-up or refused with NoAuthnContext, ForceAuthn
re-authenticates, IsPassive answers NoPassive instead of showing a page."""

from __future__ import annotations

import pytest
from saml2.response import StatusNoAuthnContext, StatusNoPassive
from saml2.samlp import RequestedAuthnContext
from saml2.saml import AuthnContextClassRef

from tests.mfa.test_step_up_flow import _enrol_through_pages
from tests.saml_idp.conftest import posted_response, send, sign_in_and_answer
from tests.support.flask_flow import password_sign_in


def _requested(*refs: str, comparison: str = "minimum") -> RequestedAuthnContext:
    return RequestedAuthnContext(authn_context_class_ref=[AuthnContextClassRef(text=r) for r in refs], comparison=comparison)


def _class_ref(parsed) -> str:  # type: ignore[no-untyped-def]
    return parsed.assertion.authn_statement[0].authn_context.authn_context_class_ref.text


def test_requested_aal2_steps_up_with_totp_then_resumes_with_aal2(saml_env) -> None:
    app, services, sps = saml_env
    sp = sps["a"]
    client = app.test_client()
    req_id, message = sp.authn_request(requested_authn_context=_requested("urn:supercloud:aal2"))
    first = send(client, message)
    assert first.headers["Location"].endswith("/login")
    signed = password_sign_in(client, "amara.okafor@camden.test")
    resume = client.get(signed.headers["Location"])
    _enrol_through_pages(client, resume)  # the step-up: TOTP enrolment, then the parked request resumes
    acs, fields = posted_response(client.get("/authorize/resume"))
    parsed = sp.parse(fields["SAMLResponse"], {req_id: "/"})
    assert parsed.in_response_to == req_id, "the original AuthnRequest resumed"
    assert _class_ref(parsed) == "urn:supercloud:aal2"
    assert fields["RelayState"] == "relay-1"


def test_password_sign_in_reports_aal1_with_the_sps_configured_reference(settings_factory, sps) -> None:
    from tests.saml_idp.conftest import build_env

    pp = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    app, _, sps = build_env(settings_factory, sps, a={"authn_context_class_refs": {"AAL1": pp}})
    client = app.test_client()
    req_id, message = sps["a"].authn_request(requested_authn_context=_requested(pp, comparison="exact"))
    acs, fields = posted_response(sign_in_and_answer(client, send(client, message)))
    assert _class_ref(sps["a"].parse(fields["SAMLResponse"], {req_id: "/"})) == pp


def test_unknown_or_unreachable_context_is_refused_with_no_authn_context(saml_env) -> None:
    app, services, sps = saml_env
    sp = sps["a"]
    client = app.test_client()
    req_id, message = sp.authn_request()
    posted_response(sign_in_and_answer(client, send(client, message)))
    # A context the broker does not know:
    req_id, message = sp.authn_request(requested_authn_context=_requested("urn:example:retina-scan", comparison="exact"))
    acs, fields = posted_response(send(client, message))
    assert acs == sp.acs
    with pytest.raises(StatusNoAuthnContext):
        sp.parse(fields["SAMLResponse"], {req_id: "/"})
    # AAL3 for a directory password user: no upstream can provide it here.
    req_id, message = sp.authn_request(requested_authn_context=_requested("urn:supercloud:aal3"))
    acs, fields = posted_response(send(client, message))
    with pytest.raises(StatusNoAuthnContext):
        sp.parse(fields["SAMLResponse"], {req_id: "/"})
    # "maximum AAL1" is fine at AAL1
    req_id, message = sp.authn_request(requested_authn_context=_requested("urn:supercloud:aal1", comparison="maximum"))
    acs, fields = posted_response(send(client, message))
    assert _class_ref(sp.parse(fields["SAMLResponse"], {req_id: "/"})) == "urn:supercloud:aal1"
    refused = [r for r in services.audit.records() if r.event == "saml_authn_request" and r.outcome == "refused"]
    assert [r.details["status"] for r in refused] == ["NoAuthnContext", "NoAuthnContext"]


def test_force_authn_makes_a_signed_in_person_authenticate_again(saml_env) -> None:
    app, services, sps = saml_env
    sp = sps["a"]
    client = app.test_client()
    req_id, message = sp.authn_request()
    first = sp.parse(posted_response(sign_in_and_answer(client, send(client, message)))[1]["SAMLResponse"], {req_id: "/"})
    first_instant = first.assertion.authn_statement[0].authn_instant
    # Without ForceAuthn the session is reused; with it, the person is sent to sign in again.
    req_id, message = sp.authn_request(force_authn="true")
    again = send(client, message)
    assert again.status_code == 302 and again.headers["Location"].endswith("/login")
    page = sign_in_and_answer(client, again)
    parsed = sp.parse(posted_response(page)[1]["SAMLResponse"], {req_id: "/"})
    assert parsed.in_response_to == req_id
    assert parsed.assertion.authn_statement[0].authn_instant >= first_instant
    signins = [r for r in services.audit.records() if r.event == "signin" and r.outcome == "success"]
    assert len(signins) == 2, "ForceAuthn made the person sign in a second time"


def test_force_authn_is_not_satisfied_by_the_old_session_on_resume(saml_env) -> None:
    app, _, sps = saml_env
    sp = sps["a"]
    client = app.test_client()
    req_id, message = sp.authn_request()
    posted_response(sign_in_and_answer(client, send(client, message)))
    req_id, message = sp.authn_request(force_authn="true")
    assert send(client, message).headers["Location"].endswith("/login")
    # Skipping the sign-in and resuming with the old session does not produce an assertion.
    resumed = client.get("/authorize/resume")
    assert resumed.status_code == 302 and resumed.headers["Location"].endswith("/login")


def test_is_passive_without_a_session_answers_no_passive(saml_env) -> None:
    app, services, sps = saml_env
    sp = sps["a"]
    client = app.test_client()
    req_id, message = sp.authn_request(is_passive="true")
    acs, fields = posted_response(send(client, message))
    assert acs == sp.acs and fields["RelayState"] == "relay-1"
    with pytest.raises(StatusNoPassive):
        sp.parse(fields["SAMLResponse"], {req_id: "/"})


def test_is_passive_with_a_session_signs_in_silently(saml_env) -> None:
    app, _, sps = saml_env
    client = app.test_client()
    req_id, message = sps["a"].authn_request()
    posted_response(sign_in_and_answer(client, send(client, message)))
    req_id, message = sps["b"].authn_request(is_passive="true")
    acs, fields = posted_response(send(client, message))
    assert sps["b"].parse(fields["SAMLResponse"], {req_id: "/"}).in_response_to == req_id


def test_an_sp_that_requires_mfa_steps_the_person_up_first(settings_factory, sps) -> None:
    from tests.saml_idp.conftest import build_env

    app, services, sps = build_env(settings_factory, sps, a={"require_mfa": True})
    client = app.test_client()
    req_id, message = sps["a"].authn_request()
    assert send(client, message).headers["Location"].endswith("/login")
    signed = password_sign_in(client, "amara.okafor@camden.test")
    resume = client.get(signed.headers["Location"])
    assert not [r for r in services.audit.records() if r.event == "saml_assertion_issued"], "nothing issued at AAL1"
    _enrol_through_pages(client, resume)
    acs, fields = posted_response(client.get("/authorize/resume"))
    assert _class_ref(sps["a"].parse(fields["SAMLResponse"], {req_id: "/"})) == "urn:supercloud:aal2"
