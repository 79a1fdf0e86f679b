"""A service provider's SAML metadata (SAML 2.0 Metadata §2.4.4): its endpoints, keys and wishes.

The metadata is the only place the IdP learns where responses may go (AssertionConsumerService),
where logout messages go (SingleLogoutService) and which keys sign the SP's requests or
receive encrypted assertions. A federation's signature on it is checked with the
certificate configured for that federation (reusing ``federation.upstream_saml``'s checks).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from xml.etree import ElementTree

from broker.errors import BrokerError, BrokerErrorCode
from config.saml_sp import SpMetadataConfig
from federation.errors import FederationError
from federation.upstream_saml.metadata import fetch, saml2_descriptor  # fetch: one reader for IdP and SP metadata
from federation.upstream_saml.xmlsecurity import (
    MD,
    XmlSecurity,
    certificate_pem,
    inspect_document,
    parse_document,
    signing_certificates,
)

SAML2_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
DS = "http://www.w3.org/2000/09/xmldsig#"


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    """One metadata endpoint (SAML Metadata §2.2.2, §2.2.3)."""

    binding: str
    location: str
    response_location: str | None = None
    index: int | None = None
    is_default: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class SpMetadata:
    """What an SP's metadata says."""

    entity_id: str
    assertion_consumers: tuple[Endpoint, ...]
    single_logout: tuple[Endpoint, ...]
    signing_certificates: tuple[str, ...]
    encryption_certificate_pem: bytes | None
    authn_requests_signed: bool
    want_assertions_signed: bool
    requested_attributes: frozenset[str] | None


def _refuse(where: str, reason: str) -> BrokerError:
    return BrokerError(BrokerErrorCode.BAD_REQUEST, f"SP metadata from {where} refused: {reason}", status=400)


def parse_sp_metadata(xml: bytes, entity_id: str | None, *, signer_pem: str | None, where: str) -> SpMetadata:
    """Return the SP ``entity_id`` (or the only SP) described by ``xml``.

    With ``signer_pem`` the root must carry a valid signature by that certificate. An ACS
    must be an absolute http(s) URL with the HTTP-POST binding (the only one responses go
    by). Raises BrokerError(BAD_REQUEST) naming ``where`` and the problem.
    """
    try:
        if signer_pem is not None:
            root = parse_document(xml)
            XmlSecurity().verify_enveloped(xml, root.tag.replace("{", "").replace("}", ":"), signer_pem)
        root = inspect_document(xml).root
    except FederationError as exc:
        raise _refuse(where, exc.reason) from None
    if root.tag not in {f"{{{MD}}}EntityDescriptor", f"{{{MD}}}EntitiesDescriptor"}:
        raise _refuse(where, "not SAML metadata")
    entities = [root] if root.tag == f"{{{MD}}}EntityDescriptor" else list(root.iter(f"{{{MD}}}EntityDescriptor"))
    sps = [e for e in entities if _sp_descriptor(e) is not None and (entity_id is None or e.get("entityID") == entity_id)]
    if len(sps) != 1:
        raise _refuse(where, f"it does not describe {'SP ' + repr(entity_id) if entity_id else 'exactly one SP'}")
    entity = sps[0]
    descriptor = _sp_descriptor(entity)
    if descriptor is None:  # filtered above; kept for type checkers
        raise _refuse(where, "no SAML 2.0 SPSSODescriptor")
    acs = tuple(
        Endpoint(e.get("Binding", ""), e.get("Location", ""), None, _int(e.get("index")), e.get("isDefault") == "true")
        for e in descriptor.findall(f"{{{MD}}}AssertionConsumerService")
        if e.get("Binding") == BINDING_POST and e.get("Location", "").startswith(("https://", "http://"))
    )
    if not acs:
        raise _refuse(where, "no HTTP-POST AssertionConsumerService with an http(s) Location")
    slo = tuple(
        Endpoint(e.get("Binding", ""), e.get("Location", ""), e.get("ResponseLocation"))
        for e in descriptor.findall(f"{{{MD}}}SingleLogoutService")
        if e.get("Binding") in {BINDING_POST, BINDING_REDIRECT} and e.get("Location", "").startswith(("https://", "http://"))
    )
    encryption = _encryption_certificate(descriptor)
    requested = {
        r.get("Name", "")
        for r in descriptor.iter(f"{{{MD}}}RequestedAttribute")
        if r.get("Name")
    }
    return SpMetadata(
        entity_id=entity.get("entityID", ""),
        assertion_consumers=acs,
        single_logout=slo,
        signing_certificates=tuple(signing_certificates(descriptor)),
        encryption_certificate_pem=certificate_pem(encryption).encode() if encryption else None,
        authn_requests_signed=descriptor.get("AuthnRequestsSigned") in {"true", "1"},
        want_assertions_signed=descriptor.get("WantAssertionsSigned") in {"true", "1"},
        requested_attributes=frozenset(requested) if requested else None,
    )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _sp_descriptor(entity: ElementTree.Element) -> ElementTree.Element | None:
    return saml2_descriptor(entity, "SPSSODescriptor")


def _encryption_certificate(descriptor: ElementTree.Element) -> str | None:
    """Return the base64 certificate for encryption: ``use="encryption"`` first, else one
    without ``use`` (SAML Metadata §2.4.1.1: both uses), else None."""
    for wanted in ("encryption", None):
        for key in descriptor.findall(f"{{{MD}}}KeyDescriptor"):
            if key.get("use") == wanted:
                for cert in key.iter(f"{{{DS}}}X509Certificate"):
                    text = "".join((cert.text or "").split())
                    if text:
                        return text
    return None


def signer_pem(cfg: SpMetadataConfig, base_dir: Path) -> str | None:
    """Return the configured federation signer certificate (PEM), or None.

    Raises BrokerError(BAD_REQUEST) if it cannot be read.
    """
    if cfg.signer_certificate is None:
        return None
    path = cfg.signer_certificate if cfg.signer_certificate.is_absolute() else base_dir / cfg.signer_certificate
    try:
        return path.read_text()
    except OSError:
        raise BrokerError(BrokerErrorCode.BAD_REQUEST, f"cannot read the metadata signer certificate {path}") from None
