"""The broker with the London policies over real HTTP, two demo apps, and Amara's enrolment.

One live broker per test session (per xdist worker); Chromium is the worker's shared
browser (tests/support/chromium.py), with a fresh context per test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e_policies.journeys import (
    AMARA,
    Authenticator,
    OidcTrace,
    SetupPage,
    claims_shown,
    finish_setup,
    read_setup_page,
    sign_in_at,
)
from tests.support.chromium import DEFAULT_TIMEOUT_MS, browser_context, chromium  # noqa: F401 (fixtures)
from tests.support.databases import fresh_database
from tests.support.live_policies import LivePolicyBroker, start_live_policy_broker


@pytest.fixture(scope="session")
def live_policy_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePolicyBroker]:
    """The broker deciding with the London bundle, the Discharge Hub and Case Records beside it."""
    folder = tmp_path_factory.mktemp("live-policies")
    with fresh_database(folder) as url:
        broker = start_live_policy_broker(folder, url)
        try:
            yield broker
        finally:
            broker.stop()


@dataclasses.dataclass
class Enrolment:
    """What Amara saw and did while enrolling her authenticator app on the way to the hub."""

    setup: SetupPage
    reason: str
    service_caption: str
    authenticator: Authenticator
    recovery_codes: list[str]
    claims: dict[str, str]
    trace: OidcTrace


@pytest.fixture(scope="session")
def amara_enrolment(chromium: Any, live_policy_broker: LivePolicyBroker) -> Enrolment:  # noqa: F811 (fixture)
    """Amara goes to the Discharge Hub with her password only, is sent to set up her
    authenticator app, scans the QR code, types its code, and reaches the hub.

    Once per worker: every test that needs Amara enrolled shares this phone.
    """
    broker, hub = live_policy_broker, live_policy_broker.discharge_hub
    context = chromium.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    try:
        page = context.new_page()
        trace = OidcTrace(context, broker, hub)
        sign_in_at(page, hub, AMARA)
        expect(page).to_have_url(f"{broker.issuer}/mfa/setup")
        setup = read_setup_page(page)
        reason = page.locator("main p.govuk-body").first.inner_text()
        caption = page.locator(".govuk-caption-l").inner_text()
        phone = setup.authenticator
        codes = finish_setup(page, phone.code())
        page.get_by_role("button", name="Continue").click()
        claims = claims_shown(page, hub)
        return Enrolment(setup=setup, reason=reason, service_caption=caption, authenticator=phone,
                         recovery_codes=codes, claims=claims, trace=trace)
    finally:
        context.close()
