"""Barnet signs in through its SAML IdP: a real SimpleSAMLphp 1.19 on loopback, the broker as SP.

The broker runs as a Flask test client (it keeps the flow cookie); the browser at the IdP is
a requests session that fills in SimpleSAMLphp's login form.
"""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from config import load_settings
from config.errors import ConfigError
from federation.errors import FederationError, FederationErrorCode
from federation.identity import AssuranceLevel
from federation.upstream_saml import build_saml_source
from federation.upstream_saml.xmlsecurity import parse_document
from tests.peers.simplesamlphp import (
    LIBRARIAN_PASSWORD,
    OFFICER_PASSWORD,
    SimpleSamlPhp,
    idp_login,
    simplesamlphp_barnet,  # noqa: F401 - the session fixture
)
from tests.support.flask_flow import authorize_params, pkce_pair
from tests.support.http_login import csrf_token

BARNET = {"id": "barnet", "name": "London Borough of Barnet", "kind": "borough", "domains": ["barnet.test"],
          "memberships": ["London boroughs"],
          "teams": [{"id": "barnet-mash", "name": "Barnet MASH", "functions": ["mash"], "groups": ["MASH"]}]}


@dataclasses.dataclass
class SamlBroker:
    """The broker app with Barnet's SAML sources, and the IdP it trusts."""

    app: Any
    services: Any
    idp: SimpleSamlPhp

    def begin(self, source: str = "barnet-saml") -> tuple[Any, str]:
        """Start a sign-in in a fresh browser; return (broker client, redirect URL to the IdP)."""
        client = self.app.test_client()
        page = client.get("/login/choose").get_data(as_text=True)
        started = client.post("/login/choose", data={"csrf_token": csrf_token(page), "source": source})
        assert started.status_code == 302, started.get_data(as_text=True)
        return client, started.headers["Location"]

    def capture(self, source: str = "barnet-saml", user: str = "officer",
                password: str = OFFICER_PASSWORD) -> tuple[Any, dict[str, str]]:
        """Sign in at the IdP for a fresh broker browser; return (that browser, the POST fields)."""
        import requests

        client, url = self.begin(source)
        fields = idp_login(requests.Session(), url, user, password)
        return client, fields

    @staticmethod
    def deliver(client: Any, fields: dict[str, str], source: str = "barnet-saml") -> Any:
        """POST the IdP's answer to the broker's callback from ``client``."""
        data = {k: v for k, v in fields.items() if k != "action"}
        return client.post(f"/login/callback/{source}", data=data)

    def session_of(self, response: Any) -> Any:
        """Return the SSO session the callback's cookie names."""
        cookie = response.headers.get("Set-Cookie", "")
        value = cookie.split("supercloud-session=", 1)[1].split(";", 1)[0]
        return self.services.sso.find(value)


def barnet_document(settings_factory: Any, idp: SimpleSamlPhp, **source: Any) -> dict[str, Any]:
    """The test configuration plus Barnet with a plain and an encrypting SAML source."""
    document = settings_factory.document()
    document["organisations"].append({**BARNET, "sources": [
        idp.source_config("barnet-saml", **source),
        idp.source_config("barnet-saml-enc", display_name="Barnet (encrypted)", want_assertions_encrypted=True),
    ]})
    return document


@pytest.fixture
def saml_broker(settings_factory, simplesamlphp_barnet: SimpleSamlPhp):  # type: ignore[no-untyped-def]
    """The broker over Barnet's SimpleSAMLphp."""
    from broker.bootstrap import initialise
    from broker.services import build_services
    from broker.web.app import create_app

    settings = load_settings(settings_factory.write(barnet_document(settings_factory, simplesamlphp_barnet)))
    initialise(settings)
    services = build_services(settings)
    app = create_app(settings, services=services)
    app.config["TESTING"] = True
    yield SamlBroker(app, services, simplesamlphp_barnet)
    services.engine.dispose()


def test_a_barnet_safeguarding_officer_signs_in_through_simplesamlphp(saml_broker: SamlBroker) -> None:
    client, url = saml_broker.begin()
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(saml_broker.idp.base_url)
    assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"] and query["Signature"]
    assert "RelayState" not in query  # RelayState is never sent (and never followed)
    import requests

    fields = idp_login(requests.Session(), url, "officer", OFFICER_PASSWORD)
    assert fields["action"] == "http://127.0.0.1:8000/login/callback/barnet-saml"
    response = saml_broker.deliver(client, fields)
    assert response.status_code == 302 and response.headers["Location"].endswith("/signed-in")
    identity = saml_broker.session_of(response).identity
    assert identity.organisation == "barnet"
    assert identity.subject.issuer == saml_broker.idp.entity_id and identity.subject.subject == "b.okafor"
    assert identity.text("email") == "bola.okafor@barnet.test" and identity.text("name") == "Bola Okafor"
    assert identity.attributes["email"].source == "upstream:barnet-saml"
    assert identity.text("job_title") == "Safeguarding Officer"
    assert set(identity.groups) == {"MASH", "Children's Services"}
    assert identity.value("teams") == ("barnet-mash",)
    assert identity.authn.assurance is AssuranceLevel.AAL2 and "mfa" in identity.authn.methods
    signin = [r for r in saml_broker.services.audit.records() if r.event == "signin"][-1]
    assert (signin.outcome, signin.details["source"], signin.details["assurance"]) == ("success", "barnet-saml", "AAL2")


def test_a_password_only_sign_in_maps_to_aal1(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture(user="librarian", password=LIBRARIAN_PASSWORD)
    identity = saml_broker.session_of(saml_broker.deliver(client, fields)).identity
    assert identity.authn.assurance is AssuranceLevel.AAL1 and identity.authn.methods == ("pwd",)
    assert identity.groups == ("Libraries",) and identity.value("teams") is None


def test_an_encrypted_assertion_is_accepted(saml_broker: SamlBroker) -> None:
    client, fields = saml_broker.capture("barnet-saml-enc")
    document = parse_document(base64.b64decode(fields["SAMLResponse"]))
    assert document.find("{urn:oasis:names:tc:SAML:2.0:assertion}EncryptedAssertion") is not None
    response = saml_broker.deliver(client, fields, "barnet-saml-enc")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert saml_broker.session_of(response).identity.text("email") == "bola.okafor@barnet.test"


def test_the_sign_in_resumes_the_waiting_application(saml_broker: SamlBroker) -> None:
    from tests.oidc.helpers import verify_id_token
    from tests.support.flask_flow import exchange, query

    client = saml_broker.app.test_client()
    verifier, challenge = pkce_pair()
    client.get("/authorize", query_string=authorize_params(challenge))
    page = client.get("/login/choose").get_data(as_text=True)
    started = client.post("/login/choose", data={"csrf_token": csrf_token(page), "source": "barnet-saml"})
    import requests

    fields = idp_login(requests.Session(), started.headers["Location"], "officer", OFFICER_PASSWORD)
    response = saml_broker.deliver(client, fields)
    assert response.headers["Location"].endswith("/authorize/resume")
    code = query(client.get(response.headers["Location"]).headers["Location"])["code"]
    tokens = exchange(client, code, verifier).get_json()
    claims = verify_id_token(saml_broker.services, tokens["id_token"])
    assert claims["acr"] == "urn:supercloud:aal2"
    userinfo = client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).get_json()
    assert userinfo["email"] == "bola.okafor@barnet.test" and userinfo["name"] == "Bola Okafor"


def test_step_up_asks_for_the_configured_context_and_refuses_a_lower_answer(saml_broker: SamlBroker) -> None:
    import requests

    client = saml_broker.app.test_client()
    started = client.get("/login/upstream/barnet-saml?min_assurance=2")
    url = started.headers["Location"]
    request_xml = _redirect_request(url)
    assert b"ForceAuthn=\"true\"" in request_xml
    assert b"https://refeds.org/profile/mfa" in request_xml and b"Comparison=\"exact\"" in request_xml
    fields = idp_login(requests.Session(), url, "librarian", LIBRARIAN_PASSWORD)  # Password only: AAL1
    response = saml_broker.deliver(client, fields)
    assert response.status_code == 400
    record = list(saml_broker.services.audit.records())[-1]
    assert "below the assurance level" in record.details["reason"]


def test_sp_metadata_is_served_signed_at_the_entity_id(saml_broker: SamlBroker) -> None:
    response = saml_broker.app.test_client().get("/saml/sp/barnet-saml")
    assert response.status_code == 200 and response.mimetype == "application/samlmetadata+xml"
    root = parse_document(response.data)
    assert root.get("entityID") == "http://127.0.0.1:8000/saml/sp/barnet-saml"
    assert b"http://127.0.0.1:8000/login/callback/barnet-saml" in response.data
    assert b'use="signing"' in response.data and b'use="encryption"' in response.data
    assert b"rsa-sha256" in response.data and b"xmldsig#sha1" not in response.data
    assert saml_broker.app.test_client().get("/saml/sp/camden-demo").status_code == 404


def _redirect_request(url: str) -> bytes:
    import zlib

    encoded = parse_qs(urlsplit(url).query)["SAMLRequest"][0]
    return zlib.decompress(base64.b64decode(encoded), -15)


# -- misconfiguration: refuse to start --------------------------------------------------------


def _build(settings_factory: Any, idp: SimpleSamlPhp, **source: Any) -> Any:
    document = settings_factory.document()
    document["organisations"].append({**BARNET, "sources": [idp.source_config("barnet-saml", **source)]})
    settings = load_settings(settings_factory.write(document))
    return build_saml_source(settings.organisations[-1].sources[0], "barnet", settings)


def test_signatures_not_required_refuses_to_start(settings_factory, simplesamlphp_barnet) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as caught:
        _build(settings_factory, simplesamlphp_barnet, signed="none")
    assert "signed: none is refused" in str(caught.value)


def test_metadata_without_a_signing_certificate_refuses_to_start(settings_factory, simplesamlphp_barnet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import requests

    xml = requests.get(simplesamlphp_barnet.entity_id, timeout=5).text
    root = parse_document(xml)
    from xml.etree import ElementTree

    from federation.upstream_saml.xmlsecurity import DS, MD

    root.remove(root.find(f"{{{DS}}}Signature"))
    idp = root.find(f"{{{MD}}}IDPSSODescriptor")
    for descriptor in idp.findall(f"{{{MD}}}KeyDescriptor"):
        idp.remove(descriptor)
    path = tmp_path / "idp-no-keys.xml"
    path.write_bytes(ElementTree.tostring(root))
    with pytest.raises(FederationError) as caught:
        _build(settings_factory, simplesamlphp_barnet, idp_metadata={"file": str(path)})
    assert caught.value.code is FederationErrorCode.MISCONFIGURED
    assert "declares no signing certificate" in caught.value.reason


def test_metadata_signed_by_another_key_refuses_to_start(settings_factory, simplesamlphp_barnet) -> None:  # type: ignore[no-untyped-def]
    other = simplesamlphp_barnet.directory / "cert" / "idp.crt"  # not the metadata signer
    with pytest.raises(FederationError) as caught:
        _build(settings_factory, simplesamlphp_barnet,
               idp_metadata={"url": simplesamlphp_barnet.entity_id, "signing_certificate": str(other)})
    assert caught.value.code is FederationErrorCode.MISCONFIGURED and "signature verification failed" in caught.value.reason


def test_unsigned_metadata_from_a_url_is_refused_by_the_configuration(settings_factory, simplesamlphp_barnet) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as caught:
        _build(settings_factory, simplesamlphp_barnet, idp_metadata={"url": simplesamlphp_barnet.entity_id})
    assert "must be signed" in str(caught.value)


def test_a_generated_sp_key_is_kept_encrypted_and_reused(settings_factory, simplesamlphp_barnet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = {"sp_key": None, "sp_certificate": None, "sp_key_store": str(tmp_path / "sp.enc")}
    first = _build(settings_factory, simplesamlphp_barnet, **cfg).sp_metadata()
    stored = (tmp_path / "sp.enc").read_bytes()
    assert b"PRIVATE KEY" not in stored and b"PRIVATE KEY" not in base64.b64decode(stored)
    second = _build(settings_factory, simplesamlphp_barnet, **cfg).sp_metadata()
    certificate = parse_document(first).find(".//{http://www.w3.org/2000/09/xmldsig#}X509Certificate").text
    assert certificate in second.decode()


class _MemoryReplayCache:
    """A replay cache in a dict (the broker uses its state store)."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def add(self, namespace: str, key: str, value: dict[str, Any], ttl_seconds: int) -> bool:
        if (namespace, key) in self.keys:
            return False
        self.keys.add((namespace, key))  # type: ignore[arg-type]
        return ttl_seconds > 0


def test_a_configured_attribute_can_be_the_stable_subject(settings_factory, simplesamlphp_barnet) -> None:  # type: ignore[no-untyped-def]
    import requests

    from federation.sources import UpstreamRequest
    from tests.peers.simplesamlphp import ATTR_MAIL

    source = _build(settings_factory, simplesamlphp_barnet, subject_attribute=ATTR_MAIL, groups_attribute=None)
    with pytest.raises(FederationError):  # no replay cache yet: fail closed
        source.finish({"SAMLResponse": "x"}, {}, source.acs_url)
    source.use_replay_cache(_MemoryReplayCache())
    started = source.start(UpstreamRequest(source.acs_url))
    fields = idp_login(requests.Session(), started.url, "officer", OFFICER_PASSWORD)
    identity = source.finish({"SAMLResponse": fields["SAMLResponse"]}, started.state, source.acs_url)
    assert identity.subject.subject == "bola.okafor@barnet.test" and identity.groups == ()


def test_a_barnet_email_is_sent_to_barnets_idp(saml_broker: SamlBroker) -> None:
    client = saml_broker.app.test_client()
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", data={"csrf_token": csrf_token(page), "email": "bola.okafor@barnet.test"})
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"{saml_broker.idp.base_url}saml2/idp/SSOService.php?SAMLRequest=")
