"""The SAML IdP's own pages pass axe-core's WCAG 2.2 AA rules in real Chromium, and work without
JavaScript: the cookie-bounce page (a POSTed SAML message re-posted from our origin) and the
"You are signed out" page in the variants a person can meet (services not confirmed, continue
to the service by link or by form). tests/saml_interop/test_browser_saml.py covers the signed-out
page after a real SimpleSAMLphp round trip; this file covers what that journey does not show.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.support.chromium import assert_accessible, browser_context, chromium  # noqa: F401 (fixtures)
from tests.support.live import LiveBroker

pytestmark = pytest.mark.peer("chromium")

SAML_REQUEST = "PHNhbWxwOkF1dGhuUmVxdWVzdC8+"  # base64 of a bare AuthnRequest: the broker refuses it after the bounce


def _post_from_another_site(page: Page, broker: LiveBroker) -> None:
    """As a service's HTTP-POST binding page would: a form on another origin posts to /saml/sso."""
    page.set_content(f"""<!DOCTYPE html><html lang="en"><head><title>A service</title></head><body><main>
        <form method="post" action="{broker.issuer}/saml/sso">
        <input type="hidden" name="SAMLRequest" value="{SAML_REQUEST}">
        <input type="hidden" name="RelayState" value="case-42">
        <button>Send</button></form></main></body></html>""")
    page.get_by_role("button", name="Send").click()


def _without_page_scripts(page: Page, url: str) -> None:
    """Serve ``url``'s real responses with ``script-src 'none'`` added: the page's own scripts do not
    run (as with JavaScript off) while axe-core, evaluated through DevTools, still can."""
    def handle(route: Any) -> None:
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": "script-src 'none'"})

    page.route(url, handle)


def _expect_refusal(page: Page) -> None:
    """The broker read the re-posted message (a bare AuthnRequest from no registered service) and refused it."""
    expect(page.get_by_role("heading", level=1)).to_have_text("Sorry, there is a problem")
    expect(page.get_by_text("The service that sent you here made a request the London Supercloud cannot accept")).to_be_visible()


def _check_document(page: Page, title: str) -> None:
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page).to_have_title(f"{title} – London Supercloud")
    expect(page.get_by_role("main")).to_have_count(1)
    expect(page.get_by_role("heading", level=1)).to_have_count(1)


def test_bounce_page_without_javascript_is_accessible_and_continues(browser_context: Any, live_broker: LiveBroker) -> None:
    page = browser_context.new_page()
    _without_page_scripts(page, f"{live_broker.issuer}/saml/sso")
    _post_from_another_site(page, live_broker)
    expect(page.get_by_role("heading", level=1)).to_have_text("Continue to the London Supercloud")
    _check_document(page, "Continue to the London Supercloud")
    expect(page.get_by_text("A service sent you here")).to_be_visible()
    button = page.get_by_role("button", name="Continue")
    expect(button).to_be_visible()
    assert_accessible(page, "the SAML bounce page without JavaScript")
    # The message is carried unchanged, plus the marker that it came back through our origin.
    fields = dict(page.eval_on_selector_all("form#bounce input[type=hidden]", "els => els.map(e => [e.name, e.value])"))
    assert fields == {"_bounced": "1", "SAMLRequest": SAML_REQUEST, "RelayState": "case-42"}, fields
    # The keyboard reaches the button and Enter sends the form on to the broker, which reads the message.
    button.focus()
    expect(button).to_be_focused()
    page.keyboard.press("Enter")
    _expect_refusal(page)


def test_bounce_page_submits_itself_with_javascript(browser_context: Any, live_broker: LiveBroker) -> None:
    page = browser_context.new_page()
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.post_data or "") if r.method == "POST" and r.url.endswith("/saml/sso") else None)
    _post_from_another_site(page, live_broker)
    # No click: the page's own script (allowed by its CSP nonce) re-posts the message at once.
    _expect_refusal(page)
    assert len(posts) == 2 and "_bounced=1" not in posts[0] and "_bounced=1" in posts[1], posts
    assert_accessible(page, "the refusal after the bounce")


def _signed_out_html(settings: Any, **variant: Any) -> str:
    """The broker's signed-out template, rendered by the broker's own Flask app."""
    from flask import render_template

    from broker.bootstrap import initialise
    from broker.web.app import create_app

    initialise(settings)
    app = create_app(settings)
    with app.test_request_context("/saml/slo"):
        return render_template("saml_logged_out.html", title="You are signed out", signed_out=variant.get("signed_out", []),
                               failed=variant.get("failed", []), frontchannel=[], post=variant.get("post"),
                               target=variant.get("target"))


VARIANTS: dict[str, dict[str, Any]] = {
    "some services did not confirm": {"signed_out": ["Hospital Discharge Hub", "Social Care Case Records"],
                                      "failed": ["School Admissions"]},
    "continue by link": {"signed_out": ["Social Care Case Records"], "target": "http://127.0.0.1:9/after-logout"},
    "continue by form": {"signed_out": ["Social Care Case Records"],
                         "post": {"url": "http://127.0.0.1:9/slo", "fields": {"SAMLResponse": "eA==", "RelayState": "r"}}},
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_signed_out_page_variants_are_accessible(browser_context: Any, live_broker: LiveBroker, settings, name: str) -> None:  # type: ignore[no-untyped-def]
    """Each variant, rendered by the broker's app, is served at the live broker's origin (so its
    stylesheet loads) with its script blocked: a person without JavaScript still sees every way on."""
    html = _signed_out_html(settings, **VARIANTS[name])
    page = browser_context.new_page()
    url = f"{live_broker.issuer}/__signed-out-variant"
    page.route(url, lambda route: route.fulfill(status=200, content_type="text/html; charset=utf-8", body=html,
                                                headers={"content-security-policy": "script-src 'none'"}))
    page.goto(url)
    _check_document(page, "You are signed out")
    expect(page.locator("#signed-out li")).to_have_count(len(VARIANTS[name]["signed_out"]))
    if "failed" in VARIANTS[name]:
        expect(page.locator(".govuk-warning-text")).to_contain_text("did not confirm you were signed out")
        expect(page.locator("#not-signed-out")).to_contain_text("School Admissions")
    if "target" in VARIANTS[name]:
        expect(page.get_by_role("link", name="Continue to the service")).to_have_attribute("href", VARIANTS[name]["target"])
    if "post" in VARIANTS[name]:
        expect(page.get_by_role("button", name="Continue to the service")).to_be_visible()
    assert_accessible(page, f"the signed-out page ({name})")
    assert re.search(r"<h1[^>]*>You are signed out</h1>", html)
