"""Single logout with a real SimpleSAMLphp 1.19 IdP, both directions (SAML Profiles §4.4,
HTTP-Redirect, signed both ways), and forged logout requests refused.

The broker runs as a Flask test client (it keeps its cookies); the browser at the IdP is a
requests session; a redirect from one to the other is handed across by hand.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import pytest
import requests

from federation.upstream_saml import redirect as saml_redirect
from federation.upstream_saml.keys import generate_key_pair
from federation.upstream_saml.xmlsecurity import SAML, SAMLP, parse_document
from tests.federation.test_upstream_saml import SamlBroker, saml_broker  # noqa: F401 - the fixture
from tests.peers.oidc_upstream import follow
from tests.peers.simplesamlphp import ISSUER, OFFICER_PASSWORD, idp_login, simplesamlphp_barnet  # noqa: F401
from tests.support.http_login import csrf_token

SLO = f"{ISSUER}/login/slo/barnet-saml"


def _local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _sign_in(saml_broker: SamlBroker) -> tuple[Any, requests.Session, Any]:
    """Sign the officer in; return (broker client, IdP browser, the SSO session)."""
    idp_browser = requests.Session()
    client, url = saml_broker.begin()
    fields = idp_login(idp_browser, url, "officer", OFFICER_PASSWORD)
    response = saml_broker.deliver(client, fields)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    sso = saml_broker.session_of(response)
    assert sso is not None
    return client, idp_browser, sso


def _idp_has_session(saml_broker: SamlBroker, idp_browser: requests.Session) -> bool:
    """A new AuthnRequest at the IdP: answered at once (SAMLResponse) only while its session lives."""
    _, url = saml_broker.begin()
    page = idp_browser.get(url, timeout=10)
    return "SAMLResponse" in page.text


def _events(saml_broker: SamlBroker, event: str) -> list[Any]:
    return [r for r in saml_broker.services.audit.records() if r.event == event]


def test_the_idp_session_is_recorded(saml_broker: SamlBroker) -> None:
    _, _, sso = _sign_in(saml_broker)
    upstream = saml_broker.services.upstream_logout.sessions.for_sid(sso.sid)
    assert upstream.source == "barnet-saml" and upstream.subject == "b.okafor"
    assert upstream.session_id  # SessionIndex
    assert upstream.name_id["format"] == "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    # SimpleSAMLphp's SessionNotOnOrAfter bounds the broker session (the IdP's session lifetime).
    assert upstream.not_after is not None and upstream.not_after > dt.datetime.now(dt.UTC)
    assert saml_broker.services.sso.by_sid(sso.sid).expires_at <= upstream.not_after
    metadata = saml_broker.services.registry.source("barnet-saml").sp_metadata().decode()
    assert f'Location="{SLO}"' in metadata and "SingleLogoutService" in metadata


def test_signing_out_of_the_broker_signs_out_at_the_idp(saml_broker: SamlBroker) -> None:
    client, idp_browser, sso = _sign_in(saml_broker)
    assert _idp_has_session(saml_broker, idp_browser)
    page = client.get("/logout").get_data(as_text=True)
    out = client.post("/logout", data={"csrf_token": csrf_token(page)})
    assert out.status_code == 302 and out.headers["Location"].startswith(saml_broker.idp.base_url), out.get_data(as_text=True)[:300]
    query = parse_qs(urlsplit(out.headers["Location"]).query)
    assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"] and query["Signature"] and query["RelayState"]
    assert saml_broker.services.sso.by_sid(sso.sid) is None
    back = follow(idp_browser, out.headers["Location"], stop_prefix=ISSUER)
    location = back.headers.get("Location", "")
    assert location.startswith(SLO) and "SAMLResponse=" in location, (back.status_code, back.text[:800])
    final = client.get(_local(location))
    assert final.status_code == 200 and "You have signed out of the London Supercloud" in final.get_data(as_text=True)
    assert not _idp_has_session(saml_broker, idp_browser)
    assert [r.outcome for r in _events(saml_broker, "upstream_signout")][-2:] == ["redirected", "success"]


def test_a_logout_at_the_idp_ends_the_broker_session(saml_broker: SamlBroker) -> None:
    client, idp_browser, sso = _sign_in(saml_broker)
    done = f"{saml_broker.idp.base_url}saml2/idp/metadata.php"
    start = f"{saml_broker.idp.base_url}saml2/idp/SingleLogoutService.php?ReturnTo={done}"
    to_us = follow(idp_browser, start, stop_prefix=ISSUER)
    location = to_us.headers.get("Location", "")
    assert location.startswith(SLO) and "SAMLRequest=" in location, (to_us.status_code, to_us.text[:800])
    answer = client.get(_local(location))
    assert answer.status_code == 302 and "SAMLResponse=" in answer.headers["Location"]
    assert saml_broker.services.sso.by_sid(sso.sid) is None
    assert "supercloud-session=;" in answer.headers.get("Set-Cookie", "")  # this browser's cookie is cleared too
    finished = follow(idp_browser, answer.headers["Location"])
    assert finished.status_code == 200 and finished.url.startswith(done), (finished.url, finished.text[:500])
    record = [r for r in _events(saml_broker, "upstream_saml_logout") if r.outcome == "success"][-1]
    assert record.details["sessions_ended"] == 1 and sso.sid in record.details["sids"]


# --- forged logout requests, signed with the IdP's real key unless said otherwise -------------------------


def _logout_request(saml_broker: SamlBroker, *, name_id: str, session_index: str | None, destination: str = SLO,
                    issuer: str | None = None, key_pem: str | None = None, request_id: str | None = None) -> str:
    now = dt.datetime.now(dt.UTC)
    root = ElementTree.Element(f"{{{SAMLP}}}LogoutRequest", {
        "ID": request_id or "_" + secrets.token_hex(16), "Version": "2.0",
        "IssueInstant": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "Destination": destination,
        "NotOnOrAfter": (now + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")})
    ElementTree.SubElement(root, f"{{{SAML}}}Issuer").text = issuer or saml_broker.idp.entity_id
    ElementTree.SubElement(root, f"{{{SAML}}}NameID", {"Format": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"}
                           ).text = name_id
    if session_index:
        ElementTree.SubElement(root, f"{{{SAMLP}}}SessionIndex").text = session_index
    query = saml_redirect.encode("SAMLRequest", ElementTree.tostring(root), None, key_pem or saml_broker.idp.idp_key_pem)
    return f"/login/slo/barnet-saml?{query}"


def test_a_signed_logout_request_for_a_recorded_session_works_once(saml_broker: SamlBroker) -> None:
    client, _, sso = _sign_in(saml_broker)
    upstream = saml_broker.services.upstream_logout.sessions.for_sid(sso.sid)
    path = _logout_request(saml_broker, name_id=upstream.subject, session_index=upstream.session_id)
    answer = client.get(path)
    assert answer.status_code == 302 and saml_broker.services.sso.by_sid(sso.sid) is None
    response = parse_document(saml_redirect.decode(urlsplit(answer.headers["Location"]).query.encode()).xml)
    assert response.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode").get("Value").endswith(":Success")
    replay = client.get(path)
    assert replay.status_code == 400
    assert "replayed" in _events(saml_broker, "upstream_saml_logout")[-1].details["reason"]


def test_a_logout_request_for_no_recorded_session_is_answered_unknown_principal(saml_broker: SamlBroker) -> None:
    client, _, sso = _sign_in(saml_broker)
    answer = client.get(_logout_request(saml_broker, name_id="someone-else", session_index="_no-such-index"))
    assert answer.status_code == 302
    response = parse_document(saml_redirect.decode(urlsplit(answer.headers["Location"]).query.encode()).xml)
    code = response.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode")
    assert code.get("Value").endswith(":Requester") and code[0].get("Value").endswith(":UnknownPrincipal")
    assert saml_broker.services.sso.by_sid(sso.sid) is not None


ROGUE = generate_key_pair("rogue", bits=2048)


@pytest.mark.parametrize("attack, reason", [
    ("signed by another key", "does not verify"),
    ("unsigned", "not signed"),
    ("tampered", "does not verify"),
    ("another destination", "Destination"),
    ("another issuer", "Issuer"),
])
def test_a_forged_logout_request_is_refused_and_the_session_stays(saml_broker: SamlBroker, attack: str, reason: str) -> None:
    client, _, sso = _sign_in(saml_broker)
    upstream = saml_broker.services.upstream_logout.sessions.for_sid(sso.sid)
    kwargs: dict[str, Any] = {"name_id": upstream.subject, "session_index": upstream.session_id}
    if attack == "signed by another key":
        kwargs["key_pem"] = ROGUE.key_pem
    if attack == "another destination":
        kwargs["destination"] = f"{ISSUER}/login/slo/other"
    if attack == "another issuer":
        kwargs["issuer"] = "https://evil.test/idp"
    path = _logout_request(saml_broker, **kwargs)
    if attack == "unsigned":
        path = path.split("&SigAlg=")[0]
    if attack == "tampered":
        path = path.replace("RelayState=", "") if "RelayState=" in path else path + "&RelayState=x"
    answer = client.get(path)
    assert answer.status_code == 400 and "Location" not in answer.headers
    assert saml_broker.services.sso.by_sid(sso.sid) is not None
    record = _events(saml_broker, "upstream_saml_logout")[-1]
    assert record.outcome == "failure" and reason in record.details["reason"], record.details
