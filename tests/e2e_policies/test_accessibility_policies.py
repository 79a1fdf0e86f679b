"""The second-factor and emergency-access pages pass axe-core's WCAG 2.2 AA rules in real
Chromium, in the states people meet them (with and without errors), and work by keyboard.

Each page is reached as a person reaches it: from a demo app, with the London policies
deciding (the hub's AAL2 step-up; Case Records' break-glass for NHS staff).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e_policies.conftest import Enrolment
from tests.e2e_policies.journeys import (
    AMARA,
    BEN,
    BEN_OBJECT_ID,
    NHS_DIRECTORY,
    assert_error_page,
    claims_shown,
    enter_security_code,
    finish_setup,
    read_setup_page,
    sign_in_at,
)
from tests.support.chromium import assert_accessible
from tests.support.live_policies import LivePolicyBroker

pytestmark = pytest.mark.peer("chromium")


def assert_proper_page(page: Page, where: str) -> None:
    """A language, a title, one main landmark, one h1; then axe-core's WCAG 2.2 AA rules."""
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page).to_have_title(re.compile(r".+ – London Supercloud$"))
    expect(page.get_by_role("main")).to_have_count(1)
    expect(page.get_by_role("heading", level=1)).to_have_count(1)
    assert_accessible(page, f"the {where} page ({page.url})")


def tab_to(page: Page, target: Any, limit: int = 25) -> None:
    """Press Tab until ``target`` has focus (at most ``limit`` times)."""
    for _ in range(limit):
        if target.evaluate("el => el === document.activeElement"):
            return
        page.keyboard.press("Tab")
    expect(target).to_be_focused()


@pytest.fixture
def ben_reset_afterwards(live_policy_broker: LivePolicyBroker) -> Iterator[None]:
    """Ben enrols in the test; an administrator resets his second factor afterwards
    (``supercloud mfa reset``), so every other test meets him without one."""
    yield
    reset = live_policy_broker.cli("mfa", "reset", "--issuer", NHS_DIRECTORY, "--subject", BEN_OBJECT_ID,
                                   "--as", "test-admin", "--reason", "browser test clean-up", check=False)
    assert reset.returncode == 0 or "no second factor" in reset.stderr, reset


def test_setup_page_with_and_without_error_and_the_recovery_codes_page(
    browser_context: Any, live_policy_broker: LivePolicyBroker, tmp_path: Path, ben_reset_afterwards: None,
) -> None:
    broker, hub = live_policy_broker, live_policy_broker.discharge_hub
    page = browser_context.new_page()
    sign_in_at(page, hub, BEN)
    expect(page).to_have_url(f"{broker.issuer}/mfa/setup")
    setup = read_setup_page(page)
    assert_proper_page(page, "authenticator setup")
    # The QR code's text alternative says what it is and where the typed key is.
    expect(page.get_by_role("img", name=re.compile("QR code"))).to_have_attribute(
        "alt", "QR code to add the London Supercloud to your authenticator app. If you cannot scan it, use the setup key below.")
    expect(page.get_by_label("Code from the app")).to_have_attribute("autocomplete", "one-time-code")
    expect(page.get_by_label("Code from the app")).to_have_attribute("inputmode", "numeric")
    screenshot = tmp_path / "mfa-setup-page.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")

    phone = setup.authenticator
    page.get_by_label("Code from the app").fill(phone.wrong_code())
    page.get_by_role("button", name="Finish setting up").click()
    assert_error_page(page, [("code", "Enter the 6-digit code shown in your authenticator app")])
    assert_proper_page(page, "authenticator setup, with an error")
    # Nothing half-enrolled: the same secret is offered again.
    assert read_setup_page(page).uri.secret == setup.uri.secret

    codes = finish_setup(page, phone.code())
    assert len(codes) == 10
    assert_proper_page(page, "recovery codes")
    expect(page.get_by_role("button", name="Continue")).to_be_visible()


@pytest.mark.parametrize("with_error", [False, True], ids=["without error", "with error"])
def test_verify_page(amara_enrolment: Enrolment, browser_context: Any, live_policy_broker: LivePolicyBroker,
                     with_error: bool) -> None:
    page = browser_context.new_page()
    sign_in_at(page, live_policy_broker.discharge_hub, AMARA)
    expect(page).to_have_url(f"{live_policy_broker.issuer}/mfa")
    if with_error:
        enter_security_code(page, amara_enrolment.authenticator.wrong_code())
        expect(page.locator(".govuk-error-summary")).to_be_focused()
    assert_proper_page(page, f"security code{', with an error' if with_error else ''}")


def _break_glass_page(page: Page, broker: LivePolicyBroker) -> None:
    sign_in_at(page, broker.case_records, BEN)
    expect(page).to_have_url(f"{broker.issuer}/break-glass")
    expect(page.get_by_role("heading", level=1)).to_have_text("Emergency access")


def test_break_glass_page(browser_context: Any, live_policy_broker: LivePolicyBroker, tmp_path: Path) -> None:
    page = browser_context.new_page()
    _break_glass_page(page, live_policy_broker)
    assert_proper_page(page, "emergency access")
    # The radios are a group named by its legend; the text box has its label and hint.
    expect(page.get_by_role("group", name="Why do you need emergency access?").get_by_role("radio")).to_have_count(6)
    expect(page.get_by_label("Explain what is happening")).to_have_attribute("aria-describedby", re.compile(r"\bjustification-hint\b"))
    screenshot = tmp_path / "break-glass-page.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")


def test_break_glass_page_with_errors(browser_context: Any, live_policy_broker: LivePolicyBroker) -> None:
    page = browser_context.new_page()
    _break_glass_page(page, live_policy_broker)
    page.get_by_role("button", name="Open in an emergency").click()
    expect(page.locator(".govuk-error-summary")).to_be_focused()
    expect(page.locator(".govuk-error-summary").get_by_role("link")).to_have_count(2)
    assert_proper_page(page, "emergency access, with errors")


def test_security_code_by_keyboard_alone(amara_enrolment: Enrolment, browser_context: Any,
                                         live_policy_broker: LivePolicyBroker) -> None:
    hub = live_policy_broker.discharge_hub
    page = browser_context.new_page()
    sign_in_at(page, hub, AMARA)
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter the code from your authenticator app")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    field = page.get_by_label("Security code")
    tab_to(page, field)
    page.keyboard.type(amara_enrolment.authenticator.code())
    page.keyboard.press("Enter")  # Enter in the field submits the form
    claims = claims_shown(page, hub)
    assert claims["acr"] == "urn:supercloud:aal2", claims


def test_break_glass_form_by_keyboard_alone(browser_context: Any, live_policy_broker: LivePolicyBroker) -> None:
    """Radios and the text box are reached with Tab, a reason is chosen with the arrow keys,
    and Enter on the button submits. (The text box is left empty so nothing is granted.)"""
    page = browser_context.new_page()
    _break_glass_page(page, live_policy_broker)
    first = page.get_by_role("radio", name=re.compile(r"^01: "))
    tab_to(page, first)  # Tab enters the group at its first radio, nothing chosen yet
    expect(first).not_to_be_checked()
    page.keyboard.press("Space")
    expect(first).to_be_checked()
    page.keyboard.press("ArrowDown")
    second = page.get_by_role("radio", name=re.compile(r"^02: "))
    expect(second).to_be_focused()
    expect(second).to_be_checked()
    page.keyboard.press("Tab")  # one Tab leaves the group for the text box
    justification = page.get_by_label("Explain what is happening")
    expect(justification).to_be_focused()
    page.keyboard.press("Tab")
    button = page.get_by_role("button", name="Open in an emergency")
    expect(button).to_be_focused()
    outline = button.evaluate("el => getComputedStyle(el).outlineStyle + ' ' + getComputedStyle(el).boxShadow")
    assert outline != "none none", outline
    page.keyboard.press("Enter")

    # Submitted: the chosen reason was kept, the empty text box is the one error.
    assert_error_page(page, [("justification", "Explain why you need emergency access")])
    expect(page.get_by_role("radio", name=re.compile(r"^02: "))).to_be_checked()
    page.keyboard.press("Tab")
    expect(page.locator(".govuk-error-summary").get_by_role("link")).to_be_focused()
    page.keyboard.press("Enter")
    expect(justification).to_be_focused()
    page.keyboard.type("Typed with the keyboard")
    expect(justification).to_have_value("Typed with the keyboard")
