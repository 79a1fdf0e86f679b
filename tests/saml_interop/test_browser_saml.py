"""A person in real Chromium signs in to SimpleSAMLphp's Case Records SP through the broker's SAML
IdP and signs out from the broker, or from the SP: every broker page on the way passes axe-core
(WCAG 2.2 AA).

Nothing is submitted for the browser: the broker's HTTP-POST binding page posts the response
to SimpleSAMLphp with its own script, under the page's Content Security Policy, and Chromium's
cookie rules (SameSite) apply to every hop. The SP runs on the broker's host (another port, the
same site): see tests/saml_interop/conftest.py::simplesamlphp_sp_same_site for why.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.peers.simplesamlphp_sp import SimpleSamlPhpSp
from tests.saml_interop.live_idp import LiveSamlIdp
from tests.support.chromium import assert_accessible, browser_context, chromium  # noqa: F401 (fixtures)
from tests.support.settings import DEMO_PASSWORD

pytestmark = [pytest.mark.peer("chromium"), pytest.mark.peer("simplesamlphp")]

AMARA = "amara.okafor@camden.test"
SERVICE = "Social Care Case Records (SimpleSAMLphp in Chromium)"
SCHAC_HOME_ORGANIZATION = "urn:oid:1.3.6.1.4.1.25178.1.2.9"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"


def _sp_json(page: Page) -> dict[str, Any]:
    return dict(json.loads(page.locator("body").inner_text()))


def test_person_signs_in_to_a_saml_sp_and_out_again_in_chromium(
    browser_context: Any, saml_idp: LiveSamlIdp, simplesamlphp_sp_same_site: SimpleSamlPhpSp,
) -> None:
    simplesamlphp_sp = simplesamlphp_sp_same_site
    page = browser_context.new_page()
    page.goto(simplesamlphp_sp.login_url("case-records", "redirect"))

    # The SP's signed AuthnRequest brought her to the broker's sign-in pages.
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert page.url.startswith(saml_idp.issuer)
    assert_accessible(page, "email page (SAML sign-in)")
    page.get_by_label("Work email address").fill(AMARA)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your password")
    assert_accessible(page, "password page (SAML sign-in)")
    page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    # The broker's POST-binding page delivered the response; SimpleSAMLphp shows what it received.
    page.wait_for_url(f"{simplesamlphp_sp.base_url}interop/whoami.php*")
    seen = _sp_json(page)
    assert seen["authenticated"] is True, seen
    assert seen["attributes"][SCHAC_HOME_ORGANIZATION] == ["camden"]
    assert seen["name_id"]["format"] == PERSISTENT

    # She signs out at the broker; the broker signs her out of the SP front-channel.
    page.goto(saml_idp.logout_url)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    assert_accessible(page, "sign-out confirmation")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are signed out")
    expect(page.locator("#signed-out")).to_contain_text(SERVICE)
    assert_accessible(page, "signed-out page")

    page.goto(simplesamlphp_sp.whoami_url("case-records"))
    assert _sp_json(page)["authenticated"] is False
    # And a new sign-in at the SP asks for her email and password again.
    page.goto(simplesamlphp_sp.login_url("case-records", "redirect"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")


def test_signing_out_at_the_saml_sp_ends_the_broker_session_in_chromium(
    browser_context: Any, saml_idp: LiveSamlIdp, simplesamlphp_sp_same_site: SimpleSamlPhpSp,
) -> None:
    sp = simplesamlphp_sp_same_site
    page = browser_context.new_page()
    page.goto(sp.login_url("case-records", "post"))  # the AuthnRequest by HTTP-POST this time
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    page.get_by_label("Work email address").fill(AMARA)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{sp.base_url}interop/whoami.php*")
    assert _sp_json(page)["authenticated"] is True

    # SP-initiated single logout: SimpleSAMLphp's signed LogoutRequest, the broker's answer.
    page.goto(sp.logout_url("case-records", "post"))
    page.wait_for_url(f"{sp.base_url}interop/loggedout.php*")
    answer = _sp_json(page)
    assert answer["authenticated"] is False
    assert answer["logout_status"]["Code"] == "urn:oasis:names:tc:SAML:2.0:status:Success", answer

    page.goto(sp.login_url("case-records", "redirect"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")  # the broker asks again
    assert_accessible(page, "email page after single logout")
