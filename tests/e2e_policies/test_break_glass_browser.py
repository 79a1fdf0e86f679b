"""Break-glass in real Chromium, with the London policies deciding (SCENARIOS policy 3).

NHS staff are denied Social Care Case Records unless in the integrated team; a clinician
may still open it in an emergency. The person sees why, chooses a reason code and writes a
justification; the grant shows in the tokens, the privacy officer of their organisation is
alerted with a reference only, and the access waits in a review queue. The officer's side
is the `supercloud break-glass` command line, run against the live broker's configuration.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e_policies.journeys import ADA, BEN, OidcTrace, assert_error_page, claims_shown, sign_in_at
from tests.support.live_policies import LivePolicyBroker

pytestmark = pytest.mark.peer("chromium")

JUSTIFICATION = "Unconscious adult brought into A&E; need to know about any social care safeguarding plan before discharge."
REASON_01 = "01: The person is receiving emergency care and cannot consent"


def test_clinician_opens_case_records_in_an_emergency_then_the_alert_and_review(
    browser_context: Any, live_policy_broker: LivePolicyBroker,
) -> None:
    broker, records = live_policy_broker, live_policy_broker.case_records
    page = browser_context.new_page()
    trace = OidcTrace(browser_context, broker, records)
    sign_in_at(page, records, ADA)

    # Why: her role does not normally give access; what happens if she goes on.
    expect(page).to_have_url(f"{broker.issuer}/break-glass")
    expect(page).to_have_title("Emergency access – London Supercloud")
    expect(page.get_by_role("heading", level=1)).to_have_text("Emergency access")
    expect(page.locator(".govuk-caption-l")).to_have_text("Social Care Case Records")
    expect(page.get_by_text("Your role does not normally give you access to Social Care Case Records.")).to_be_visible()
    expect(page.locator(".govuk-warning-text")).to_contain_text(
        "Your organisation’s privacy officer will be told, and your access will be reviewed. Access lasts one hour.")
    reasons = page.get_by_role("group", name="Why do you need emergency access?").get_by_role("radio")
    expect(reasons).to_have_count(6)
    for index in range(6):
        expect(reasons.nth(index)).to_have_attribute("value", f"{index + 1:02d}")
        expect(reasons.nth(index)).not_to_be_checked()

    page.get_by_role("radio", name=REASON_01).check()
    page.get_by_label("Explain what is happening").fill(JUSTIFICATION)
    page.get_by_role("button", name="Open in an emergency").click()

    # In Case Records; the ID token it validated carries the grant's reference, not the text.
    claims = claims_shown(page, records)
    trace.assert_one_request_resumed(claims)
    grant = ast.literal_eval(claims["break_glass"])
    assert set(grant) == {"reference", "reason_code", "expires_at"}, grant
    assert grant["reason_code"] == "01"
    reference = grant["reference"]
    assert re.fullmatch(r"BG-[0-9A-F]{8}", reference), reference
    assert claims["organisation"] == "nhs", claims
    assert JUSTIFICATION not in page.content()

    # The privacy officer's alert for NHS: a time, the kind and the reference; no name, no text.
    alerts = broker.cli("break-glass", "alerts", "nhs").stdout
    line = next((row for row in alerts.splitlines() if reference in row), None)
    assert line is not None, alerts
    assert re.fullmatch(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d\s+break_glass\s+{reference}", line.strip()), line
    for detail in ("Ada", "Mensah", ADA, "A&E", "safeguarding", "case-records", "Unconscious"):
        assert detail not in alerts, (detail, alerts)

    # The review queue holds the access with its reason and justification, for the reviewer.
    queue = json.loads(broker.cli("break-glass", "queue", "--json").stdout)
    waiting = [g for g in queue if g["reference"] == reference]
    assert len(waiting) == 1, queue
    assert waiting[0] | {"granted_at": "", "expires_at": ""} == {
        "reference": reference, "organisation": "nhs", "service": "case-records", "reason_code": "01",
        "justification": JUSTIFICATION, "granted_at": "", "expires_at": "",
    }, waiting[0]
    assert waiting[0]["expires_at"] == grant["expires_at"]

    # Grace Obi, the NHS privacy officer, records the outcome: once.
    reviewed = broker.cli("break-glass", "review", reference, "--outcome", "appropriate", "--as", "grace.obi")
    assert reviewed.stdout.strip() == f"{reference}: appropriate (reviewed by grace.obi)", reviewed.stdout
    assert reference not in {g["reference"] for g in json.loads(broker.cli("break-glass", "queue", "--json").stdout)}


def test_an_empty_break_glass_form_shows_both_errors_and_grants_nothing(
    browser_context: Any, live_policy_broker: LivePolicyBroker,
) -> None:
    broker, records = live_policy_broker, live_policy_broker.case_records
    page = browser_context.new_page()
    sign_in_at(page, records, BEN)
    expect(page).to_have_url(f"{broker.issuer}/break-glass")
    page.get_by_role("button", name="Open in an emergency").click()

    expect(page).to_have_url(f"{broker.issuer}/break-glass")
    assert_error_page(page, [
        ("reason", "Select the reason you need emergency access"),
        ("justification", "Explain why you need emergency access"),
    ])
    expect(page).to_have_title("Error: Emergency access – London Supercloud")
    # Each field is marked and described by its own message.
    expect(page.locator(".govuk-form-group--error")).to_have_count(2)
    expect(page.get_by_role("group", name="Why do you need emergency access?")).to_have_attribute(
        "aria-describedby", re.compile(r"\breason-error\b"))
    justification = page.get_by_label("Explain what is happening")
    expect(justification).to_have_attribute("aria-describedby", re.compile(r"\bjustification-error\b"))
    expect(justification).to_have_class(re.compile(r"\bgovuk-textarea--error\b"))
    # The links lead to the first radio and to the text box.
    summary = page.locator(".govuk-error-summary")
    summary.get_by_role("link", name="Select the reason you need emergency access").click()
    expect(page.get_by_role("radio", name=REASON_01)).to_be_focused()
    summary.get_by_role("link", name="Explain why you need emergency access").click()
    expect(justification).to_be_focused()


def test_a_blank_justification_keeps_the_chosen_reason(browser_context: Any, live_policy_broker: LivePolicyBroker) -> None:
    broker, records = live_policy_broker, live_policy_broker.case_records
    page = browser_context.new_page()
    sign_in_at(page, records, BEN)
    page.get_by_role("radio", name=re.compile(r"^04: ")).check()
    page.get_by_label("Explain what is happening").fill("   ")
    page.get_by_role("button", name="Open in an emergency").click()

    expect(page).to_have_url(f"{broker.issuer}/break-glass")
    assert_error_page(page, [("justification", "Explain why you need emergency access")])
    expect(page.get_by_role("radio", name=re.compile(r"^04: "))).to_be_checked()
