"""What a person does in the browser on the way to a London service, and what a phone does.

Shared by the browser tests in this folder: the sign-in steps, reading the QR code off the
page as an authenticator app would (jsQR, a pure-JavaScript decoder pinned in tests/node,
run on the pixels of the page's own <img>), a TOTP "phone" that never offers a code the
broker has already accepted, the claims table the demo app shows, a trace of the OIDC
request as the browser sent it, and the GOV.UK error-page checks.
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
from playwright.sync_api import Page, expect

from tests.support.live_policies import DemoApp, LivePolicyBroker
from tests.support.node import node_module_file
from tests.support.settings import DEMO_PASSWORD

AMARA = "amara.okafor@camden.test"  # Camden social worker, discharge team: enrols from the QR code
KWAME = "kwame.mensah@newham.test"  # Newham discharge coordinator: steps up from a password-only session
BEN = "ben.carter@nhs.test"  # NHS nurse (R8001): setup pages, and the break-glass page without a grant
ADA = "ada.mensah@nhs.test"  # NHS consultant (R8000): the break-glass journey with its alert and review
NHS_DIRECTORY = "urn:supercloud:directory:nhs-demo"
BEN_OBJECT_ID = "a1f06a97-b41b-5b5d-a022-fb1f0b3165ba"  # config/demo/users/nhs.yaml
STEP_SECONDS = 30


# --- signing in ---------------------------------------------------------------------------

def start_at(page: Page, app: DemoApp) -> None:
    """Open the demo app signed out and follow its sign-in link to the broker."""
    page.goto(f"{app.url}/")
    expect(page.get_by_text("You are not signed in.")).to_be_visible()
    page.get_by_role("link", name="Sign in with your work account").click()


def enter_email(page: Page, email: str) -> None:
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    page.get_by_label("Work email address").fill(email)
    page.get_by_role("button", name="Continue").click()


def enter_password(page: Page, password: str = DEMO_PASSWORD) -> None:
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your password")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def sign_in_at(page: Page, app: DemoApp, email: str) -> None:
    """Start at ``app`` and give email and password; stops on whatever page the broker shows next."""
    start_at(page, app)
    enter_email(page, email)
    enter_password(page)


def sign_in_directly(page: Page, broker: LivePolicyBroker, email: str) -> None:
    """Sign in at the broker itself, for no application; ends on 'You are signed in'."""
    page.goto(f"{broker.issuer}/login")
    enter_email(page, email)
    enter_password(page)
    expect(page.get_by_role("heading", level=1)).to_have_text("You are signed in")


def enter_security_code(page: Page, code: str) -> None:
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter the code from your authenticator app")
    page.get_by_label("Security code").fill(code)
    page.get_by_role("button", name="Continue").click()


def claims_shown(page: Page, app: DemoApp) -> dict[str, str]:
    """Return the claims table the demo app shows once it has validated the ID token."""
    expect(page).to_have_url(f"{app.url}/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    table = page.get_by_role("table")
    expect(table).to_be_visible()
    rows = table.locator("tbody tr")
    return {rows.nth(i).locator("th").inner_text(): rows.nth(i).locator("td").inner_text() for i in range(rows.count())}


def amr_of(claims: dict[str, str]) -> set[str]:
    """The methods in the amr claim as the demo app prints a list (``['pwd', 'otp', 'mfa']``)."""
    return set(re.findall(r"'([a-z]+)'", claims.get("amr", "")))


# --- the authenticator app ----------------------------------------------------------------

_JSQR: str | None = None


def _jsqr_source() -> str:
    global _JSQR
    if _JSQR is None:
        _JSQR = node_module_file("jsqr", "dist", "jsQR.js").read_text(encoding="utf-8")
    return _JSQR


def scan_qr_code(page: Page, selector: str = "img.app-qr") -> str:
    """Return the text of the QR code in the page's ``selector`` image, read from its pixels.

    The image is drawn onto a canvas at four times its size on white (as a camera sees it)
    and decoded by jsQR. The decoder is evaluated through the DevTools protocol, so the
    page's own Content Security Policy stays in force. Raises AssertionError if no code is found.
    """
    if not page.evaluate("() => typeof window.jsQR === 'function'"):
        page.evaluate(_jsqr_source() + "\n;undefined")
    result = page.evaluate(
        """async (selector) => {
            const img = document.querySelector(selector);
            if (!img) return { error: 'no image ' + selector };
            await img.decode();
            const size = Math.round(Math.max(img.width, img.height) * 4);
            const canvas = document.createElement('canvas');
            canvas.width = size; canvas.height = size;
            const g = canvas.getContext('2d');
            g.fillStyle = '#ffffff'; g.fillRect(0, 0, size, size);
            g.drawImage(img, 0, 0, size, size);
            const pixels = g.getImageData(0, 0, size, size);
            const found = window.jsQR(pixels.data, size, size, { inversionAttempts: 'dontInvert' });
            return found ? { text: found.data } : { error: 'jsQR found no QR code' };
        }""",
        selector,
    )
    assert "text" in result, result.get("error")
    return result["text"]


@dataclasses.dataclass(frozen=True)
class OtpAuthUri:
    """An ``otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=...`` provisioning URI, parsed."""

    label: str
    secret: str
    issuer: str | None
    params: dict[str, str]

    @classmethod
    def parse(cls, uri: str) -> OtpAuthUri:
        parts = urlsplit(uri)
        assert (parts.scheme, parts.netloc) == ("otpauth", "totp"), uri
        params = {key: values[0] for key, values in parse_qs(parts.query).items()}
        return cls(label=unquote(parts.path.lstrip("/")), secret=params["secret"], issuer=params.get("issuer"), params=params)


class Authenticator:
    """A phone's authenticator app for one person: pyotp over the scanned secret.

    The broker accepts each 30-second step once per person (and only steps later than the
    last one it accepted, within ±1 step). ``code`` gives the code on the screen now, or,
    if that one was already used, the next step's code (inside the window); when both are
    used it waits for the clock, as a person would.
    """

    def __init__(self, secret: str) -> None:
        self.totp = pyotp.TOTP(secret)
        self.last_step: int | None = None
        self.last_code: str | None = None

    def code(self) -> str:
        while True:
            now = time.time()
            current = int(now // STEP_SECONDS)
            step = current if self.last_step is None else max(current, self.last_step + 1)
            if step <= current + 1:
                self.last_step, self.last_code = step, self.totp.at(step * STEP_SECONDS)
                return self.last_code
            time.sleep(STEP_SECONDS - now % STEP_SECONDS + 0.2)

    def wrong_code(self) -> str:
        """A six-digit code that no step within the broker's window produces."""
        now = time.time()
        valid = {self.totp.at(now + d * STEP_SECONDS) for d in range(-2, 3)}
        return next(c for c in ("000000", "111111", "123456", "654321") if c not in valid)


@dataclasses.dataclass(frozen=True)
class SetupPage:
    """What the authenticator-setup page offers: the QR code's URI and the typed setup key."""

    uri: OtpAuthUri
    setup_key: str  # as shown, in groups of four

    @property
    def authenticator(self) -> Authenticator:
        return Authenticator(self.uri.secret)


def read_setup_page(page: Page) -> SetupPage:
    """Scan the QR code and read the setup key on the 'Set up your authenticator app' page."""
    expect(page.get_by_role("heading", level=1)).to_have_text("Set up your authenticator app")
    qr = page.get_by_role("img", name=re.compile(r"^QR code to add the London Supercloud"))
    expect(qr).to_be_visible()
    return SetupPage(uri=OtpAuthUri.parse(scan_qr_code(page)), setup_key=page.locator("#setup-key").inner_text().strip())


def finish_setup(page: Page, code: str) -> list[str]:
    """Type ``code`` on the setup page; return the recovery codes the next page lists."""
    page.get_by_label("Code from the app").fill(code)
    page.get_by_role("button", name="Finish setting up").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your authenticator app is set up")
    return [text.strip() for text in page.locator("#recovery-codes li").all_inner_texts()]


# --- the OIDC request as the browser sent it ------------------------------------------------

class OidcTrace:
    """Records, for one browser context, the navigations to the broker's /authorize and the
    app's /callback, and every broker page the browser was sent to."""

    def __init__(self, context: Any, broker: LivePolicyBroker, app: DemoApp) -> None:
        self._broker, self._app = broker, app
        self.authorize: list[dict[str, str]] = []
        self.callbacks: list[dict[str, str]] = []
        self.broker_pages: list[str] = []
        context.on("request", self._seen)

    def _seen(self, request: Any) -> None:
        if not request.is_navigation_request():
            return
        parts = urlsplit(request.url)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin == self._broker.issuer:
            self.broker_pages.append(parts.path)
            if parts.path == "/authorize":
                self.authorize.append(query)
        elif origin == self._app.url and parts.path == "/callback":
            self.callbacks.append(query)

    def assert_one_request_resumed(self, claims: dict[str, str]) -> None:
        """The app made one authorization request and got its answer back with its own state,
        and the ID token it validated carries that request's nonce."""
        assert len(self.authorize) == 1, self.authorize
        request = self.authorize[0]
        assert request["client_id"] == self._app.client_id and request["code_challenge_method"] == "S256", request
        assert len(self.callbacks) == 1, self.callbacks
        callback = self.callbacks[0]
        assert callback["state"] == request["state"], (callback, request)
        assert "code" in callback and "error" not in callback, callback
        assert claims["nonce"] == request["nonce"], (claims, request)
        assert claims["aud"] == self._app.client_id, claims


# --- GOV.UK error pages ----------------------------------------------------------------------

def assert_error_page(page: Page, errors: list[tuple[str, str]]) -> None:
    """Check the GOV.UK error pattern for ``errors`` [(field id, message), ...] in page order:
    'Error: ' title, a focused error summary linking each field, each field's own message."""
    expect(page).to_have_title(re.compile(r"^Error: "))
    summary = page.locator(".govuk-error-summary")
    expect(summary.get_by_role("heading", name="There is a problem")).to_be_visible()
    expect(summary).to_be_focused()
    links = summary.get_by_role("link")
    expect(links).to_have_count(len(errors))
    for index, (field, message) in enumerate(errors):
        expect(links.nth(index)).to_have_text(message)
        expect(links.nth(index)).to_have_attribute("href", f"#{field}")
        expect(page.locator(f"#{field}-error")).to_have_text(re.compile(rf"^\s*Error:\s*{re.escape(message)}\s*$"))
