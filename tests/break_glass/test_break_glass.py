"""Break-glass: an NHS clinician opens case records in an emergency; the grant is time-boxed,
visible in tokens, alerts the privacy officer (a reference only) and waits for review."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest

from broker.errors import BrokerError
from federation import jose
from tests.support.fake_upstream import install_fake_upstream
from tests.support.flask_flow import authorize_params, basic_auth, exchange, pkce_pair, query
from tests.support.http_login import csrf_token

ISSUER = "http://127.0.0.1:8000"


def _clinician_reaches_break_glass(app, services):  # type: ignore[no-untyped-def]
    fake = install_fake_upstream(services)
    client = app.test_client()
    verifier, challenge = pkce_pair()
    client.get("/authorize", query_string=authorize_params(challenge, client_id="case-records-app"))
    page = client.get("/login/choose").get_data(as_text=True)
    started = client.post("/login/choose", data={"csrf_token": csrf_token(page), "source": fake.id})
    code = parse_qs(urlsplit(started.headers["Location"]).query)["code"][0]
    back = client.get(f"/login/callback/{fake.id}?code={code}")
    resumed = client.get(back.headers["Location"])
    return client, verifier, resumed


def test_a_clinician_without_a_relationship_is_offered_emergency_access(policy_app) -> None:
    app, services = policy_app
    client, _, resumed = _clinician_reaches_break_glass(app, services)
    assert resumed.headers["Location"].endswith("/break-glass")
    page = client.get("/break-glass").get_data(as_text=True)
    assert "Emergency access" in page and "Social Care Case Records" in page
    assert "privacy officer will be told" in page
    assert "01: " in page and "06: " in page


def test_emergency_access_is_granted_with_reason_alerted_and_queued_for_review(policy_app) -> None:
    app, services = policy_app
    client, verifier, _ = _clinician_reaches_break_glass(app, services)
    page = client.get("/break-glass").get_data(as_text=True)
    granted = client.post("/break-glass", data={"csrf_token": csrf_token(page), "reason": "01",
                                                 "justification": "Unconscious patient in A&E, safeguarding history needed"})
    assert granted.headers["Location"].endswith("/authorize/resume")
    callback = client.get(granted.headers["Location"])
    params = query(callback.headers["Location"])
    tokens = exchange(client, params["code"], verifier, headers=basic_auth("case-records-app")).get_json()
    claims = jose.verify(tokens["id_token"], services.keyring.verification_keys(), audience="case-records-app", issuer=ISSUER)
    glass = claims["break_glass"]
    assert glass["reason_code"] == "01" and glass["reference"].startswith("BG-")
    expires = dt.datetime.fromisoformat(glass["expires_at"])
    assert dt.timedelta(minutes=59) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=1)
    alerts = services.break_glass.alerts("nhs")
    assert [a.reference for a in alerts] == [glass["reference"]]
    assert not hasattr(alerts[0], "person") and not hasattr(alerts[0], "justification"), "alert carries a reference only"
    queue = services.break_glass.review_queue()
    assert [g.reference for g in queue] == [glass["reference"]]
    events = [r.event for r in services.audit.records()]
    assert "break_glass_granted" in events and "privacy_alert_raised" in events


def test_the_review_outcome_is_recorded_once_and_not_by_the_person(policy_app) -> None:
    app, services = policy_app
    client, _, _ = _clinician_reaches_break_glass(app, services)
    page = client.get("/break-glass").get_data(as_text=True)
    client.post("/break-glass", data={"csrf_token": csrf_token(page), "reason": "02", "justification": "Risk to the child"})
    grant = services.break_glass.review_queue()[0]
    with pytest.raises(BrokerError, match="own emergency access"):
        services.break_glass.review(grant.reference, "appropriate", reviewer=grant.subject_id)
    with pytest.raises(BrokerError, match="outcome must be one of"):
        services.break_glass.review(grant.reference, "fine", reviewer="privacy-officer")
    reviewed = services.break_glass.review(grant.reference, "appropriate", reviewer="privacy-officer", notes="checked")
    assert reviewed.review_outcome == "appropriate"
    assert services.break_glass.review_queue() == []
    with pytest.raises(BrokerError, match="already been reviewed"):
        services.break_glass.review(grant.reference, "misuse", reviewer="someone-else")


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"reason": "", "justification": "x"}, "Select the reason"),
        ({"reason": "07", "justification": "x"}, "Select the reason"),
        ({"reason": "01", "justification": "   "}, "Explain why"),
        ({"reason": "01", "justification": "x" * 2001}, "2000 characters or fewer"),
    ],
)
def test_bad_requests_grant_nothing(policy_app, form, message) -> None:  # type: ignore[no-untyped-def]
    app, services = policy_app
    client, _, _ = _clinician_reaches_break_glass(app, services)
    page = client.get("/break-glass").get_data(as_text=True)
    response = client.post("/break-glass", data={"csrf_token": csrf_token(page), **form})
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    assert services.break_glass.review_queue() == [] and services.break_glass.alerts("nhs") == []


def test_the_page_cannot_be_used_without_an_obligation(policy_app) -> None:
    app, _ = policy_app
    response = app.test_client().get("/break-glass")
    assert response.status_code == 302


def test_an_expired_grant_no_longer_permits(policy_app) -> None:
    app, services = policy_app
    client, _, _ = _clinician_reaches_break_glass(app, services)
    page = client.get("/break-glass").get_data(as_text=True)
    client.post("/break-glass", data={"csrf_token": csrf_token(page), "reason": "01", "justification": "Emergency"})
    grant = services.break_glass.review_queue()[0]
    assert services.break_glass.active(grant.person, "case-records") is not None
    later = grant.expires_at + dt.timedelta(seconds=1)
    assert services.break_glass.active(grant.person, "case-records", now=later) is None
