"""The broker's side of upstream sign-in: choosing, redirecting, the kept state, the callback.

The upstream here is a fake CallbackSource; real OIDC and SAML upstreams are tested against
real peers in their own modules.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.fake_upstream import FakeUpstream, install_fake_upstream, install_source
from tests.support.flask_flow import authorize_params, pkce_pair
from tests.support.http_login import csrf_token


@pytest.fixture
def upstream(app, services) -> FakeUpstream:  # type: ignore[no-untyped-def]
    return install_fake_upstream(services)


def _code(location: str) -> str:
    return parse_qs(urlsplit(location).query)["code"][0]


def test_an_nhs_email_goes_straight_to_the_upstream(app, upstream) -> None:
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", data={"csrf_token": csrf_token(page), "email": "ada@nhs.test"})
    assert response.headers["Location"].startswith("https://cis2.test/authorize")
    assert upstream.requests[-1].login_hint == "ada@nhs.test"
    assert upstream.requests[-1].callback_url == "http://127.0.0.1:8000/login/callback/fake-cis2"


def test_choosing_the_upstream_signs_in_and_resumes_the_application(app, services, upstream) -> None:
    client = app.test_client()
    _, challenge = pkce_pair()
    client.get("/authorize", query_string=authorize_params(challenge))
    page = client.get("/login/choose").get_data(as_text=True)
    assert "NHS smartcard (test)" in page
    started = client.post("/login/choose", data={"csrf_token": csrf_token(page), "source": "fake-cis2"})
    callback = client.get(f"/login/callback/fake-cis2?code={_code(started.headers['Location'])}")
    assert callback.headers["Location"].endswith("/authorize/resume")
    done = client.get(callback.headers["Location"])
    assert "code=" in done.headers["Location"]
    signin = [r for r in services.audit.records() if r.event == "signin"][-1]
    assert signin.details["source"] == "fake-cis2" and signin.details["assurance"] == "AAL3"


def test_a_replayed_callback_is_refused(app, upstream) -> None:
    client = app.test_client()
    page = client.get("/login/choose").get_data(as_text=True)
    started = client.post("/login/choose", data={"csrf_token": csrf_token(page), "source": "fake-cis2"})
    url = f"/login/callback/fake-cis2?code={_code(started.headers['Location'])}"
    assert client.get(url).status_code == 302
    replay = client.get(url)
    assert replay.status_code == 400
    assert "Start again" in replay.get_data(as_text=True)


def test_a_callback_in_another_browser_is_refused(app, upstream) -> None:
    victim = app.test_client()
    page = victim.get("/login/choose").get_data(as_text=True)
    started = victim.post("/login/choose", data={"csrf_token": csrf_token(page), "source": "fake-cis2"})
    attacker = app.test_client()
    response = attacker.get(f"/login/callback/fake-cis2?code={_code(started.headers['Location'])}")
    assert response.status_code == 400


def test_a_forged_answer_is_refused_and_audited(app, services, upstream) -> None:
    client = app.test_client()
    page = client.get("/login/choose").get_data(as_text=True)
    client.post("/login/choose", data={"csrf_token": csrf_token(page), "source": "fake-cis2"})
    response = client.get("/login/callback/fake-cis2?code=forged")
    assert response.status_code == 400
    record = list(services.audit.records())[-1]
    assert (record.event, record.outcome) == ("signin", "failure") and "code mismatch" in record.details["reason"]


def test_a_cross_site_post_is_bounced_through_our_own_origin(app, upstream) -> None:
    client = app.test_client()
    page = client.get("/login/choose").get_data(as_text=True)
    started = client.post("/login/choose", data={"csrf_token": csrf_token(page), "source": "fake-cis2"})
    code = _code(started.headers["Location"])
    cross_site = app.test_client()  # a POST from the IdP's page carries no SameSite=Lax cookie
    bounce = cross_site.post("/login/callback/fake-cis2", data={"code": code})
    assert bounce.status_code == 200 and 'name="_bounced"' in bounce.get_data(as_text=True)
    same_site = client.post("/login/callback/fake-cis2", data={"code": code, "_bounced": "1",
                                                               "csrf_token": csrf_token(bounce.get_data(as_text=True))})
    assert same_site.status_code == 302


def test_an_unknown_source_cannot_be_chosen(app, upstream) -> None:
    client = app.test_client()
    page = client.get("/login/choose").get_data(as_text=True)
    response = client.post("/login/choose", data={"csrf_token": csrf_token(page), "source": "camden-demo"})
    assert response.status_code == 400 and "Select how you sign in" in response.get_data(as_text=True)


def test_an_idp_initiated_answer_signs_in_only_where_the_idp_is_enabled_for_it(app, services, upstream) -> None:
    # The fake accepts an answer whose code it checks against the (empty) kept state.
    class Unsolicited(type(upstream)):  # type: ignore[misc]
        accepts_unsolicited = True

        def finish(self, params, state, callback_url):  # type: ignore[no-untyped-def]
            if state:
                raise AssertionError("an unsolicited answer has no kept state")
            return super().finish(params, {"code": params.get("code")}, callback_url)

    refused = app.test_client().post("/login/callback/fake-cis2", data={"code": "x", "_bounced": "1"})
    assert refused.status_code == 400, "off unless enabled"
    enabled = Unsolicited()
    install_source(services, "nhs", enabled)
    accepted = app.test_client().post("/login/callback/fake-cis2", data={"code": "x", "_bounced": "1"})
    assert accepted.status_code == 302 and accepted.headers["Location"].endswith("/signed-in")
