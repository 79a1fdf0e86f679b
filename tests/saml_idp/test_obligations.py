"""The access gate's obligations reach SAML as they reach OIDC: break-glass (an NHS clinician
opening case records in an emergency) parks the AuthnRequest, and after the grant the
assertion is issued with the grant's reference; denial and obligations are audited."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from tests.saml_idp.conftest import build_env, posted_response, send
from tests.support.fake_upstream import install_fake_upstream
from tests.support.http_login import csrf_token

BREAK_GLASS = "urn:supercloud:attribute:break_glass"


def test_break_glass_parks_the_authn_request_then_issues_with_the_grant(settings_factory, sps) -> None:
    app, services, sps = build_env(settings_factory, sps, policies=True)
    sp = sps["a"]
    fake = install_fake_upstream(services)
    client = app.test_client()
    req_id, message = sp.authn_request()
    assert send(client, message).headers["Location"].endswith("/login")
    page = client.get("/login/choose").get_data(as_text=True)
    started = client.post("/login/choose", data={"csrf_token": csrf_token(page), "source": fake.id})
    code = parse_qs(urlsplit(started.headers["Location"]).query)["code"][0]
    back = client.get(f"/login/callback/{fake.id}?code={code}")
    resumed = client.get(back.headers["Location"])
    assert resumed.headers["Location"].endswith("/break-glass"), "no assertion before the obligation is met"
    assert not [r for r in services.audit.records() if r.event == "saml_assertion_issued"]
    page = client.get("/break-glass").get_data(as_text=True)
    assert "Service A" in page
    granted = client.post("/break-glass", data={"csrf_token": csrf_token(page), "reason": "01",
                                                 "justification": "Unconscious patient in A&E, safeguarding history needed"})
    acs, fields = posted_response(client.get(granted.headers["Location"]))
    parsed = sp.parse(fields["SAMLResponse"], {req_id: "/"})
    assert parsed.in_response_to == req_id and fields["RelayState"] == "relay-1", "the original request resumed"
    statement = parsed.assertion.attribute_statement[0]
    glass = [a for a in statement.attribute if a.name == BREAK_GLASS]
    assert len(glass) == 1
    value = json.loads(glass[0].attribute_value[0].text)
    assert value["reason_code"] == "01" and value["reference"].startswith("BG-")
    assert _class_ref(parsed) == "urn:supercloud:aal3", "the smartcard's level, as achieved"
    assert [g.reference for g in services.break_glass.review_queue()] == [value["reference"]]


def _class_ref(parsed) -> str:  # type: ignore[no-untyped-def]
    return parsed.assertion.authn_statement[0].authn_context.authn_context_class_ref.text


def test_force_authn_sends_an_upstream_person_back_to_their_upstream_with_force_authn(saml_env) -> None:
    app, services, sps = saml_env
    sp = sps["a"]
    fake = install_fake_upstream(services)
    client = app.test_client()

    def upstream_round_trip(start):  # type: ignore[no-untyped-def]
        code = parse_qs(urlsplit(start.headers["Location"]).query)["code"][0]
        back = client.get(f"/login/callback/{fake.id}?code={code}")
        return client.get(back.headers["Location"])

    req_id, message = sp.authn_request()
    assert send(client, message).headers["Location"].endswith("/login")
    page = client.get("/login/choose").get_data(as_text=True)
    posted_response(upstream_round_trip(client.post("/login/choose", data={"csrf_token": csrf_token(page), "source": fake.id})))
    assert fake.requests[-1].force_authn is False
    req_id, message = sp.authn_request(force_authn="true")
    again = send(client, message)
    assert "/login/upstream/fake-cis2" in again.headers["Location"], "back to the upstream, not a silent reuse"
    started = client.get(again.headers["Location"])
    assert fake.requests[-1].force_authn is True, "the upstream is asked to re-authenticate"
    acs, fields = posted_response(upstream_round_trip(started))
    assert sp.parse(fields["SAMLResponse"], {req_id: "/"}).in_response_to == req_id
