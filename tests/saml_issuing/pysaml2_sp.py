"""An independent SAML SP for the issuing tests: pysaml2's Saml2Client, which parses our responses
with its own code and verifies/decrypts them with the xmlsec1 program, trusting only the IdP
certificate written in its IdP metadata.
"""

from __future__ import annotations

import base64
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig

from federation.upstream_saml.xmlsecurity import xmlsec_binary

IDP = "https://broker.test/saml/metadata"
SP = "https://case-records.camden.test/sp"
ACS = "https://case-records.camden.test/acs"
REQUEST_ID = "_request-7a1c"


def _b64_der(certificate_pem: str) -> str:
    return "".join(line for line in certificate_pem.strip().splitlines() if "CERTIFICATE" not in line)


def idp_metadata(certificate_pem: str) -> str:
    """Return IdP metadata (SAML Metadata §2.4.3) naming ``certificate_pem`` as the IdP's signing key."""
    return (
        f'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        f'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{IDP}">'
        '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f'<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{_b64_der(certificate_pem)}'
        '</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>'
        f'<md:SingleSignOnService Binding="{BINDING_HTTP_REDIRECT}" Location="https://broker.test/saml/sso"/>'
        "</md:IDPSSODescriptor></md:EntityDescriptor>"
    )


@dataclasses.dataclass
class Pysaml2Sp:
    """A pysaml2 SP; ``accept`` returns pysaml2's AuthnResponse or raises what pysaml2 raises."""

    client: Saml2Client

    def accept(self, response_xml: bytes, outstanding: dict[str, str] | None = None) -> Any:
        """Parse ``response_xml`` as an HTTP-POST binding SAMLResponse (base64) answering ``outstanding``
        (default: our one request id to the ACS). Raises whatever pysaml2 raises when it refuses."""
        encoded = base64.b64encode(response_xml).decode()
        parsed = self.client.parse_authn_request_response(
            encoded, BINDING_HTTP_POST, outstanding={REQUEST_ID: ACS} if outstanding is None else outstanding,
        )
        if parsed is None:
            raise ValueError("pysaml2 returned no response")
        return parsed


def make_sp(
    folder: Path,
    idp_certificate_pem: str,
    *,
    want_response_signed: bool,
    want_assertions_signed: bool,
    encryption: tuple[str, str] | None = None,
) -> Pysaml2Sp:
    """Return a pysaml2 SP trusting ``idp_certificate_pem`` for the IdP, requiring the given signatures,
    and decrypting with ``encryption`` (key PEM, certificate PEM) when given."""
    conf: dict[str, Any] = {
        "entityid": SP,
        "xmlsec_binary": xmlsec_binary(),
        "crypto_backend": "xmlsec1",
        "delete_tmpfiles": True,
        "only_use_keys_in_metadata": True,
        "metadata": {"inline": [idp_metadata(idp_certificate_pem)]},
        "allow_unknown_attributes": True,
        "service": {"sp": {
            "endpoints": {"assertion_consumer_service": [(ACS, BINDING_HTTP_POST)]},
            "want_response_signed": want_response_signed,
            "want_assertions_signed": want_assertions_signed,
            "want_assertions_or_response_signed": True,
            "allow_unsolicited": True,
        }},
    }
    if encryption is not None:
        key_file = Path(tempfile.mkstemp(suffix=".pem", dir=folder)[1])
        cert_file = Path(tempfile.mkstemp(suffix=".pem", dir=folder)[1])
        key_file.write_text(encryption[0])
        cert_file.write_text(encryption[1])
        conf["encryption_keypairs"] = [{"key_file": str(key_file), "cert_file": str(cert_file)}]
        conf["key_file"], conf["cert_file"] = str(key_file), str(cert_file)
    config = SPConfig()
    config.load(conf)
    return Pysaml2Sp(Saml2Client(config=config))
