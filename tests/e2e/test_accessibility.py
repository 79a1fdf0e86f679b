"""Every page a person can meet in the broker passes axe-core's WCAG 2.2 AA rules in real Chromium.

axe-core cannot find every barrier, so the login form is also worked with the keyboard
alone. The pages are reached the way a person reaches them (typing, clicking), so each
one is checked in the state people actually see: with errors, signed in, and so on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.support.chromium import assert_accessible, axe_check, browser_context, chromium  # noqa: F401 (fixtures)
from tests.support.live import LiveBroker
from tests.support.settings import DEMO_PASSWORD

pytestmark = pytest.mark.peer("chromium")

AMARA = "amara.okafor@camden.test"


def _email_page(page: Page, broker: LiveBroker) -> None:
    page.goto(f"{broker.issuer}/login")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")


def _email_page_with_error(page: Page, broker: LiveBroker) -> None:
    _email_page(page, broker)
    page.get_by_label("Work email address").fill("someone@unknown-borough.test")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".govuk-error-summary")).to_be_visible()


def _password_page(page: Page, broker: LiveBroker) -> None:
    _email_page(page, broker)
    page.get_by_label("Work email address").fill(AMARA)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your password")


def _password_page_with_error(page: Page, broker: LiveBroker) -> None:
    _password_page(page, broker)
    page.get_by_label("Password", exact=True).fill("not-her-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".govuk-error-summary")).to_be_visible()
    expect(page.locator("#password-error")).to_be_visible()


def _signed_in_page(page: Page, broker: LiveBroker) -> None:
    _password_page(page, broker)
    page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are signed in")


def _sign_out_confirmation_page(page: Page, broker: LiveBroker) -> None:
    _signed_in_page(page, broker)
    page.goto(f"{broker.issuer}/logout")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign out")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def _signed_out_page(page: Page, broker: LiveBroker) -> None:
    _sign_out_confirmation_page(page, broker)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are signed out")


def _unknown_client_error_page(page: Page, broker: LiveBroker) -> None:
    response = page.goto(f"{broker.issuer}/authorize?client_id=nope")
    assert response is not None and response.status == 400, response and response.status
    expect(page.get_by_role("heading", level=1)).to_have_text("There is a problem with the service you came from")


def _not_found_page(page: Page, broker: LiveBroker) -> None:
    response = page.goto(f"{broker.issuer}/no-such-page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")


PAGES: dict[str, Callable[[Page, LiveBroker], None]] = {
    "email": _email_page,
    "email with error": _email_page_with_error,
    "password": _password_page,
    "password with error": _password_page_with_error,
    "signed in": _signed_in_page,
    "sign-out confirmation": _sign_out_confirmation_page,
    "signed out": _signed_out_page,
    "unknown client error": _unknown_client_error_page,
    "not found": _not_found_page,
}


@pytest.mark.parametrize("name", list(PAGES))
def test_page_has_no_wcag_22_aa_violations(browser_context: Any, live_broker: LiveBroker, name: str) -> None:
    page = browser_context.new_page()
    PAGES[name](page, live_broker)
    # Every page is a proper document: a language, a title, one main landmark, one h1.
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page).to_have_title(re.compile(r".+ – London Supercloud$"))
    expect(page.get_by_role("main")).to_have_count(1)
    expect(page.get_by_role("heading", level=1)).to_have_count(1)
    assert_accessible(page, f"the {name} page ({page.url})")


def test_axe_check_does_find_violations(browser_context: Any, live_broker: LiveBroker) -> None:
    """The checker is live: break a real page the way a template bug would and axe reports it."""
    page = browser_context.new_page()
    _email_page(page, live_broker)
    page.evaluate("""() => {
        document.querySelector('label[for=email]').remove();
        document.documentElement.removeAttribute('lang');
    }""")
    found = {violation["id"] for violation in axe_check(page)}
    assert {"label", "html-has-lang"} <= found, found


def test_login_form_works_with_the_keyboard_alone(browser_context: Any, live_broker: LiveBroker) -> None:
    page = browser_context.new_page()
    _email_page(page, live_broker)
    email, continue_button = page.get_by_label("Work email address"), page.get_by_role("button", name="Continue")

    # The first Tab reaches the skip link, which leads to the main content.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()

    # Tabbing on reaches the email field, and from it the Continue button, in that order.
    for _ in range(10):
        page.keyboard.press("Tab")
        if email.evaluate("el => el === document.activeElement"):
            break
    expect(email).to_be_focused()
    page.keyboard.type(AMARA)
    page.keyboard.press("Tab")
    expect(continue_button).to_be_focused()
    # The focused button shows a visible focus indicator (GOV.UK yellow), not just the default.
    outline = continue_button.evaluate("el => getComputedStyle(el).outlineStyle + ' ' + getComputedStyle(el).boxShadow")
    assert outline != "none none", outline
    page.keyboard.press("Enter")

    # On the password page, Enter in the field submits the form.
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your password")
    password = page.get_by_label("Password", exact=True)
    for _ in range(15):
        page.keyboard.press("Tab")
        if password.evaluate("el => el === document.activeElement"):
            break
    expect(password).to_be_focused()
    page.keyboard.type(DEMO_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("You are signed in")


def test_error_summary_link_moves_focus_to_the_field_by_keyboard(browser_context: Any, live_broker: LiveBroker) -> None:
    page = browser_context.new_page()
    _email_page_with_error(page, live_broker)
    expect(page.locator(".govuk-error-summary")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator(".govuk-error-summary").get_by_role("link")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Work email address")).to_be_focused()


def test_login_page_screenshot(browser_context: Any, live_broker: LiveBroker, tmp_path: Path) -> None:
    """A full-page screenshot of the login page, kept in the test's tmp dir for a person to look at."""
    page = browser_context.new_page()
    _email_page(page, live_broker)
    path = tmp_path / "login-page.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    # The GOV.UK Frontend stylesheet loaded under the CSP: the header is the black bar.
    header = page.get_by_role("banner")
    assert header.locator(".govuk-generic-header").evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(11, 12, 12)"
    # A generic header with the service name; the Supercloud is not GOV.UK, so no crown,
    # no Open Government Licence and no Crown copyright anywhere on the page.
    expect(header).to_have_text("London Supercloud")
    expect(page.locator("svg")).to_have_count(0)
    expect(page.get_by_text(re.compile(r"Crown copyright|Open Government Licence"))).to_have_count(0)
    expect(page.locator("a[href*='nationalarchives.gov.uk']")).to_have_count(0)
    footer = page.get_by_role("contentinfo")
    expect(footer).to_contain_text("Sign-in service for London boroughs and NHS partners.")
    # One width container around the main content, not two nested (double margins on phones).
    expect(page.locator(".govuk-width-container .govuk-width-container")).to_have_count(0)
