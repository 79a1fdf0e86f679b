"""pysaml2 as our service provider: its configuration, AuthnRequests, responses, SP metadata.

- AuthnRequest (SAML Core §3.4.1) sent with HTTP-Redirect (Bindings §3.4), signed in the
  query string (§3.4.4.1) with RSA-SHA256; ``ForceAuthn`` and ``RequestedAuthnContext``
  (Core §3.3.2.2.1, comparison ``exact`` over the acceptable class refs) as asked.
- Responses arrive with HTTP-POST (Bindings §3.5). pysaml2 verifies signatures (keys from
  the IdP's metadata only), decrypts, and checks status, conditions and subject
  confirmation; ``federation.upstream_saml.profile`` then applies our stricter checks.

pysaml2 logs whole documents (personal data) at debug and inside error messages; its
logger is raised to CRITICAL here, and the reasons we audit never quote a document.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor
from saml2.response import AuthnResponse
from saml2.saml import NAMEID_FORMAT_UNSPECIFIED, AuthnContextClassRef
from saml2.samlp import RequestedAuthnContext

from federation.upstream_saml.keys import SpKeys
from federation.upstream_saml.metadata import IdpMetadata
from federation.upstream_saml.xmlsecurity import (
    DIGEST_ALG,
    SIGN_ALG,
    pysaml2_security_options,
    sign_metadata,
    sp_signature_requirements,
)

logging.getLogger("saml2").setLevel(logging.CRITICAL)


class BrokerSp(Saml2Client):
    """A pysaml2 client that keeps nothing between requests (no in-memory identity cache),
    so any broker instance can finish a sign-in another one started."""

    def consume(self, saml_response: str, request_id: str | None) -> AuthnResponse | None:
        """Parse and verify a base64 HTTP-POST ``SAMLResponse`` answering ``request_id``
        (None: unsolicited). Returns the verified response, or None if pysaml2 found it
        invalid without raising. Raises pysaml2's exceptions for everything else."""
        outstanding = {request_id: "broker"} if request_id else {}
        kwargs: dict[str, Any] = {
            "outstanding_queries": outstanding,
            "allow_unsolicited": self.allow_unsolicited,
            "want_assertions_signed": self.want_assertions_signed,
            "want_assertions_or_response_signed": self.want_assertions_or_response_signed,
            "want_response_signed": self.want_response_signed,
            "return_addrs": self.service_urls(binding=BINDING_HTTP_POST),
            "entity_id": self.config.entityid,
            "attribute_converters": self.config.attribute_converters,
            "allow_unknown_attributes": True,
        }
        response = self._parse_response(saml_response, AuthnResponse, "assertion_consumer_service", BINDING_HTTP_POST, **kwargs)
        return response if isinstance(response, AuthnResponse) else None


def build_client(*, entity_id: str, acs_url: str, keys: SpKeys, idp: IdpMetadata, signed: str,
                 allow_unsolicited: bool, clock_skew_seconds: int, display_name: str,
                 slo_url: str | None = None) -> BrokerSp:
    """Return the pysaml2 SP for one upstream IdP. Raises FederationError(MISCONFIGURED)."""
    conf: dict[str, Any] = {
        "entityid": entity_id,
        "name": display_name,
        **pysaml2_security_options(),
        "key_file": keys.signing_files.key_file,
        "cert_file": keys.signing_files.cert_file,
        # Every key an assertion may be encrypted to (current, next, previous: key rollover).
        "encryption_keypairs": [
            {"key_file": f.key_file, "cert_file": f.cert_file} for f in (keys.decryption_files or (keys.encryption_files,))
        ],
        # The next signing certificate is published beside the current one (metadata only).
        "additional_cert_files": [f.cert_file for f in keys.published_signing[1:]] or None,
        "accepted_time_diff": clock_skew_seconds,
        "allow_unknown_attributes": True,
        "metadata": {"inline": [idp.entity_xml]},
        "service": {
            "sp": {
                "endpoints": {
                    "assertion_consumer_service": [(acs_url, BINDING_HTTP_POST)],
                    **({"single_logout_service": [(slo_url, BINDING_HTTP_REDIRECT)]} if slo_url else {}),
                },
                **sp_signature_requirements(signed),
                "allow_unsolicited": allow_unsolicited,
                "name_id_format": [NAMEID_FORMAT_UNSPECIFIED],
                "name_id_format_allow_create": True,
            }
        },
    }
    config = SPConfig()
    config.load(conf)
    return BrokerSp(config=config)


def authn_request(client: BrokerSp, idp: IdpMetadata, *, acs_url: str, force_authn: bool,
                  class_refs: tuple[str, ...]) -> tuple[str, str]:
    """Return (request ID, redirect URL) for a signed AuthnRequest to ``idp``."""
    kwargs: dict[str, Any] = {"assertion_consumer_service_url": acs_url}
    if force_authn:
        kwargs["force_authn"] = "true"
    if class_refs:
        kwargs["requested_authn_context"] = RequestedAuthnContext(
            authn_context_class_ref=[AuthnContextClassRef(text=ref) for ref in class_refs], comparison="exact"
        )
    request_id, info = client.prepare_for_authenticate(
        entityid=idp.entity_id,
        relay_state="",
        binding=BINDING_HTTP_REDIRECT,
        sign=True,
        sigalg=SIGN_ALG,
        digest_alg=DIGEST_ALG,
        response_binding=BINDING_HTTP_POST,
        **kwargs,
    )
    location = dict(info["headers"])["Location"]
    return str(request_id), location


def sp_metadata(client: BrokerSp, keys: SpKeys | None = None) -> bytes:
    """Return our signed SP metadata (SAML Metadata §2.4.4): entity ID, the ACS (HTTP-POST),
    signing and encryption certificates (current and next, for rollover; never the previous
    encryption key, which is kept only to decrypt), ``AuthnRequestsSigned`` and ``WantAssertionsSigned``."""
    config = client.config
    if keys is not None and keys.published_encryption:
        config = copy.copy(client.config)
        config.encryption_keypairs = [{"key_file": f.key_file, "cert_file": f.cert_file} for f in keys.published_encryption]
    return sign_metadata(entity_descriptor(config), client.sec)
