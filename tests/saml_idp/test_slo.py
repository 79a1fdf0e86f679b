"""Single logout (SAML Profiles §4.4) across every SAML SP and OIDC application of a session:
SP-initiated (pysaml2 SP sends a signed LogoutRequest) and IdP-initiated (the broker's sign-out),
front-channel to SAML SPs one after the other, back-channel to the OIDC application."""

from __future__ import annotations

import base64
import time

import pytest
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.samlp import STATUS_SUCCESS
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from federation import jose
from tests.oidc.conftest import LogoutReceiver
from tests.saml_idp.conftest import SLO_URL, build_env, form_fields, posted_response, send, sign_in_and_answer
from tests.support.flask_flow import code_flow
from tests.support.http_login import csrf_token


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    server = LogoutReceiver()
    yield server
    server.close()


@pytest.fixture
def slo_env(settings_factory, sps, receiver):  # type: ignore[no-untyped-def]
    def hook(document):  # type: ignore[no-untyped-def]
        document["applications"][0]["backchannel_logout_uri"] = f"{receiver.url}/backchannel"

    return build_env(settings_factory, sps, document_hook=hook)


def _sign_in_everywhere(app, sps):  # type: ignore[no-untyped-def]
    """Sign in through SP a, then SP b (SSO), then the OIDC Discharge Hub; return (client, parsed a, parsed b)."""
    client = app.test_client()
    req_id, message = sps["a"].authn_request()
    a = sps["a"].parse(posted_response(sign_in_and_answer(client, send(client, message)))[1]["SAMLResponse"], {req_id: "/"})
    req_id, message = sps["b"].authn_request()
    b = sps["b"].parse(posted_response(send(client, message))[1]["SAMLResponse"], {req_id: "/"})
    code_flow(client)  # the OIDC application gets a code in the same session
    return client, a, b


def _answer_logout_request(client, sp, page):  # type: ignore[no-untyped-def]
    """As SP ``sp``: read the broker's LogoutRequest (POST binding), check it, answer Success by POST."""
    action, fields = form_fields(page.get_data(as_text=True))
    assert action == sp.slo
    request = sp.client.parse_logout_request(fields["SAMLRequest"], BINDING_HTTP_POST)  # verifies our signature
    response = sp.client.create_logout_response(request.message, bindings=[BINDING_HTTP_POST], status=None, sign=True,
                                                sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
    return request, send(client, {"path": SLO_URL, "form": {"SAMLResponse": base64.b64encode(str(response).encode()).decode()}})


def _backchannel(receiver, services) -> dict:  # type: ignore[no-untyped-def,type-arg]
    deadline = time.monotonic() + 20  # delivery runs in the background; wait for it, do not time it
    while time.monotonic() < deadline and not receiver.received:
        time.sleep(0.05)
    assert receiver.received, "the OIDC application received no back-channel logout"
    token = receiver.received[0]["logout_token"]
    return jose.verify(token, services.keyring.verification_keys(), audience="discharge-hub", issuer="http://127.0.0.1:8000",
                       typ="logout+jwt")


def test_sp_initiated_logout_reaches_every_sp_and_the_oidc_app(slo_env, receiver) -> None:
    app, services, sps = slo_env
    client, a, b = _sign_in_everywhere(app, sps)
    sid = [r for r in services.audit.records() if r.event == "signin"][-1].details["sid"]
    # SP a asks to log the person out (signed, Redirect binding).
    req_id, request = sps["a"].client.create_logout_request(
        SLO_URL, "http://127.0.0.1:8000/saml/metadata",
        name_id=a.name_id, session_indexes=[a.assertion.authn_statement[0].session_index], sign=False)
    info = sps["a"].client.apply_binding(BINDING_HTTP_REDIRECT, str(request), SLO_URL, relay_state="bye", sign=True,
                                         sigalg=SIG_RSA_SHA256)
    first_hop = send(client, {"url": dict(info["headers"])["Location"]})
    # The broker has ended the session and now asks SP b (front-channel, signed LogoutRequest).
    assert services.sso.by_sid(sid) is None
    logout_b, final = _answer_logout_request(client, sps["b"], first_hop)
    assert logout_b.message.name_id.text == b.name_id.text
    # The last page lists what was signed out and carries SP a's LogoutResponse.
    page = final.get_data(as_text=True)
    assert final.status_code == 200 and "You are signed out" in page
    for name in ("Service A", "Service B", "Hospital Discharge Hub"):
        assert f"<li>{name}</li>" in page
    action, fields = form_fields(page)
    assert action == sps["a"].slo and fields["RelayState"] == "bye"
    answer = sps["a"].client.parse_logout_request_response(fields["SAMLResponse"], BINDING_HTTP_POST)
    assert answer.response.status.status_code.value == STATUS_SUCCESS
    assert answer.response.in_response_to == req_id
    claims = _backchannel(receiver, services)
    assert claims["sid"] == sid
    # The session is gone: the next AuthnRequest needs a sign-in.
    _, message = sps["b"].authn_request()
    assert send(client, message).headers["Location"].endswith("/login")


def test_idp_initiated_logout_from_the_broker_signs_out_every_service(slo_env, receiver) -> None:
    app, services, sps = slo_env
    client, a, b = _sign_in_everywhere(app, sps)
    page = client.get("/logout").get_data(as_text=True)
    hop = client.post("/logout", data={"csrf_token": csrf_token(page)})
    seen = []
    for _ in range(2):
        action, _ = form_fields(hop.get_data(as_text=True))
        sp = sps["a"] if action == sps["a"].slo else sps["b"]
        request, hop = _answer_logout_request(client, sp, hop)
        seen.append(sp.entity_id)
    assert sorted(seen) == sorted([sps["a"].entity_id, sps["b"].entity_id])
    page = hop.get_data(as_text=True)
    assert "You are signed out" in page and "SAMLResponse" not in page
    for name in ("Service A", "Service B", "Hospital Discharge Hub"):
        assert f"<li>{name}</li>" in page
    assert _backchannel(receiver, services)["sid"]
    events = [(r.event, r.client_id) for r in services.audit.records() if r.event == "saml_logout_request_sent"]
    assert len(events) == 2


def test_an_sp_that_does_not_confirm_is_listed_as_not_signed_out(slo_env) -> None:
    from saml2.samlp import STATUS_RESPONDER, Status, StatusCode

    app, services, sps = slo_env
    client, a, b = _sign_in_everywhere(app, sps)
    page = client.get("/logout").get_data(as_text=True)
    hop = client.post("/logout", data={"csrf_token": csrf_token(page)})
    action, fields = form_fields(hop.get_data(as_text=True))
    failing, other = ("a", "b") if action == sps["a"].slo else ("b", "a")
    request = sps[failing].client.parse_logout_request(fields["SAMLRequest"], BINDING_HTTP_POST)
    response = sps[failing].client.create_logout_response(
        request.message, bindings=[BINDING_HTTP_POST], status=Status(status_code=StatusCode(value=STATUS_RESPONDER)),
        sign=True, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
    nxt = send(client, {"path": SLO_URL, "form": {"SAMLResponse": base64.b64encode(str(response).encode()).decode()}})
    _, final = _answer_logout_request(client, sps[other], nxt)
    text = final.get_data(as_text=True)
    not_signed_out = text[text.index('id="not-signed-out"'):]
    assert f"<li>Service {failing.upper()}</li>" in not_signed_out
    assert f"<li>Service {other.upper()}</li>" in text[:text.index('id="not-signed-out"')]


def test_unsigned_or_forged_logout_requests_are_refused(slo_env, tmp_path) -> None:
    app, services, sps = slo_env
    client, a, b = _sign_in_everywhere(app, sps)
    req_id, request = sps["a"].client.create_logout_request(
        SLO_URL, "http://127.0.0.1:8000/saml/metadata", name_id=a.name_id, sign=False)
    info = sps["a"].client.apply_binding(BINDING_HTTP_REDIRECT, str(request), SLO_URL, relay_state="x", sign=False)
    refused = send(client, {"url": dict(info["headers"])["Location"]})
    assert refused.status_code == 400
    sid = [r for r in services.audit.records() if r.event == "signin"][-1].details["sid"]
    assert services.sso.by_sid(sid) is not None, "an unsigned LogoutRequest ends nothing"
    reasons = [r.details["reason"] for r in services.audit.records() if r.event == "saml_logout_message" and r.outcome == "failure"]
    assert any("must sign" in r or "must be signed" in r for r in reasons), reasons


def test_a_logout_response_for_another_request_is_refused(slo_env) -> None:
    app, services, sps = slo_env
    client, a, b = _sign_in_everywhere(app, sps)
    page = client.get("/logout").get_data(as_text=True)
    hop = client.post("/logout", data={"csrf_token": csrf_token(page)})
    action, fields = form_fields(hop.get_data(as_text=True))
    sp = sps["a"] if action == sps["a"].slo else sps["b"]
    other = sps["b"] if sp is sps["a"] else sps["a"]
    request = sp.client.parse_logout_request(fields["SAMLRequest"], BINDING_HTTP_POST)
    # The other SP (not asked) answers in its place.
    response = other.client.create_logout_response(request.message, bindings=[BINDING_HTTP_POST], sign=True,
                                                   sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
    wrong = send(client, {"path": SLO_URL, "form": {"SAMLResponse": base64.b64encode(str(response).encode()).decode()}})
    assert wrong.status_code == 400


def test_oidc_rp_initiated_logout_also_signs_out_the_saml_sps(slo_env, receiver) -> None:
    from tests.support.flask_flow import exchange

    app, services, sps = slo_env
    client = app.test_client()
    req_id, message = sps["a"].authn_request()
    sps["a"].parse(posted_response(sign_in_and_answer(client, send(client, message)))[1]["SAMLResponse"], {req_id: "/"})
    code, verifier, _ = code_flow(client)
    id_token = exchange(client, code, verifier).get_json()["id_token"]
    hop = client.get("/end-session", query_string={"id_token_hint": id_token, "state": "s-1",
                                                   "post_logout_redirect_uri": "http://127.0.0.1:8001/"})
    request, final = _answer_logout_request(client, sps["a"], hop)
    page = final.get_data(as_text=True)
    assert "<li>Service A</li>" in page and "<li>Hospital Discharge Hub</li>" in page
    assert 'href="http://127.0.0.1:8001/?state=s-1"' in page, "then back to the application that asked"
    assert _backchannel(receiver, services)["sid"]


def test_a_logout_request_without_session_index_ends_every_session_of_the_person_at_that_sp(slo_env) -> None:
    app, services, sps = slo_env
    browsers = []
    for _ in range(2):
        client = app.test_client()
        req_id, message = sps["a"].authn_request()
        parsed = sps["a"].parse(posted_response(sign_in_and_answer(client, send(client, message)))[1]["SAMLResponse"],
                                {req_id: "/"})
        browsers.append((client, parsed))
    sids = [r.details["sid"] for r in services.audit.records() if r.event == "signin"]
    assert len(sids) == 2 and all(services.sso.by_sid(s) for s in sids)
    client, parsed = browsers[0]
    req_id, request = sps["a"].client.create_logout_request(SLO_URL, "http://127.0.0.1:8000/saml/metadata",
                                                            name_id=parsed.name_id, sign=False)
    info = sps["a"].client.apply_binding(BINDING_HTTP_REDIRECT, str(request), SLO_URL, relay_state="x", sign=True,
                                         sigalg=SIG_RSA_SHA256)
    final = send(client, {"url": dict(info["headers"])["Location"]})
    assert final.status_code == 200 and "You are signed out" in final.get_data(as_text=True)
    assert not any(services.sso.by_sid(s) for s in sids)


class _UpstreamWithLogout:
    """A fake NHS upstream that records its session and offers logout (federation.sources.LogoutSource)."""

    def __init__(self, fake) -> None:  # type: ignore[no-untyped-def]
        self._fake = fake
        self.id, self.organisation, self.display_name = fake.id, fake.organisation, fake.display_name
        self.logouts: list[tuple[str, str, str]] = []

    def start(self, request):  # type: ignore[no-untyped-def]
        return self._fake.start(request)

    def finish(self, params, state, callback_url):  # type: ignore[no-untyped-def]
        return self._fake.finish(params, state, callback_url)

    def finish_session(self, params, state, callback_url):  # type: ignore[no-untyped-def]
        import datetime as dt

        from federation.sources import UpstreamSession

        identity = self._fake.finish(params, state, callback_url)
        return identity, UpstreamSession(source=self.id, subject=identity.subject.subject,
                                         authenticated_at=dt.datetime.now(dt.UTC), session_id="upstream-sid-1")

    def logout_url(self, session, *, return_url: str, state: str) -> str:  # type: ignore[no-untyped-def]
        self.logouts.append((session.session_id, return_url, state))
        return f"https://cis2.test/logout?state={state}"


def test_signing_out_of_every_sp_ends_at_the_upstream_the_person_came_from(slo_env) -> None:
    from urllib.parse import parse_qs, urlsplit

    from tests.support.fake_upstream import install_fake_upstream, install_source

    app, services, sps = slo_env
    upstream = _UpstreamWithLogout(install_fake_upstream(services))
    install_source(services, "nhs", upstream)
    client = app.test_client()
    req_id, message = sps["a"].authn_request()
    assert send(client, message).headers["Location"].endswith("/login")
    page = client.get("/login/choose").get_data(as_text=True)
    start = client.post("/login/choose", data={"csrf_token": csrf_token(page), "source": upstream.id})
    code = parse_qs(urlsplit(start.headers["Location"]).query)["code"][0]
    back = client.get(f"/login/callback/{upstream.id}?code={code}")
    sps["a"].parse(posted_response(client.get(back.headers["Location"]))[1]["SAMLResponse"], {req_id: "/"})

    page = client.get("/logout").get_data(as_text=True)
    hop = client.post("/logout", data={"csrf_token": csrf_token(page)})
    _, last = _answer_logout_request(client, sps["a"], hop)

    # The SAML SP confirmed; the broker session came from the upstream, so the browser goes there
    # last, and comes back to the broker's signed-out page.
    assert last.status_code == 302 and last.headers["Location"].startswith("https://cis2.test/logout?state=")
    [(upstream_sid, return_url, state)] = upstream.logouts
    assert upstream_sid == "upstream-sid-1" and return_url.endswith("/logout/upstream/return")
    final = client.get(f"/logout/upstream/return?state={state}")
    assert final.status_code == 200 and "You have signed out of the London Supercloud" in final.get_data(as_text=True)
