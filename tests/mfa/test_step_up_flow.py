"""Step-up in the browser flow: the Discharge Hub's AAL2 policy sends a password-only person
to set up or use their authenticator app, then resumes the original OIDC request."""

from __future__ import annotations

import re
import time

import pyotp

from federation import jose
from tests.support.flask_flow import authorize_params, basic_auth, exchange, password_sign_in, pkce_pair, query
from tests.support.http_login import csrf_token
from tests.support.settings import TEST_REDIRECT_URI

ISSUER = "http://127.0.0.1:8000"


def _start(client, email: str):  # type: ignore[no-untyped-def]
    verifier, challenge = pkce_pair()
    client.get("/authorize", query_string=authorize_params(challenge))
    signed = password_sign_in(client, email)
    return verifier, signed


def _secret_from_page(html: str) -> str:
    # As a person's authenticator would: the setup key shown as text beside the QR code.
    return re.search(r'id="setup-key">([A-Z2-7 ]+)<', html).group(1).replace(" ", "")


def _enrol_through_pages(client, resume_response):  # type: ignore[no-untyped-def]
    assert resume_response.headers["Location"].endswith("/mfa")
    setup = client.get("/mfa", follow_redirects=True)
    page = setup.get_data(as_text=True)
    assert "Set up your authenticator app" in page and "data:image/svg+xml;base64," in page
    assert "needs a stronger sign-in (AAL2)" in page
    secret = _secret_from_page(page)
    done = client.post("/mfa/setup", data={"csrf_token": csrf_token(page), "code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200
    codes = re.findall(r"<li>([a-z0-9]{5}-[a-z0-9]{5})</li>", done.get_data(as_text=True))
    assert len(codes) == 10
    return secret, codes


def test_step_up_enrols_then_resumes_the_original_request_at_aal2(policy_app) -> None:
    app, services = policy_app
    client = app.test_client()
    verifier, signed = _start(client, "amara.okafor@camden.test")
    resume = client.get(signed.headers["Location"])
    _enrol_through_pages(client, resume)
    callback = client.get("/authorize/resume")
    assert callback.headers["Location"].startswith(TEST_REDIRECT_URI)
    params = query(callback.headers["Location"])
    assert params["state"] == "state-123", "the original request resumed"
    tokens = exchange(client, params["code"], verifier, headers=basic_auth()).get_json()
    claims = jose.verify(tokens["id_token"], services.keyring.verification_keys(), audience="discharge-hub", issuer=ISSUER)
    assert claims["acr"] == "urn:supercloud:aal2"
    assert set(claims["amr"]) == {"pwd", "otp", "mfa"}
    assert claims["name"] == "Amara Okafor" and "department" not in claims, "released per the discharge-hub policy"
    events = [(r.event, r.outcome) for r in services.audit.records()]
    assert ("mfa_enrol", "success") in events and ("mfa_verify", "success") in events


def test_enrolled_people_sign_in_with_their_code_and_reach_the_hub(policy_app) -> None:
    app, services = policy_app
    first = app.test_client()
    _, signed = _start(first, "amara.okafor@camden.test")
    secret, _ = _enrol_through_pages(first, first.get(signed.headers["Location"]))

    client = app.test_client()
    verifier, signed = _start(client, "amara.okafor@camden.test")
    assert signed.headers["Location"].endswith("/mfa"), "an enrolled person is asked for the code straight away"
    page = client.get("/mfa").get_data(as_text=True)
    assert "Enter the code from your authenticator app" in page
    later = pyotp.TOTP(secret).at(time.time() + 30)  # the enrolment used this step's code
    done = client.post("/mfa", data={"csrf_token": csrf_token(page), "code": later})
    assert done.headers["Location"].endswith("/authorize/resume")
    callback = client.get(done.headers["Location"])
    assert query(callback.headers["Location"])["code"]


def test_a_wrong_code_is_refused_counted_and_audited(policy_app) -> None:
    app, services = policy_app
    client = app.test_client()
    _, signed = _start(client, "amara.okafor@camden.test")
    secret, _ = _enrol_through_pages(client, client.get(signed.headers["Location"]))
    page = client.get("/mfa").get_data(as_text=True)
    wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    response = client.post("/mfa", data={"csrf_token": csrf_token(page), "code": wrong})
    assert response.status_code == 400
    assert "There is a problem" in response.get_data(as_text=True)
    record = list(services.audit.records())[-1]
    assert (record.event, record.outcome, record.details["reason"]) == ("mfa_verify", "failure", "wrong code")


def test_brute_force_of_codes_is_throttled(policy_app) -> None:
    app, services = policy_app
    client = app.test_client()
    _, signed = _start(client, "amara.okafor@camden.test")
    secret, _ = _enrol_through_pages(client, client.get(signed.headers["Location"]))
    page = client.get("/mfa").get_data(as_text=True)
    token = csrf_token(page)
    valid = {pyotp.TOTP(secret).at(time.time() + d) for d in (-30, 0, 30, 60)}
    wrong = [c for c in (f"{n:06d}" for n in range(100)) if c not in valid][:6]
    for code in wrong[:5]:
        client.post("/mfa", data={"csrf_token": token, "code": code})
    blocked = client.post("/mfa", data={"csrf_token": token, "code": pyotp.TOTP(secret).at(time.time() + 60)})
    assert blocked.status_code == 400
    assert "too many attempts" in blocked.get_data(as_text=True)


def test_an_enrolment_confirmed_with_a_wrong_code_enrols_nothing(policy_app) -> None:
    app, services = policy_app
    client = app.test_client()
    _, signed = _start(client, "amara.okafor@camden.test")
    client.get(signed.headers["Location"])
    page = client.get("/mfa/setup").get_data(as_text=True)
    secret = _secret_from_page(page)
    wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    response = client.post("/mfa/setup", data={"csrf_token": csrf_token(page), "code": wrong})
    assert response.status_code == 400
    subject = [r for r in services.audit.records() if r.event == "signin"][-1].actor
    assert not services.login.totp.is_enrolled(subject)


def test_password_failures_are_throttled_before_a_directory_lockout(app, services) -> None:
    client = app.test_client()
    for _ in range(5):
        password_sign_in(client, "kwame.mensah@newham.test", "wrong-password")
    response = password_sign_in(client, "kwame.mensah@newham.test")
    assert response.status_code == 400
    assert "too many attempts" in response.get_data(as_text=True)
    assert list(services.audit.records())[-1].details["reason"] == "throttled"


def test_enrolment_and_re_enrolment_notify_the_person_and_are_audited(policy_app) -> None:
    app, services = policy_app
    client = app.test_client()
    _, signed = _start(client, "amara.okafor@camden.test")
    _enrol_through_pages(client, client.get(signed.headers["Location"]))
    subject = [r for r in services.audit.records() if r.event == "signin"][-1].actor
    # The session is now AAL2, so the person may replace their app.
    page = client.get("/mfa/setup").get_data(as_text=True)
    assert "Set up your authenticator app" in page
    secret = _secret_from_page(page)
    replaced = client.post("/mfa/setup", data={"csrf_token": csrf_token(page), "code": pyotp.TOTP(secret).at(time.time() + 30)})
    assert replaced.status_code == 200
    kinds = [n.kind for n in services.notifications.pending(subject)]
    assert kinds == ["mfa_enrolled", "mfa_replaced"]
    assert services.notifications.pending(subject)[0].recipient == "amara.okafor@camden.test"
    enrols = [r.details for r in services.audit.records() if r.event == "mfa_enrol" and r.outcome == "success"]
    assert [e["replaced"] for e in enrols] == [False, True]


def test_a_password_only_session_cannot_replace_an_enrolled_app(policy_app) -> None:
    app, services = policy_app
    first = app.test_client()
    _, signed = _start(first, "amara.okafor@camden.test")
    _enrol_through_pages(first, first.get(signed.headers["Location"]))
    attacker = app.test_client()
    password_sign_in(attacker, "amara.okafor@camden.test")
    response = attacker.get("/mfa/setup")
    assert response.status_code == 302 and response.headers["Location"].endswith("/mfa")


def test_a_tampered_flow_cookie_cannot_resume_someone_elses_request(policy_app) -> None:
    app, services = policy_app
    client = app.test_client()
    _, signed = _start(client, "amara.okafor@camden.test")
    client.get(signed.headers["Location"])  # parked for step-up
    from broker.web.security import FLOW_COOKIE

    flow = client.get_cookie(FLOW_COOKIE).value
    payload, _, signature = flow.rpartition(".")
    client.set_cookie(FLOW_COOKIE, payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:])
    response = client.get("/authorize/resume")
    assert response.status_code == 400 and "start again" in response.get_data(as_text=True)
