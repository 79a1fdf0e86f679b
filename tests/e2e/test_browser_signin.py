"""A person signs in through the broker in real Chromium, as they would at work.

The Hospital Discharge Hub demo app (an authlib relying party) sends the browser to the
broker; the person types their email and password into the GOV.UK-style pages and comes
back signed in. The tests assert what the person sees, and what the browser keeps.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.support.chromium import browser_context, chromium  # noqa: F401 (fixtures)
from tests.support.live import LiveBroker
from tests.support.settings import DEMO_PASSWORD

pytestmark = pytest.mark.peer("chromium")

AMARA = "amara.okafor@camden.test"
TOM = "tom.hughes@camden.test"
SSO_COOKIE = "supercloud-session"
FLOW_COOKIE = "supercloud-flow"


def enter_email(page: Page, email: str) -> None:
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    page.get_by_label("Work email address").fill(email)
    page.get_by_role("button", name="Continue").click()


def enter_password(page: Page, password: str) -> None:
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your password")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def sign_in_directly(page: Page, broker: LiveBroker, email: str = AMARA) -> None:
    """Sign in at the broker itself (no application); end on 'You are signed in'."""
    page.goto(f"{broker.issuer}/login")
    enter_email(page, email)
    enter_password(page, DEMO_PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("You are signed in")


def broker_cookies(context: Any, broker: LiveBroker) -> dict[str, dict[str, Any]]:
    return {cookie["name"]: cookie for cookie in context.cookies(broker.issuer)}


def test_person_signs_in_to_the_demo_app_through_the_broker(browser_context: Any, live_broker: LiveBroker) -> None:
    page = browser_context.new_page()
    page.goto(live_broker.demo_app_url)
    expect(page.get_by_text("You are not signed in.")).to_be_visible()

    page.get_by_role("link", name="Sign in with your work account").click()

    # The broker's own sign-in page, saying which service the person is going to.
    expect(page).to_have_url(re.compile(rf"^{re.escape(live_broker.issuer)}/login$"))
    expect(page).to_have_title("Sign in – London Supercloud")
    expect(page.get_by_text("To continue to Hospital Discharge Hub")).to_be_visible()
    enter_email(page, AMARA)

    expect(page).to_have_url(f"{live_broker.issuer}/login/password")
    expect(page.get_by_text("London Borough of Camden")).to_be_visible()
    expect(page.locator(".govuk-summary-list")).to_contain_text(AMARA)
    enter_password(page, DEMO_PASSWORD)

    # Back in the application, which validated the ID token and shows its claims.
    expect(page).to_have_url(f"{live_broker.demo_app_url}/")
    expect(page.locator("#welcome")).to_have_text("Signed in as Amara Okafor.")
    claims = page.get_by_role("table")
    expect(claims.get_by_role("row", name=re.compile(r"^organisation camden$"))).to_be_visible()
    expect(claims.get_by_role("row", name=re.compile(r"^organisation_name London Borough of Camden$"))).to_be_visible()
    expect(claims.get_by_role("row", name=re.compile(rf"^email {re.escape(AMARA)}$"))).to_be_visible()
    expect(claims.get_by_role("row", name=re.compile(r"^acr urn:supercloud:aal1$"))).to_be_visible()


def test_a_wrong_password_shows_the_error_summary_with_focus(browser_context: Any, live_broker: LiveBroker) -> None:
    page = browser_context.new_page()
    page.goto(f"{live_broker.issuer}/login")
    enter_email(page, TOM)
    enter_password(page, "not-the-password")

    expect(page).to_have_url(f"{live_broker.issuer}/login/password")
    assert page.title().startswith("Error: "), page.title()
    summary = page.locator(".govuk-error-summary")
    expect(summary.get_by_role("heading", name="There is a problem")).to_be_visible()
    expect(summary.get_by_role("link", name="Enter a correct email address and password.")).to_be_visible()
    # GOV.UK Frontend moves focus to the summary so screen readers announce it at once.
    expect(summary).to_be_focused()
    expect(page.locator("#password-error")).to_have_text(re.compile(r"^\s*Error:\s*Enter a correct email address and password\.\s*$"))
    expect(page.get_by_label("Password", exact=True)).to_have_attribute("aria-describedby", re.compile(r"\bpassword-error\b"))
    # The link in the summary takes the person to the field.
    summary.get_by_role("link", name="Enter a correct email address and password.").click()
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    # The person is not signed in.
    assert SSO_COOKIE not in broker_cookies(browser_context, live_broker)


def test_an_email_from_an_unknown_organisation_is_refused_on_the_email_page(browser_context: Any, live_broker: LiveBroker) -> None:
    page = browser_context.new_page()
    page.goto(f"{live_broker.issuer}/login")
    enter_email(page, "someone@unknown-borough.test")

    expect(page).to_have_url(f"{live_broker.issuer}/login")
    assert page.title().startswith("Error: "), page.title()
    message = "We do not recognise the organisation for this email address. Check it is your work email address."
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("link", name=message)).to_be_visible()
    expect(page.locator("#email-error")).to_contain_text(message)
    # What the person typed is kept for them to correct.
    expect(page.get_by_label("Work email address")).to_have_value("someone@unknown-borough.test")


def test_an_empty_email_asks_for_one(browser_context: Any, live_broker: LiveBroker) -> None:
    page = browser_context.new_page()
    page.goto(f"{live_broker.issuer}/login")
    page.get_by_role("button", name="Continue").click()

    assert page.title().startswith("Error: "), page.title()
    expect(page.locator(".govuk-error-summary").get_by_role("link", name="Enter your work email address")).to_be_visible()
    expect(page.locator("#email-error")).to_contain_text("Enter your work email address")


def test_session_cookies_are_http_only_lax_and_new_on_every_sign_in(browser_context: Any, live_broker: LiveBroker) -> None:
    page = browser_context.new_page()
    sign_in_directly(page, live_broker)
    first = broker_cookies(browser_context, live_broker)
    assert {SSO_COOKIE, FLOW_COOKIE} <= set(first), sorted(first)
    for name in (SSO_COOKIE, FLOW_COOKIE):
        assert first[name]["httpOnly"] is True, first[name]
        assert first[name]["sameSite"] == "Lax", first[name]
        assert first[name]["path"] == "/", first[name]
    # Script in the page cannot read them.
    assert SSO_COOKIE not in page.evaluate("() => document.cookie")

    # Signing in again (same browser, still signed in) gives a new session identifier.
    sign_in_directly(page, live_broker)
    second = broker_cookies(browser_context, live_broker)
    assert second[SSO_COOKIE]["value"] != first[SSO_COOKIE]["value"]
    assert second[SSO_COOKIE]["httpOnly"] is True and second[SSO_COOKIE]["sameSite"] == "Lax"


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def _access_token_in_browser_session(context: Any, broker: LiveBroker) -> str:
    """Have the signed-in browser authorize test-rp; redeem the code; return the access token.

    The request goes through the context's own request client, so it carries the browser's
    cookies; its answer is read instead of followed (Chromium refuses to load port 9).
    """
    verifier, challenge = _pkce_pair()
    state = secrets.token_urlsafe(16)
    query = urlencode({
        "client_id": broker.client_id, "redirect_uri": broker.redirect_uri, "response_type": "code",
        "scope": "openid profile", "state": state, "nonce": secrets.token_urlsafe(16),
        "code_challenge": challenge, "code_challenge_method": "S256",
    })
    answer = context.request.get(f"{broker.issuer}/authorize?{query}", max_redirects=0)
    assert answer.status == 302, answer.text()
    location = answer.headers["location"]
    assert location.startswith(f"{broker.redirect_uri}?"), location
    params = parse_qs(urlsplit(location).query)
    assert params["state"] == [state]
    response = requests.post(
        f"{broker.issuer}/token",
        data={"grant_type": "authorization_code", "code": params["code"][0], "redirect_uri": broker.redirect_uri,
              "code_verifier": verifier},
        auth=(broker.client_id, broker.client_secret), timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def _userinfo_status(broker: LiveBroker, token: str) -> int:
    return requests.get(f"{broker.issuer}/userinfo", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code


def test_signing_out_ends_the_session_everywhere(browser_context: Any, live_broker: LiveBroker) -> None:
    page = browser_context.new_page()
    # Sign in to the demo app, then (single sign-on, no password asked) to a second application.
    page.goto(live_broker.demo_app_url)
    page.get_by_role("link", name="Sign in with your work account").click()
    enter_email(page, AMARA)
    enter_password(page, DEMO_PASSWORD)
    expect(page.locator("#welcome")).to_have_text("Signed in as Amara Okafor.")
    token = _access_token_in_browser_session(browser_context, live_broker)
    assert _userinfo_status(live_broker, token) == 200

    page.goto(f"{live_broker.issuer}/logout")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign out")
    expect(page.get_by_text("Sign out of the London Supercloud and every service you reached through it?")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("You are signed out")
    expect(page.get_by_text("You have signed out of the London Supercloud.")).to_be_visible()
    assert SSO_COOKIE not in broker_cookies(browser_context, live_broker)
    # Tokens issued in the ended session stop working.
    assert _userinfo_status(live_broker, token) == 401

    # Going to sign in again asks who the person is: no single sign-on any more.
    page.goto(f"{live_broker.issuer}/logout")
    expect(page.get_by_role("heading", level=1)).to_have_text("You are signed out")
    page.goto(f"{live_broker.demo_app_url}/logout")  # the demo app's own session
    page.get_by_role("link", name="Sign in with your work account").click()
    expect(page).to_have_url(f"{live_broker.issuer}/login")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
