"""Second factors in real Chromium, with the London policies deciding.

The Hospital Discharge Hub needs AAL2 (policies/bundles/london/discharge_hub.cedar). A
person who signs in with a password only is sent to set up an authenticator app, which
they do from the QR code (the test reads the code from the image's pixels, as a phone's
camera would); enrolled people sign in with password and code. Either way the hub's own
authorization request (its state and nonce) is the one that completes.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e_policies.conftest import Enrolment
from tests.e2e_policies.journeys import (
    AMARA,
    KWAME,
    OidcTrace,
    amr_of,
    assert_error_page,
    claims_shown,
    enter_security_code,
    finish_setup,
    read_setup_page,
    sign_in_at,
    sign_in_directly,
    start_at,
)
from tests.support.live_policies import LivePolicyBroker

pytestmark = pytest.mark.peer("chromium")

AAL2 = "urn:supercloud:aal2"


def test_amara_sets_up_her_authenticator_app_from_the_qr_code(amara_enrolment: Enrolment,
                                                               live_policy_broker: LivePolicyBroker) -> None:
    enrolment = amara_enrolment
    # The page said where she was going and why a password was not enough.
    assert enrolment.service_caption == "To continue to Hospital Discharge Hub"
    assert enrolment.reason == "Hospital Discharge Hub needs a stronger sign-in (AAL2) than the one you used."

    # The QR code, read from the image itself, holds a standard TOTP provisioning URI for her
    # account; the typed setup key beside it is the same secret, for people who cannot scan.
    uri = enrolment.setup.uri
    assert uri.issuer == "London Supercloud", uri
    assert uri.label == f"London Supercloud:{AMARA}", uri
    assert re.fullmatch(r"[A-Z2-7]{32}", uri.secret), uri
    assert enrolment.setup.setup_key.replace(" ", "") == uri.secret
    assert re.fullmatch(r"([A-Z2-7]{4} ){7}[A-Z2-7]{4}", enrolment.setup.setup_key), enrolment.setup.setup_key

    # Ten one-time recovery codes, all different, shown once.
    assert len(enrolment.recovery_codes) == 10, enrolment.recovery_codes
    assert len(set(enrolment.recovery_codes)) == 10
    assert all(re.fullmatch(r"[a-z0-9]{5}-[a-z0-9]{5}", code) for code in enrolment.recovery_codes), enrolment.recovery_codes

    # She is in the hub, signed in at AAL2 with a password and a one-time password.
    claims = enrolment.claims
    assert claims["acr"] == AAL2, claims
    assert {"pwd", "otp"} <= amr_of(claims), claims
    assert claims["name"] == "Amara Okafor" and claims["email"] == AMARA, claims
    # The hub's own request came back: its state, its nonce (authlib checked both).
    enrolment.trace.assert_one_request_resumed(claims)
    assert enrolment.trace.broker_pages.count("/mfa/setup") >= 1


def test_enrolled_person_signs_in_with_password_and_code_and_a_reused_code_is_refused(
    amara_enrolment: Enrolment, live_policy_broker: LivePolicyBroker, chromium: Any,
) -> None:
    broker, hub, phone = live_policy_broker, live_policy_broker.discharge_hub, amara_enrolment.authenticator
    # A second browser (fresh cookies): password, then the code from her phone.
    second = chromium.new_context(locale="en-GB")
    third = chromium.new_context(locale="en-GB")
    try:
        page = second.new_page()
        trace = OidcTrace(second, broker, hub)
        sign_in_at(page, hub, AMARA)
        expect(page).to_have_url(f"{broker.issuer}/mfa")
        expect(page.get_by_text("To continue to Hospital Discharge Hub")).to_be_visible()
        code = phone.code()
        enter_security_code(page, code)
        claims = claims_shown(page, hub)
        assert claims["acr"] == AAL2 and {"pwd", "otp"} <= amr_of(claims), claims
        assert page.locator("#welcome").inner_text() == "Signed in as Amara Okafor."
        trace.assert_one_request_resumed(claims)
        assert "/mfa/setup" not in trace.broker_pages, "an enrolled person is not asked to enrol again"

        # The same code again (the same time step), from a third browser: refused.
        again = third.new_page()
        sign_in_at(again, hub, AMARA)
        enter_security_code(again, code)
        expect(again).to_have_url(f"{broker.issuer}/mfa")
        assert_error_page(again, [("code", "That code has already been used. Wait for the next code in your app")])
        expect(again.get_by_label("Security code")).to_have_attribute("aria-describedby", re.compile(r"\bcode-error\b"))
    finally:
        second.close()
        third.close()


def test_step_up_from_a_password_session_resumes_the_hubs_own_request(
    browser_context: Any, live_policy_broker: LivePolicyBroker,
) -> None:
    """Kwame is signed in to the Supercloud with his password (AAL1). The hub's policy wants
    AAL2: the broker parks the hub's request, asks for the second factor without asking
    for the password again, and then answers that same request."""
    broker, hub = live_policy_broker, live_policy_broker.discharge_hub
    page = browser_context.new_page()
    sign_in_directly(page, broker, KWAME)

    trace = OidcTrace(browser_context, broker, hub)
    start_at(page, hub)
    expect(page).to_have_url(f"{broker.issuer}/mfa/setup")
    expect(page.get_by_text("Hospital Discharge Hub needs a stronger sign-in (AAL2) than the one you used.")).to_be_visible()
    assert trace.broker_pages[0] == "/authorize", trace.broker_pages
    assert not {"/login", "/login/password"} & set(trace.broker_pages), "single sign-on: no password asked again"
    setup = read_setup_page(page)
    assert setup.uri.label == f"London Supercloud:{KWAME}"
    finish_setup(page, setup.authenticator.code())
    page.get_by_role("button", name="Continue").click()

    claims = claims_shown(page, hub)
    assert claims["name"] == "Kwame Mensah", claims
    assert claims["acr"] == AAL2 and {"pwd", "otp"} <= amr_of(claims), claims
    trace.assert_one_request_resumed(claims)
    assert trace.broker_pages[-1] == "/authorize/resume", trace.broker_pages


def test_a_wrong_code_shows_the_error_summary_with_focus(
    amara_enrolment: Enrolment, browser_context: Any, live_policy_broker: LivePolicyBroker,
) -> None:
    broker, hub = live_policy_broker, live_policy_broker.discharge_hub
    page = browser_context.new_page()
    sign_in_at(page, hub, AMARA)
    enter_security_code(page, amara_enrolment.authenticator.wrong_code())

    expect(page).to_have_url(f"{broker.issuer}/mfa")
    message = "The code is wrong or has expired. Enter the code shown in your app now"
    assert_error_page(page, [("code", message)])
    field = page.get_by_label("Security code")
    expect(field).to_have_attribute("aria-describedby", re.compile(r"\bcode-error\b"))
    expect(page.locator(".govuk-form-group--error")).to_have_count(1)
    # The summary's link takes the person to the field.
    page.locator(".govuk-error-summary").get_by_role("link", name=message).click()
    expect(field).to_be_focused()
    # Still the hub's flow: the page says where the person is going.
    expect(page.get_by_text("To continue to Hospital Discharge Hub")).to_be_visible()
