"""pysaml2's Saml2Client as real service providers of the broker's SAML IdP, over Flask's test client.

Each ``Sp`` has its own signing and encryption keys and metadata written by pysaml2; the
broker is configured with that metadata (``saml_service_providers``), and the SP reads the
broker's signed metadata from ``/saml/metadata``. Requests are signed by pysaml2 (RSA-SHA256)
and responses parsed, verified and decrypted by pysaml2 through xmlsec1: a second SAML stack.
"""

from __future__ import annotations

import base64
import html
import re
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_PERSISTENT
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from config import load_settings
from federation.upstream_saml.keys import generate_key_pair
from federation.upstream_saml.xmlsecurity import xmlsec_binary
from tests.support.flask_flow import password_sign_in

ISSUER = "http://127.0.0.1:8000"
IDP_ENTITY_ID = f"{ISSUER}/saml/metadata"
SSO_URL = f"{ISSUER}/saml/sso"
SLO_URL = f"{ISSUER}/saml/slo"


class Sp:
    """One SP: keys, pysaml2 configuration, metadata, and (once the IdP is up) a Saml2Client."""

    def __init__(self, folder: Path, name: str, *, sign_requests: bool = True, encryption: bool = True) -> None:
        self.entity_id = f"http://{name}.sp.test/metadata"
        self.acs = f"http://{name}.sp.test/acs"
        self.slo = f"http://{name}.sp.test/slo"
        self.folder = folder / name
        self.folder.mkdir()
        signing, enc = generate_key_pair(name, 2048), generate_key_pair(name, 2048)
        self.files = {}
        for label, pair in (("sign", signing), ("enc", enc)):
            (self.folder / f"{label}.key").write_text(pair.key_pem)
            (self.folder / f"{label}.crt").write_text(pair.cert_pem)
        self.signing = signing
        self.sign_requests = sign_requests
        self.encryption = encryption
        self.metadata_file = self.folder / "metadata.xml"
        self.metadata_file.write_bytes(create_metadata_string(None, config=self.config(idp_metadata=None)))
        self.client: Saml2Client | None = None

    def config(self, idp_metadata: str | None) -> SPConfig:
        conf: dict[str, Any] = {
            "entityid": self.entity_id,
            "xmlsec_binary": xmlsec_binary(),
            "key_file": str(self.folder / "sign.key"),
            "cert_file": str(self.folder / "sign.crt"),
            "signing_algorithm": SIG_RSA_SHA256,
            "digest_algorithm": DIGEST_SHA256,
            "service": {"sp": {
                "endpoints": {
                    "assertion_consumer_service": [(self.acs, BINDING_HTTP_POST)],
                    "single_logout_service": [(self.slo, BINDING_HTTP_REDIRECT), (self.slo, BINDING_HTTP_POST)],
                },
                "authn_requests_signed": self.sign_requests,
                "want_assertions_signed": True,
                "want_response_signed": True,
                "logout_requests_signed": True,
                "allow_unsolicited": True,
                "name_id_format": [NAMEID_FORMAT_PERSISTENT],
            }},
            "allow_unknown_attributes": True,
        }
        if self.encryption:
            conf["encryption_keypairs"] = [{"key_file": str(self.folder / "enc.key"), "cert_file": str(self.folder / "enc.crt")}]
        if idp_metadata is not None:
            conf["metadata"] = {"inline": [idp_metadata]}
        config = SPConfig()
        config.load(conf)
        return config

    def connect(self, idp_metadata: str) -> None:
        self.client = Saml2Client(self.config(idp_metadata))

    # --- requests -------------------------------------------------------------------------------

    def authn_request(self, binding: str = BINDING_HTTP_REDIRECT, *, relay_state: str | None = "relay-1",
                      sign: bool | None = None, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        """Return (request id, what to send): {"url": ...} for Redirect, {"form": ...} for POST."""
        assert self.client is not None
        sign = self.sign_requests if sign is None else sign
        if binding == BINDING_HTTP_REDIRECT:
            req_id, request = self.client.create_authn_request(SSO_URL, binding=BINDING_HTTP_POST, sign=False, **kwargs)
            info = self.client.apply_binding(BINDING_HTTP_REDIRECT, str(request), SSO_URL, relay_state=relay_state or "",
                                             sign=sign, sigalg=SIG_RSA_SHA256)
            location = dict(info["headers"])["Location"]
            if relay_state is None:
                location = _drop_param(location, "RelayState", sign)
            return req_id, {"url": location}
        req_id, request = self.client.create_authn_request(
            SSO_URL, binding=BINDING_HTTP_POST, sign=sign, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256, **kwargs)
        form = {"SAMLRequest": base64.b64encode(str(request).encode()).decode()}
        if relay_state is not None:
            form["RelayState"] = relay_state
        return req_id, {"form": form}

    def parse(self, saml_response: str, outstanding: dict[str, str] | None):  # type: ignore[no-untyped-def]
        assert self.client is not None
        return self.client.parse_authn_request_response(saml_response, BINDING_HTTP_POST, outstanding=outstanding)


def _drop_param(url: str, name: str, signed: bool) -> str:
    if signed:
        raise ValueError("cannot drop a signed parameter")
    parts = urlsplit(url)
    kept = "&".join(p for p in parts.query.split("&") if not p.startswith(name + "="))
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{kept}"


def send(client, message: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Send a request built by ``Sp.authn_request`` (or a logout message) as a browser would,
    following the broker's cookie bounce for POST."""
    if "url" in message:
        parts = urlsplit(message["url"])
        return client.get(parts.path + "?" + parts.query)
    path = urlsplit(message.get("path", SSO_URL)).path
    bounce = client.post(path, data=message["form"])
    if bounce.status_code != 200 or "_bounced" not in bounce.get_data(as_text=True):
        return bounce
    action, fields = form_fields(bounce.get_data(as_text=True))
    return client.post(action, data=fields)


def form_fields(page: str) -> tuple[str, dict[str, str]]:
    """Return (action, hidden fields) of the first form on ``page``."""
    match = re.search(r'<form method="post" action="([^"]+)"', page)
    if match is None:
        raise AssertionError(f"no form on the page: {page[:800]}")
    fields = {html.unescape(n): html.unescape(v)
              for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)}
    return html.unescape(match.group(1)), fields


def sign_in_and_answer(client, response, email: str = "amara.okafor@camden.test"):  # type: ignore[no-untyped-def]
    """From the broker's redirect to /login, sign in and follow to the page that posts to the ACS."""
    assert response.status_code == 302 and response.headers["Location"].endswith("/login"), _body(response)
    signed = password_sign_in(client, email)
    assert signed.status_code == 302, signed.get_data(as_text=True)[:800]
    return client.get(signed.headers["Location"])


def posted_response(page_response) -> tuple[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    """Return (ACS URL, fields) of the broker's HTTP-POST binding page."""
    assert page_response.status_code == 200, _body(page_response)
    return form_fields(page_response.get_data(as_text=True))


def decode_response(fields: dict[str, str]) -> str:
    return base64.b64decode(fields["SAMLResponse"]).decode()


def redirect_message(url: str) -> str:
    """Return the XML a Redirect-binding URL carries."""
    value = parse_qs(urlsplit(url).query)
    key = "SAMLRequest" if "SAMLRequest" in value else "SAMLResponse"
    return zlib.decompress(base64.b64decode(value[key][0]), -15).decode()


@pytest.fixture
def sps(tmp_path: Path) -> dict[str, Sp]:
    """Three SPs: ``a`` and ``b`` (signed requests, encryption keys), ``plain`` (unsigned requests, no encryption key)."""
    return {
        "a": Sp(tmp_path, "a"),
        "b": Sp(tmp_path, "b"),
        "plain": Sp(tmp_path, "plain", sign_requests=False, encryption=False),
    }


def sp_entries(sps: dict[str, Sp], **extra: dict[str, Any]) -> list[dict[str, Any]]:
    entries = []
    for key, sp in sps.items():
        entry = {"entity_id": sp.entity_id, "name": f"Service {key.upper()}", "service": "case-records",
                 "metadata": {"file": str(sp.metadata_file)}}
        entry.update(extra.get(key, {}))
        entries.append(entry)
    return entries


@pytest.fixture
def saml_env(settings_factory, sps):  # type: ignore[no-untyped-def]
    """(app, services, sps) with every SP registered and connected to the broker's metadata."""
    return build_env(settings_factory, sps)


def build_env(settings_factory, sps: dict[str, Sp], *, policies: bool = False, document_hook=None, **extra):  # type: ignore[no-untyped-def]
    from broker.bootstrap import initialise
    from broker.services import build_services
    from broker.web.app import create_app
    from tests.support.settings import LONDON_BUNDLE

    document = settings_factory.document()
    document["saml_service_providers"] = sp_entries(sps, **extra)
    base = document["applications"][0]
    document["applications"] = [{**base, "backchannel_logout_uri": "http://127.0.0.1:8001/backchannel-logout"}]
    if policies:
        document["policies"] = {"bundle": str(LONDON_BUNDLE)}
        document["applications"] = [{**base, "client_id": "discharge-hub", "service": "discharge-hub"}]
    if document_hook is not None:
        document_hook(document)
    settings = load_settings(settings_factory.write(document))
    initialise(settings)
    services = build_services(settings)
    app = create_app(settings, services=services)
    app.config["TESTING"] = True
    metadata = app.test_client().get("/saml/metadata").get_data(as_text=True)
    for sp in sps.values():
        sp.connect(metadata)
    return app, services, sps


def _body(response) -> str:  # type: ignore[no-untyped-def]
    """The headings and paragraphs of a page (for assertion messages)."""
    text = response.get_data(as_text=True)
    return " | ".join(re.findall(r'class="govuk-(?:body|heading-l)">([^<]*)', text)) or text[:500]
